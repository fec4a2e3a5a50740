"""The agent's side of the stream: spool → collector, acknowledgements → spool deletes.

:class:`Streamer` runs in its own thread next to the synchronous daemon and speaks gRPC
through :mod:`agent.grpc_h2` (pure-Python HTTP/2, a fresh connection per session;
grpcio would cost the agent about 18 MB of RSS). One connection ("session") goes:

1. open ``AgentStream.Connect`` with ``authorization: Bearer <token>`` metadata and
   send ``Hello`` (host facts, the spool's high and low sequence numbers);
2. on ``Welcome``: delete spooled entries ``<= resume_after_seq`` (the collector has
   them) and stream the rest in order, in batches no larger than the collector's
   ``max_batch_entries`` / ``max_message_bytes``, keeping at most ``window`` batches
   unacknowledged;
3. on ``Ack``: delete everything ``<= durable_through_seq`` from the spool, mark
   reported gaps; report spool gaps (dropped entries) until the collector records them;
4. send a ``Heartbeat`` when idle; hand every ``InspectionRequest`` to ``on_inspection``.

A broken session is retried with jittered exponential backoff (0.5 s doubling to
30 s, reset after a healthy period; capped at 5 s for 5 minutes after a session was
welcomed, so agents find a restarted collector within seconds). A rejected token (``UNAUTHENTICATED`` /
``PERMISSION_DENIED``) backs off for minutes and logs a clear error; the token itself
never appears in a log line or an exception message.

An entry the collector can never take (larger than its message limit, undecodable in
the spool, or rejected as invalid, which the collector names by seq) is skipped and
reported as a gap, so one bad entry cannot wedge the stream forever. The spool deletes it
and records its gap in one transaction (:meth:`agent.spool.Spool.skip`), so even a
``kill -9`` before the report loses nothing silently.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import queue
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

from agent import wire
from agent.grpc_h2 import RpcError, StatusCode, StreamCall, TlsConfig
from agent.sessions import frames
from agent.spool import (
    KIND_HEALTH,
    KIND_INVENTORY,
    KIND_RESULT,
    KIND_SESSION_EVENT,
    KIND_SESSION_RECORDING,
    Gap,
    SpoolEntry,
    SpoolStats,
)

# The inventory digest uses the interpreter's own SHA-256: hashlib would load OpenSSL's
# libcrypto for it, about 3.6 MB of the agent's RSS budget (ssl loads it anyway with TLS).
try:
    from _sha256 import sha256  # type: ignore[import-not-found, unused-ignore]
except ImportError:  # Python 3.12+ calls the module _sha2; hashlib is the last resort
    try:
        from _sha2 import sha256  # type: ignore[import-not-found, no-redef, unused-ignore]
    except ImportError:  # a build without the builtin hashes
        from hashlib import sha256  # type: ignore[assignment, unused-ignore]

__all__ = [
    "Backoff",
    "HostIdentity",
    "Streamer",
    "StreamerSettings",
    "entry_to_wire",
    "host_facts",
]

log = logging.getLogger("agent.streamer")

PROTOCOL_VERSION: Final = 1
_REJECTED_SEQ_RE: Final = re.compile(r"\(seq (\d+)\)")
_MESSAGE_SLACK: Final = 16 * 1024  # headroom under the collector's message limit for framing
CONNECT_PATH: Final = "/diag.v1.AgentStream/Connect"
_CLOSE_TIMEOUT_S: Final = 2.0
"""After a flush, how long to wait for the collector's status once we half-closed."""


class SessionHandler(Protocol):
    """What the streamer hands session frames to (:mod:`agent.sessions.manager`)."""

    features: tuple[str, ...]

    def attach(self, send: Callable[[bytes], None]) -> None: ...

    def detach(self) -> None: ...

    def on_frame(self, number: int, payload: bytes | None) -> None: ...


