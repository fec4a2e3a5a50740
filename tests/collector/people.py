"""The people of the API tests: cases opened as the live observer opens them, one API token
per role of two customers, and the bearer header that carries a token."""

from __future__ import annotations

from typing import Final

from collector.emergency.case_content import case_content
from collector.incidents import IncidentEngine, Signal
from collector.store import Store
from collector.store.cases import CaseRepo

__all__ = ["ROLES", "T0", "auth", "open_case", "role_tokens"]

T0: Final = 1_700_000_000.0

ROLES: Final[dict[str, tuple[str, str, str | None]]] = {
    "engineer": ("li", "engineer", None),
    "manager": ("mgr", "service_manager", None),
    "acme admin": ("acme-admin", "customer_admin", "acme"),
    "acme viewer": ("acme-viewer", "viewer", "acme"),
    "globex admin": ("globex-admin", "customer_admin", "globex"),
    "globex viewer": ("globex-viewer", "viewer", "globex"),
}
"""Label → (token name, role, customer) of the tokens :func:`role_tokens` creates."""


def role_tokens(store: Store, *labels: str) -> dict[str, str]:
    """Label → a fresh API token for each of ``labels`` (all of :data:`ROLES` when none)."""
    return {
        label: store.create_api_token(name, role, customer=customer)
        for label, (name, role, customer) in ROLES.items()
        if not labels or label in labels
    }


def open_case(store: Store, customer: str, host: str, at: float = T0) -> str:
    """Enrol ``host``'s agent (``<customer>-<host>``) and open a case for it from a real
    incident, as the live observer does; the case id."""
    store.enroll_agent(customer, host, f"{customer}-{host}")
    engine = IncidentEngine(clock=lambda: at)
    (incident,) = engine.feed(
        Signal.check_crit(customer, host, "storage.filesystem", "FS_FULL", ts=at, item="/var")
    )
    return CaseRepo(store).open_case(case_content(incident), now=at)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
