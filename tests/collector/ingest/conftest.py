"""``store`` (SQLite) and ``agent`` (acme's agent-1) for the ingest tests; each module binds
its ``collector`` with :func:`tests.collector.grpc_fixtures.collector_fixture`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.store.store import Store
from tests.collector.grpc_fixtures import enrolled_agent, sqlite_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    yield from sqlite_store(tmp_path)


@pytest.fixture
def agent(store: Store) -> tuple[str, str]:
    return enrolled_agent(store)
