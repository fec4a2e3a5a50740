"""The in-process gRPC collector as a pytest fixture, shared by the ingest and store tests.

Real grpc.aio server over loopback; ingest either on the event loop's threads or in a
worker process as ``serve --ingest-processes`` runs it (the two params). The test module
names its :class:`GrpcSettings` and binds the fixture: ``collector = collector_fixture(SETTINGS)``;
it needs a ``store`` fixture (SQLite in ``tests/collector/ingest``, SQLite and PostgreSQL
in ``tests/collector/store``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.ingest.grpc_service import GrpcSettings
from collector.store.store import Store
from tests.integration.harness import InProcessCollector

__all__ = ["collector_fixture", "enrolled_agent", "sqlite_store"]


def collector_fixture(settings: GrpcSettings) -> Callable[..., Any]:
    """A ``collector`` fixture serving ``settings``, once in-process and once with a worker."""

    @pytest.fixture(params=["in-process", "worker"])
    def collector(request: pytest.FixtureRequest, store: Store) -> Iterator[InProcessCollector]:
        c = InProcessCollector(
            store, settings, ingest_url=str(store.engine.url) if request.param == "worker" else None
        )
        yield c
        c.stop()

    return collector


def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    """A migrated Store on a SQLite file under ``tmp_path``, closed afterwards."""
    s = Store.open(f"sqlite:///{tmp_path / 'collector.db'}")
    yield s
    s.close()


def enrolled_agent(store: Store) -> tuple[str, str]:
    """(agent id, token) of acme's agent-1 on web1."""
    identity, token = store.enroll_agent("acme", "web1", "agent-1")
    return identity.agent_id, token
