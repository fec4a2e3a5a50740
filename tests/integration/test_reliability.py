"""Reliability of the stream, with real processes on loopback and exact counts.

The collector is the real ``diag-collector serve`` (SQLite store in a temp dir); the
agents are ``tests.integration.agent_proc`` processes (the real agent.spool and
agent.streamer, synthetic records whose summary names their seq). Each test is bounded
(well under a minute) and checks exact numbers: which seqs are stored, how often,
under which seq, and which gaps were recorded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc  # type: ignore[import-untyped, unused-ignore]
import pytest
import sqlalchemy as sa
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped, unused-ignore]

from agent.spool import Spool
from collector.store.schema import check_results
from collector.store.store import LogAppend, Store
from protos.diag.v1 import agent_pb2 as pb
from protos.diag.v1 import agent_pb2_grpc
from tests.collector.store.pg import SKIP_REASON, fresh_database, pg_listening
from tests.integration.agent_proc import make_record
from tests.integration.harness import (
    Proc,
    batch_msg,
    free_port,
    hello_msg,
    result_entry,
    run_stream,
    spawn,
    stored_gaps,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@dataclass
class Collector:
    """A ``diag-collector serve`` process that can be killed and restarted on the same ports."""

    tmp: Path
    store_url: str
    grpc_port: int
    http_port: int
    proc: Proc | None = None
    starts: int = 0
    extra: tuple[str, ...] = ()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self, timeout: float = 30.0) -> None:
        self.starts += 1
        args = [
            "-m",
            "collector.cli",
            "serve",
            "--store",
            self.store_url,
            "--grpc-listen",
            self.address,
            "--http-listen",
            f"127.0.0.1:{self.http_port}",
            *self.extra,
        ]
        self.proc = spawn(args, self.tmp / f"collector-{self.starts}.log")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.popen.poll() is not None:
                raise AssertionError(f"collector exited early:\n{self.proc.output()}")
            if _serving(self.address):
                return
            time.sleep(0.1)
        raise AssertionError(f"collector not serving after {timeout} s:\n{self.proc.output()}")

    def kill9(self) -> None:
        if self.proc is not None:
            self.proc.kill9()

    def stop(self) -> None:
        if self.proc is not None and self.proc.popen.poll() is None:
            assert self.proc.terminate() == 0, self.proc.output()


def _serving(address: str) -> bool:
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'collector.db'}"


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = Store.open(store_url)  # migrates; the collector process then finds the schema in place
    yield s
    s.close()


@pytest.fixture
def collector(tmp_path: Path, store_url: str, store: Store) -> Iterator[Collector]:
    c = Collector(tmp_path, store_url, free_port(), free_port())
    yield c
    with contextlib.suppress(AssertionError):
        c.stop()
    c.kill9()


@dataclass
class Agent:
    agent_id: str
    token: str
    spool: Path
    log_dir: Path
    proc: Proc | None = None
    runs: int = 0

    def start(self, address: str, count: int, rate: float = 200.0, **extra: int) -> None:
        self.runs += 1
        args = [
            "-m",
            "tests.integration.agent_proc",
            "--spool",
            str(self.spool),
            "--collector",
            address,
            "--token",
            self.token,
            "--agent-id",
            self.agent_id,
            "--count",
            str(count),
            "--rate",
            str(rate),
            "--exit-when-drained",
        ]
        for key, value in extra.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        self.proc = spawn(args, self.log_dir / f"{self.agent_id}-{self.runs}.log")

    def wait(self, timeout: float) -> None:
        assert self.proc is not None
        try:
            rc = self.proc.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill9()
            raise AssertionError(
                f"agent {self.agent_id} did not drain in time:\n{self.proc.output()}"
            ) from None
        assert rc == 0, self.proc.output()

    def kill9(self) -> None:
        if self.proc is not None:
            self.proc.kill9()


@pytest.fixture
def make_agent(tmp_path: Path, store: Store) -> Iterator[object]:
    agents: list[Agent] = []

    def make(agent_id: str, customer: str = "acme") -> Agent:
        identity, token = store.enroll_agent(customer, f"host-{agent_id}", agent_id)
        a = Agent(identity.agent_id, token, tmp_path / agent_id / "spool.db", tmp_path)
        agents.append(a)
        return a

    yield make
    for a in agents:
        a.kill9()


def stored(store: Store, agent_id: str) -> list[tuple[int, str]]:
    """(seq, summary) of every stored result of the agent, in insertion order."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(check_results.c.seq, check_results.c.summary)
            .where(check_results.c.agent_id == agent_id)
            .order_by(check_results.c.id)
        )
        return [(int(s), str(m)) for s, m in rows]


