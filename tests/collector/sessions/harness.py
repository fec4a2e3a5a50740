"""A collector as ``serve`` wires it (gRPC service + session hub + HTTP app on ONE event
loop, real grpc.aio and real uvicorn on loopback) and a fake agent on a real gRPC stream.

The fake agent stands in for the agent side (branch sess-agent) in the relay tests: it
answers grants with SessionStatus and echoes a stream's bytes upper-cased, honouring (or,
when told, breaking) the collector's flow-control window. The end-to-end test uses the
real agent instead.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from typing import Any

import uvicorn
from prometheus_client import CollectorRegistry

from collector.http.app import create_app
from collector.ingest.grpc_server import start_grpc_server, stop_grpc_server
from collector.ingest.grpc_service import AgentStreamService, GrpcSettings
from collector.ingest.metrics import CollectorMetrics
from collector.sessions.relay import SessionHub
from collector.store import Store
from protos.diag.v1 import agent_pb2 as pb
from tests.collector.http_server import free_port
from tests.integration.harness import LiveStream, LoopServer, hello_msg, wait_for

__all__ = ["FakeAgent", "SessionCollector"]

SETTINGS = GrpcSettings(
    listen="127.0.0.1:0", rate_limit_bytes_per_s=64 * 1024 * 1024, rate_limit_bytes_burst=64 * 1024 * 1024
)


class SessionCollector(LoopServer):
    def __init__(self, store: Store, settings: GrpcSettings = SETTINGS) -> None:
        self.store = store
        super().__init__()
        self.metrics = CollectorMetrics(CollectorRegistry(auto_describe=True))
        self.hub = SessionHub(store, self.metrics.registry, expiry_interval_s=0.1)
        self.service = AgentStreamService(store, settings, self.metrics, sessions=self.hub)
        self.hub.attach(self.service)
        self.server, self.port, self.health = self.call(start_grpc_server(self.service, settings))
        app = create_app(store, self.metrics.registry, grpc_service=self.service, sessions=self.hub)
        http_port = free_port()
        self.web = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=http_port, log_level="warning"))
        self._web_task: Any = self.call(self._start_web())
        assert wait_for(lambda: self.web.started, 20), "uvicorn did not start"
        self.base = f"http://127.0.0.1:{http_port}"
        self.ws_base = f"ws://127.0.0.1:{http_port}"
        self._expiry: Any = self.call(self._start_expiry())

    async def _start_web(self) -> Any:
        return asyncio.ensure_future(self.web.serve())

    async def _start_expiry(self) -> Any:
        return asyncio.ensure_future(self.hub.expiry_loop())

    def refused(self, reason: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "diag_session_frames_refused_total", {"reason": reason}
        )
        return value or 0.0

    def stop(self) -> None:
        self.web.should_exit = True
        self.loop.call_soon_threadsafe(self._expiry.cancel)
        self.call(self.hub.close())
        self.call(stop_grpc_server(self.server, self.service, self.health, 0.5))
        self.call(asyncio.wait_for(self._web_task, 10))
        self.stop_loop()


class FakeAgent:
    """An agent stream offering "sessions"; see the module docstring."""

    def __init__(
        self, address: str, token: str, agent_id: str, *, approve: bool = True, honour_window: bool = True
    ) -> None:
        self.stream = LiveStream(address, token)
        self.stream.send(hello_msg(agent_id, features=["sessions"]))
        self.approve = approve
        self.honour_window = honour_window
        self.grants: queue.SimpleQueue[pb.SessionGrant] = queue.SimpleQueue()
        self.other: queue.SimpleQueue[pb.CollectorMessage] = queue.SimpleQueue()
        self.opened: dict[int, str] = {}
        self.windows: dict[int, int] = {}
        self.revoked: list[str] = []
        self.closed: list[int] = []
        self.welcome = self.stream.next()
        self._echoes: queue.SimpleQueue[tuple[int, bytes]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        threading.Thread(target=self._echo_loop, daemon=True).start()

    def _echo_loop(self) -> None:
        while True:
            stream_id, data = self._echoes.get()
            if stream_id < 0:
                return
            self.echo(stream_id, data)

    def send(self, msg: pb.AgentMessage) -> None:
        self.stream.send(msg)

    def _run(self) -> None:
        while True:
            try:
                msg = self.stream.next(timeout=60)
            except BaseException:  # noqa: BLE001 - the stream ended: the fake agent stops
                return
            body = msg.WhichOneof("body")
            if body == "session_grant":
                g = msg.session_grant
                self.grants.put(g)
                if self.approve:
                    status = pb.SessionStatus(
                        session_id=g.session_id,
                        state="approved",
                        host_key="ssh-ed25519 AAAAfakehostkey",
                        host_key_sha256="SHA256:fake",
                    )
                    self.send(pb.AgentMessage(session_status=status))
            elif body == "session_open":
                o = msg.session_open
                self.opened[o.stream_id] = o.session_id
                self.windows[o.stream_id] = o.window_bytes
            elif body == "session_data":
                d = msg.session_data
                # consumed: grant the collector that many bytes again, and echo upper-cased
                self.send(
                    pb.AgentMessage(
                        session_window=pb.SessionWindow(stream_id=d.stream_id, add_bytes=len(d.data))
                    )
                )
                self._echoes.put((d.stream_id, d.data.upper()))
            elif body == "session_window":
                w = msg.session_window
                self.windows[w.stream_id] = self.windows.get(w.stream_id, 0) + w.add_bytes
            elif body == "session_revoke":
                self.revoked.append(msg.session_revoke.session_id)
            elif body == "session_close":
                self.closed.append(msg.session_close.stream_id)
            else:
                self.other.put(msg)

    def echo(self, stream_id: int, data: bytes) -> None:
        for i in range(0, len(data), 32 * 1024):
            piece = data[i : i + 32 * 1024]
            if self.honour_window:
                need = len(piece)
                assert wait_for(lambda: self.windows.get(stream_id, 0) >= need, 10), "no window"  # noqa: B023
                self.windows[stream_id] -= len(piece)
            self.send(pb.AgentMessage(session_data=pb.SessionData(stream_id=stream_id, data=piece)))

    def flood(self, stream_id: int, limit: int) -> int:
        """Send within the window until it stays shut for 0.5 s (or ``limit`` bytes); returns bytes sent."""
        sent = 0
        piece = b"y" * 32 * 1024
        while sent < limit:
            if not wait_for(lambda: self.windows.get(stream_id, 0) >= len(piece), 0.5, interval=0.002):
                return sent
            self.windows[stream_id] -= len(piece)
            self.send(pb.AgentMessage(session_data=pb.SessionData(stream_id=stream_id, data=piece)))
            sent += len(piece)
        return sent

    def close(self) -> None:
        self._echoes.put((-1, b""))
        self.stream.close()
