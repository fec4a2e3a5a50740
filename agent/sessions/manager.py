"""What the streamer hands every session frame to, and what answers it.

:class:`Refuser` is the whole of it for an agent whose config leaves sessions disabled:
every grant, open and data frame is answered ``refused`` ("sessions are disabled in
<config>"), whatever the collector says, and nothing of paramiko is ever imported.
:class:`SessionManager` is the enabled agent's: it decides on grants
(:func:`agent.sessions.grants.decide`), answers with SessionStatus, keeps grants in the
state directory, runs one SSH server per stream (:mod:`agent.sessions.server`, imported
on first use), records, and cuts streams off on revocation or expiry (a sweeper checks
every 0.2 s, so within 1 s; and, once ``allowed_hours`` closes, every open stream).

Both count and drop what they cannot use: a frame that does not decode or breaks the
contract's bounds (``malformed``; a SessionData over 32 KiB is ``oversized``), data for a
stream that does not exist (``unknown_stream``). Nothing here blocks the streamer's
thread: session bytes are queued to per-stream threads, so results keep flowing.
"""

from __future__ import annotations

import base64
import logging
import queue
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

from agent.sessions import frames
from agent.sessions.grants import Decision, Grant, GrantStore, decide, minute_now, parse_public_key
from agent.sessions.relay import Relay
from agent.sessions.settings import SessionsConfig
from agent.spool import KIND_SESSION_EVENT, KIND_SESSION_RECORDING

if TYPE_CHECKING:
    from agent.sessions.recording import Recorder

__all__ = ["FEATURE", "EventSink", "Refuser", "SessionManager", "SpoolEvents"]

log = logging.getLogger("agent.sessions")

FEATURE: Final = "sessions"
_REMEMBERED: Final = 1024
"""Refused streams / reported refusals kept in memory (so a flood is answered once each)."""
SWEEP_S: Final = 0.2


class EventSink(Protocol):
    """Where host-side events and recording chunks go (the spool)."""

    def event(self, session_id: str, event: str, actor: str, detail: str) -> None: ...

    def chunk(self, session_id: str, index: int, data: bytes, last: bool, sha256: str) -> None: ...


class SpoolEvents:
    """Appends SessionEvents and recording chunks to the spool (JSON payloads, like health).

    Through one writer thread, in order: callers include SFTP threads whose file-system
    identity is ``shell_user``'s, and the spool is the agent's. Call :meth:`close` to
    write what is queued.
    """

    def __init__(self, spool: Any, notify: Callable[[], None] | None = None) -> None:
        self._spool = spool
        self.notify = notify
        self._queue: queue.SimpleQueue[tuple[str, float, dict[str, Any]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _append(self, kind: str, doc: dict[str, Any]) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._write, name="sessions-spool", daemon=True)
                self._thread.start()
        self._queue.put((kind, time.time(), doc))

    def _write(self) -> None:
        from agent.spool import encode_json

        while True:
            item = self._queue.get()
            if item is None:
                return
            kind, ts, doc = item
            try:
                self._spool.append([(kind, ts, encode_json(doc))])
            except Exception:  # a full disk loses an event, never the agent
                log.exception("cannot spool a session %s", kind)
                continue
            if self.notify is not None:
                self.notify()

    def close(self, timeout_s: float = 5.0) -> None:
        """Write everything queued, then stop the writer."""
        with self._lock:
            thread = self._thread
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout_s)

    def event(self, session_id: str, event: str, actor: str, detail: str) -> None:
        doc = {"session_id": session_id, "event": event, "actor": actor, "detail": detail[:1000]}
        self._append(KIND_SESSION_EVENT, doc)

    def chunk(self, session_id: str, index: int, data: bytes, last: bool, sha256: str) -> None:
        doc = {
            "session_id": session_id,
            "index": index,
            "data": base64.b64encode(data).decode(),
            "last": last,
            "sha256": sha256,
        }
        self._append(KIND_SESSION_RECORDING, doc)