def materialised(store: Store, timeout: float = 20.0) -> None:
    """Wait until the collector has materialised every acknowledged batch (its ingest log is empty).

    An Ack means durable in the ingest log; results become visible once materialised.
    """
    assert wait_for(lambda: store.log_stats().pending_batches == 0, timeout), store.log_stats()


def assert_exactly_once(store: Store, agent_id: str, seqs: list[int]) -> None:
    materialised(store)
    rows = stored(store, agent_id)
    assert sorted(s for s, _ in rows) == seqs, f"{agent_id}: stored seqs differ from the spool's"
    assert all(summary == f"rec {seq}" for seq, summary in rows), "a result was stored under another seq"


def spool_high_water(path: Path) -> int:
    with Spool(path) as spool:
        return spool.stats().high_water


@pytest.mark.parametrize("direct_max_points", ["0", "10000"], ids=["log only", "direct when idle"])
def test_collector_killed_repeatedly_stores_everything_exactly_once(
    collector, store, make_agent, direct_max_points
) -> None:
    collector.extra = ("--ingest-direct-max-points", direct_max_points)
    collector.start()
    agents = [make_agent(f"agent-{i}") for i in range(3)]
    count = 1200
    for a in agents:
        a.start(collector.address, count=count, rate=100.0)  # about 12 s of results: spans every kill
    for _ in range(3):  # kill -9 while they stream, restart a moment later
        time.sleep(1.5)
        collector.kill9()
        time.sleep(0.7)
        collector.start()
    for a in agents:
        a.wait(45)
    for a in agents:
        assert spool_high_water(a.spool) == count
        assert_exactly_once(store, a.agent_id, list(range(1, count + 1)))
        assert a.proc is not None
        sessions = a.proc.output().count("agent.streamer: streaming to")
        assert sessions >= 3, f"{a.agent_id} saw only {sessions} sessions: the kills missed it"
    assert collector.starts == 4


def test_agent_killed_mid_write_keeps_its_spool_and_resends_nothing_as_new(
    collector, store, make_agent
) -> None:
    collector.start()
    a = make_agent("agent-k")
    count = 1500
    a.start(collector.address, count=count, rate=600.0, chunk=20)
    assert wait_for(lambda: len(stored(store, "agent-k")) > 100, 20)
    a.kill9()
    # The spool survives kill -9 intact: consistent file, seqs never reused.
    with sqlite3.connect(a.spool) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    high_after_kill = spool_high_water(a.spool)
    acked_before = len(stored(store, "agent-k"))
    assert 0 < acked_before <= high_after_kill < count
    a.start(collector.address, count=count, rate=2000.0, chunk=50)
    a.wait(40)
    assert_exactly_once(store, "agent-k", list(range(1, count + 1)))


def test_backlog_drains_in_order_when_the_collector_returns(collector, store, make_agent) -> None:
    a = make_agent("agent-b")
    count = 400
    a.start(collector.address, count=count, rate=1000.0, chunk=20)  # nothing listens yet
    assert wait_for(lambda: a.spool.exists() and spool_high_water(a.spool) == count, 20)
    time.sleep(1.0)  # unreachable for a while: everything waits in the spool
    assert stored(store, "agent-b") == []
    collector.start()
    a.wait(30)
    materialised(store)
    rows = stored(store, "agent-b")
    assert [s for s, _ in rows] == list(range(1, count + 1)), "backlog not stored in seq order"
    assert_exactly_once(store, "agent-b", list(range(1, count + 1)))


