"""The collector's gRPC side: the agents' ``AgentStream.Connect`` streams on grpc.aio.

One stream per agent. The agent's token arrives in the metadata
(``authorization: Bearer <token>``) and is checked before anything else; the first
message must be ``Hello`` naming the agent id the token was issued for. The collector
answers ``Welcome`` with the resume point, then acknowledges every ``EntryBatch`` only
after :meth:`Store.ingest` committed it. Store calls are synchronous and run on a
bounded thread pool, so the event loop keeps serving the other streams (and the HTTP
API, which shares this loop) while SQLite or PostgreSQL works. With ingest worker
processes (:class:`collector.ingest.process.IngestProcess`, ``serve --ingest-processes N``) the
batch travels as bytes to a worker that validates it and appends it to the ingest log
on its own core (the Ack waits for that commit; materialisation follows behind); a
customer always maps to the same worker. A stream is read ahead while its request is in the
worker: the batches read meanwhile (an agent keeps a window of them in flight) go to the
worker together, in order, and one cumulative Ack covers them.

Limits, each answered with a gRPC status while the server keeps serving everyone else:

- message size: the server option ``grpc.max_receive_message_length`` (gRPC itself
  answers ``RESOURCE_EXHAUSTED``);
- batch size: ``INVALID_ARGUMENT``;
- per-agent rate: a token bucket of entries per second, ``RESOURCE_EXHAUSTED``;
- malformed content (see :mod:`collector.ingest.decode`): ``INVALID_ARGUMENT``, nothing stored.

An ingest log over its bound slows the Acks instead (see :class:`collector.ingest.process.IngestProcess`).

A second stream for an agent that already has one replaces it: the old stream is
cancelled, so an agent failing over between connections never has two writers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

import grpc  # type: ignore[import-untyped, unused-ignore]
from google.protobuf.message import DecodeError  # type: ignore[import-untyped, unused-ignore]

from collector.ingest.control import decode_gaps, decode_hello
from collector.ingest.decode import IngestError, IngestLimits, decode, parse_batch
from collector.ingest.metrics import CollectorMetrics
from collector.ingest.process import IngestProcess, IngestRejected
from collector.ingest.session_frames import SESSION_BODIES, SessionFrames
from collector.store.errors import AgentRevoked, DatabaseError, StoreError, UnknownAgent
from collector.store.store import customer_shard, point_count
from collector.store.types import AgentIdentity, GapRow, HostFactsRow, IngestBatch
from protos.diag.v1 import agent_pb2, agent_pb2_grpc

__all__ = ["AgentStreamService", "GrpcSettings", "IngestStore", "TokenBucket"]

log = logging.getLogger("collector.grpc")

PROTOCOL_VERSION: Final = 1
SERVICE_NAME: Final = agent_pb2.DESCRIPTOR.services_by_name["AgentStream"].full_name
HELLO_TIMEOUT_S: Final = 30.0
MAX_TOKEN_LEN: Final = 512
FEATURES: Final = ("metric_keys",)
"""Optional protocol features this collector accepts, announced in Welcome."""

T = TypeVar("T")


class IngestStore(Protocol):
    """The part of :class:`collector.store.Store` the transport uses (all synchronous)."""

    def authenticate_agent(self, token: str) -> AgentIdentity | None: ...

    def hello(self, agent: AgentIdentity, facts: HostFactsRow) -> int: ...

    def ingest(self, agent: AgentIdentity, batch: IngestBatch, *, payload: bytes | None = None) -> int: ...

    def record_gaps(self, agent: AgentIdentity, gaps: Sequence[GapRow]) -> list[int]: ...


@dataclass(frozen=True, slots=True)
class GrpcSettings:
    """How the gRPC side listens and what it accepts (filled from the collector config)."""

    listen: str = "127.0.0.1:50051"
    max_message_bytes: int = 4 * 1024 * 1024
    max_batch_entries: int = 1000
    rate_limit_entries_per_s: float = 5000.0
    rate_limit_burst: float | None = None
    """Bucket size; default: twice the rate, and at least one full batch."""
    rate_limit_bytes_per_s: float = 2.0 * 1024 * 1024
    """Sustained message bytes per second per agent: every message counts, whatever it holds."""
    rate_limit_bytes_burst: float = 16.0 * 1024 * 1024
    """Byte bucket size (raised to one largest message if smaller)."""
    max_clock_skew_s: float = 300.0
    """How far ahead of the collector's clock agent timestamps may run (see collector.clock_skew)."""
    heartbeat_interval_s: int = 30
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None
    """When set, clients must present a certificate signed by this CA (mTLS)."""
    store_threads: int = 16
    max_streams: int = 20_000

    @property
    def bytes_burst(self) -> float:
        return max(self.rate_limit_bytes_burst, float(self.max_message_bytes))

    @property
    def burst(self) -> float:
        if self.rate_limit_burst is not None:
            return self.rate_limit_burst
        return max(2.0 * self.rate_limit_entries_per_s, float(self.max_batch_entries))


