"""``store`` on SQLite and PostgreSQL (the store tests' fixtures), for the follow-up tests."""

from tests.collector.store.conftest import pg_store_session, pg_url, store

__all__ = ["pg_store_session", "pg_url", "store"]
