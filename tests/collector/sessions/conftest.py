"""The store fixtures (SQLite and PostgreSQL) and a case to request sessions for."""

from __future__ import annotations

from tests.collector.people import T0, open_case
from tests.collector.store.conftest import pg_store_session, pg_url, store

__all__ = ["KEY", "T0", "open_case", "pg_store_session", "pg_url", "store"]

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOmvRkBGZ4eXx1xCkqkUSUdpOUpR2JhLTqNW6mpDjyQ1 eng@laptop"
