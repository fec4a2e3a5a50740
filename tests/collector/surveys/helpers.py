"""Cases for the follow-up tests: opened by the desk with a contact, then resolved."""

from __future__ import annotations

import contextlib

from collector.store import Store
from collector.store.cases import CaseRepo
from collector.store.desk_cases import DeskRepo, NewCase
from collector.store.errors import Conflict
from collector.store.queries import Scope

T0 = 1_800_000_000.0
CONTACT = "Wang Wei <wang@acme.example>"


def resolved_case(
    store: Store, customer: str = "acme", *, contact: str | None = CONTACT, at: float = T0
) -> str:
    """A resolved routine case of ``customer`` (enrolling a host makes the customer)."""
    with contextlib.suppress(Conflict):  # the customer's host is enrolled already
        store.enroll_agent(customer, f"{customer}-db", f"{customer}-db")
    case = DeskRepo(store).open(
        Scope.everything(),
        NewCase(
            customer=customer,
            type="consultation",
            channel="hotline",
            title="reports are slow",
            contact=contact,
        ),
        actor="li",
        now=at,
    )
    CaseRepo(store).resolve(Scope.everything(), case.id, actor="li", now=at + 60)
    return case.id
