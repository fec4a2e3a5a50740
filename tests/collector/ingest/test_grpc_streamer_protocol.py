"""agent.streamer's side of the protocol, observed by a scripted fake collector.

The fake is a real gRPC server (synchronous API) whose Connect records every agent
message and acknowledges only when the test says so, so the test can see the Hello,
the batch limits, the unacknowledged-batch window and the heartbeats.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import queue
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped, unused-ignore]
import pytest

from agent.spool import Spool
from agent.streamer import HostIdentity, Streamer, StreamerSettings
from protos.diag.v1 import agent_pb2 as pb
from protos.diag.v1 import agent_pb2_grpc
from tests.collector.ingest.test_grpc_streamer import record
from tests.integration.harness import wait_for


class ScriptedCollector(agent_pb2_grpc.AgentStreamServicer):
    def __init__(self, welcome: pb.Welcome) -> None:
        self.welcome = welcome
        self.received: list[pb.AgentMessage] = []
        self.metadata: list[tuple[str, str]] = []
        self.outbox: queue.SimpleQueue[pb.CollectorMessage] = queue.SimpleQueue()

    def Connect(
        self, request_iterator: Iterator[pb.AgentMessage], context: Any
    ) -> Iterator[pb.CollectorMessage]:
        self.metadata = list(context.invocation_metadata())

        def read() -> None:
            with contextlib.suppress(grpc.RpcError):  # the agent cancelled the call: the test is over
                for msg in request_iterator:
                    self.received.append(msg)

        threading.Thread(target=read, daemon=True).start()
        assert wait_for(lambda: bool(self.received), 5)
        yield pb.CollectorMessage(welcome=self.welcome)
        while context.is_active():
            try:
                yield self.outbox.get(timeout=0.1)
            except queue.Empty:
                continue

    def of(self, kind: str) -> list[Any]:
        return [getattr(m, kind) for m in list(self.received) if m.WhichOneof("body") == kind]


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    s = Spool(tmp_path / "spool.db")
    yield s
    s.close()


def serve(fake: ScriptedCollector) -> tuple[Any, str]:
    server = grpc.server(ThreadPoolExecutor(4))
    agent_pb2_grpc.add_AgentStreamServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


def test_hello_batches_window_acks_and_heartbeats(spool: Spool) -> None:
    spool.append_records([record(i) for i in range(100)])
    spool.ack(4)  # the spool's low seq is now 5
    fake = ScriptedCollector(
        pb.Welcome(agent_id="agent-1", resume_after_seq=10, max_batch_entries=7, heartbeat_interval_s=1)
    )
    server, address = serve(fake)
    settings = StreamerSettings(address=address, token="dga_secret", window=3, idle_poll_s=0.05)
    streamer = Streamer(spool, settings, HostIdentity("agent-1", "web1", {"role": "db"}, "9.9.9"))
    streamer.start()
    try:
        assert wait_for(lambda: len(fake.of("batch")) == 3, 5)
        hello = fake.of("hello")[0]
        assert (hello.protocol_version, hello.agent_id, hello.hostname, hello.agent_version) == (
            1,
            "agent-1",
            "web1",
            "9.9.9",
        )
        assert (hello.spool_high_seq, hello.spool_low_seq, dict(hello.labels)) == (100, 5, {"role": "db"})
        assert hello.facts.cpu_count >= 1 and hello.facts.memory_bytes > 0 and hello.facts.kernel
        assert ("authorization", "Bearer dga_secret") in fake.metadata
        agents = [v for k, v in fake.metadata if k == "user-agent"]
        assert len(agents) == 1 and agents[0].startswith("diag-agent/9.9.9 "), fake.metadata
        # Welcome said 10 is stored: those were deleted, streaming starts at 11, 7 per batch
        assert spool.read_from(0, 1)[0].seq == 11
        time.sleep(0.3)
        batches = fake.of("batch")
        assert [[e.seq for e in b.entries] for b in batches] == [
            list(range(11, 18)),
            list(range(18, 25)),
            list(range(25, 32)),
        ]  # and no fourth: the window is full
        fake.outbox.put(pb.CollectorMessage(ack=pb.Ack(durable_through_seq=24)))
        assert wait_for(lambda: len(fake.of("batch")) == 5, 5)
        assert spool.read_from(0, 1)[0].seq == 25
        fake.outbox.put(pb.CollectorMessage(ack=pb.Ack(durable_through_seq=100)))
        assert wait_for(lambda: spool.stats().depth == 0, 5)
        assert wait_for(lambda: len(fake.of("heartbeat")) >= 1, 3)  # idle for a second
        assert fake.of("heartbeat")[0].spool_depth == 0
        assert fake.of("gaps") == []
    finally:
        streamer.stop(0.5)
        server.stop(0)


def test_batches_respect_the_message_size_limit(spool: Spool) -> None:
    spool.append_records([dataclasses.replace(record(i), summary="x" * 30_000) for i in range(10)])
    fake = ScriptedCollector(pb.Welcome(max_batch_entries=1000, max_message_bytes=100_000))
    server, address = serve(fake)
    streamer = Streamer(spool, StreamerSettings(address=address, token="t", window=100), HostIdentity("a"))
    streamer.start()
    try:
        assert wait_for(lambda: sum(len(b.entries) for b in fake.of("batch")) == 10, 5)
        sizes = [b.ByteSize() for b in fake.of("batch")]
        assert max(sizes) <= 100_000 and len(sizes) >= 4
    finally:
        streamer.stop(0.5)
        server.stop(0)


@pytest.mark.parametrize("features", [[], ["metric_keys"], ["a_future_feature"]])
def test_metrics_go_columnar_only_to_a_collector_that_lists_the_feature(
    spool: Spool, features: list[str]
) -> None:
    spool.append_records([record(i) for i in range(3)])
    fake = ScriptedCollector(pb.Welcome(agent_id="agent-1", max_batch_entries=10, features=features))
    server, address = serve(fake)
    settings = StreamerSettings(address=address, token="dga_secret", idle_poll_s=0.05)
    streamer = Streamer(spool, settings, HostIdentity("agent-1", "web1", {}, "9.9.9"))
    streamer.start()
    try:
        assert wait_for(lambda: len(fake.of("batch")) == 1, 5)
        results = [e.result for e in fake.of("batch")[0].entries]
        assert len(results) == 3
        for i, r in enumerate(results):
            if "metric_keys" in features:
                assert not r.metrics and list(r.metric_values) == [float(i)]
                keys = pb.MetricKeys.FromString(r.metric_keys).keys
                assert [(k.name, k.unit, [(lb.key, lb.value) for lb in k.labels]) for k in keys] == [
                    ("host_load1_per_core_ratio", "ratio", [("cpu", "all")])
                ]
            else:  # an older collector would ignore the columnar fields: samples only
                assert not r.metric_keys and not r.metric_values
                assert [(m.name, m.value) for m in r.metrics] == [("host_load1_per_core_ratio", float(i))]
    finally:
        streamer.stop(0.5)
        server.stop(0)


def test_a_gap_the_ack_does_not_record_is_reported_again(spool: Spool) -> None:
    """Two skipped entries in one gap report; the Ack records only the first: the second is re-sent."""
    big = "x" * 200_000  # over the collector's message limit: skipped as entry_too_large
    spool.append_records(
        [dataclasses.replace(record(i), summary=big) if i in (1, 3) else record(i) for i in range(5)]
    )
    fake = ScriptedCollector(pb.Welcome(max_batch_entries=1000, max_message_bytes=100_000))
    server, address = serve(fake)
    streamer = Streamer(spool, StreamerSettings(address=address, token="t"), HostIdentity("a"))
    streamer.start()
    try:
        assert wait_for(lambda: len(fake.of("gaps")) >= 1 and len(fake.of("batch")) >= 1, 10)
        first = fake.of("gaps")[0]
        assert [(g.first_seq, g.reason) for g in first.gaps] == [
            (2, "entry_too_large"),
            (4, "entry_too_large"),
        ]
        fake.outbox.put(pb.CollectorMessage(ack=pb.Ack(durable_through_seq=5, gaps_recorded=[2])))
        # The agent reports outstanding gaps at most every 5 s: the next report holds only seq 4.
        assert wait_for(lambda: len(fake.of("gaps")) >= 2, 12), "the unrecorded gap was never re-sent"
        assert [g.first_seq for g in fake.of("gaps")[1].gaps] == [4]
        fake.outbox.put(pb.CollectorMessage(ack=pb.Ack(durable_through_seq=5, gaps_recorded=[4])))
        time.sleep(6)
        assert len(fake.of("gaps")) == 2  # both recorded: nothing more to report
    finally:
        streamer.stop(0.5)
        server.stop(0)


def test_after_a_welcomed_session_the_agent_retries_an_outage_often(spool: Spool) -> None:
    """The collector goes away after a Welcome: reconnect attempts keep coming at most
    ``recent_backoff_cap_s`` apart (a long cap would keep agents away long after it returns)."""
    spool.append_records([record(1)])
    fake = ScriptedCollector(pb.Welcome(max_batch_entries=100))
    server = grpc.server(ThreadPoolExecutor(4))
    agent_pb2_grpc.add_AgentStreamServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    settings = StreamerSettings(
        address=f"127.0.0.1:{port}",
        token="t",
        backoff_base_s=0.5,
        backoff_cap_s=30.0,
        recent_backoff_cap_s=2.0,
    )
    streamer = Streamer(spool, settings, HostIdentity("a"))
    streamer.start()
    attempts: list[float] = []
    try:
        assert wait_for(lambda: streamer.connected, 10)
        server.stop(0).wait()
        # The collector's port now refuses every stream: a listener that accepts and closes.
        with socket.socket() as listener:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", port))
            listener.listen(64)
            listener.settimeout(0.2)
            down_at = time.monotonic()
            while time.monotonic() - down_at < 12.0:
                with contextlib.suppress(TimeoutError):
                    conn, _ = listener.accept()
                    attempts.append(time.monotonic())
                    conn.close()
    finally:
        streamer.stop(0.5)
    # Old behaviour: 0.5, 1, 2, 4, 8 s... the fifth wait alone is over 4 s.
    marks = [down_at, *attempts, time.monotonic()]
    gaps = [b - a for a, b in itertools.pairwise(marks)]
    assert len(attempts) >= 5 and max(gaps) <= 3.0, [round(g, 2) for g in gaps]
