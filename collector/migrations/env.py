"""Alembic environment: migrate the connection handed over by collector.store.migrate."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context
from alembic.config import Config

from collector.store.tables import metadata


def run_migrations(config: Config) -> None:
    connection = config.attributes.get("connection")
    if not isinstance(connection, sa.Connection):
        raise RuntimeError(
            "collector migrations run through `diag-collector migrate --store URL` "
            "(collector.store.migrate.upgrade), which passes the connection in"
        )
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        # SQLite cannot ALTER most things: batch mode recreates tables instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


try:
    _config: Config | None = context.config
except AttributeError:  # imported outside an Alembic run (e.g. pytest --doctest-modules)
    _config = None
if _config is not None:
    run_migrations(_config)
