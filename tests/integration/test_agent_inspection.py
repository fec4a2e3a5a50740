"""A real ``diag-agent run`` answers the collector's InspectionRequests over real gRPC.

The collector is the real grpc.aio ``AgentStreamService`` on a SQLite store, in process
(so the test can call ``request_inspection``); the agent is a real ``diag-agent run``
process with the default checks, one of them disabled in its config.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from collector.ingest.grpc_service import GrpcSettings
from collector.store.schema import check_results
from collector.store.store import Store
from protos.diag.v1 import agent_pb2 as pb
from tests.integration.harness import InProcessCollector, Proc, spawn, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

AGENT_ID = "agent-insp"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path / 'collector.db'}")
    yield s
    s.close()


def _tagged(store: Store, inspection_id: str) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                check_results.c.seq,
                check_results.c.check,
                check_results.c.summary,
                check_results.c.findings,
                check_results.c.inspection_id,
            )
            .where(check_results.c.agent_id == AGENT_ID, check_results.c.inspection_id == inspection_id)
            .order_by(check_results.c.seq)
        )
        return [dict(r._mapping) for r in rows]


def _markers(store: Store, inspection_id: str) -> list[dict[str, Any]]:
    return [r for r in _tagged(store, inspection_id) if r["check"] == "application.agent"]


def _request(inspection_id: str, checks: list[str], layers: list[str]) -> pb.InspectionRequest:
    deadline = int((time.time() + 30) * 1000)
    return pb.InspectionRequest(
        inspection_id=inspection_id, checks=checks, layers=layers, deadline_unix_ms=deadline
    )


def _start_agent(tmp_path: Path, address: str, token: str) -> Proc:
    config = tmp_path / "agent.yaml"
    config.write_text(
        f"agent:\n  id: {AGENT_ID}\n  state_dir: {tmp_path / 'state'}\n  interval_s: 600\n  jitter_s: 0.5\n"
        f"collector:\n  address: {address}\n  token: {token}\n"
        "checks:\n  network.dns:\n    enabled: false\n"
    )
    config.chmod(0o600)
    return spawn(
        ["-m", "agent", "run", "--config", str(config), "--log-level", "debug"], tmp_path / "agent.log"
    )


def test_agent_answers_an_inspection_with_tagged_results_and_the_marker_last(store, tmp_path) -> None:
    _, token = store.enroll_agent("acme", "web1", AGENT_ID)
    collector = InProcessCollector(store, GrpcSettings(listen="127.0.0.1:0"))
    agent = _start_agent(tmp_path, collector.address, token)
    try:
        first = _request(
            "plan-a-20261125T120000-1a2b", ["host.load", "host.nope", "network.dns"], ["storage"]
        )
        # request_inspection is False until the agent's stream is up.
        assert wait_for(lambda: collector.call(collector.service.request_inspection(AGENT_ID, first)), 30), (
            agent.output()
        )
        assert wait_for(lambda: len(_markers(store, first.inspection_id)) == 1, 40), agent.output()

        # Hostile or repeated requests, then a valid one: only the valid one is answered.
        for request in (
            first,  # duplicate of an inspection already answered
            _request("bad id; DROP TABLE", ["host.load"], []),
            _request("x" * 65, ["host.load"], []),
            _request("plan-b-1", ["../../etc/passwd", "host.load" * 40, "host.load"], ["moon"]),
        ):
            assert collector.call(collector.service.request_inspection(AGENT_ID, request))
        assert wait_for(lambda: len(_markers(store, "plan-b-1")) == 1, 40), agent.output()
    finally:
        code = agent.terminate()
        collector.stop()
    assert code == 0, agent.output()

    rows = _tagged(store, first.inspection_id)
    checks = [r["check"] for r in rows]
    marker = _markers(store, first.inspection_id)[0]
    # the marker comes last, after every result of the inspection
    assert rows[-1] == marker
    assert marker["seq"] == max(r["seq"] for r in rows)
    assert "host.load" in checks
    assert "network.dns" not in checks  # disabled here: listed, not run
    assert "host.nope" not in checks
    assert all(c.startswith(("host.load", "storage.", "application.agent")) for c in checks), checks
    ran = len(rows) - 1
    summary = marker["summary"]
    assert f"Inspection {first.inspection_id}: {ran} of " in summary
    assert "host.nope (unknown check)" in summary
    assert "network.dns (disabled)" in summary
    findings = marker["findings"]
    keys = {(f.get("key"), f.get("item")) for f in findings}
    assert ("INSPECTION_CHECK_UNAVAILABLE", "host.nope") in keys
    assert ("INSPECTION_CHECK_UNAVAILABLE", "network.dns") in keys
    assert any(f.get("key") == "INSPECTION_ANSWERED" for f in findings)

    # the duplicate was ignored: still one marker; the invalid ids reached nothing
    assert len(_markers(store, first.inspection_id)) == 1
    second = _tagged(store, "plan-b-1")
    assert [r["check"] for r in second] == ["host.load", "application.agent"]
    assert "../../etc/passwd (unknown check)" in second[-1]["summary"]
    assert "moon (unknown layer)" in second[-1]["summary"]
    long_name = "host.load" * 40
    assert long_name not in second[-1]["summary"] and long_name[:100] in second[-1]["summary"]
    log = agent.output()
    assert "invalid id" in log
    assert "duplicate ignored" in log