class TokenBucket:
    """Classic token bucket: ``rate`` tokens per second, at most ``burst`` saved up.

    >>> b = TokenBucket(rate=10.0, burst=20.0, now=0.0)
    >>> b.take(20, now=0.0), b.take(1, now=0.0), b.take(10, now=1.0)
    (True, False, True)
    """

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def take(self, n: int, now: float) -> bool:
        if n > self.available(now):
            return False
        self.tokens -= n
        return True

    def available(self, now: float) -> int:
        """Whole tokens saved up at ``now`` (spend them with :meth:`spend`)."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return int(self.tokens)

    def spend(self, n: int) -> None:
        self.tokens -= n


class _Rejected(Exception):
    """Raised inside a stream to end it with a status (counted under ``reason``)."""

    def __init__(self, code: grpc.StatusCode, reason: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message


@dataclass(slots=True)
class _Stream:
    agent_id: str
    task: asyncio.Task[Any] | None
    context: grpc.aio.ServicerContext[agent_pb2.AgentMessage, agent_pb2.CollectorMessage]
    write_lock: asyncio.Lock
    end_with: tuple[Any, str] | None = None
    """Status to end with when this stream's task is cancelled on purpose."""
    welcomed: bool = False
    """Welcome is written: other messages may follow (an agent ignores anything before it)."""


READ_AHEAD_BYTES: Final = 1 << 20
"""Batches a stream may have read and waiting while its previous request is in the worker."""


class _ReadAhead:
    """What a stream's reader has read and its ingest loop has not yet taken, in order."""

    __slots__ = ("items", "ready", "room", "size")

    def __init__(self) -> None:
        # (EntryBatch bytes, or any other AgentMessage parsed; when it was read)
        self.items: list[tuple[bytes | agent_pb2.AgentMessage, float]] = []
        self.size = 0
        self.ready = asyncio.Event()  # something waits, or the reader has ended
        self.room = asyncio.Event()  # the items were taken


def _ack(durable: int) -> agent_pb2.CollectorMessage:
    return agent_pb2.CollectorMessage(ack=agent_pb2.Ack(durable_through_seq=durable))


def _split(data: bytes) -> bytes | agent_pb2.AgentMessage:
    """An AgentMessage as read: its EntryBatch's bytes for a batch, else the message parsed."""
    payload = _batch_payload(data)
    if payload is not None:
        return payload
    msg = _parse_message(data)
    if msg.WhichOneof("body") == "batch":
        return bytes(msg.batch.SerializeToString())
    return msg


