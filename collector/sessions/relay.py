"""The session hub: grants and revocations to agents, and the byte relay between an
engineer's WebSocket and the agent's stream.

Threat model (every byte from an agent or an engineer's client is hostile):

- *A compromised agent* sends frames for streams it was not given, for another agent's
  sessions, larger than 32 KiB, beyond the window the collector granted, or a flood of
  them. Stream ids are per agent connection (the map is keyed by (agent, stream)), so an
  agent can only ever reach its own streams; each refused frame is counted
  (``diag_session_frames_refused_total{reason}``) and, when it breaks flow control, ends
  that stream only. Its messages count against its byte budget like any other (the gRPC
  service's token bucket), so a flood ends its own stream, never another agent's.
- *A slow or stalled engineer client*: the collector holds at most the window it granted
  the agent (:data:`INITIAL_WINDOW` per stream) and grants more only after the bytes went
  out on the WebSocket, so it never buffers without bound.
- *A busy session vs. results*: frames to an agent leave through one sender task per
  agent (one frame per write-lock turn), and a stream may have at most the agent's window
  in flight, so an Ack waits behind at most one 32 KiB frame; frames from the agent are
  handed over without waiting for the store.
- *Revocation and expiry*: :meth:`SessionHub.end_session` closes every stream of the
  session at once and sends SessionRevoke; the expiry loop does it at ``not_after``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, Protocol, TypeVar

from prometheus_client import CollectorRegistry, Counter

from collector.store import Store
from collector.store.errors import DatabaseError, StoreError
from collector.store.sessions import SessionRecord, SessionRepo
from protos.diag.v1 import agent_pb2

__all__ = ["INITIAL_WINDOW", "MAX_FRAME", "AgentLink", "RelayStream", "SessionHub", "grant_message"]

log = logging.getLogger("collector.sessions")

INITIAL_WINDOW: Final = 256 * 1024
"""Each direction's initial window per stream (the agent grants the collector the same)."""
MAX_FRAME: Final = 32 * 1024
REFUSE_REASONS: Final = ("unknown_stream", "oversized", "over_window", "foreign_session", "malformed")
T = TypeVar("T")


class AgentLink(Protocol):
    """What the hub needs from the gRPC service (injected: the service never imports this)."""

    async def send_session(self, agent_id: str, message: agent_pb2.CollectorMessage) -> bool: ...


def grant_message(s: SessionRecord) -> agent_pb2.CollectorMessage:
    return agent_pb2.CollectorMessage(
        session_grant=agent_pb2.SessionGrant(
            session_id=s.id,
            agent_id=s.agent_id,
            case_id=s.case_id,
            engineer=s.engineer,
            reason=s.reason,
            mode=s.mode,
            engineer_public_key=s.public_key,
            not_before_unix_ms=int(s.not_before * 1000),
            not_after_unix_ms=int(s.not_after * 1000),
            approval=s.approval if s.approval == "customer_admin" else "",
            approved_by=(s.approved_by or "") if s.approval == "customer_admin" else "",
            approved_at_unix_ms=int((s.approved_at or 0) * 1000) if s.approval == "customer_admin" else 0,
        )
    )


