"""Run the Alembic migrations from package data, without an ``alembic.ini``."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

import collector.migrations
from collector.store.engine import SQLITE_IMMEDIATE
from collector.store.tables import metadata

__all__ = ["alembic_config", "current_revision", "drift", "head_revision", "upgrade"]

SCRIPT_LOCATION = Path(collector.migrations.__file__).parent

# Any constant works; it only has to be the same for every collector sharing a database.
_PG_MIGRATION_LOCK = 0x6469_6167  # "diag"


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """A programmatic Alembic config whose scripts are the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found under {SCRIPT_LOCATION}")
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database to ``revision`` in one transaction.

    On PostgreSQL an advisory lock serialises collectors starting at the same time; on
    SQLite ``BEGIN IMMEDIATE`` does the same.
    """
    with engine.connect().execution_options(**{SQLITE_IMMEDIATE: True}) as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        command.upgrade(alembic_config(conn), revision)


def drift(engine: Engine) -> list[object]:
    """Differences between the migrated database and :data:`schema.metadata` (empty: none)."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))