class AgentStreamService(agent_pb2_grpc.AgentStreamServicer):
    """``diag.v1.AgentStream``: authenticates, resumes, ingests and acknowledges."""

    def __init__(
        self,
        store: IngestStore,
        settings: GrpcSettings,
        metrics: CollectorMetrics,
        executor: ThreadPoolExecutor | None = None,
        clock: Callable[[], float] = time.monotonic,
        ingest_processes: Sequence[IngestProcess] = (),
        wall_clock: Callable[[], float] = time.time,
        sessions: SessionFrames | None = None,
    ) -> None:
        self._sessions = sessions
        self._store = store
        self._settings = settings
        self._metrics = metrics
        self._executor = executor or ThreadPoolExecutor(
            max_workers=settings.store_threads, thread_name_prefix="store"
        )
        self._clock = clock
        self._limits = IngestLimits(
            max_batch_entries=settings.max_batch_entries, max_clock_skew_s=settings.max_clock_skew_s
        )
        self._ingest_processes = tuple(ingest_processes)
        self._streams: dict[str, _Stream] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._byte_buckets: dict[str, TokenBucket] = {}
        self._wall_clock = wall_clock
        self._open = 0

    @property
    def connected(self) -> int:
        """Agents with an open, welcomed stream."""
        return len(self._streams)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    async def Connect(
        self,
        request_iterator: Any,
        context: grpc.aio.ServicerContext[agent_pb2.AgentMessage, agent_pb2.CollectorMessage],
    ) -> None:
        self._open += 1
        stream: _Stream | None = None
        try:
            if self._open > self._settings.max_streams:
                raise _Rejected(grpc.StatusCode.RESOURCE_EXHAUSTED, "rate_limited", "too many open streams")
            identity = await self._authenticate(context)
            hello = await self._read_hello(context, identity)
            facts = _facts(hello)
            stream = _Stream(identity.agent_id, asyncio.current_task(), context, asyncio.Lock())
            self._replace(stream)
            self._metrics.connected_agents.inc()
            resume = await self._store_call(self._store.hello, identity, facts)
            s = self._settings
            welcome = agent_pb2.CollectorMessage(
                welcome=agent_pb2.Welcome(
                    agent_id=identity.agent_id,
                    customer=identity.customer,
                    resume_after_seq=resume,
                    server_time_unix_ms=int(time.time() * 1000),
                    max_batch_entries=s.max_batch_entries,
                    max_message_bytes=s.max_message_bytes,
                    heartbeat_interval_s=s.heartbeat_interval_s,
                    features=FEATURES,
                )
            )
            async with stream.write_lock:
                # Welcomed under the write lock, before the write: any message sent from
                # now on queues behind the Welcome (never before it, which the agent would
                # drop), and an agent that has read its Welcome is already "connected".
                stream.welcomed = True
                await context.write(welcome)
            if self._sessions is not None:
                self._sessions.agent_connected(identity.agent_id, tuple(hello.features))
            log.info(
                "agent %s (%s) connected, resuming after seq %d", identity.agent_id, identity.customer, resume
            )
            await self._serve(stream, identity, resume)
        except _Rejected as rej:
            self._metrics.reject(rej.reason)
            log.warning("stream rejected (%s): %s", rej.code.name, rej.message)
            await context.abort(rej.code, rej.message)
        except asyncio.CancelledError:
            if stream is None or stream.end_with is None:
                raise
            # Cancelled on purpose (replaced, shutdown): tell the peer why instead of
            # leaving its call hanging until the connection closes.
            await context.abort(*stream.end_with)
        finally:
            self._open -= 1
            if stream is not None:
                self._metrics.connected_agents.dec()
                if self._streams.get(stream.agent_id) is stream:
                    del self._streams[stream.agent_id]
                    if self._sessions is not None:
                        self._sessions.agent_disconnected(stream.agent_id)

    async def _authenticate(
        self, context: grpc.aio.ServicerContext[agent_pb2.AgentMessage, agent_pb2.CollectorMessage]
    ) -> AgentIdentity:
        token = ""
        for key, value in context.invocation_metadata() or ():
            if key == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
                token = value[len("Bearer ") :].strip()
        if not token or len(token) > MAX_TOKEN_LEN:
            raise _Rejected(grpc.StatusCode.UNAUTHENTICATED, "unauthenticated", "missing or malformed token")
        identity = await self._run(self._store.authenticate_agent, token)
        if identity is None:
            raise _Rejected(
                grpc.StatusCode.UNAUTHENTICATED, "unauthenticated", "unknown or revoked agent token"
            )
        return identity

    async def _read_hello(
        self,
        context: grpc.aio.ServicerContext[agent_pb2.AgentMessage, agent_pb2.CollectorMessage],
        identity: AgentIdentity,
    ) -> agent_pb2.Hello:
        try:
            first = await asyncio.wait_for(context.read(), HELLO_TIMEOUT_S)
        except TimeoutError:
            raise _Rejected(grpc.StatusCode.DEADLINE_EXCEEDED, "protocol", "no Hello in time") from None
        if first is not grpc.aio.EOF:
            first = _parse_message(first)
        if first is grpc.aio.EOF or first.WhichOneof("body") != "hello":
            raise _Rejected(grpc.StatusCode.INVALID_ARGUMENT, "protocol", "the first message must be Hello")
        hello: agent_pb2.Hello = first.hello
        if hello.agent_id != identity.agent_id:
            raise _Rejected(
                grpc.StatusCode.PERMISSION_DENIED,
                "permission_denied",
                "this token was issued for another agent id",
            )
        if hello.protocol_version != PROTOCOL_VERSION:
            raise _Rejected(
                grpc.StatusCode.FAILED_PRECONDITION,
                "protocol",
                f"protocol version {hello.protocol_version} not supported (want {PROTOCOL_VERSION})",
            )
        return hello

    def _replace(self, stream: _Stream) -> None:
        old = self._streams.get(stream.agent_id)
        self._streams[stream.agent_id] = stream
        if old is not None and old.task is not None and not old.task.done():
            log.info("agent %s opened a new stream; closing the old one", stream.agent_id)
            self._metrics.reject("replaced")
            old.end_with = (grpc.StatusCode.ABORTED, "replaced by a newer stream of this agent")
            old.task.cancel()

    async def _write(self, stream: _Stream, message: agent_pb2.CollectorMessage) -> None:
        async with stream.write_lock:
            await stream.context.write(message)

    def _decode(self, batch: agent_pb2.EntryBatch, after_seq: int) -> IngestBatch:
        try:
            return decode(batch, limits=self._limits, after_seq=after_seq, now=self._wall_clock())
        except IngestError as exc:
            raise _Rejected(grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument", str(exc)) from None

    async def _serve(self, stream: _Stream, identity: AgentIdentity, resume: int) -> None:
        s = self._settings
        bucket = self._buckets.get(identity.agent_id)
        if bucket is None:
            bucket = TokenBucket(s.rate_limit_entries_per_s, s.burst, self._clock())
            self._buckets[identity.agent_id] = bucket
        byte_bucket = self._byte_buckets.get(identity.agent_id)
        if byte_bucket is None:
            byte_bucket = TokenBucket(s.rate_limit_bytes_per_s, s.bytes_burst, self._clock())
            self._byte_buckets[identity.agent_id] = byte_bucket
        if self._ingest_processes:
            await self._serve_pipelined(stream, identity, resume, bucket, byte_bucket)
            return
        # Seqs must rise strictly within a stream. Entries at or below the resume point
        # are a harmless replay (the store skips them), so they are not an error.
        last_seq = 0
        durable = resume
        context = stream.context
        while True:
            data = await context.read()
            if data is grpc.aio.EOF:
                return
            received = time.perf_counter()
            self._take_bytes(byte_bucket, len(data))
            payload = _split(data)
            if not isinstance(payload, bytes) and self._session_frame(identity, payload):
                continue
            if not isinstance(payload, bytes):
                await self._other(stream, identity, payload, durable, bucket)
                continue
            try:
                batch = parse_batch(payload)
            except IngestError as exc:
                raise _Rejected(grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument", str(exc)) from None
            n = len(batch.entries)
            if n > s.max_batch_entries:
                raise _Rejected(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "batch_too_large",
                    f"batch of {n} entries, more than {s.max_batch_entries}",
                )
            if not bucket.take(n, self._clock()):
                raise self._rate_limited()
            # Decoding runs on the event loop: it is pure Python, and handing it to a
            # worker thread costs more in GIL handoffs than it saves. The store call
            # blocks, so it gets a thread.
            decoded = self._decode(batch, last_seq)
            durable = await self._store_call(self._ingest, identity, decoded, payload)
            last_seq, points = decoded.max_seq, point_count(decoded)
            await self._write(stream, _ack(durable))
            self._metrics.batches_ingested(entries=n, points=points, received=(received,))

    async def _serve_pipelined(
        self,
        stream: _Stream,
        identity: AgentIdentity,
        resume: int,
        bucket: TokenBucket,
        byte_bucket: TokenBucket,
    ) -> None:
        """Ingest in a worker process, reading ahead while a request is there.

        An agent keeps several batches in flight (its window). While one request is in
        the worker, :meth:`_read_ahead` keeps reading the stream; the batches it reads
        go to the worker together as the next request, in order, and one Ack covers
        them all (Acks are cumulative). Under load this saves an Ack write and a request
        per batch that joins another, and it keeps the worker fed while Acks travel.
        """
        ahead = _ReadAhead()
        reader = asyncio.ensure_future(self._read_ahead(stream, ahead, byte_bucket))
        last_seq = 0
        durable = resume
        try:
            while True:
                if not ahead.items:
                    if reader.done():
                        reader.result()  # the reader's error, once everything before it is handled
                        return
                    ahead.ready.clear()
                    await ahead.ready.wait()
                    continue
                items, ahead.items, ahead.size = ahead.items, [], 0
                ahead.room.set()
                i = 0
                while i < len(items):  # in order: each run of batches is one request
                    first = items[i][0]
                    if not isinstance(first, bytes):
                        await self._other(stream, identity, first, durable, bucket)
                        i += 1
                        continue
                    j = i
                    while j < len(items) and isinstance(items[j][0], bytes):
                        j += 1
                    run, i = items[i:j], j
                    durable, last_seq = await self._ingest_run(stream, identity, bucket, run, last_seq)
        finally:
            if not reader.done():
                reader.cancel()
            elif not reader.cancelled():
                reader.exception()  # retrieved: an error raised above replaces it

    async def _ingest_run(
        self,
        stream: _Stream,
        identity: AgentIdentity,
        bucket: TokenBucket,
        run: list[tuple[Any, float]],
        last_seq: int,
    ) -> tuple[int, int]:
        """One request of a stream's consecutive batches to its worker, and their Ack."""
        payloads: list[bytes] = [payload for payload, _ in run]
        workers = self._ingest_processes
        # One customer always goes to the same worker: its log shard, its series cache and
        # the observers (detection groups incidents per customer) see all of its hosts.
        worker = workers[customer_shard(identity.customer) % len(workers)]
        try:
            budget = bucket.available(self._clock())
            durable, last_seq, points, n = await worker.submit_async(
                identity, payloads if len(payloads) > 1 else payloads[0], last_seq, budget
            )
        except IngestRejected as exc:
            if exc.acked is not None:  # the batches before the refused one are durable
                durable, _, points, n, batches = exc.acked
                bucket.spend(n)
                await self._write(stream, _ack(durable))
                received = [received for _, received in run[:batches]]
                self._metrics.batches_ingested(entries=n, points=points, received=received)
            raise self._worker_rejection(exc) from None
        bucket.spend(n)
        await self._write(stream, _ack(durable))
        self._metrics.batches_ingested(entries=n, points=points, received=[received for _, received in run])
        return durable, last_seq

    async def _read_ahead(self, stream: _Stream, ahead: _ReadAhead, byte_bucket: TokenBucket) -> None:
        """Read the stream for :meth:`_serve_pipelined`, which handles what it reads in order.

        At most :data:`READ_AHEAD_BYTES` wait (plus the message that crossed the line);
        past that the stream is not read, so HTTP/2 flow control holds the agent back.
        A message over the agent's byte budget ends the reader with ``RESOURCE_EXHAUSTED``
        once what was read before it is handled (and acknowledged).
        """
        context = stream.context
        try:
            while True:
                if ahead.size >= READ_AHEAD_BYTES:
                    ahead.room.clear()
                    await ahead.room.wait()
                    continue
                data = await context.read()
                if data is grpc.aio.EOF:
                    return
                received = time.perf_counter()
                self._take_bytes(byte_bucket, len(data))
                item = _split(data)
                if not isinstance(item, bytes) and self._session_frame(stream, item):
                    continue
                ahead.items.append((item, received))
                ahead.size += len(data)
                ahead.ready.set()
        finally:
            ahead.ready.set()

    async def _other(
        self,
        stream: _Stream,
        identity: AgentIdentity,
        msg: agent_pb2.AgentMessage,
        durable: int,
        bucket: TokenBucket,
    ) -> None:
        """Any message but a batch: gaps are recorded and acknowledged, heartbeats prove the stream alive.

        A gap report is validated (:func:`collector.ingest.control.decode_gaps`) and each gap in it
        costs one entry of the agent's rate limit, like a batch's entries.
        """
        body = msg.WhichOneof("body")
        if body == "gaps":
            rows = await self._store_call(
                decode_gaps,
                msg.gaps,
                1000,
                int(self._wall_clock() * 1000),
                int(self._settings.max_clock_skew_s * 1000),
            )
            if not bucket.take(len(rows), self._clock()):
                raise self._rate_limited()
            recorded = await self._store_call(self._store.record_gaps, identity, rows)
            self._metrics.gaps.inc(len(rows))
            log.warning("agent %s reported %d dropped entries", identity.agent_id, sum(r.count for r in rows))
            await self._write(
                stream,
                agent_pb2.CollectorMessage(
                    ack=agent_pb2.Ack(durable_through_seq=durable, gaps_recorded=recorded)
                ),
            )
        elif body == "hello":
            raise _Rejected(grpc.StatusCode.INVALID_ARGUMENT, "protocol", "Hello sent twice")
        # heartbeat: nothing to do, reading it proved the stream alive; an unknown body
        # comes from a newer agent and is ignored per the contract.

    def _session_frame(self, who: AgentIdentity | _Stream, msg: agent_pb2.AgentMessage) -> bool:
        """Hand a session frame to the hub at once (ignored without one); False for other bodies."""
        if msg.WhichOneof("body") not in SESSION_BODIES:
            return False
        if self._sessions is not None:
            self._sessions.agent_frame(who.agent_id, msg)
        return True

    async def send_session(self, agent_id: str, message: agent_pb2.CollectorMessage) -> bool:
        """Write ``message`` down ``agent_id``'s stream; False when the agent is not connected.

        A stream counts as connected once its Welcome is written: the agent discards
        whatever comes before it, so a message sent earlier would be lost.
        """
        stream = self._streams.get(agent_id)
        if stream is None or not stream.welcomed:
            return False
        try:
            await self._write(stream, message)
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError, RuntimeError):
            # The stream ended between the lookup and the write: the agent is offline.
            return False
        return True

    def _take_bytes(self, byte_bucket: TokenBucket, n: int) -> None:
        if not byte_bucket.take(n, self._clock()):
            raise _Rejected(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "rate_limited",
                f"more than {self._settings.rate_limit_bytes_per_s:g} bytes/s; slow down and retry",
            )

    def _rate_limited(self) -> _Rejected:
        return _Rejected(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "rate_limited",
            f"more than {self._settings.rate_limit_entries_per_s:g} entries/s",
        )

    def _worker_rejection(self, exc: IngestRejected) -> _Rejected:
        """The status that ends a stream whose request the ingest worker refused."""
        if exc.kind == "invalid":
            return _Rejected(grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument", exc.message)
        if exc.kind == "batch_too_large":
            return _Rejected(grpc.StatusCode.INVALID_ARGUMENT, "batch_too_large", exc.message)
        if exc.kind == "rate_limited":
            return self._rate_limited()
        if exc.kind == "revoked":
            return _Rejected(grpc.StatusCode.UNAUTHENTICATED, "unauthenticated", exc.message)
        log.error("store error in the ingest worker, closing stream: %s", exc.message)
        return _Rejected(grpc.StatusCode.UNAVAILABLE, "store_error", "store unavailable, retry later")

    def _ingest(self, identity: AgentIdentity, batch: IngestBatch, payload: bytes) -> int:
        return self._store.ingest(identity, batch, payload=payload)

    async def _store_call(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await self._run(fn, *args)
        except IngestError as exc:
            raise _Rejected(grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument", str(exc)) from None
        except (AgentRevoked, UnknownAgent):
            # Revoked (or deleted) after this stream authenticated: nothing was stored.
            raise _Rejected(
                grpc.StatusCode.UNAUTHENTICATED, "unauthenticated", "unknown or revoked agent token"
            ) from None
        except StoreError as exc:
            raise _Rejected(grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument", str(exc)) from None
        except (OSError, DatabaseError) as exc:
            # The store failed (disk full, database down, lock timeout): nothing was
            # acknowledged, so the agent keeps the batch and retries after backoff.
            log.error("store error, closing stream: %s", type(exc).__name__, exc_info=exc)
            raise _Rejected(
                grpc.StatusCode.UNAVAILABLE, "store_error", "store unavailable, retry later"
            ) from None

    async def request_inspection(self, agent_id: str, request: agent_pb2.InspectionRequest) -> bool:
        """Send ``request`` down ``agent_id``'s stream; False when the agent is not connected."""
        return await self.send_session(agent_id, agent_pb2.CollectorMessage(inspection=request))

    async def close_all(self) -> None:
        """Cancel every open stream (used on shutdown after the grace period)."""
        for stream in list(self._streams.values()):
            if stream.task is not None and not stream.task.done():
                stream.end_with = (grpc.StatusCode.UNAVAILABLE, "collector shutting down")
                stream.task.cancel()


_BATCH_TAG: Final = (2 << 3) | 2
"""``AgentMessage.batch`` (field 2, length-delimited): the first byte of a batch message."""


def _batch_payload(data: bytes) -> bytes | None:
    """The EntryBatch bytes of an AgentMessage that is exactly one ``batch`` field, else None.

    Batches are nearly every message an agent sends. Reading their frame here, instead of
    parsing the whole message into objects and serializing the batch again for the ingest
    worker, keeps the event loop's cost per batch flat whatever its size. Anything else
    (another body, several fields, a truncated frame) takes the full parse.
    """
    if len(data) < 2 or data[0] != _BATCH_TAG:
        return None
    size = 0
    shift = 0
    pos = 1
    while pos < len(data) and pos <= 5:  # messages are limited far below 2**35 bytes
        byte = data[pos]
        size |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return data[pos:] if pos + size == len(data) else None
        shift += 7
    return None


def _parse_message(data: bytes) -> agent_pb2.AgentMessage:
    try:
        message: agent_pb2.AgentMessage = agent_pb2.AgentMessage.FromString(data)
    except DecodeError as exc:
        raise _Rejected(
            grpc.StatusCode.INVALID_ARGUMENT,
            "invalid_argument",
            f"the message does not parse as an AgentMessage ({type(exc).__name__})",
        ) from None
    return message


def _facts(hello: agent_pb2.Hello) -> HostFactsRow:
    try:
        return decode_hello(hello)
    except IngestError as exc:
        raise _Rejected(grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument", str(exc)) from None