class RelayStream:
    """One relayed SSH connection: agent → engineer bytes queue here (bounded by the window
    the collector granted), engineer → agent bytes wait for the agent's window."""

    def __init__(self, hub: SessionHub, session_id: str, agent_id: str, stream_id: int) -> None:
        self.hub = hub
        self.session_id = session_id
        self.agent_id = agent_id
        self.stream_id = stream_id
        self.inbound: deque[bytes] = deque()
        self.inbound_bytes = 0
        self.granted = INITIAL_WINDOW  # what the agent may still send us
        self.send_window = INITIAL_WINDOW  # what we may still send the agent
        self.readable = asyncio.Event()
        self.writable = asyncio.Event()
        self.writable.set()
        self.closed = asyncio.Event()
        self.close_reason = ""
        self.bytes_in = 0  # from the engineer
        self.bytes_out = 0  # to the engineer

    # ---------------------------------------------------------------- agent side (event loop, no waits)

    def from_agent(self, data: bytes) -> str | None:
        """Queue the agent's bytes; a refusal reason when it broke flow control."""
        if len(data) > MAX_FRAME:
            return "oversized"
        if len(data) > self.granted:
            return "over_window"
        self.granted -= len(data)
        self.inbound.append(data)
        self.inbound_bytes += len(data)
        self.readable.set()
        return None

    def window_from_agent(self, add: int) -> str | None:
        if add <= 0 or self.send_window + add > 64 * INITIAL_WINDOW:
            return "malformed"
        self.send_window += add
        self.writable.set()
        return None

    def close(self, reason: str) -> None:
        if not self.closed.is_set():
            self.close_reason = reason
            self.closed.set()
            self.readable.set()
            self.writable.set()

    # ---------------------------------------------------------------- engineer side

    async def read(self) -> bytes | None:
        """The agent's next bytes for the engineer (None: the stream ended); grants them back."""
        while not self.inbound:
            if self.closed.is_set():
                return None
            self.readable.clear()
            await self.readable.wait()
        data = b"".join(self.inbound)
        self.inbound.clear()
        self.inbound_bytes = 0
        return data

    def consumed(self, n: int) -> None:
        """The engineer's client took ``n`` bytes: the agent may send that many more."""
        self.bytes_out += n
        if not self.closed.is_set():
            self.granted += n
            self.hub.send_frame(
                self.agent_id,
                agent_pb2.CollectorMessage(
                    session_window=agent_pb2.SessionWindow(stream_id=self.stream_id, add_bytes=n)
                ),
            )

    async def write(self, data: bytes) -> bool:
        """Send the engineer's bytes in frames within the agent's window; False once closed."""
        view = memoryview(data)
        while view:
            if self.closed.is_set():
                return False
            if self.send_window <= 0:
                self.writable.clear()
                await self.writable.wait()
                continue
            n = min(len(view), MAX_FRAME, self.send_window)
            self.send_window -= n
            self.bytes_in += n
            self.hub.send_frame(
                self.agent_id,
                agent_pb2.CollectorMessage(
                    session_data=agent_pb2.SessionData(stream_id=self.stream_id, data=bytes(view[:n]))
                ),
            )
            view = view[n:]
        return not self.closed.is_set()


class _Outbox:
    """Frames to one agent, written by one task, in order."""

    def __init__(self) -> None:
        self.queue: deque[agent_pb2.CollectorMessage] = deque()
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None