def test_full_spool_drops_the_oldest_and_reports_the_gap(collector, store, make_agent) -> None:
    a = make_agent("agent-f")
    count = 300
    # about 700 bytes per record: a 60 kB spool holds under 100 of them
    a.start(collector.address, count=count, rate=3000.0, chunk=30, max_bytes=60_000)
    assert wait_for(lambda: a.spool.exists() and spool_high_water(a.spool) == count, 20)
    with Spool(a.spool) as spool:
        dropped = spool.stats().dropped_total
        gaps = [(g.first_seq, g.last_seq, g.count, g.reason) for g in spool.gaps()]
    assert dropped > 150 and sum(g[2] for g in gaps) == dropped
    collector.start()
    a.wait(30)
    assert stored_gaps(store, "agent-f") == gaps
    assert_exactly_once(store, "agent-f", list(range(dropped + 1, count + 1)))
    with Spool(a.spool) as spool:
        assert spool.gaps() == [] and spool.stats().dropped_total == dropped


def test_hostile_clients_get_the_right_status_and_the_server_keeps_serving(
    collector, store, make_agent
) -> None:
    collector.start()
    good = make_agent("agent-good")
    victim = make_agent("agent-victim", customer="globex")
    good.start(collector.address, count=600, rate=100.0)
    address = collector.address
    hello = hello_msg("agent-victim")
    cases = [
        ("dga_" + "A" * 43, [hello, batch_msg([1])], grpc.StatusCode.UNAUTHENTICATED),
        (None, [hello, batch_msg([1])], grpc.StatusCode.UNAUTHENTICATED),
        (good.token, [hello, batch_msg([1])], grpc.StatusCode.PERMISSION_DENIED),  # another customer's host
        (victim.token, [batch_msg([1])], grpc.StatusCode.INVALID_ARGUMENT),  # no Hello
        (
            victim.token,
            [
                hello,
                pb.AgentMessage(batch=pb.EntryBatch(entries=[result_entry(1, metrics=[pb.MetricSample()])])),
            ],
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            victim.token,
            [hello, pb.AgentMessage(batch=pb.EntryBatch(entries=[result_entry(1, summary="x" * 5_000_000)]))],
            grpc.StatusCode.RESOURCE_EXHAUSTED,
        ),
        (
            victim.token,
            [hello, batch_msg(range(1, 1002))],
            grpc.StatusCode.INVALID_ARGUMENT,
        ),  # > 1000 entries
    ]
    for token, messages, expected in cases:
        _, code, details = run_stream(address, token, messages)
        assert code == expected, details
    for junk in (
        b"\x16\x03\x01\x02\x00" + b"\x00" * 512,
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\xff" * 4096,
    ):
        with socket.create_connection(("127.0.0.1", collector.grpc_port), timeout=5) as s:
            s.sendall(junk)
            with contextlib.suppress(TimeoutError, ConnectionResetError):
                s.settimeout(2)
                s.recv(1024)
    assert stored(store, "agent-victim") == []
    good.wait(40)
    assert_exactly_once(store, "agent-good", list(range(1, 601)))
    # and the victim itself can still stream normally
    _, code, _ = run_stream(address, victim.token, [hello, batch_msg([1, 2])])
    assert code == grpc.StatusCode.OK
    materialised(store)
    assert [s for s, _ in stored(store, "agent-victim")] == [1, 2]


def test_agents_failing_over_between_two_collectors_on_one_postgresql_store_store_each_seq_once(
    tmp_path: Path,
) -> None:
    """Two ``serve`` processes share one PostgreSQL store; agents move between them as they die."""
    if not pg_listening():
        pytest.skip(SKIP_REASON)
    count = 900
    with fresh_database() as url:
        store = Store.open(url)
        log_only = ("--ingest-direct-max-points", "0")  # every batch through the ingest log
        collectors = [Collector(tmp_path, url, free_port(), free_port(), extra=log_only) for _ in range(2)]
        agents: list[Agent] = []
        try:
            for c in collectors:
                c.start()
            for i, customer in enumerate(("acme", "globex")):
                identity, token = store.enroll_agent(customer, f"host-{i}", f"agent-fo-{i}")
                agents.append(Agent(identity.agent_id, token, tmp_path / f"fo-{i}" / "spool.db", tmp_path))
            first, second = collectors
            for a in agents:
                a.start(first.address, count=count, rate=600.0, chunk=20)
            assert wait_for(lambda: all(len(stored(store, a.agent_id)) > 100 for a in agents), 30)
            first.kill9()  # its log may hold acked, unmaterialised rows: the other collector applies them
            for a in agents:
                a.kill9()
                a.start(second.address, count=count, rate=600.0, chunk=20)
            assert wait_for(lambda: all(len(stored(store, a.agent_id)) > 400 for a in agents), 30)
            first.start()
            second.kill9()
            for a in agents:
                a.kill9()
                a.start(first.address, count=count, rate=3000.0, chunk=50)
            for a in agents:
                a.wait(60)
            for a in agents:
                assert_exactly_once(store, a.agent_id, list(range(1, count + 1)))
            assert store.log_stats().quarantined == 0
        finally:
            for a in agents:
                a.kill9()
            for c in collectors:
                c.kill9()
            store.close()


