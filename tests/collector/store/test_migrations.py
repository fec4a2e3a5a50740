"""Migrations: from empty to head on both engines, no drift against the schema module."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from collector.store import Store
from collector.store.engine import create_engine
from collector.store.migrate import (
    SCRIPT_LOCATION,
    alembic_config,
    current_revision,
    drift,
    head_revision,
    upgrade,
)
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


def test_0005_re_stamps_latest_results_pinned_in_the_future(empty_url: str) -> None:
    """Stored before timestamps were bounded: a latest result stamped 2099 stops pinning."""
    engine = create_engine(empty_url)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "0004_inspections")
            conn.execute(
                sa.text(
                    "INSERT INTO customers (slug, name, timezone, settings, created_at) "
                    "VALUES ('acme', 'acme', 'UTC', '{}', 0)"
                )
            )
            conn.execute(
                sa.text("INSERT INTO hosts (customer_id, name, labels, facts) VALUES (1, 'web1', '{}', '{}')")
            )
            for check, ts in (("host.load", 4_070_908_800.0), ("host.memory", 1_700_000_000.0)):
                conn.execute(
                    sa.text(
                        'INSERT INTO latest_results (host_id, "check", agent_id, seq, ts, layer, severity, '
                        '"key", summary, duration_ms, findings) '
                        "VALUES (1, :check, 'a', 1, :ts, 'host', 'OK', 'OK', '', 0, '[]')"
                    ),
                    {"check": check, "ts": ts},
                )
        before = time.time()
        upgrade(engine)
        with engine.connect() as conn:
            stamps: dict[str, float] = dict(
                conn.execute(sa.text('SELECT "check", ts FROM latest_results')).all()
            )
        assert before - 1 <= stamps["host.load"] <= time.time() + 1
        assert stamps["host.memory"] == 1_700_000_000.0
    finally:
        engine.dispose()