class SpoolLike(Protocol):
    """What the streamer needs from :class:`agent.spool.Spool`."""

    def read_from(self, seq: int, limit: int = 500) -> list[SpoolEntry]: ...

    def ack(self, up_to_seq: int) -> int: ...

    def gaps(self, include_reported: bool = False) -> list[Gap]: ...

    def mark_gaps_reported(self, up_to_id: int) -> None: ...

    def skip(self, seq: int, reason: str) -> None: ...

    def stats(self) -> SpoolStats: ...


@dataclass(frozen=True, slots=True)
class StreamerSettings:
    """Where and how to stream. Build it from the agent config with :meth:`from_config`."""

    address: str
    token: str = field(repr=False)
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    server_name: str | None = None
    batch_entries: int = 500
    """Our own cap per batch; the collector's Welcome may lower it."""
    window: int = 4
    """Batches sent but not yet acknowledged."""
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    healthy_after_s: float = 30.0
    """A session that lived this long resets the backoff."""
    recent_backoff_cap_s: float = 5.0
    """The backoff's cap while a session was welcomed within ``recent_s``: a collector that
    restarts is usually back within minutes, and its agents should find it within seconds."""
    recent_s: float = 300.0
    auth_backoff_s: float = 300.0
    """Wait after the collector rejected our token (re-enrolment takes a human)."""
    invalid_backoff_s: float = 30.0
    """Minimum wait after the collector rejected a message as invalid."""
    ack_timeout_s: float = 60.0
    """An unacknowledged batch older than this means the session is stuck."""
    welcome_timeout_s: float = 30.0
    idle_poll_s: float = 1.0
    """How often to look for new spool entries when nobody called :meth:`Streamer.notify`."""

    @classmethod
    def from_config(cls, collector: Any, **overrides: Any) -> StreamerSettings:
        """From :class:`agent.config.CollectorConfig` (``address``, ``token``, ``tls``)."""
        token = collector.token
        secret = token.get_secret_value() if hasattr(token, "get_secret_value") else (token or "")
        if not collector.address or not secret:
            raise ValueError("streaming needs collector.address and collector.token")
        tls = collector.tls
        return cls(
            address=collector.address,
            token=secret,
            ca_file=tls.ca_file if tls else None,
            cert_file=tls.cert_file if tls else None,
            key_file=tls.key_file if tls else None,
            server_name=tls.server_name if tls else None,
            **overrides,
        )

    @property
    def tls(self) -> bool:
        return self.ca_file is not None or self.cert_file is not None


@dataclass(frozen=True, slots=True)
class HostIdentity:
    """Who we say we are in Hello (the token decides who we really are)."""

    agent_id: str
    hostname: str = field(default_factory=platform.node)
    labels: Mapping[str, str] = field(default_factory=dict)
    agent_version: str = "0.1.0"


class Backoff:
    """Jittered exponential backoff: ``base * 2**n`` capped, each delay drawn from [d/2, d].

    >>> b = Backoff(0.5, 30.0, rng=random.Random(1))
    >>> [round(b.next(), 2) for _ in range(8)][-1] <= 30.0
    True
    >>> b.reset(); 0.25 <= b.next() <= 0.5
    True
    """

    def __init__(self, base_s: float, cap_s: float, rng: random.Random | None = None) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.attempt = 0
        self._rng = rng or random.Random()

    def next(self, cap_s: float | None = None) -> float:
        """The next delay; ``cap_s`` lowers the cap for this one (the attempts still count)."""
        cap = self.cap_s if cap_s is None else min(self.cap_s, cap_s)
        delay = min(cap, self.base_s * (2 ** min(self.attempt, 32)))
        self.attempt += 1
        return self._rng.uniform(delay / 2, delay)

    def reset(self) -> None:
        self.attempt = 0


# --- conversion ---------------------------------------------------------------------------------