def test_in_process_ingest_first_applies_what_a_worker_left_in_the_log(
    tmp_path: Path, store_url: str, store: Store
) -> None:
    """A collector restarted with --ingest-processes 0 drains the log a killed worker left behind."""
    identity, token = store.enroll_agent("acme", "host-x", "agent-x")
    logged = pb.EntryBatch(entries=[result_entry(s, summary=f"rec {s}") for s in range(1, 6)])
    (outcome,) = store.append_log([LogAppend(identity, logged.SerializeToString(), 5, 0)])
    assert outcome == (5, outcome[1]) and stored(store, "agent-x") == []  # type: ignore[index]
    collector = Collector(tmp_path, store_url, free_port(), free_port(), extra=("--ingest-processes", "0"))
    collector.start()
    try:
        materialised(store)
        assert [s for s, _ in stored(store, "agent-x")] == [1, 2, 3, 4, 5]
        newer = pb.AgentMessage(
            batch=pb.EntryBatch(entries=[result_entry(s, summary=f"rec {s}") for s in (6, 7)])
        )
        replies, code, _ = run_stream(collector.address, token, [hello_msg("agent-x"), newer])
        assert code == grpc.StatusCode.OK and replies[-1].ack.durable_through_seq == 7
        # In-process ingest stores in the Ack's transaction: visible at once, in order.
        assert_exactly_once(store, "agent-x", [1, 2, 3, 4, 5, 6, 7])
    finally:
        collector.stop()


class _AcksButRecordsNoGaps(agent_pb2_grpc.AgentStreamServicer):
    """A collector that acknowledges every batch but never records a gap report (it is killed
    before it would). Its message limit makes an entry too large to send."""

    def __init__(self) -> None:
        self.acked = 0
        self.gap_reports = 0

    def Connect(
        self, request_iterator: Iterator[pb.AgentMessage], context: object
    ) -> Iterator[pb.CollectorMessage]:
        yield pb.CollectorMessage(welcome=pb.Welcome(max_batch_entries=100, max_message_bytes=100_000))
        for msg in request_iterator:
            if msg.WhichOneof("body") == "batch":
                self.acked = max(self.acked, msg.batch.entries[-1].seq)
                yield pb.CollectorMessage(ack=pb.Ack(durable_through_seq=self.acked))
            elif msg.WhichOneof("body") == "gaps":
                self.gap_reports += 1


def test_a_skipped_entry_survives_kill_9_before_its_gap_is_reported(collector, store, make_agent) -> None:
    """The skipped entry's spool row goes with the Ack; its gap must survive the agent's kill -9."""
    a = make_agent("agent-k")
    a.spool.parent.mkdir(parents=True)
    with Spool(a.spool) as spool:
        spool.append_records([make_record(1)])
        spool.append_records([dataclasses.replace(make_record(2), summary="x" * 300_000)])
        spool.append_records([make_record(3)])
    fake = _AcksButRecordsNoGaps()
    server = grpc.server(ThreadPoolExecutor(4))
    agent_pb2_grpc.add_AgentStreamServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        a.start(f"127.0.0.1:{port}", count=5, rate=1000.0)
        # Every entry acknowledged (the skipped one's row deleted) and a gap report sent, unrecorded.
        assert wait_for(lambda: fake.acked == 5 and fake.gap_reports >= 1 and spool_depth(a.spool) == 0, 20)
        a.kill9()
    finally:
        server.stop(0)
    collector.start()
    a.start(collector.address, count=5)
    a.wait(30)
    assert stored_gaps(store, "agent-k") == [(2, 2, 1, "entry_too_large")]


def spool_depth(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return int(db.execute("SELECT COUNT(*) FROM entries").fetchone()[0])
