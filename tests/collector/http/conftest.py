"""The store fixtures of tests/collector/store (SQLite and PostgreSQL) for the API's tests.

A test module that defines its own ``store`` fixture (test_app.py) keeps it.
"""

from tests.collector.store.conftest import pg_store_session, pg_url, store

__all__ = ["pg_store_session", "pg_url", "store"]
