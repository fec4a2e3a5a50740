"""Test helpers for the transport: an in-process collector, raw stream clients, batches.

The in-process collector is the real grpc.aio server and the real SQLite store, run on
an event loop in a background thread, so tests can use the synchronous gRPC client
(like the agent does) against it.
"""

from __future__ import annotations

import asyncio
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped, unused-ignore]
import sqlalchemy as sa

from collector.ingest.decode import IngestLimits
from collector.ingest.grpc_server import start_grpc_server, stop_grpc_server
from collector.ingest.grpc_service import AgentStreamService, GrpcSettings
from collector.ingest.metrics import CollectorMetrics
from collector.ingest.process import IngestProcess
from collector.store.schema import check_results, gaps, points
from collector.store.store import Store
from protos.diag.v1 import agent_pb2 as pb
from protos.diag.v1 import agent_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
TS_MS = 1_700_000_000_000


class LoopServer:
    """A server on a private event loop thread: ``call`` runs a coroutine there and waits."""

    port: int

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def call(self, coro: Any, timeout: float = 30.0) -> Any:
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


class InProcessCollector(LoopServer):
    """The gRPC side of the collector on a private event loop thread."""

    def __init__(self, store: Store, settings: GrpcSettings, ingest_url: str | None = None) -> None:
        self.store = store
        self.settings = settings
        self.metrics = CollectorMetrics()
        super().__init__()
        self.workers = []
        if ingest_url is not None:  # decode + store in a worker process, as `serve` does
            limits = IngestLimits(
                max_batch_entries=settings.max_batch_entries, max_clock_skew_s=settings.max_clock_skew_s
            )
            worker = IngestProcess(ingest_url, {}, limits)
            worker.start()
            self.workers.append(worker)
        self.service = AgentStreamService(store, settings, self.metrics, ingest_processes=self.workers)
        self.server, self.port, self.health = self.call(start_grpc_server(self.service, settings))

    def stop(self) -> None:
        self.call(stop_grpc_server(self.server, self.service, self.health, 0.5))
        self.stop_loop()
        for worker in self.workers:
            worker.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def count(store: Store, table: sa.Table, **where: Any) -> int:
    stmt = sa.select(sa.func.count()).select_from(table)
    for column, value in where.items():
        stmt = stmt.where(table.c[column] == value)
    with store.engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def result_seqs(store: Store, agent_id: str) -> list[int]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(check_results.c.seq).where(check_results.c.agent_id == agent_id).order_by("seq")
        )
        return [int(r[0]) for r in rows]


def stored_points(store: Store) -> int:
    return count(store, points)


def stored_gaps(store: Store, agent_id: str) -> list[tuple[int, int, int, str]]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(gaps.c.first_seq, gaps.c.last_seq, gaps.c.count, gaps.c.reason)
            .where(gaps.c.agent_id == agent_id)
            .order_by(gaps.c.first_seq)
        )
        return [(int(a), int(b), int(c), str(d)) for a, b, c, d in rows]


def result_entry(seq: int, n_metrics: int = 2, ts_ms: int = TS_MS, **overrides: Any) -> pb.Entry:
    fields: dict[str, Any] = {
        "check": "host.load",
        "layer": "host",
        "severity": pb.SEVERITY_OK,
        "key": "OK",
        "summary": "load fine",
        "duration_ms": 0.2,
        "findings": [pb.Finding(severity=pb.SEVERITY_OK, key="OK", summary="load fine")],
        "metrics": [
            pb.MetricSample(
                name="host_load_ratio",
                value=float(seq),
                unit="ratio",
                labels=[pb.Label(key="n", value=str(i))],
            )
            for i in range(n_metrics)
        ],
    }
    fields.update(overrides)
    return pb.Entry(seq=seq, ts_unix_ms=ts_ms + seq, result=pb.CheckResult(**fields))


def batch_msg(seqs: range | list[int], n_metrics: int = 2) -> pb.AgentMessage:
    return pb.AgentMessage(batch=pb.EntryBatch(entries=[result_entry(s, n_metrics) for s in seqs]))