def entry_to_wire(entry: SpoolEntry, *, metric_keys: bool = False) -> bytes | None:
    """The encoded ``Entry`` of one spool entry; None for a kind this agent does not stream.

    Raises ValueError when the payload is not what :mod:`agent.spool` writes.

    >>> from agent.spool import SpoolEntry
    >>> entry_to_wire(SpoolEntry(3, 1700000000.25, "health", b'{"rss_bytes":1024}')).hex()
    '080310fad195ffbc312a03108008'
    """
    try:
        doc = json.loads(entry.payload)
    except ValueError as exc:  # UnicodeDecodeError is a ValueError too
        raise ValueError(f"spool entry {entry.seq}: payload is not JSON") from exc
    if not isinstance(doc, dict):
        raise ValueError(f"spool entry {entry.seq}: payload is not a JSON object")
    try:
        if entry.kind == KIND_RESULT:
            kind, payload = wire.ENTRY_RESULT, wire.check_result(doc, metric_keys=metric_keys)
        elif entry.kind == KIND_HEALTH:
            kind, payload = wire.ENTRY_HEALTH, wire.health(doc)
        elif entry.kind == KIND_INVENTORY:
            kind = wire.ENTRY_INVENTORY
            payload = wire.inventory(entry.payload.decode(), sha256(entry.payload).hexdigest())
        elif entry.kind in (KIND_SESSION_EVENT, KIND_SESSION_RECORDING):
            kind, payload = frames.spooled_entry(entry.kind == KIND_SESSION_EVENT, doc)
        else:
            return None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        # Wrong shape or types in the payload (AttributeError: a list where a dict belongs).
        raise ValueError(f"spool entry {entry.seq}: malformed {entry.kind} payload ({exc!r})") from exc
    if entry.seq < 0:
        raise ValueError(f"spool entry {entry.seq}: negative sequence number")
    return wire.entry(entry.seq, round(entry.ts * 1000), kind, payload)


