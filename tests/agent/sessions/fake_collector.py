"""An in-test fake collector for the agent's session tests, on real gRPC over loopback.

The real collector side of sessions is another branch (``sess-collector``); this fake
speaks the same contract (``protos/diag/v1/agent.proto``, generated classes): it acks
every batch, records every agent message, sends the grants and frames a test asks for,
and relays SSH connections: every connection to its unix socket becomes one stream
(SessionOpen, then SessionData both ways under per-stream windows), so a real paramiko
client or OpenSSH's ``ssh``/``scp`` (through a ProxyCommand that bridges to the socket)
talk to the agent's SSH server through the agent's own stream.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc

from protos.diag.v1 import agent_pb2 as pb
from protos.diag.v1 import agent_pb2_grpc

WINDOW = 256 * 1024
CHUNK = 32 * 1024

BRIDGE = """import os, socket, sys, threading
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
def up():
    while True:
        data = os.read(0, 65536)
        if not data:
            s.shutdown(socket.SHUT_WR)
            return
        s.sendall(data)
threading.Thread(target=up, daemon=True).start()
while True:
    data = s.recv(65536)
    if not data:
        break
    os.write(1, data)
"""
"""The ProxyCommand: stdin/stdout to the fake collector's unix socket."""


class _Stream:
    def __init__(self, stream_id: int, conn: socket.socket) -> None:
        self.stream_id = stream_id
        self.conn = conn
        self.window = WINDOW  # what the agent lets us send (its initial window)
        self.cond = threading.Condition()
        self.closed = threading.Event()
        self.close_reason = ""


class FakeCollector(agent_pb2_grpc.AgentStreamServicer):
    def __init__(self, tmp: Path, session_id: str = "") -> None:
        self.received: list[pb.AgentMessage] = []
        self.outbox: queue.SimpleQueue[pb.CollectorMessage] | None = None
        self.connections = 0
        self.session_id = session_id
        self.streams: dict[int, _Stream] = {}
        self._ids = itertools.count(1)
        self.socket_path = tmp / "relay.sock"
        self.bridge = tmp / "bridge.py"
        self.bridge.write_text(BRIDGE)
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(self.socket_path))
        self._listener.listen(8)
        threading.Thread(target=self._accept, daemon=True).start()
        self.server = grpc.server(ThreadPoolExecutor(8))
        agent_pb2_grpc.add_AgentStreamServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.address = f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.stop(0)
        with contextlib.suppress(OSError):
            self._listener.close()

    # -- the gRPC side -------------------------------------------------------------------------

    def Connect(
        self, request_iterator: Iterator[pb.AgentMessage], context: Any
    ) -> Iterator[pb.CollectorMessage]:
        outbox: queue.SimpleQueue[pb.CollectorMessage] = queue.SimpleQueue()
        self.connections += 1
        hello = next(request_iterator)
        self.received.append(hello)
        self.outbox = outbox

        def read() -> None:
            with contextlib.suppress(grpc.RpcError):
                for msg in request_iterator:
                    self.received.append(msg)
                    self._on_agent(msg, outbox)

        threading.Thread(target=read, daemon=True).start()
        yield pb.CollectorMessage(
            welcome=pb.Welcome(agent_id=hello.hello.agent_id, max_batch_entries=500, heartbeat_interval_s=5)
        )
        while context.is_active():
            try:
                yield outbox.get(timeout=0.1)
            except queue.Empty:
                continue

    def send(self, **body: Any) -> None:
        assert self.outbox is not None, "the agent is not connected"
        self.outbox.put(pb.CollectorMessage(**body))

    def _on_agent(self, msg: pb.AgentMessage, outbox: queue.SimpleQueue[pb.CollectorMessage]) -> None:
        kind = msg.WhichOneof("body")
        if kind == "batch" and msg.batch.entries:
            outbox.put(pb.CollectorMessage(ack=pb.Ack(durable_through_seq=msg.batch.entries[-1].seq)))
        elif kind == "session_data":
            stream = self.streams.get(msg.session_data.stream_id)
            if stream is not None and not stream.closed.is_set():
                with contextlib.suppress(OSError):
                    stream.conn.sendall(msg.session_data.data)
                outbox.put(
                    pb.CollectorMessage(
                        session_window=pb.SessionWindow(
                            stream_id=stream.stream_id, add_bytes=len(msg.session_data.data)
                        )
                    )
                )
        elif kind == "session_window":
            stream = self.streams.get(msg.session_window.stream_id)
            if stream is not None:
                with stream.cond:
                    stream.window += msg.session_window.add_bytes
                    stream.cond.notify_all()
        elif kind == "session_close":
            stream = self.streams.get(msg.session_close.stream_id)
            if stream is not None:
                stream.close_reason = msg.session_close.reason
                stream.closed.set()
                with contextlib.suppress(OSError):
                    stream.conn.shutdown(socket.SHUT_RDWR)

    # -- what a test reads ---------------------------------------------------------------------

    def of(self, kind: str) -> list[Any]:
        return [getattr(m, kind) for m in list(self.received) if m.WhichOneof("body") == kind]

    def entries(self, kind: str) -> list[Any]:
        out: list[Any] = []
        for batch in self.of("batch"):
            out.extend(getattr(e, kind) for e in batch.entries if e.WhichOneof("kind") == kind)
        return out

    def statuses(self, session_id: str | None = None) -> list[pb.SessionStatus]:
        return [s for s in self.of("session_status") if session_id is None or s.session_id == session_id]

    # -- the relay -----------------------------------------------------------------------------

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            stream = _Stream(next(self._ids), conn)
            self.streams[stream.stream_id] = stream
            self.send(
                session_open=pb.SessionOpen(
                    session_id=self.session_id, stream_id=stream.stream_id, window_bytes=WINDOW
                )
            )
            threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: _Stream) -> None:
        try:
            while not stream.closed.is_set():
                with stream.cond:
                    while stream.window <= 0 and not stream.closed.is_set():
                        stream.cond.wait(0.2)
                    allowed = min(stream.window, CHUNK)
                data = stream.conn.recv(allowed)
                if not data:
                    break
                with stream.cond:
                    stream.window -= len(data)
                self.send(session_data=pb.SessionData(stream_id=stream.stream_id, data=data))
        except OSError:
            pass
        if not stream.closed.is_set():
            self.send(session_close=pb.SessionClose(stream_id=stream.stream_id, reason="client went away"))
        stream.closed.set()
        with contextlib.suppress(OSError):
            stream.conn.close()
