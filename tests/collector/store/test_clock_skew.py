"""Timestamps far ahead of the collector's clock (issue 13, Medium #7): a result stamped in
2099 must not stay a host's latest; the agent's skew is a visible health problem.

Real gRPC over loopback, SQLite and PostgreSQL, ingest in-process and in a worker process.
"""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from collector.ingest.grpc_service import GrpcSettings
from collector.store.fleet import FleetRepo
from collector.store.queries import Scope
from collector.store.schema import check_results
from collector.store.store import Store
from protos.diag.v1 import agent_pb2 as pb
from tests.collector.grpc_fixtures import collector_fixture
from tests.integration.harness import InProcessCollector, LiveStream, hello_msg, result_entry, wait_for

SETTINGS = GrpcSettings(listen="127.0.0.1:0", max_clock_skew_s=300.0)
TS_2099_MS = 4_070_908_800_000


collector = collector_fixture(SETTINGS)


def stamped(seq: int, ts_ms: int, severity: int, key: str) -> pb.AgentMessage:
    entry = result_entry(seq, severity=severity, key=key, summary=key.lower())
    entry.ts_unix_ms = ts_ms
    return pb.AgentMessage(batch=pb.EntryBatch(entries=[entry]))


def latest(store: Store) -> tuple[str, float]:
    detail = FleetRepo(store).host_detail(Scope.everything(), "web1")
    [result] = [r for results in detail.layers.values() for r in results if r.check == "host.load"]
    return result.key, result.ts


def skew(store: Store) -> float | None:
    return FleetRepo(store).host_detail(Scope.everything(), "web1").host.clock_skew_s


def test_a_result_stamped_2099_does_not_hide_a_later_crit(
    collector: InProcessCollector, store: Store
) -> None:
    identity, token = store.enroll_agent("acme", "web1", "agent-1")
    live = LiveStream(collector.address, token)
    try:
        live.send(hello_msg(identity.agent_id))
        assert live.next().WhichOneof("body") == "welcome"
        sent_at = time.time()
        live.send(stamped(1, TS_2099_MS, pb.SEVERITY_OK, "LOAD_OK"))
        assert live.next().ack.durable_through_seq == 1  # kept, not refused: nothing is lost
        assert wait_for(lambda: skew(store) is not None, 20)
        # Stored at its arrival, and the agent's clock skew is a visible health problem.
        key, ts = latest(store)
        assert key == "LOAD_OK" and sent_at - 1 <= ts <= time.time() + 1
        assert skew(store) == pytest.approx(TS_2099_MS / 1000 - sent_at, abs=60)
        assert FleetRepo(store).stats()["hosts_clock_skewed"] == 1
        time.sleep(0.01)
        live.send(stamped(2, int(time.time() * 1000), pb.SEVERITY_CRIT, "LOAD_HIGH"))
        assert live.next().ack.durable_through_seq == 2
        assert wait_for(lambda: latest(store)[0] == "LOAD_HIGH", 20), latest(store)
        assert (
            skew(store) is None and FleetRepo(store).stats()["hosts_clock_skewed"] == 0
        )  # its clock is fine again
    finally:
        live.close()
    with store.engine.connect() as conn:
        stamps = [
            float(t)
            for t in conn.execute(sa.select(check_results.c.ts).order_by(check_results.c.seq)).scalars()
        ]
    assert all(t < sent_at + 3600 for t in stamps), stamps


def test_a_clock_within_the_allowed_skew_keeps_its_timestamps(
    collector: InProcessCollector, store: Store
) -> None:
    identity, token = store.enroll_agent("acme", "web1", "agent-1")
    ahead_ms = int((time.time() + 120) * 1000)  # 2 minutes ahead: within 300 s
    live = LiveStream(collector.address, token)
    try:
        live.send(hello_msg(identity.agent_id))
        assert live.next().WhichOneof("body") == "welcome"
        live.send(stamped(1, ahead_ms, pb.SEVERITY_OK, "LOAD_OK"))
        assert live.next().ack.durable_through_seq == 1
        assert wait_for(lambda: FleetRepo(store).host_detail(Scope.everything(), "web1").layers != {}, 20)
    finally:
        live.close()
    assert latest(store)[1] == ahead_ms / 1000 and skew(store) is None
