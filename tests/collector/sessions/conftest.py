"""The store fixtures (SQLite and PostgreSQL) and a case to request sessions for."""

from __future__ import annotations

from collector.emergency.case_content import case_content
from collector.incidents import IncidentEngine, Signal
from collector.store import Store
from collector.store.cases import CaseRepo
from tests.collector.store.conftest import pg_store_session, pg_url, store

__all__ = ["KEY", "T0", "open_case", "pg_store_session", "pg_url", "store"]

T0 = 1_700_000_000.0
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOmvRkBGZ4eXx1xCkqkUSUdpOUpR2JhLTqNW6mpDjyQ1 eng@laptop"


def open_case(store: Store, customer: str, host: str, at: float = T0) -> str:
    """Enrol ``host``'s agent (``<customer>-<host>``) and open a case for it, as the live observer does."""
    store.enroll_agent(customer, host, f"{customer}-{host}")
    engine = IncidentEngine(clock=lambda: at)
    (incident,) = engine.feed(
        Signal.check_crit(customer, host, "storage.filesystem", "FS_FULL", ts=at, item="/var")
    )
    return CaseRepo(store).open_case(case_content(incident), now=at)
