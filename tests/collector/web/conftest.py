"""The store fixtures of tests/collector/store (SQLite and PostgreSQL) for the dashboard's tests."""

from tests.collector.store.conftest import pg_store_session, pg_url, store

__all__ = ["pg_store_session", "pg_url", "store"]