class _Base:
    """Decoding, counting and the send function shared by both handlers."""

    features: tuple[str, ...] = ()

    def __init__(self, events: EventSink, config_path: str) -> None:
        self._events = events
        self.config_path = config_path
        self._send_fn: Callable[[bytes], None] | None = None
        self.dropped: Counter[str] = Counter()
        self._refused_streams: OrderedDict[int, None] = OrderedDict()
        self._reported: OrderedDict[tuple[str, str], None] = OrderedDict()

    def events_notify(self, notify: Callable[[], None]) -> None:
        """Wake the streamer when an event or a chunk was spooled."""
        if isinstance(self._events, SpoolEvents):
            self._events.notify = notify

    def attach(self, send: Callable[[bytes], None]) -> None:
        """A stream to the collector was welcomed: session frames go out through ``send``."""
        self._send_fn = send

    def detach(self) -> None:
        self._send_fn = None

    def _send(self, message: bytes) -> None:
        send = self._send_fn
        if send is not None:
            send(message)

    def _status(self, session_id: str, state: str, reason: str = "", **extra: Any) -> None:
        self._send(
            frames.status_message(session_id, state, reason, ts_unix_ms=int(time.time() * 1000), **extra)
        )

    def _event_once(self, session_id: str, event: str, actor: str, detail: str) -> None:
        key = (session_id, f"{event}:{detail}")
        if key in self._reported:
            return
        self._reported[key] = None
        if len(self._reported) > _REMEMBERED:
            self._reported.popitem(last=False)
        self._events.event(session_id, event, actor, detail)

    def on_frame(self, number: int, payload: bytes | None) -> None:
        """One session frame from the collector (the streamer's thread)."""
        try:
            frame = frames.decode(number, payload)
        except frames.FrameError as exc:
            self.dropped["oversized" if "over " in str(exc) else "malformed"] += 1
            log.debug("dropped a session frame: %s", exc)
            return
        self._dispatch(frame)

    def _dispatch(self, frame: frames.Frame) -> None:
        raise NotImplementedError

    def _refuse_stream(self, stream_id: int, session_id: str, reason: str) -> None:
        """Refuse a stream once (a flood of its frames gets one answer)."""
        if stream_id in self._refused_streams:
            return
        self._refused_streams[stream_id] = None
        if len(self._refused_streams) > _REMEMBERED:
            self._refused_streams.popitem(last=False)
        self._status(session_id, "refused", reason, stream_id=stream_id)
        self._send(frames.close_message(stream_id, reason))

    def stats(self) -> dict[str, int]:
        return dict(self.dropped)

    def close(self) -> None:
        self.detach()
        if isinstance(self._events, SpoolEvents):
            self._events.close()


class Refuser(_Base):
    """Sessions disabled: every grant, open and data frame is refused, nothing else happens."""

    def _dispatch(self, frame: frames.Frame) -> None:
        reason = f"sessions are disabled in {self.config_path}"
        if isinstance(frame, frames.SessionGrant):
            self._status(frame.session_id, "refused", reason)
            self._event_once(frame.session_id, "refused", "agent", reason)
        elif isinstance(frame, frames.SessionOpen):
            self._refuse_stream(frame.stream_id, frame.session_id, reason)
        elif isinstance(frame, frames.SessionData):
            self.dropped["refused_data"] += 1
            self._refuse_stream(frame.stream_id, "", reason)
        else:
            self.dropped["ignored"] += 1


@dataclass(slots=True)
class _Stream:
    relay: Relay
    transport: Any
    ctx: Any


