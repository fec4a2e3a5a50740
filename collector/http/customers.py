"""API: the customer file's contracts and contacts, and the SLA manager view.

- ``GET  /customers/{c}``                         the customer file: contracts, contacts, hosts, open cases
- ``GET|POST /customers/{c}/contracts``, ``PATCH /customers/{c}/contracts/{id}``
- ``GET|POST /customers/{c}/contacts``, ``PATCH|DELETE /customers/{c}/contacts/{id}``
- ``GET  /sla``                                   clocks at risk (75% used) and breached, of open cases

Threat model. Contracts hold commercial terms (rates, SLA targets); contacts hold personal
data (names, e-mail addresses, phone numbers). Callers are API-token holders:

- another customer's people must learn nothing: every read and write is scoped in the
  query, and a customer (or contract, contact) outside the caller's scope answers 404,
  exactly like one that does not exist, *before* any role check (no 403 oracle);
- a customer must not change its own commercial terms: contracts are written only by
  engineers and service managers; a customer_admin reads its contracts and manages its
  own contacts; viewers only read;
- hostile bodies: every field is validated (lengths, dates, money with two decimals,
  e-mail and phone syntax, IANA zone, known case types and countries) and answers 422
  naming the field; the body size is bounded by the app's body limits; duplicate names
  answer 409; nothing is half-written (one transaction per request);
- the SLA view is read-only and scoped like the rest; ``/metrics`` exposes only counts.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response, status

from collector.http.deps import Principal, StoreDep, store_errors
from collector.http.models import NoQuery
from collector.http.models_customers import (
    ContactIn,
    ContactOut,
    ContactPatch,
    ContractIn,
    ContractOut,
    ContractPatch,
    CustomerFileOut,
    SlaClockOut,
    SlaQuery,
)
from collector.store import ApiPrincipal, NotFound
from collector.store.customer_file import CustomerFileRepo
from collector.store.sla import SlaRepo

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["customers"])

ContractId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The contract's id (GET .../contracts).")]
ContactId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The contact's id (GET .../contacts).")]


def _visible(repo: CustomerFileRepo, who: ApiPrincipal, customer: str) -> None:
    """404 unless the caller may see ``customer`` (before any role check)."""
    with store_errors():
        if not who.scope.allows(customer):
            raise NotFound(f"no customer {customer!r}")
        repo.require_customer(who.scope, customer)


def _require_manager(who: ApiPrincipal) -> None:
    if not who.is_staff:  # engineers and service managers (collector.store.principal)
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "contracts are written by engineers and service managers only"
        )


def _require_contact_writer(who: ApiPrincipal) -> None:
    if not who.is_staff and who.role != "customer_admin":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "viewer tokens are read-only")


@router.get("/customers/{customer}", response_model=CustomerFileOut)
def customer_file(
    customer: str, store: StoreDep, who: Principal, _q: Annotated[NoQuery, Query()]
) -> CustomerFileOut:
    """The customer's service file: contracts, contacts, hosts and the number of open cases."""
    with store_errors():
        if not who.scope.allows(customer):
            raise NotFound(f"no customer {customer!r}")
        return CustomerFileOut.of(CustomerFileRepo(store).customer_file(who.scope, customer))


# --------------------------------------------------------------------------- contracts


@router.get("/customers/{customer}/contracts", response_model=list[ContractOut])
def list_contracts(
    customer: str, store: StoreDep, who: Principal, _q: Annotated[NoQuery, Query()]
) -> list[ContractOut]:
    """The customer's contracts, by start date."""
    repo = CustomerFileRepo(store)
    _visible(repo, who, customer)
    return [ContractOut.of(c) for c in repo.contracts(who.scope, customer)]


@router.post("/customers/{customer}/contracts", response_model=ContractOut, status_code=201)
def add_contract(customer: str, body: ContractIn, store: StoreDep, who: Principal) -> ContractOut:
    """Add a contract (engineers and service managers)."""
    repo = CustomerFileRepo(store)
    _visible(repo, who, customer)
    _require_manager(who)
    with store_errors():
        return ContractOut.of(repo.add_contract(who.scope, customer, body.values(), now=time.time()))


@router.patch("/customers/{customer}/contracts/{contract_id}", response_model=ContractOut)
def update_contract(
    customer: str, contract_id: ContractId, body: ContractPatch, store: StoreDep, who: Principal
) -> ContractOut:
    """Change a contract (engineers and service managers); its customer's SLA clocks are computed again."""
    repo = CustomerFileRepo(store)
    _visible(repo, who, customer)
    with store_errors():
        current = repo.contract(who.scope, customer, contract_id)
        _require_manager(who)
        values = body.values()
        starts, ends = values.get("starts_on", current.starts_on), values.get("ends_on", current.ends_on)
        if ends < starts:
            raise HTTPException(422, f"ends_on {ends} must not be before starts_on {starts}")
        return ContractOut.of(repo.update_contract(who.scope, customer, contract_id, values, now=time.time()))


# --------------------------------------------------------------------------- contacts


@router.get("/customers/{customer}/contacts", response_model=list[ContactOut])
def list_contacts(
    customer: str, store: StoreDep, who: Principal, _q: Annotated[NoQuery, Query()]
) -> list[ContactOut]:
    """The customer's contacts, by name."""
    repo = CustomerFileRepo(store)
    _visible(repo, who, customer)
    return [ContactOut.of(c) for c in repo.contacts(who.scope, customer)]


@router.post("/customers/{customer}/contacts", response_model=ContactOut, status_code=201)
def add_contact(customer: str, body: ContactIn, store: StoreDep, who: Principal) -> ContactOut:
    """Add a contact (engineers, service managers, the customer's own admin)."""
    repo = CustomerFileRepo(store)
    _visible(repo, who, customer)
    _require_contact_writer(who)
    with store_errors():
        return ContactOut.of(repo.add_contact(who.scope, customer, body.values(), now=time.time()))


@router.patch("/customers/{customer}/contacts/{contact_id}", response_model=ContactOut)
def update_contact(
    customer: str, contact_id: ContactId, body: ContactPatch, store: StoreDep, who: Principal
) -> ContactOut:
    """Change a contact (engineers, service managers, the customer's own admin)."""
    repo = CustomerFileRepo(store)
    _visible(repo, who, customer)
    with store_errors():
        repo.contact(who.scope, customer, contact_id)
        _require_contact_writer(who)
        return ContactOut.of(
            repo.update_contact(who.scope, customer, contact_id, body.values(), now=time.time())
        )


@router.delete("/customers/{customer}/contacts/{contact_id}", status_code=204)
def delete_contact(customer: str, contact_id: ContactId, store: StoreDep, who: Principal) -> Response:
    """Remove a contact (engineers, service managers, the customer's own admin)."""
    repo = CustomerFileRepo(store)
    _visible(repo, who, customer)
    with store_errors():
        repo.contact(who.scope, customer, contact_id)
        _require_contact_writer(who)
        repo.delete_contact(who.scope, customer, contact_id)
    return Response(status_code=204)


# --------------------------------------------------------------------------- SLA


@router.get("/sla", response_model=list[SlaClockOut], tags=["sla"])
def sla_view(store: StoreDep, who: Principal, q: Annotated[SlaQuery, Query()]) -> list[SlaClockOut]:
    """SLA clocks at risk (75% of the target used) and breached, of open cases; breached first."""
    if q.customer is not None and not who.scope.allows(q.customer):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no customer {q.customer!r}")
    rows = SlaRepo(store).view(who.scope, customer=q.customer, limit=q.limit)
    return [SlaClockOut.of(r) for r in rows]
