"""PostgreSQL for tests: a fresh database per test session at 127.0.0.1:5432, dropped after.

CI runs PostgreSQL there (trust auth, database ``test``); the tests skip with a clear
reason only when nothing listens on the port.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

PG_HOST = os.environ.get("DIAG_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("DIAG_TEST_PG_PORT", "5432"))
SKIP_REASON = f"PostgreSQL tests need a server on {PG_HOST}:{PG_PORT} (nothing listens there)"


def pg_listening() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1.0):
            return True
    except OSError:  # refused or unreachable: the PG tests are skipped with SKIP_REASON
        return False


def _admin_conninfo() -> str:
    """The first of root / postgres that can log in to the ``test`` database."""
    errors = []
    for user in (os.environ.get("DIAG_TEST_PG_USER"), "root", "postgres"):
        if not user:
            continue
        conninfo = f"host={PG_HOST} port={PG_PORT} dbname=test user={user}"
        try:
            with psycopg.connect(conninfo, connect_timeout=5):
                return conninfo
        except psycopg.OperationalError as exc:  # try the next user name
            errors.append(f"{user}: {exc}")
    raise RuntimeError("cannot log in to PostgreSQL 'test' database: " + "; ".join(errors))


@contextmanager
def fresh_database() -> Iterator[str]:
    """Create a uniquely named database; yield its SQLAlchemy URL; drop it afterwards."""
    admin = _admin_conninfo()
    name = f"diag_h6_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    user = admin.split("user=")[1]
    try:
        yield f"postgresql+psycopg://{user}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