class SessionHub:
    """See the module docstring. One per serving process; lives on the event loop."""

    def __init__(
        self,
        store: Store,
        registry: CollectorRegistry | None = None,
        *,
        executor: ThreadPoolExecutor | None = None,
        clock: Callable[[], float] = time.time,
        expiry_interval_s: float = 0.25,
    ) -> None:
        self.repo = SessionRepo(store)
        self._link: AgentLink | None = None
        self._executor = executor or ThreadPoolExecutor(max_workers=4, thread_name_prefix="sessions")
        self._clock = clock
        self._expiry_interval_s = expiry_interval_s
        self._streams: dict[tuple[str, int], RelayStream] = {}
        self._ids = itertools.count(1)
        self._capable: set[str] = set()
        self._without_sessions: set[str] = set()  # connected, but their Hello did not offer sessions
        self._outboxes: dict[str, _Outbox] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.refused = Counter(
            "diag_session_frames_refused_total",
            "Session frames from agents refused, by reason",
            ["reason"],
            registry=registry,
        )
        for reason in REFUSE_REASONS:
            self.refused.labels(reason)

    def attach(self, link: AgentLink) -> None:
        self._link = link

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def connected(self, agent_id: str) -> bool:
        """The agent is connected and its Hello offered sessions."""
        return agent_id in self._capable

    def refuses_sessions(self, agent_id: str) -> bool:
        """The agent is connected and did not offer sessions (``sessions.enabled`` is off there)."""
        return agent_id in self._without_sessions

    # ---------------------------------------------------------------- called by the gRPC service

    def agent_connected(self, agent_id: str, features: tuple[str, ...]) -> None:
        """After Welcome: drop stale streams; send every live grant when it offers sessions."""
        self._drop_agent(agent_id, "the agent reconnected")
        if "sessions" not in features:
            self._capable.discard(agent_id)
            self._without_sessions.add(agent_id)
            return
        self._without_sessions.discard(agent_id)
        self._capable.add(agent_id)
        self._spawn(self._send_grants(agent_id))

    def agent_disconnected(self, agent_id: str) -> None:
        self._capable.discard(agent_id)
        self._without_sessions.discard(agent_id)
        self._drop_agent(agent_id, "the agent disconnected")

    def agent_frame(self, agent_id: str, msg: agent_pb2.AgentMessage) -> None:
        """A session frame from an agent, handled without waiting (status writes run behind)."""
        body = msg.WhichOneof("body")
        if body == "session_status":
            self._spawn(self._status(agent_id, msg.session_status))
            return
        if body == "session_data":
            frame = msg.session_data
            stream = self._streams.get((agent_id, frame.stream_id))
            if stream is None:
                self.refused.labels("unknown_stream").inc()
                return
            refusal = stream.from_agent(frame.data)
        elif body == "session_window":
            w = msg.session_window
            stream = self._streams.get((agent_id, w.stream_id))
            if stream is None:
                self.refused.labels("unknown_stream").inc()
                return
            refusal = stream.window_from_agent(w.add_bytes)
        elif body == "session_close":
            stream = self._streams.get((agent_id, msg.session_close.stream_id))
            if stream is None:
                self.refused.labels("unknown_stream").inc()
                return
            stream.close("closed by the agent: " + msg.session_close.reason[:200])
            return
        else:
            return
        if refusal is not None:
            self.refused.labels(refusal).inc()
            log.warning("agent %s broke a session stream's contract (%s): stream closed", agent_id, refusal)
            self._close_stream(stream, f"refused: {refusal}", tell_agent=True)

    # ---------------------------------------------------------------- sessions

    async def send_grant(self, record: SessionRecord) -> bool:
        if record.agent_id not in self._capable:
            return False
        self.send_frame(record.agent_id, grant_message(record))
        return True

    async def end_session(self, record: SessionRecord, reason: str) -> None:
        """Close every stream of the session now and tell the agent (revoke, deny, expiry)."""
        for stream in [s for s in self._streams.values() if s.session_id == record.id]:
            self._close_stream(stream, reason, tell_agent=False)
        if record.agent_id in self._capable:
            self.send_frame(
                record.agent_id,
                agent_pb2.CollectorMessage(
                    session_revoke=agent_pb2.SessionRevoke(session_id=record.id, reason=reason)
                ),
            )

    async def open_stream(self, record: SessionRecord, actor: str) -> RelayStream:
        """Allocate a stream, audit it, send SessionOpen. Raises LookupError when the agent is offline."""
        if record.agent_id not in self._capable:
            raise LookupError(
                f"the agent of host {record.host} is not connected (or does not offer sessions)"
            )
        stream = RelayStream(self, record.id, record.agent_id, next(self._ids))
        self._streams[(record.agent_id, stream.stream_id)] = stream
        self.send_frame(
            record.agent_id,
            agent_pb2.CollectorMessage(
                session_open=agent_pb2.SessionOpen(
                    session_id=record.id, stream_id=stream.stream_id, window_bytes=INITIAL_WINDOW
                )
            ),
        )
        row_id = await self._run(self.repo.stream_opened, record.id, stream.stream_id, actor, self._clock())
        self._spawn(self._audit_end(stream, row_id))
        return stream

    def close_stream(self, stream: RelayStream, reason: str) -> None:
        """The engineer's side ended: tell the agent."""
        self._close_stream(stream, reason, tell_agent=True)

    async def expiry_loop(self) -> None:
        """Expire sessions at ``not_after`` (ending their streams) until cancelled."""
        while True:
            await asyncio.sleep(self._expiry_interval_s)
            try:
                for record in await self._run(self.repo.expire_due, self._clock()):
                    await self.end_session(record, "the session expired")
            except (DatabaseError, StoreError, OSError) as exc:
                log.warning("session expiry failed, retrying: %s", type(exc).__name__)

    # ---------------------------------------------------------------- internals

    def send_frame(self, agent_id: str, message: agent_pb2.CollectorMessage) -> None:
        box = self._outboxes.get(agent_id)
        if box is None:
            box = self._outboxes[agent_id] = _Outbox()
        box.queue.append(message)
        box.ready.set()
        if box.task is None or box.task.done():
            box.task = asyncio.ensure_future(self._sender(agent_id, box))

    async def _sender(self, agent_id: str, box: _Outbox) -> None:
        while box.queue:
            message = box.queue.popleft()
            ok = self._link is not None and await self._link.send_session(agent_id, message)
            if not ok:
                box.queue.clear()
                self._drop_agent(agent_id, "the agent disconnected")
        if self._outboxes.get(agent_id) is box and not box.queue:
            del self._outboxes[agent_id]

    def _close_stream(self, stream: RelayStream, reason: str, *, tell_agent: bool) -> None:
        if self._streams.get((stream.agent_id, stream.stream_id)) is stream:
            del self._streams[(stream.agent_id, stream.stream_id)]
            if tell_agent and stream.agent_id in self._capable:
                self.send_frame(
                    stream.agent_id,
                    agent_pb2.CollectorMessage(
                        session_close=agent_pb2.SessionClose(stream_id=stream.stream_id, reason=reason[:200])
                    ),
                )
        stream.close(reason)

    def _drop_agent(self, agent_id: str, reason: str) -> None:
        for stream in [s for (a, _), s in self._streams.items() if a == agent_id]:
            self._close_stream(stream, reason, tell_agent=False)

    async def _send_grants(self, agent_id: str) -> None:
        try:
            grants = await self._run(self.repo.grants_for_agent, agent_id, self._clock())
        except (DatabaseError, OSError) as exc:
            log.warning("cannot read the grants of agent %s: %s", agent_id, type(exc).__name__)
            return
        for record in grants:
            self.send_frame(agent_id, grant_message(record))

    async def _status(self, agent_id: str, status: agent_pb2.SessionStatus) -> None:
        if status.stream_id:
            self._stream_status(agent_id, status)
            return
        try:
            record = await self._run(
                self.repo.agent_status,
                agent_id,
                status.session_id[:40],
                state=status.state[:16],
                reason=status.reason[:500],
                host_key=status.host_key[:2000],
                host_key_sha256=status.host_key_sha256[:100],
                approved_by=status.approved_by[:200],
                now=self._clock(),
            )
        except StoreError:
            self.refused.labels("malformed").inc()
            return
        except (DatabaseError, OSError) as exc:
            log.warning("cannot store a session status of agent %s: %s", agent_id, type(exc).__name__)
            return
        if record is None:
            self.refused.labels("foreign_session").inc()
            return
        if status.state in ("denied", "refused", "revoked", "ended") and not status.stream_id:
            for stream in [s for s in self._streams.values() if s.session_id == record.id]:
                self._close_stream(
                    stream, f"the agent said {status.state}: {status.reason[:200]}", tell_agent=False
                )

    def _stream_status(self, agent_id: str, status: agent_pb2.SessionStatus) -> None:
        """A status about one stream (``active``, ``ended``, ``refused``): it never changes the
        session's state (a stream ending does not end the session); an end closes that stream,
        whose close reason the stream's audit row keeps."""
        stream = self._streams.get((agent_id, status.stream_id))
        if stream is None or (status.session_id and status.session_id != stream.session_id):
            return
        if status.state in ("refused", "ended", "revoked", "denied"):
            self._close_stream(
                stream, f"the agent said {status.state}: {status.reason[:200]}".rstrip(": "), tell_agent=False
            )

    async def _audit_end(self, stream: RelayStream, row_id: int) -> None:
        await stream.closed.wait()
        with contextlib.suppress(DatabaseError, StoreError, OSError):
            await self._run(
                self.repo.stream_closed,
                row_id,
                bytes_in=stream.bytes_in,
                bytes_out=stream.bytes_out,
                reason=stream.close_reason,
                now=self._clock(),
            )

    async def close(self) -> None:
        for stream in list(self._streams.values()):
            self._close_stream(stream, "the collector is stopping", tell_agent=False)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