def hello_msg(agent_id: str, **kw: Any) -> pb.AgentMessage:
    return pb.AgentMessage(hello=pb.Hello(protocol_version=1, agent_id=agent_id, hostname="test", **kw))


def run_stream(
    address: str, token: str | None, messages: list[pb.AgentMessage], timeout: float = 20.0
) -> tuple[list[pb.CollectorMessage], grpc.StatusCode, str]:
    """Send ``messages`` (then half-close), collect replies and the final status."""
    metadata = (("authorization", f"Bearer {token}"),) if token is not None else ()
    replies: list[pb.CollectorMessage] = []
    with grpc.insecure_channel(address) as channel:
        stub = agent_pb2_grpc.AgentStreamStub(channel)
        call = stub.Connect(iter(messages), metadata=metadata, timeout=timeout)
        try:
            replies.extend(call)
        except grpc.RpcError as exc:
            return replies, exc.code(), exc.details() or ""
        return replies, call.code(), call.details() or ""


class LiveStream:
    """A long-lived raw stream: send messages one at a time, read replies as they come."""

    def __init__(self, address: str, token: str, channel: grpc.Channel | None = None) -> None:
        self._own = channel is None
        self.channel = channel or grpc.insecure_channel(address)
        self._out: queue.SimpleQueue[pb.AgentMessage | None] = queue.SimpleQueue()
        self.replies: queue.SimpleQueue[pb.CollectorMessage | BaseException] = queue.SimpleQueue()
        stub = agent_pb2_grpc.AgentStreamStub(self.channel)
        self.call = stub.Connect(self._gen(), metadata=(("authorization", f"Bearer {token}"),))
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _gen(self) -> Iterator[pb.AgentMessage]:
        while True:
            msg = self._out.get()
            if msg is None:
                return
            yield msg

    def _read(self) -> None:
        try:
            for reply in self.call:
                self.replies.put(reply)
            self.replies.put(EOFError("stream ended"))
        except grpc.RpcError as exc:
            self.replies.put(exc)

    def send(self, msg: pb.AgentMessage) -> None:
        self._out.put(msg)

    def next(self, timeout: float = 10.0) -> pb.CollectorMessage:
        reply = self.replies.get(timeout=timeout)
        if isinstance(reply, BaseException):
            raise reply
        return reply

    def close(self) -> None:
        self._out.put(None)
        self.call.cancel()
        self._reader.join(5)
        if self._own:
            self.channel.close()


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def python_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@dataclass
class Proc:
    """A child process with its output captured to a file (never a pipe that can fill)."""

    popen: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill9(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(10)

    def terminate(self, timeout: float = 15.0) -> int:
        if self.popen.poll() is None:
            self.popen.terminate()
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)
            raise


def spawn(args: list[str], log: Path, cwd: Path = REPO) -> Proc:
    handle = log.open("ab")
    try:
        popen = subprocess.Popen(
            [sys.executable, *args], stdout=handle, stderr=subprocess.STDOUT, cwd=cwd, env=python_env()
        )
    finally:
        handle.close()
    return Proc(popen, log)


def serve_collector(tmp: Path, store_url: str) -> tuple[Proc, str, str]:
    """``collector.cli serve`` on ``store_url`` and free loopback ports, its state and log under
    ``tmp``; (the process, its gRPC address, its HTTP base URL). The caller waits for it."""
    grpc_addr, http_port = f"127.0.0.1:{free_port()}", free_port()
    (tmp / "collector.yaml").write_text(f"state_dir: {tmp / 'cstate'}\n")
    collector = spawn(
        ["-m", "collector.cli", "serve", "--config", str(tmp / "collector.yaml"), "--store", store_url,
         "--grpc-listen", grpc_addr, "--http-listen", f"127.0.0.1:{http_port}"],
        tmp / "serve.log",
    )  # fmt: skip
    return collector, grpc_addr, f"http://127.0.0.1:{http_port}"
