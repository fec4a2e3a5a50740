"""Migrations: from empty to head on both engines, no drift against the schema module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from collector.store import Store
from collector.store.engine import create_engine
from collector.store.migrate import SCRIPT_LOCATION, current_revision, drift, head_revision, upgrade
from collector.store.tables import metadata
from tests.collector.store.pg import SKIP_REASON, fresh_database, pg_listening


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    if not pg_listening():
        pytest.skip(SKIP_REASON)
    with fresh_database() as url:
        yield url


def test_upgrade_from_empty_creates_every_table_without_drift(empty_url: str) -> None:
    engine = create_engine(empty_url)
    try:
        assert current_revision(engine) is None
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        tables = set(sa.inspect(engine).get_table_names())
        assert {t.name for t in metadata.sorted_tables} <= tables
        assert drift(engine) == []
        upgrade(engine)  # a second run is a no-op
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_drift_is_detected(tmp_path: Path) -> None:
    """The no-drift check can fail: a table the migration lacks shows up."""
    engine = create_engine(f"sqlite:///{tmp_path / 'd.db'}")
    try:
        upgrade(engine)
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE gaps"))
        assert any("gaps" in str(d) for d in drift(engine))
    finally:
        engine.dispose()


def test_migrations_need_no_alembic_ini() -> None:
    assert (SCRIPT_LOCATION / "env.py").is_file()
    assert not (SCRIPT_LOCATION / "alembic.ini").exists()
    assert not (SCRIPT_LOCATION.parent / "alembic.ini").exists()


def test_sqlite_store_is_wal_with_pragmas(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'c.db'}", synchronous="FULL")
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    finally:
        store.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        pytest.param("sqlite://", "needs a file", id="sqlite in memory"),
        pytest.param("mysql://x@localhost/db", "unsupported", id="other engine"),
        pytest.param("postgresql+pg8000://x@localhost/db", "psycopg", id="postgres via another driver"),
    ],
)
def test_bad_store_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create_engine(url)
