"""``store``: a migrated Store on SQLite (a tmp file) and on PostgreSQL (a session database)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from collector.ingest.decode import decode_logged
from collector.store import Store
from collector.store.tables import metadata
from tests.collector.store.pg import SKIP_REASON, fresh_database, pg_listening


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    if not pg_listening():
        pytest.skip(SKIP_REASON)
    with fresh_database() as url:
        yield url


@pytest.fixture(scope="session")
def pg_store_session(pg_url: str) -> Iterator[Store]:
    store = Store.open(pg_url)
    yield store
    store.close()


def _truncate_pg(store: Store) -> None:
    names = ", ".join(t.name for t in metadata.sorted_tables)
    with store.engine.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        # Stores in these tests may meet ingest-log rows, as the serving process's does.
        s = Store.open(f"sqlite:///{tmp_path / 'collector.db'}", log_decoder=decode_logged)
        yield s
        s.close()
        return
    session_store: Store = request.getfixturevalue("pg_store_session")
    _truncate_pg(session_store)
    # A fresh Store object (empty caches) on the session's migrated database.
    s = Store(session_store.engine, log_decoder=decode_logged)
    yield s