def host_facts(root: Path = Path("/")) -> wire.HostFacts:
    """OS, kernel, CPU count, memory and boot time, from cheap files (once per connection)."""
    facts: dict[str, Any] = {
        "kernel": platform.release(),
        "arch": platform.machine(),
        "cpu_count": os.cpu_count() or 0,
    }
    with contextlib.suppress(OSError):  # a minimal container may lack os-release
        for line in (root / "etc/os-release").read_text().splitlines():
            key, _, value = line.partition("=")
            value = value.strip().strip('"')
            if key == "ID":
                facts["os_id"] = value[:64]
            elif key == "VERSION_ID":
                facts["os_version"] = value[:64]
    with contextlib.suppress(OSError, ValueError, IndexError):  # facts are best effort
        for line in (root / "proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                facts["memory_bytes"] = int(line.split()[1]) * 1024
                break
    with contextlib.suppress(OSError, ValueError, IndexError):  # facts are best effort
        for line in (root / "proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                facts["boot_time_unix_ms"] = int(line.split()[1]) * 1000
                break
    return wire.HostFacts(**facts)


# --- the streamer -------------------------------------------------------------------------------


class _SessionEnd(Exception):
    """A session is over; ``code`` is the gRPC status (None: ended by us or by the peer's EOF)."""

    def __init__(self, code: StatusCode | None, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


@dataclass(slots=True)
class _InFlight:
    max_seq: int
    sent_at: float


class Streamer:
    """Streams the spool to the collector from a background thread.

    ``on_inspection`` is called from the streamer's thread for every
    :class:`InspectionRequest`; it should only enqueue work and return.
    """

    def __init__(
        self,
        spool: SpoolLike,
        settings: StreamerSettings,
        identity: HostIdentity,
        on_inspection: Callable[[wire.InspectionRequest], None] | None = None,
        *,
        facts: Callable[[], wire.HostFacts] = host_facts,
        sessions: SessionHandler | None = None,
    ) -> None:
        self._spool = spool
        self._sessions = sessions
        self._settings = settings
        self._identity = identity
        self._on_inspection = on_inspection
        self._facts = facts
        self._backoff = Backoff(settings.backoff_base_s, settings.backoff_cap_s)
        self._stop = threading.Event()
        self._flush_deadline = 0.0
        self._inbox: queue.SimpleQueue[tuple[str, Any]] | None = None
        self._thread: threading.Thread | None = None
        self._poison: set[int] = set()
        self._welcomed_at: float | None = None
        """When a session last had a Welcome (monotonic): the collector was reachable then."""
        self.connected = False
        self.last_error: str | None = None
        self.acked_seq = 0
        self.sessions = 0

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background thread (once)."""
        if self._thread is not None:
            raise RuntimeError("streamer already started")
        self._thread = threading.Thread(target=self._run, name="streamer", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """New entries were spooled: send them now rather than at the next poll."""
        inbox = self._inbox
        if inbox is not None:
            inbox.put(("wake", None))

    def stop(self, flush_timeout_s: float = 5.0) -> None:
        """Send what can be acknowledged within ``flush_timeout_s``, then close; the rest stays spooled."""
        self._flush_deadline = time.monotonic() + flush_timeout_s
        self._stop.set()
        self.notify()
        if self._thread is not None:
            self._thread.join(flush_timeout_s + 5.0)

    def _stopping_done(self) -> bool:
        return self._stop.is_set() and time.monotonic() >= self._flush_deadline

    def _run(self) -> None:
        while not self._stopping_done():
            started = time.monotonic()
            welcomed = False
            try:
                welcomed = self._session()
                if self._stop.is_set():
                    return  # flushed what could be flushed
                delay = self._backoff.next(self._recent_cap())
            except _SessionEnd as end:
                self.connected = False
                if self._stopping_done():
                    return
                delay = self._after_failure(end)
            if welcomed and time.monotonic() - started >= self._settings.healthy_after_s:
                self._backoff.reset()
            if self._stop.is_set():  # flushing on the way out: retry only until the deadline
                time.sleep(max(0.0, min(delay, self._flush_deadline - time.monotonic())))
            elif delay > 0:
                self._stop.wait(delay)

    def _recent_cap(self) -> float | None:
        """The lower backoff cap while the collector was reachable recently (else None)."""
        s = self._settings
        at = self._welcomed_at
        if at is None or time.monotonic() - at > s.recent_s:
            return None
        return s.recent_backoff_cap_s

    def _after_failure(self, end: _SessionEnd) -> float:
        s = self._settings
        code = end.code
        name = getattr(code, "name", "CLOSED")
        self.last_error = f"{name}: {end.details}"
        if code in (StatusCode.UNAUTHENTICATED, StatusCode.PERMISSION_DENIED):
            log.error(
                "collector %s rejected this agent's credentials (%s: %s); check collector.token "
                "(re-enroll with `diagctl agents enroll`) and agent.id; retrying in %.0f s",
                s.address,
                name,
                end.details,
                s.auth_backoff_s,
            )
            return s.auth_backoff_s
        if code == StatusCode.FAILED_PRECONDITION:
            log.error("cannot stream to %s: %s; retrying in %.0f s", s.address, end.details, s.auth_backoff_s)
            return s.auth_backoff_s
        delay = self._backoff.next(self._recent_cap())
        if code == StatusCode.INVALID_ARGUMENT:
            match = _REJECTED_SEQ_RE.search(end.details)
            if match:
                seq = int(match.group(1))
                self._poison.add(seq)
                log.error("collector rejected spool entry %d as invalid (%s); skipping it", seq, end.details)
                return delay
            log.error("collector rejected a message as invalid: %s", end.details)
            return max(delay, s.invalid_backoff_s)
        log.warning(
            "stream to %s ended (%s: %s); reconnecting in %.1f s", s.address, name, end.details, delay
        )
        return delay

    # -- one connection ------------------------------------------------------------------------

    def _call(self) -> StreamCall:
        s = self._settings
        tls = None
        if s.tls:
            tls = TlsConfig(
                ca_file=s.ca_file, cert_file=s.cert_file, key_file=s.key_file, server_name=s.server_name
            )
        return StreamCall(
            s.address,
            CONNECT_PATH,
            (("authorization", f"Bearer {s.token}"),),
            tls=tls,
            user_agent=f"diag-agent/{self._identity.agent_version} grpc-h2-python",
            connect_timeout_s=10.0,
            keepalive_time_s=60.0,
            keepalive_timeout_s=20.0,
        )

    def _hello(self) -> bytes:
        stats = self._spool.stats()
        oldest = self._spool.read_from(0, 1)
        ident = self._identity
        return wire.agent_message(
            wire.HELLO,
            wire.hello(
                protocol_version=PROTOCOL_VERSION,
                agent_id=ident.agent_id,
                agent_version=ident.agent_version,
                hostname=ident.hostname,
                labels=dict(ident.labels),
                facts=self._facts(),
                spool_high_seq=stats.high_water,
                spool_low_seq=oldest[0].seq if oldest else 0,
                features=self._sessions.features if self._sessions is not None else (),
            ),
        )

    def _session(self) -> bool:
        """Run one connection until it breaks or we stop; True if it got a Welcome."""
        self.sessions += 1
        inbox: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._inbox = inbox
        try:
            call = self._call()
            outbox = _Outbox(call)
            hello = self._hello()
            call.open()
        except RpcError as exc:  # refused, unreachable, TLS handshake or certificate files
            raise _SessionEnd(exc.code, exc.message) from None
        except ValueError as exc:  # a bad address or metadata
            raise _SessionEnd(None, f"cannot open the stream: {exc}") from None
        reader = threading.Thread(target=_read_responses, args=(call, inbox), daemon=True)
        reader.start()
        clean = False
        try:
            outbox.put(hello)
            welcome = self._await_welcome(inbox)
            self.connected = True
            self._welcomed_at = time.monotonic()
            if self._sessions is not None:
                self._sessions.attach(_session_sender(call))
            try:
                self._stream(welcome, inbox, outbox)
            finally:
                self._welcomed_at = time.monotonic()  # reachable until this session ended
            clean = True
            return True
        finally:
            self.connected = False
            self._inbox = None
            if self._sessions is not None:
                self._sessions.detach()
            if clean:  # flushed on the way out: END_STREAM, and the collector ends with OK
                call.close(_CLOSE_TIMEOUT_S)
            else:
                call.cancel()
            reader.join(5.0)

    def _await_welcome(self, inbox: queue.SimpleQueue[tuple[str, Any]]) -> wire.Welcome:
        deadline = time.monotonic() + self._settings.welcome_timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _SessionEnd(StatusCode.DEADLINE_EXCEEDED, "no Welcome from the collector")
            if self._stopping_done():
                raise _SessionEnd(None, "stopping")
            try:
                kind, value = inbox.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if kind == "end":
                raise value
            if kind == "msg" and value.welcome is not None:
                welcome: wire.Welcome = value.welcome
                return welcome

    def _stream(
        self,
        welcome: wire.Welcome,
        inbox: queue.SimpleQueue[tuple[str, Any]],
        outbox: _Outbox,
    ) -> None:
        s = self._settings
        spool = self._spool
        resume = welcome.resume_after_seq
        high = spool.stats().high_water
        if resume > high:
            # The agent's state was reset under the same agent id: the collector would
            # take every new seq for a replay and drop it. Stream nothing, delete nothing.
            raise _SessionEnd(
                StatusCode.FAILED_PRECONDITION,
                f"collector already holds seq {resume} but this spool only reached {high}: the agent's "
                "state was reset under the same agent id; enroll this host under a new agent id",
            )
        if resume:
            spool.ack(resume)
        self.acked_seq = max(self.acked_seq, resume)
        max_entries = max(1, min(s.batch_entries, welcome.max_batch_entries or s.batch_entries))
        max_bytes = max(64 * 1024, (welcome.max_message_bytes or 4 * 1024 * 1024) - _MESSAGE_SLACK)
        heartbeat_s = float(welcome.heartbeat_interval_s or 30)
        metric_keys = wire.FEATURE_METRIC_KEYS in welcome.features
        log.info("streaming to %s from seq %d", s.address, resume + 1)
        sent_seq = resume
        inflight: deque[_InFlight] = deque()
        gaps_in_flight: dict[int, tuple[int, int]] = {}  # first_seq -> (spool gap id or 0, count)
        last_sent = time.monotonic()
        next_gap_report = 0.0
        while True:
            now = time.monotonic()
            stopping = self._stop.is_set()
            if stopping and (now >= self._flush_deadline or (not inflight and not self._has_more(sent_seq))):
                return
            # 1. gaps the collector has not recorded yet
            if not gaps_in_flight and now >= next_gap_report:
                report = self._gap_report(gaps_in_flight)
                if report is not None:
                    outbox.put(wire.agent_message(wire.GAPS, report))
                    last_sent = now
                    next_gap_report = now + 5.0  # never resend faster than this
            # 2. fill the window
            while len(inflight) < s.window:
                batch, top = self._next_batch(sent_seq, max_entries, max_bytes, metric_keys=metric_keys)
                if top == sent_seq:
                    break
                sent_seq = top
                if batch is None:  # only skipped entries: reported as gaps, nothing to send
                    continue
                outbox.put(wire.agent_message(wire.BATCH, batch))
                inflight.append(_InFlight(top, time.monotonic()))
                last_sent = time.monotonic()
            # 3. heartbeat when idle
            if time.monotonic() - last_sent >= heartbeat_s:
                outbox.put(
                    wire.agent_message(
                        wire.HEARTBEAT, wire.heartbeat(int(time.time() * 1000), spool.stats().depth)
                    )
                )
                last_sent = time.monotonic()
            if inflight and time.monotonic() - inflight[0].sent_at > s.ack_timeout_s:
                raise _SessionEnd(StatusCode.DEADLINE_EXCEEDED, "no Ack in time")
            # 4. wait for the collector or for new spool entries
            timeout = min(s.idle_poll_s, max(0.05, heartbeat_s - (time.monotonic() - last_sent)))
            try:
                kind, value = inbox.get(timeout=timeout)
            except queue.Empty:
                continue  # nothing arrived: poll the spool again
            if kind == "end":
                raise value
            if kind == "wake":
                continue
            self._handle(value, inflight, gaps_in_flight)

    def _has_more(self, sent_seq: int) -> bool:
        return bool(self._spool.read_from(sent_seq + 1, 1))

    def _handle(
        self,
        msg: wire.CollectorMessage,
        inflight: deque[_InFlight],
        gaps_in_flight: dict[int, tuple[int, int]],
    ) -> None:
        if msg.ack is not None:
            ack = msg.ack
            durable = ack.durable_through_seq
            if durable > self.acked_seq:
                self._spool.ack(durable)
                self.acked_seq = durable
            while inflight and inflight[0].max_seq <= durable:
                inflight.popleft()
            if ack.gaps_recorded:
                self._gaps_recorded(set(ack.gaps_recorded), gaps_in_flight)
        elif msg.inspection is not None and self._on_inspection is not None:
            try:
                self._on_inspection(msg.inspection)
            except Exception:  # the daemon's callback must not kill the stream; logged with traceback
                log.exception("inspection handler failed for %s", msg.inspection.inspection_id)
        elif msg.session is not None:
            # Session frames never end this stream: the handler drops and counts what it
            # cannot use, and only queues bytes, so batches and acks keep flowing.
            if self._sessions is None:
                return
            try:
                self._sessions.on_frame(*msg.session)
            except Exception:  # a bug in session code must not take the results' stream down
                log.exception("session frame %d failed", msg.session[0])
        # welcome twice or an unknown body (a newer collector): ignored per the contract

    def _gap_report(self, gaps_in_flight: dict[int, tuple[int, int]]) -> bytes | None:
        """An encoded GapReport of the gaps not yet recorded (None: nothing to report)."""
        gaps: list[bytes] = []
        for gap in self._spool.gaps()[:500]:
            gaps.append(wire.gap(gap.first_seq, gap.last_seq, gap.count, gap.reason, int(gap.ts * 1000)))
            gaps_in_flight[gap.first_seq] = (gap.id, gap.count)
        return wire.gap_report(gaps) if gaps else None

    def _gaps_recorded(self, recorded: set[int], gaps_in_flight: dict[int, tuple[int, int]]) -> None:
        # Mark spool gaps reported up to the first one the collector did not record, and
        # only while unchanged: the spool may have grown the newest gap since we sent it.
        current = {g.first_seq: g for g in self._spool.gaps()}
        mark = 0
        for first_seq, (gap_id, count) in sorted(gaps_in_flight.items(), key=lambda kv: kv[1][0]):
            gap = current.get(first_seq)
            if first_seq not in recorded or gap is None or gap.count != count:
                break
            mark = gap_id
        if mark:
            self._spool.mark_gaps_reported(mark)
        gaps_in_flight.clear()

    def _next_batch(
        self, after: int, max_entries: int, max_bytes: int, *, metric_keys: bool = False
    ) -> tuple[bytes | None, int]:
        """The next batch after seq ``after`` and the highest seq it covers (``after``: nothing)."""
        if self._spool.stats().high_water <= after:
            return None, after  # nothing new: no query
        entries = self._spool.read_from(after + 1, max_entries)
        batch: list[bytes] = []
        size = 0
        top = after
        for entry in entries:
            skip_reason = None
            proto = None
            if entry.seq in self._poison:
                skip_reason = "rejected_by_collector"
            else:
                try:
                    proto = entry_to_wire(entry, metric_keys=metric_keys)
                except ValueError as exc:
                    log.error("%s; skipping it", exc)
                    skip_reason = "corrupt_entry"
            if proto is not None:
                n = wire.entry_overhead(len(proto))
                if n > max_bytes:
                    log.error(
                        "spool entry %d is %d bytes, over the collector's limit; skipping it", entry.seq, n
                    )
                    skip_reason = "entry_too_large"
                elif size + n > max_bytes:
                    break
                else:
                    batch.append(proto)
                    size += n
            if skip_reason is not None:
                # Deleted with its gap recorded, in one spool transaction: a crash before
                # the gap is reported still reports it after the restart.
                self._spool.skip(entry.seq, skip_reason)
                self._poison.discard(entry.seq)
            top = entry.seq
        return (wire.entry_batch(batch) if batch else None), top

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)


class _Outbox:
    """Serializes agent messages onto the call (the transport queues them for its I/O thread)."""

    __slots__ = ("_call",)

    def __init__(self, call: StreamCall) -> None:
        self._call = call

    def put(self, message: bytes) -> None:
        """Send one encoded AgentMessage."""
        try:
            self._call.send(message)
        except RpcError as exc:  # the call ended under us: that is how this session ends
            raise _SessionEnd(exc.code, exc.message) from None


def _session_sender(call: StreamCall) -> Callable[[bytes], None]:
    """Send for session code (any thread): a call that ended is the streamer's to notice."""

    def send(message: bytes) -> None:
        with contextlib.suppress(RpcError, ValueError):
            call.send(message)

    return send


def _read_responses(call: StreamCall, inbox: queue.SimpleQueue[tuple[str, Any]]) -> None:
    try:
        while True:
            payload = call.recv()
            if payload is None:
                inbox.put(("end", _SessionEnd(None, "collector closed the stream")))
                return
            try:
                message = wire.decode_collector_message(payload)
            except wire.WireError:
                call.cancel()
                inbox.put(("end", _SessionEnd(StatusCode.INTERNAL, "undecodable message from the collector")))
                return
            inbox.put(("msg", message))
    except RpcError as exc:
        inbox.put(("end", _SessionEnd(exc.code, exc.message)))
