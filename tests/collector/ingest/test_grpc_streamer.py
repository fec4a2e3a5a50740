"""agent.streamer against the real collector service (in-process grpc.aio, real SQLite store)."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent import wire
from agent.records import CheckRecord
from agent.spool import KIND_HEALTH, KIND_INVENTORY, Spool, SpoolEntry, encode_json
from agent.streamer import Backoff, HostIdentity, Streamer, StreamerSettings, entry_to_wire
from checks.api import Metric, Result, Severity, Unit
from collector.ingest.grpc_service import GrpcSettings
from collector.store.store import Store
from protos.diag.v1 import agent_pb2 as pb
from tests.integration.harness import (
    InProcessCollector,
    LiveStream,
    batch_msg,
    free_port,
    hello_msg,
    result_seqs,
    stored_gaps,
    wait_for,
)

FAST: dict[str, Any] = {"backoff_base_s": 0.05, "backoff_cap_s": 0.2, "idle_poll_s": 0.1}


def record(i: int, key: str = "LOAD_HIGH") -> CheckRecord:
    return CheckRecord.from_outputs(
        "host.load",
        "host",
        1_700_000_000.0 + i,
        0.5,
        [Result(Severity.WARN, key, f"load {i}")],
        [Metric("host_load1_per_core_ratio", float(i), Unit.RATIO, {"cpu": "all"})],
    )


@pytest.fixture
def settings() -> GrpcSettings:
    return GrpcSettings(listen=f"127.0.0.1:{free_port()}", max_batch_entries=50, rate_limit_entries_per_s=1e6)


@pytest.fixture
def collector(store: Store, settings: GrpcSettings) -> Iterator[InProcessCollector]:
    c = InProcessCollector(store, settings)
    yield c
    c.stop()


@pytest.fixture
def enrolled(store: Store) -> tuple[str, str]:
    identity, token = store.enroll_agent("acme", "web1", "agent-1")
    return identity.agent_id, token


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    s = Spool(tmp_path / "spool.db")
    yield s
    s.close()


def make_streamer(spool: Spool, address: str, token: str, on_inspection=None, **overrides: float) -> Streamer:
    settings = StreamerSettings(address=address, token=token, **{**FAST, **overrides})
    return Streamer(spool, settings, HostIdentity("agent-1", "web1", {"role": "db"}), on_inspection)


def test_streams_the_spool_in_batches_and_deletes_what_is_acked(collector, store, enrolled, spool) -> None:
    spool.append_records([record(i) for i in range(120)])  # more than 2 batches of the collector's 50
    streamer = make_streamer(spool, collector.address, enrolled[1])
    streamer.start()
    try:
        assert wait_for(lambda: streamer.acked_seq == 120, 15)
        assert spool.stats().depth == 0
        spool.append_records([record(i) for i in range(120, 130)])
        streamer.notify()
        assert wait_for(lambda: streamer.acked_seq == 130, 5)
    finally:
        streamer.stop(2)
    assert result_seqs(store, "agent-1") == list(range(1, 131))
    assert collector.metrics.registry.get_sample_value("diag_ingest_points_total") == 130


def test_welcome_resume_point_drops_what_the_collector_already_has(collector, store, enrolled, spool) -> None:
    agent_id, token = enrolled
    spool.append_records([record(i) for i in range(10)])
    live = LiveStream(collector.address, token)  # another path already delivered 1..6
    live.send(hello_msg(agent_id))
    live.next()
    live.send(batch_msg(range(1, 7)))
    assert live.next().ack.durable_through_seq == 6
    live.close()
    streamer = make_streamer(spool, collector.address, token)
    streamer.start()
    try:
        assert wait_for(lambda: streamer.acked_seq == 10, 10)
    finally:
        streamer.stop(2)
    assert result_seqs(store, agent_id) == list(range(1, 11))
    assert spool.stats().depth == 0


def test_reconnects_after_the_collector_restarts(store, settings, enrolled, spool) -> None:
    first = InProcessCollector(store, settings)
    spool.append_records([record(i) for i in range(5)])
    streamer = make_streamer(spool, first.address, enrolled[1])
    streamer.start()
    try:
        assert wait_for(lambda: streamer.acked_seq == 5, 10)
        first.stop()
        spool.append_records([record(i) for i in range(5, 25)])  # spooled while the collector is down
        time.sleep(0.5)
        assert streamer.acked_seq == 5 and not streamer.connected
        second = InProcessCollector(store, settings)
        try:
            assert wait_for(lambda: streamer.acked_seq == 25, 15)
        finally:
            streamer.stop(2)
            second.stop()
    finally:
        streamer.stop(0)
    assert result_seqs(store, "agent-1") == list(range(1, 26))
    assert streamer.sessions >= 2


def test_wrong_token_backs_off_long_and_never_logs_the_token(
    collector, store, enrolled, spool, caplog
) -> None:
    secret = "dga_wrong-token-do-not-log-1234567890"
    spool.append_records([record(0)])
    streamer = make_streamer(spool, collector.address, secret, auth_backoff_s=30.0)
    caplog.set_level(logging.DEBUG, logger="agent.streamer")
    streamer.start()
    try:
        assert wait_for(lambda: streamer.last_error is not None, 10)
        time.sleep(0.5)
        assert streamer.sessions == 1  # backing off for 30 s, not spinning
    finally:
        streamer.stop(1)
    assert streamer.last_error is not None and streamer.last_error.startswith("UNAUTHENTICATED")
    assert "rejected this agent's credentials" in caplog.text
    assert secret not in caplog.text and secret not in repr(streamer._settings)
    assert spool.stats().depth == 1 and result_seqs(store, "agent-1") == []


def test_full_spool_gap_is_reported_and_marked(collector, store, enrolled, tmp_path) -> None:
    tiny = Spool(tmp_path / "tiny.db", max_bytes=6000)
    try:
        tiny.append_records([record(i) for i in range(60)])  # far more than fits: the oldest are dropped
        dropped = tiny.stats().dropped_total
        assert dropped > 0
        gap = tiny.gaps()[0]
        streamer = make_streamer(tiny, collector.address, enrolled[1])
        streamer.start()
        try:
            assert wait_for(lambda: streamer.acked_seq == 60 and not tiny.gaps(), 10)
        finally:
            streamer.stop(2)
        assert stored_gaps(store, "agent-1") == [(gap.first_seq, gap.last_seq, dropped, "spool_full")]
        assert result_seqs(store, "agent-1") == list(range(dropped + 1, 61))
    finally:
        tiny.close()


def test_inspection_requests_reach_the_callback(collector, enrolled, spool) -> None:
    got: list[wire.InspectionRequest] = []
    arrived = threading.Event()

    def on_inspection(request: wire.InspectionRequest) -> None:
        got.append(request)
        arrived.set()

    streamer = make_streamer(spool, collector.address, enrolled[1], on_inspection)
    streamer.start()
    try:
        assert wait_for(lambda: streamer.connected and collector.service.connected == 1, 10)
        request = pb.InspectionRequest(inspection_id="insp-7", checks=["host.load"])
        assert collector.call(collector.service.request_inspection("agent-1", request))
        assert arrived.wait(5)
    finally:
        streamer.stop(1)
    assert got == [wire.InspectionRequest(inspection_id="insp-7", checks=("host.load",))]


def test_an_entry_the_collector_rejects_is_skipped_and_reported(collector, store, enrolled, spool) -> None:
    spool.append_records([record(0), record(1)])
    # A result key the collector refuses (the spool trusts its writer; the collector does not).
    spool.append([("result", 1_700_000_002.0, record(2).to_dict().__repr__().encode())])  # not JSON
    bad = record(3).to_dict()
    bad["key"] = "not a key"
    spool.append([("result", 1_700_000_003.0, encode_json(bad))])
    spool.append_records([record(4)])
    streamer = make_streamer(spool, collector.address, enrolled[1])
    streamer.start()
    try:
        assert wait_for(lambda: streamer.acked_seq == 5 and len(stored_gaps(store, "agent-1")) == 2, 15)
    finally:
        streamer.stop(2)
    assert result_seqs(store, "agent-1") == [1, 2, 5]
    assert stored_gaps(store, "agent-1") == [(3, 3, 1, "corrupt_entry"), (4, 4, 1, "rejected_by_collector")]


def test_stop_flushes_then_keeps_the_rest(collector, store, enrolled, spool) -> None:
    spool.append_records([record(i) for i in range(30)])
    streamer = make_streamer(spool, collector.address, enrolled[1])
    streamer.start()
    streamer.stop(5)
    assert result_seqs(store, "agent-1") == list(range(1, 31))
    assert spool.stats().depth == 0


def test_health_and_inventory_entries_are_streamed(collector, store, enrolled, spool) -> None:
    spool.append(
        [
            (KIND_HEALTH, 1_700_000_000.0, encode_json({"rss_bytes": 30_000_000, "dropped_total": 0})),
            (KIND_INVENTORY, 1_700_000_001.0, encode_json({"products": []})),
        ]
    )
    streamer = make_streamer(spool, collector.address, enrolled[1])
    streamer.start()
    try:
        assert wait_for(lambda: streamer.acked_seq == 2, 10)
    finally:
        streamer.stop(1)
    assert collector.metrics.registry.get_sample_value("diag_ingest_entries_total") == 2


def test_entry_to_wire_maps_a_check_record() -> None:
    rec = record(3)
    from agent.spool import encode_record

    encoded = entry_to_wire(SpoolEntry(9, rec.ts, "result", encode_record(rec)))
    assert encoded is not None
    proto = pb.Entry.FromString(encoded)
    assert (proto.seq, proto.ts_unix_ms) == (9, 1_700_000_003_000)
    assert (proto.result.check, proto.result.severity, proto.result.key) == (
        "host.load",
        pb.SEVERITY_WARN,
        "LOAD_HIGH",
    )
    assert [(m.name, m.value, [(lb.key, lb.value) for lb in m.labels]) for m in proto.result.metrics] == [
        ("host_load1_per_core_ratio", 3.0, [("cpu", "all")])
    ]
    assert entry_to_wire(SpoolEntry(1, 0.0, "session-frame", b"{}")) is None
    with pytest.raises(ValueError, match="spool entry 2: malformed result payload"):
        entry_to_wire(SpoolEntry(2, 0.0, "result", b'{"check": "host.load"}'))


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    b = Backoff(0.5, 30.0, rng=random.Random(7))
    delays = [b.next() for _ in range(10)]
    for n, d in enumerate(delays):
        ceiling = min(30.0, 0.5 * 2**n)
        assert ceiling / 2 <= d <= ceiling
    b.reset()
    assert 0.25 <= b.next() <= 0.5


def test_settings_from_agent_config() -> None:
    from agent.config import CollectorConfig

    cfg = CollectorConfig(address="127.0.0.1:50051", token="dga_secret")
    s = StreamerSettings.from_config(cfg, window=2)
    assert (s.address, s.token, s.window, s.tls) == ("127.0.0.1:50051", "dga_secret", 2, False)
    assert "dga_secret" not in repr(s)
    with pytest.raises(ValueError, match=r"collector\.address and collector\.token"):
        StreamerSettings.from_config(CollectorConfig())


def test_a_reset_agent_state_is_refused_not_silently_dropped(
    collector, store, enrolled, spool, caplog
) -> None:
    agent_id, token = enrolled
    live = LiveStream(collector.address, token)  # the collector already holds 1..50 of this agent id
    live.send(hello_msg(agent_id))
    live.next()
    live.send(batch_msg(range(1, 51)))
    assert live.next().ack.durable_through_seq == 50
    live.close()
    spool.append_records([record(i) for i in range(5)])  # a fresh spool: seqs 1..5 again
    streamer = make_streamer(spool, collector.address, token, auth_backoff_s=30.0)
    streamer.start()
    try:
        assert wait_for(lambda: streamer.last_error is not None, 10)
    finally:
        streamer.stop(0.5)
    assert streamer.last_error is not None and streamer.last_error.startswith("FAILED_PRECONDITION")
    assert "enroll this host under a new agent id" in caplog.text
    assert spool.stats().depth == 5  # nothing deleted
