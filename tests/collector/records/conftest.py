"""The store fixtures of tests/collector/store (SQLite and PostgreSQL) for the records' tests."""

from tests.collector.store.conftest import pg_store_session, pg_url, store

__all__ = ["pg_store_session", "pg_url", "store"]