class SessionManager(_Base):
    """Sessions enabled: grants, decisions, streams, recordings, cut-offs."""

    features = (FEATURE,)

    def __init__(
        self,
        config: SessionsConfig,
        agent_id: str,
        state_dir: Path,
        events: EventSink,
        config_path: str,
    ) -> None:
        super().__init__(events, config_path)
        self.config = config
        self.agent_id = agent_id
        self.directory = state_dir / "sessions"
        self.store = GrantStore(self.directory)
        self._lock = threading.RLock()
        self._streams: dict[int, _Stream] = {}
        self._recorders: dict[str, Recorder] = {}
        self._last_state: dict[str, str] = {}
        self._host_key: Any = None
        self._stop = threading.Event()
        self._sweeper = threading.Thread(target=self._sweep_loop, name="sessions-sweeper", daemon=True)
        self._control: Any = None
        self.minute_of_day: Callable[[], int] = minute_now
        """Local minutes since midnight (``allowed_hours``); tests replace it."""

    def start(self) -> None:
        """Start the sweeper and the local control socket."""
        from agent.sessions.control import ControlServer

        self._sweeper.start()
        self._control = ControlServer(self.directory / "control.sock", self.control)
        self._control.start()

    def close(self) -> None:
        self._stop.set()
        if self._control is not None:
            self._control.stop()
        for stream in list(self._streams.values()):
            stream.relay.close("the agent is stopping", notify=True)
        for rec in list(self._recorders.values()):
            rec.flush()
        super().close()
        if isinstance(self._events, SpoolEvents):
            self._events.close()

    def detach(self) -> None:
        # Stream ids belong to one connection: its streams end with it.
        super().detach()
        for stream in list(self._streams.values()):
            stream.relay.close("the connection to the collector ended", notify=False)

    # -- decisions -----------------------------------------------------------------------------

    def decision(self, grant: Grant) -> Decision:
        return decide(
            self.config,
            grant,
            self.agent_id,
            now_ms=int(time.time() * 1000),
            minute_of_day=self.minute_of_day(),
            config_path=self.config_path,
        )

    def host_key(self) -> Any:
        if self._host_key is None:
            from agent.sessions.server import HostKey

            self._host_key = HostKey(self.directory)
        return self._host_key

    def _answer(self, grant: Grant, actor: str = "") -> Decision:
        """Send the grant's SessionStatus and spool an event when its state changed."""
        decision = self.decision(grant)
        extra: dict[str, Any] = {}
        if decision.state == "approved":
            key = self.host_key()
            extra = {"host_key": key.line, "host_key_sha256": key.sha256}
            if grant.host_decision == "approved":
                extra["approved_by"] = grant.host_actor
        self._status(grant.session_id, decision.state, decision.reason, **extra)
        previous = self._last_state.get(grant.session_id)
        self._last_state[grant.session_id] = decision.state
        if previous != decision.state and decision.state != "waiting":
            who = actor or (grant.host_actor if grant.host_decision else (grant.approved_by or "agent"))
            self._events.event(grant.session_id, decision.state, who, decision.reason)
        return decision

    # -- frames --------------------------------------------------------------------------------

    def _dispatch(self, frame: frames.Frame) -> None:
        if isinstance(frame, frames.SessionGrant):
            self._on_grant(frame)
        elif isinstance(frame, frames.SessionOpen):
            self._on_open(frame)
        elif isinstance(frame, frames.SessionData):
            stream = self._streams.get(frame.stream_id)
            if stream is None:
                self.dropped["unknown_stream"] += 1
                self._refuse_stream(frame.stream_id, "", "no such stream")
            elif not stream.relay.feed(frame.data):
                self.dropped["over_window"] += 1
        elif isinstance(frame, frames.SessionWindow):
            stream = self._streams.get(frame.stream_id)
            if stream is None:
                self.dropped["unknown_stream"] += 1
            else:
                stream.relay.add_window(frame.add_bytes)
        elif isinstance(frame, frames.SessionClose):
            stream = self._streams.get(frame.stream_id)
            if stream is not None:
                stream.relay.close(f"closed by the collector: {frame.reason}"[:200], notify=False)
        elif isinstance(frame, frames.SessionRevoke):
            self.revoke(frame.session_id, frame.reason or "revoked", "collector")

    def _on_grant(self, frame: frames.SessionGrant) -> None:
        with self._lock:
            previous = self.store.get(frame.session_id)
            grant = Grant.from_frame(frame, previous)
            decision = self.decision(grant)
            if decision.state in ("approved", "waiting", "denied", "revoked"):
                self.store.put(grant)
            self._answer(grant)

    def _on_open(self, frame: frames.SessionOpen) -> None:
        with self._lock:
            grant = self.store.get(frame.session_id)
            if grant is None:
                self._refuse_stream(
                    frame.stream_id, frame.session_id, "no grant for this session on this agent"
                )
                return
            decision = self.decision(grant)
            if decision.state != "approved":
                self._refuse_stream(
                    frame.stream_id,
                    frame.session_id,
                    f"session is {decision.state}: {decision.reason}".rstrip(": "),
                )
                return
            if frame.stream_id in self._streams:
                self.dropped["duplicate_stream"] += 1
                return
            if len(self._streams) >= self.config.max_streams:
                self._refuse_stream(frame.stream_id, frame.session_id, "too many open streams on this agent")
                return
            from agent.sessions import server

            relay = Relay(
                frame.stream_id, grant.session_id, self._send, self._stream_closed, frame.window_bytes
            )
            ctx = server.StreamContext(
                session_id=grant.session_id,
                stream_id=frame.stream_id,
                mode=grant.mode,
                key_blob=parse_public_key(grant.engineer_public_key)[1],
                shell_user=self.config.shell_user,
                recorder=self._recorder(grant),
                on_event=self._engineer_events(grant),
            )
            try:
                transport = server.serve(relay.peer, ctx, self.host_key())
            except Exception as exc:  # paramiko's failures are many; the stream is refused, the agent goes on
                log.exception("session %s: cannot start the SSH server", grant.session_id)
                self._refuse_stream(frame.stream_id, frame.session_id, f"cannot start the SSH server: {exc}")
                return
            self._streams[frame.stream_id] = _Stream(relay, transport, ctx)
            relay.start()
        self._status(grant.session_id, "active", stream_id=frame.stream_id)
        self._events.event(
            grant.session_id, "started", grant.engineer or "engineer", f"stream {frame.stream_id}"
        )

    def _engineer_events(self, grant: Grant) -> Callable[[str, str], None]:
        sid, actor = grant.session_id, grant.engineer or "engineer"

        def on_event(event: str, detail: str) -> None:
            self._events.event(sid, event, actor, detail)

        return on_event

    def _recorder(self, grant: Grant) -> Recorder:
        rec = self._recorders.get(grant.session_id)
        if rec is None:
            from agent.sessions.recording import Recorder

            sid = grant.session_id

            def progress(index: int, offset: int) -> None:
                current = self.store.get(sid)
                if current is not None:
                    self.store.put(replace(current, recording_index=index, recording_offset=offset))

            rec = Recorder(
                self.directory,
                sid,
                lambda i, d, last, h: self._events.chunk(sid, i, d, last, h),
                record_input=self.config.record_input,
                index=grant.recording_index,
                offset=grant.recording_offset,
                on_progress=progress,
            )
            self._recorders[sid] = rec
        return rec

    def _stream_closed(self, relay: Relay, reason: str) -> None:
        with self._lock:
            stream = self._streams.pop(relay.stream_id, None)
        if stream is None:
            return
        from agent.sessions import server

        threading.Thread(target=server.stop, args=(stream.transport, stream.ctx), daemon=True).start()
        self._status(relay.session_id, "ended", reason, stream_id=relay.stream_id)
        self._events.event(relay.session_id, "ended", "agent", f"stream {relay.stream_id}: {reason}")

    def _end_session(self, session_id: str, state: str, reason: str) -> None:
        for stream in [s for s in list(self._streams.values()) if s.relay.session_id == session_id]:
            stream.relay.close(reason, notify=True)
        rec = self._recorders.pop(session_id, None)
        if rec is not None:
            rec.finish()

    # -- revocation, expiry --------------------------------------------------------------------

    def revoke(self, session_id: str, reason: str, actor: str) -> bool:
        """End the session and every stream of it now; False when this agent has no such grant."""
        with self._lock:
            grant = self.store.get(session_id)
            if grant is None:
                self.dropped["unknown_session"] += 1
                return False
            if not grant.revoked:
                self.store.put(replace(grant, revoked=reason or "revoked"))
            self._end_session(session_id, "revoked", reason)
        self._status(session_id, "revoked", reason)
        if self._last_state.get(session_id) != "revoked":
            self._last_state[session_id] = "revoked"
            self._events.event(session_id, "revoked", actor, reason)
        return True

    def _sweep_loop(self) -> None:
        last_flush = time.monotonic()
        while not self._stop.wait(SWEEP_S):
            try:
                self.sweep()
                if time.monotonic() - last_flush >= 2.0:
                    last_flush = time.monotonic()
                    for rec in list(self._recorders.values()):
                        rec.flush()
            except Exception:  # the sweeper must survive a bad grant or a full disk
                log.exception("session sweep failed")

    def sweep(self) -> None:
        """End what expired (grants past not_after, their streams, their recordings) and cut off
        every open stream once ``allowed_hours`` closes (the grant stays: it may be used again
        when the window reopens, and until then every SessionOpen is refused with the reason)."""
        now = int(time.time() * 1000)
        if (
            self.config.hours is not None
            and self._streams
            and not self.config.within_hours(self.minute_of_day())
        ):
            reason = f"outside allowed hours {self.config.allowed_hours}"
            for stream in list(self._streams.values()):
                stream.relay.close(reason, notify=True)
        with self._lock:
            for grant in self.store.all():
                if grant.expired(now) and not grant.revoked:
                    active = any(s.relay.session_id == grant.session_id for s in self._streams.values())
                    if active or grant.session_id in self._recorders:
                        self._end_session(grant.session_id, "ended", "expired")
                    if self._last_state.get(grant.session_id) not in (None, "ended"):
                        self._status(grant.session_id, "ended", "expired")
                        self._events.event(grant.session_id, "ended", "agent", "expired")
                    self._last_state[grant.session_id] = "ended"
            self.store.sweep(now)

    # -- the local control socket ----------------------------------------------------------------

    def control(self, request: dict[str, Any], actor: str) -> dict[str, Any]:
        """One request of ``diag-agent sessions`` (already authenticated by peer uid)."""
        op = request.get("op")
        if op == "list":
            return {
                "ok": True,
                "sessions": [self._describe(g) for g in self.store.all()],
                "dropped": self.stats(),
            }
        session_id = request.get("session_id")
        if not isinstance(session_id, str) or not session_id:
            return {"ok": False, "error": "session_id is required (see: diag-agent sessions list)"}
        with self._lock:
            grant = self.store.get(session_id)
            if grant is None:
                return {
                    "ok": False,
                    "error": f"no session {session_id} on this agent (see: diag-agent sessions list)",
                }
            if op == "revoke":
                self.revoke(session_id, f"revoked on the host by {actor}", f"host:{actor}")
                return {"ok": True, "session": self._describe(self.store.get(session_id) or grant)}
            if op not in ("approve", "deny"):
                return {
                    "ok": False,
                    "error": f"unknown operation {str(op)[:40]!r}; use list, approve, deny or revoke",
                }
            if op == "approve" and "host" not in self.config.approvals:
                return {
                    "ok": False,
                    "error": "sessions.approvals does not include host: approve through the collector",
                }
            current = self.decision(grant)
            if current.state in ("refused", "revoked"):
                return {"ok": False, "error": f"session is {current.state}: {current.reason}"}
            updated = replace(
                grant, host_decision="approved" if op == "approve" else "denied", host_actor=f"host:{actor}"
            )
            self.store.put(updated)
            if op == "deny":
                self._end_session(session_id, "denied", f"denied on the host by {actor}")
            self._answer(updated, f"host:{actor}")
            return {"ok": True, "session": self._describe(updated)}

    def _describe(self, grant: Grant) -> dict[str, Any]:
        decision = self.decision(grant)
        streams = [
            s.relay.stream_id for s in self._streams.values() if s.relay.session_id == grant.session_id
        ]
        return {
            "session_id": grant.session_id,
            "state": decision.state,
            "reason": decision.reason,
            "mode": grant.mode,
            "engineer": grant.engineer,
            "case_id": grant.case_id,
            "request_reason": grant.reason,
            "not_after_unix_ms": grant.not_after_unix_ms,
            "approval": grant.host_actor if grant.host_decision else grant.approval,
            "streams": streams,
        }
