"""The customer service file's first part: contracts and contacts (:class:`CustomerFileRepo`).

Every read takes a :class:`~collector.store.queries.Scope`; another customer's contract or
contact is reported exactly like one that does not exist (NotFound). Values arrive
validated by the layer above (the API's models, :class:`collector.desk.calendar.CalendarSettings`);
the repository checks only what the database must keep true (names unique per customer,
the customer exists). Writing a contract marks the customer's SLA clocks for the sweep
to compute again (its targets or calendar may have changed).
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from collector.store.case_states import ACTIVE_STATES
from collector.store.engine import SQLITE_IMMEDIATE
from collector.store.errors import Conflict, NotFound
from collector.store.queries import Scope
from collector.store.schema import customers, hosts
from collector.store.schema_cases import cases
from collector.store.schema_contracts import case_sla, contacts, contracts

if TYPE_CHECKING:
    from collector.store.store import Store

__all__ = ["ContactRecord", "ContractRecord", "CustomerFile", "CustomerFileRepo"]


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


@dataclass(frozen=True, slots=True)
class ContractRecord:
    id: int
    customer: str
    name: str
    tier: str
    starts_on: date
    ends_on: date
    targets: Mapping[str, Any]
    rate_onsite: Decimal
    rate_remote: Decimal
    currency: str
    calendar: Mapping[str, Any]
    created_at: float
    updated_at: float

    def covers(self, day: date) -> bool:
        return self.starts_on <= day <= self.ends_on


@dataclass(frozen=True, slots=True)
class ContactRecord:
    id: int
    customer: str
    name: str
    role: str
    email: str | None
    phone: str | None
    language: str
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class CustomerFile:
    """What ``diagctl customers show`` prints: the customer with its contracts, contacts, hosts."""

    customer: str
    name: str
    timezone: str
    contracts: list[ContractRecord]
    contacts: list[ContactRecord]
    hosts: list[str]
    open_cases: int


def _contract(row: Any) -> ContractRecord:
    return ContractRecord(
        id=row.id,
        customer=row.slug,
        name=row.name,
        tier=row.tier,
        starts_on=row.starts_on,
        ends_on=row.ends_on,
        targets=_json(row.targets),
        rate_onsite=Decimal(row.rate_onsite),
        rate_remote=Decimal(row.rate_remote),
        currency=row.currency,
        calendar=_json(row.calendar),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _contact(row: Any) -> ContactRecord:
    return ContactRecord(
        id=row.id,
        customer=row.slug,
        name=row.name,
        role=row.role,
        email=row.email,
        phone=row.phone,
        language=row.language,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


_CONTRACT_FIELDS = (
    "name",
    "tier",
    "starts_on",
    "ends_on",
    "targets",
    "rate_onsite",
    "rate_remote",
    "currency",
    "calendar",
)
_CONTACT_FIELDS = ("name", "role", "email", "phone", "language")


class CustomerFileRepo:
    """Contracts and contacts of customers in ``store``'s database."""

    def __init__(self, store: Store) -> None:
        self._engine = store.engine
        self._write_engine = store.engine.execution_options(**{SQLITE_IMMEDIATE: True})

    # ------------------------------------------------------------------ contracts

    def contracts(self, scope: Scope, customer: str | None = None) -> builtins.list[ContractRecord]:
        """Contracts the scope may read (of ``customer`` when given), by customer and start."""
        query = (
            sa.select(contracts, customers.c.slug)
            .join(customers, customers.c.id == contracts.c.customer_id)
            .where(scope.where())
            .order_by(customers.c.slug, contracts.c.starts_on, contracts.c.id)
        )
        if customer is not None:
            query = query.where(customers.c.slug == customer)
        with self._engine.connect() as conn:
            return [_contract(row) for row in conn.execute(query)]

    def contract(self, scope: Scope, customer: str, contract_id: int) -> ContractRecord:
        found = [c for c in self.contracts(scope, customer) if c.id == contract_id]
        if not found:
            raise NotFound(f"no contract {contract_id} of customer {customer!r}")
        return found[0]

    def add_contract(
        self, scope: Scope, customer: str, values: Mapping[str, Any], *, now: float
    ) -> ContractRecord:
        with self._write_engine.begin() as conn:
            customer_id = self._customer_id(conn, scope, customer)
            self._unique(conn, contracts, customer_id, str(values["name"]), None, "contract")
            row = {key: values[key] for key in _CONTRACT_FIELDS}
            new_id = conn.execute(
                contracts.insert()
                .values(customer_id=customer_id, created_at=now, updated_at=now, **row)
                .returning(contracts.c.id)
            ).scalar_one()
            self._mark_dirty(conn, customer_id)
        return self.contract(scope, customer, int(new_id))

    def update_contract(
        self, scope: Scope, customer: str, contract_id: int, values: Mapping[str, Any], *, now: float
    ) -> ContractRecord:
        with self._write_engine.begin() as conn:
            customer_id = self._customer_id(conn, scope, customer)
            if "name" in values:
                self._unique(conn, contracts, customer_id, str(values["name"]), contract_id, "contract")
            changed = {key: values[key] for key in _CONTRACT_FIELDS if key in values}
            result = conn.execute(
                contracts.update()
                .where(contracts.c.id == contract_id, contracts.c.customer_id == customer_id)
                .values(updated_at=now, **changed)
            )
            if result.rowcount == 0:
                raise NotFound(f"no contract {contract_id} of customer {customer!r}")
            self._mark_dirty(conn, customer_id)
        return self.contract(scope, customer, contract_id)

    # ------------------------------------------------------------------ contacts

    def contacts(self, scope: Scope, customer: str | None = None) -> builtins.list[ContactRecord]:
        query = (
            sa.select(contacts, customers.c.slug)
            .join(customers, customers.c.id == contacts.c.customer_id)
            .where(scope.where())
            .order_by(customers.c.slug, contacts.c.name)
        )
        if customer is not None:
            query = query.where(customers.c.slug == customer)
        with self._engine.connect() as conn:
            return [_contact(row) for row in conn.execute(query)]

    def contact_named(self, scope: Scope, customer: str, names: Sequence[str]) -> ContactRecord | None:
        """The customer's contact with the first of ``names`` that one has, else None."""
        wanted = [n for n in dict.fromkeys(n.strip() for n in names) if n]
        if not wanted:
            return None
        query = (
            sa.select(contacts, customers.c.slug)
            .join(customers, customers.c.id == contacts.c.customer_id)
            .where(scope.where(), customers.c.slug == customer, contacts.c.name.in_(wanted))
        )
        with self._engine.connect() as conn:
            found = {row.name: _contact(row) for row in conn.execute(query)}
        return next((found[n] for n in wanted if n in found), None)

    def contact(self, scope: Scope, customer: str, contact_id: int) -> ContactRecord:
        found = [c for c in self.contacts(scope, customer) if c.id == contact_id]
        if not found:
            raise NotFound(f"no contact {contact_id} of customer {customer!r}")
        return found[0]

    def add_contact(
        self, scope: Scope, customer: str, values: Mapping[str, Any], *, now: float
    ) -> ContactRecord:
        with self._write_engine.begin() as conn:
            customer_id = self._customer_id(conn, scope, customer)
            self._unique(conn, contacts, customer_id, str(values["name"]), None, "contact")
            row = {key: values.get(key) for key in _CONTACT_FIELDS}
            row["language"] = row["language"] or "zh-CN"
            new_id = conn.execute(
                contacts.insert()
                .values(customer_id=customer_id, created_at=now, updated_at=now, **row)
                .returning(contacts.c.id)
            ).scalar_one()
        return self.contact(scope, customer, int(new_id))

    def update_contact(
        self, scope: Scope, customer: str, contact_id: int, values: Mapping[str, Any], *, now: float
    ) -> ContactRecord:
        with self._write_engine.begin() as conn:
            customer_id = self._customer_id(conn, scope, customer)
            if "name" in values:
                self._unique(conn, contacts, customer_id, str(values["name"]), contact_id, "contact")
            changed = {key: values[key] for key in _CONTACT_FIELDS if key in values}
            result = conn.execute(
                contacts.update()
                .where(contacts.c.id == contact_id, contacts.c.customer_id == customer_id)
                .values(updated_at=now, **changed)
            )
            if result.rowcount == 0:
                raise NotFound(f"no contact {contact_id} of customer {customer!r}")
        return self.contact(scope, customer, contact_id)

    def delete_contact(self, scope: Scope, customer: str, contact_id: int) -> None:
        with self._write_engine.begin() as conn:
            customer_id = self._customer_id(conn, scope, customer)
            result = conn.execute(
                contacts.delete().where(contacts.c.id == contact_id, contacts.c.customer_id == customer_id)
            )
            if result.rowcount == 0:
                raise NotFound(f"no contact {contact_id} of customer {customer!r}")

    # ------------------------------------------------------------------ the customer file

    def require_customer(self, scope: Scope, customer: str) -> None:
        """NotFound unless ``customer`` exists and ``scope`` may see it."""
        with self._engine.connect() as conn:
            self._customer_id(conn, scope, customer)

    def customer_file(self, scope: Scope, customer: str) -> CustomerFile:
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(customers).where(customers.c.slug == customer, scope.where())
            ).first()
            if row is None:
                raise NotFound(f"no customer {customer!r}")
            names = conn.execute(
                sa.select(hosts.c.name).where(hosts.c.customer_id == row.id).order_by(hosts.c.name)
            ).scalars()
            host_names = [str(name) for name in names]
            open_cases = conn.execute(
                sa.select(sa.func.count())
                .select_from(cases)
                .where(cases.c.customer_id == row.id, cases.c.state.in_(ACTIVE_STATES))
            ).scalar_one()
        return CustomerFile(
            customer=row.slug,
            name=row.name,
            timezone=row.timezone,
            contracts=self.contracts(scope, customer),
            contacts=self.contacts(scope, customer),
            hosts=host_names,
            open_cases=int(open_cases),
        )

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _customer_id(conn: sa.Connection, scope: Scope, slug: str) -> int:
        found = conn.execute(
            sa.select(customers.c.id).where(customers.c.slug == slug, scope.where())
        ).scalar()
        if found is None:
            raise NotFound(f"no customer {slug!r}")
        return int(found)

    @staticmethod
    def _unique(
        conn: sa.Connection, table: sa.Table, customer_id: int, name: str, own_id: int | None, what: str
    ) -> None:
        query = sa.select(table.c.id).where(table.c.customer_id == customer_id, table.c.name == name)
        if own_id is not None:
            query = query.where(table.c.id != own_id)
        if conn.execute(query).first() is not None:
            raise Conflict(f"this customer already has a {what} named {name!r}")

    @staticmethod
    def _mark_dirty(conn: sa.Connection, customer_id: int) -> None:
        conn.execute(case_sla.update().where(case_sla.c.customer_id == customer_id).values(dirty=True))
