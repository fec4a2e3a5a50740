"""The ingest worker process: validate, log and acknowledge batches; materialise the log behind.

Started by :class:`collector.ingest.process.IngestProcess` (``serve --ingest-processes N``);
it opens its own :class:`~collector.store.Store` on the collector's store URL.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from collector.ingest.decode import IngestError, IngestLimits, decode, decode_logged, parse_batch
from collector.store.store import ColumnarBatch, point_count

__all__ = ["LogSettings", "worker_main"]


@dataclass(frozen=True, slots=True)
class LogSettings:
    """How an ingest worker runs its ingest log: its shard, its bound, its memory."""

    shard_count: int = 1
    shard_index: int = 0
    max_pending_points: int = 2_000_000
    """The log's bound (this worker's shard, in metric points). At or over it, batches are
    stored directly, Ack after materialisation: the backlog stops growing and the Acks slow
    to the store's pace (backpressure)."""
    direct_max_points: int = 10_000
    """With an empty log, a group of at most this many points is stored directly (visible at
    its Ack); a larger group (a burst) goes to the log. 0: always log below the bound."""
    cache_points: int = 500_000
    """Decoded batches kept in memory for the materialiser (older ones are decoded again);
    about 165 bytes per point with its results (80 MB by default)."""


def _shard_config(config: Any, settings: LogSettings) -> Any:
    """``config`` with a detection state row of this worker's own when there are several.

    Each worker owns whole customers (``crc32(slug) % shard_count``), so its detector sees
    every host of those customers; its baselines and incidents are saved under
    ``<detection.shard>.<index>-of-<count>`` so workers never overwrite each other's state.
    """
    if settings.shard_count <= 1:
        return config
    emergency = config.emergency
    detection = emergency.detection
    shard = f"{detection.shard}.{settings.shard_index}-of-{settings.shard_count}"
    detection = detection.model_copy(update={"shard": shard})
    return config.model_copy(update={"emergency": emergency.model_copy(update={"detection": detection})})


def worker_main(
    conn: Any,
    url: str,
    options: dict[str, Any],
    limits: IngestLimits,
    threads: int,
    log_settings: LogSettings | None = None,
) -> None:
    """Validate, log and acknowledge on one thread; materialise the log shard behind it.

    Every request waiting in the pipe when the previous group finished joins the next
    group (at most ``threads`` x 8 requests), so the group size follows the load without a
    thread per batch. ``threads`` only sizes the groups. (Measured: a thread per batch, or
    a separate store thread, costs more in GIL handoffs than the overlap gains.)
    """
    import logging
    import signal

    from collector.store import Store
    from collector.store.errors import DatabaseError

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    from collector.store.observe import build_observer

    settings = log_settings or LogSettings()
    options = dict(options)
    config = options.pop("config", None)  # the CollectorConfig, or None: no observers
    try:
        store = Store.open(url, migrate=False, log_decoder=decode_logged, **options)
        if config is not None:
            observer = build_observer(store, _shard_config(config, settings))
            if observer is not None:
                store.add_observer(observer)
    except (DatabaseError, OSError, ValueError) as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    worker = _LogWorker(store, settings, limits, max(1, threads) * 8, logging.getLogger(__name__))
    # The worker holds a large, long-lived heap (decoded batches waiting for the
    # materialiser, detection baselines) and allocates fast. Python's automatic collector
    # would rescan that heap over and over (measured: a third of decode time); instead the
    # young generations are collected once a second and the whole heap every few minutes
    # (see _LogWorker.tick). Nothing here relies on the collector: it only frees cycles.
    import gc

    gc.freeze()
    gc.disable()
    conn.send(("ready", ""))
    try:
        worker.run(conn)
    finally:
        store.close()


FULL_GC_INTERVAL_S: Final = 300.0
"""How often the ingest worker collects its whole heap (young generations: every tick)."""
GC_QUIET_S: Final = 1.0
"""No request for this long: a lull, when the young generations are collected every tick.
(Not :data:`BUSY_WINDOW_S`: a closed-loop burst has gaps of that length, and a collection
then scans everything the burst has decoded so far.)"""
BUSY_GC_INTERVAL_S: Final = 30.0
"""During a burst, the ingest worker collects its young generations at most this often."""


class _Inbox:
    """The worker's side of the pipe: whole frames only, never a blocking read of half a one.

    The parent writes a frame (a list of requests, ``multiprocessing.connection`` framing)
    as its event loop gets to it, and a large one arrives in pieces. ``Connection.recv``
    would block the worker until the last piece came, idle while the parent is busy; this
    reads what has arrived without blocking and hands out only complete frames.
    """

    def __init__(self, conn: Any) -> None:
        import os
        import socket

        self._conn = conn
        self._sock = socket.socket(fileno=os.dup(conn.fileno()))
        self._buf = bytearray()
        # Received into one reused buffer, not a fresh 1 MiB bytes object per recv.
        self._chunk = memoryview(bytearray(1 << 20))
        self._items: list[Any] = []
        self._eof = False

    def drain(self) -> None:
        """Take in what the parent has written so far, without waiting.

        Called between the requests of a group too, not only before taking one: the
        socket holds little (about 200 KB on a default Linux) and the parent cannot write
        more until it is read. Read only between groups, it let one buffer's worth through
        per group: the worker then found its inbox nearly empty and sat idle while the
        parent held megabytes of requests for it.
        """
        import pickle
        import socket
        import struct

        chunk = self._chunk
        while not self._eof:
            try:
                n = self._sock.recv_into(chunk, 0, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                break
            if not n:
                self._eof = True
            self._buf += chunk[:n]
        buf = self._buf
        start = 0
        while len(buf) - start >= 4:
            (size,) = struct.unpack_from("!i", buf, start)
            head = 4
            if size == -1:  # a frame of 2 GiB or more
                if len(buf) - start < 12:
                    break
                (size,) = struct.unpack_from("!Q", buf, start + 4)
                head = 12
            if len(buf) - start < head + size:
                break
            with memoryview(buf) as view:
                self._items.extend(pickle.loads(view[start + head : start + head + size]))
            start += head + size
        if start:
            # A new buffer for what is left (part of the next frame), not `del buf[:start]`:
            # a bytearray trimmed at the front copies all of itself when it next grows,
            # and the next receive appends to it.
            self._buf = buf[start:]

    def wait(self, timeout: float) -> bool:
        """True once a request (or the stop marker) is ready; False after ``timeout`` seconds."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            self.drain()
            if self._items:
                return True
            if self._eof:
                raise EOFError
            left = deadline - time.monotonic()
            if self._buf:  # half a frame: the rest is on its way, worth a short wait
                left = max(left, 0.005)
            if left <= 0 or not self._conn.poll(left):
                self.drain()
                return bool(self._items)

    def take(self, max_items: int) -> list[Any]:
        """Up to ``max_items`` ready requests (more frames are read first if they have arrived)."""
        self.drain()
        taken, self._items = self._items[:max_items], self._items[max_items:]
        return taken


IDLE_CHUNK_POINTS: Final = 10_000
"""Points per materialiser transaction while the worker is idle (about 50 ms of work)."""
BUSY_CHUNK_POINTS: Final = 1_000
"""Points per materialiser transaction in a lull between requests (a burst is on): small,
so the next requests wait a few milliseconds, not the length of a full chunk."""
BUSY_PAUSE_S: Final = 0.02
"""When the Ack path is saturated, how long the pipe must stay quiet before the worker
materialises a chunk."""
SHARE_WINDOW_S: Final = 0.25
"""The window over which the Ack path's share of the worker's time is measured."""
SATURATED_SHARE: Final = 0.25
"""The Ack path is saturated when requests took this share of the worker's time in the last
:data:`SHARE_WINDOW_S` window."""
BUSY_WINDOW_S: Final = 0.05
"""A request within this long means the fleet is sending: materialise in busy chunks."""


class _LogWorker:
    """The ingest worker's loop (see :func:`worker_main`), with its backlog accounting."""

    def __init__(
        self, store: Any, settings: LogSettings, limits: IngestLimits, max_group: int, log: Any
    ) -> None:
        self.store = store
        self.settings = settings
        self.limits = limits
        self.max_group = max_group
        self.log = log
        self.cache: dict[int, ColumnarBatch] = {}
        self.cache_points = 0
        self.pending_points = 0
        self.next_tick = 0.0
        self.next_full_gc = 0.0
        self.last_gc = 0.0
        self.last_request = 0.0
        self.retry_at = 0.0
        self.ack_seconds = 0.0  # spent on requests in the current share window
        self.ack_share = 0.0  # of the last window: how loaded the Ack path is
        self.share_since = 0.0
        self.refresh()

    def refresh(self) -> None:
        """Re-read this shard's backlog from the store (other processes, quarantined rows)."""
        from collector.store.errors import DatabaseError

        s = self.settings
        try:
            self.pending_points = self.store.log_stats(s.shard_count, s.shard_index).pending_points
        except DatabaseError as exc:  # keep the last figure; the next refresh tries again
            self.log.warning("ingest log stats failed: %s", type(exc).__name__)

    def tick(self) -> None:
        import time

        now = time.monotonic()
        if now >= self.next_tick:
            self.next_tick = now + 1.0
            self.store.tick_observers()
            self.refresh()
            self.collect_garbage(now)

    def note_requests(self, started: float, ended: float) -> None:
        """A group of requests took ``started`` to ``ended``: keep :attr:`ack_share` current."""
        self.ack_seconds += ended - started
        if ended - self.share_since >= SHARE_WINDOW_S:
            # A window with no request at all leaves the share of the last busy one: only
            # a request ends a window, and an idle worker has no use for the figure.
            self.ack_share = min(1.0, self.ack_seconds / (ended - self.share_since))
            self.ack_seconds, self.share_since = 0.0, ended

    def collect_garbage(self, now: float) -> None:
        """Automatic GC is off in the worker (see :func:`worker_main`): collect here.

        In a lull (no request for :data:`GC_QUIET_S`) the young generations are collected
        every tick and the whole heap every :data:`FULL_GC_INTERVAL_S`; during a burst only
        every :data:`BUSY_GC_INTERVAL_S`, so the Acks do not pay for scanning what the burst
        just decoded (the only garbage the collector finds here is rare reference cycles).
        """
        import gc

        if gc.isenabled():
            return
        quiet = now - self.last_request >= GC_QUIET_S
        if not quiet and now - self.last_gc < BUSY_GC_INTERVAL_S:
            return
        self.last_gc = now
        if now >= self.next_full_gc and (quiet or now >= self.next_full_gc + FULL_GC_INTERVAL_S):
            self.next_full_gc = now + FULL_GC_INTERVAL_S
            gc.collect()
        else:
            gc.collect(1)

    def materialise(self, max_points: int = 50_000) -> int:
        """Apply one chunk of the shard's oldest log rows; returns the batches applied or quarantined."""
        from collector.store.errors import DatabaseError

        s = self.settings
        try:
            done = self.store.materialise(
                shard_count=s.shard_count,
                shard_index=s.shard_index,
                max_points=max_points,
                cache=self.cache,
                decoder=decode_logged,
            )
        except (DatabaseError, OSError) as exc:  # busy or unreachable: the rows stay, retried later
            self.log.warning("materialising the ingest log failed: %s", type(exc).__name__)
            self.stalled()
            return 0
        except Exception:  # a bug must not kill the worker: the rows stay in the log
            self.log.exception("materialising the ingest log failed")
            self.stalled()
            return 0
        for log_id in done.applied_ids:
            batch = self.cache.pop(log_id, None)
            if batch is not None:
                self.cache_points -= len(batch.point_values)
        self.pending_points = max(0, self.pending_points - done.points)
        if done.quarantined:
            self.refresh()
        if done.batches + done.quarantined == 0:
            self.refresh()
            self.stalled()
        return int(done.batches + done.quarantined)

    def stalled(self) -> None:
        """Nothing could be applied (another collector holds the shard, a busy store): back off a bit."""
        import time

        self.retry_at = time.monotonic() + 0.2

    def idle_timeout(self) -> float:
        """How long to wait for requests before the next materialise or tick is due."""
        import time

        due = self.next_tick
        if self.pending_points:
            due = min(due, self.retry_at)
        return max(0.0, due - time.monotonic())

    def remember(self, log_id: int, batch: ColumnarBatch) -> None:
        self.cache[log_id] = batch
        self.cache_points += len(batch.point_values)
        while self.cache_points > self.settings.cache_points and self.cache:
            oldest = next(iter(self.cache))
            self.cache_points -= len(self.cache.pop(oldest).point_values)

    def _validate(
        self,
        msgs: list[Any],
        failure: Callable[[BaseException], tuple[str, str]],
        between: Callable[[], None],
    ) -> tuple[list[tuple[int, Any, bytes, ColumnarBatch, int]], dict[int, tuple[str, str]]]:
        """Parse, limit and decode each request's batches, in order; a request stops at its first bad one.

        A request carries one batch, or several of one stream read while its previous
        request was in the worker (the serving process merges them: one request, one
        Ack). ``max_entries`` is what the agent's rate limit allows for all of them.
        """
        work: list[tuple[int, Any, bytes, ColumnarBatch, int]] = []
        failed: dict[int, tuple[str, str]] = {}
        limit = self.limits.max_batch_entries
        now = time.time()  # the batches' arrival, for timestamps too far ahead of it
        for req_id, identity, data, after_seq, max_entries in msgs:
            budget = max_entries
            for payload in data if isinstance(data, list) else (data,):
                try:
                    parsed = parse_batch(payload)
                    n = len(parsed.entries)
                    if n > limit:
                        failed[req_id] = ("batch_too_large", f"batch of {n} entries, more than {limit}")
                        break
                    if budget is not None:
                        if n > budget:
                            failed[req_id] = ("rate_limited", f"{n} entries, over the agent's rate limit")
                            break
                        budget -= n
                    decoded = decode(parsed, limits=self.limits, after_seq=after_seq, now=now)
                except IngestError as exc:
                    failed[req_id] = failure(exc)
                    break
                after_seq = decoded.max_seq
                work.append((req_id, identity, payload, decoded, n))
            between()
        return work, failed

    def run(self, conn: Any) -> None:
        import time

        from collector.store import AgentRevoked, StoreError, UnknownAgent
        from collector.store.errors import DatabaseError
        from collector.store.store import LogAppend

        def failure(exc: BaseException) -> tuple[str, str]:
            """(kind, message) of the reply for a batch that failed with ``exc``."""
            if isinstance(exc, AgentRevoked | UnknownAgent):
                return ("revoked", "unknown or revoked agent token")
            if isinstance(exc, IngestError | StoreError):
                return ("invalid", str(exc))
            return ("store_error", type(exc).__name__)

        s = self.settings
        inbox = _Inbox(conn)
        stopping = False
        while not stopping:
            try:
                while not inbox.wait(self.idle_timeout()):
                    now = time.monotonic()
                    if self.pending_points and now >= self.retry_at:
                        # Idle: catch up in chunks, smaller while a burst is still arriving,
                        # so Acks (the burst) go first and a new request waits little. When
                        # the Acks keep this process busy (saturation), the next frame is
                        # usually a moment away (the serving loop writes one per turn):
                        # only a real pause is spent materialising, or the backlog's bound
                        # makes the Acks wait for it (backpressure).
                        busy = now - self.last_request < BUSY_WINDOW_S
                        saturated = busy and self.ack_share >= SATURATED_SHARE
                        if saturated and inbox.wait(BUSY_PAUSE_S):
                            break
                        self.materialise(BUSY_CHUNK_POINTS if busy else IDLE_CHUNK_POINTS)
                    self.tick()
                self.tick()
                msgs = inbox.take(self.max_group)  # what the parent has sent, up to a group
                self.last_request = started = time.monotonic()
            except (EOFError, OSError):  # the parent is gone
                break
            if msgs[-1] is None:
                stopping = True
                msgs.pop()
            work, failed = self._validate(msgs, failure, inbox.drain)
            points = sum(len(done.point_values) for _, _, _, done, _ in work)
            direct = self.pending_points >= s.max_pending_points or (
                self.pending_points == 0 and points <= s.direct_max_points
            )
            outcomes: list[Any] = []
            try:
                if work and direct:
                    stored = self.store.ingest_many(
                        [(identity, done) for _, identity, _, done, _ in work],
                        payloads=[data for _, _, data, _, _ in work],
                    )
                    outcomes = [o if isinstance(o, Exception) else (o, None) for o in stored]
                elif work:
                    outcomes = self.store.append_log(
                        [
                            LogAppend(identity, data, done.max_seq, len(done.point_values))
                            for _, identity, data, done, _ in work
                        ]
                    )
            except (DatabaseError, OSError) as exc:  # the whole call failed: nothing of it was acked
                outcomes = [exc] * len(work)
            except Exception as exc:  # a bug: fail these batches (the agents retry), never leave them waiting
                self.log.exception("ingest group failed")
                outcomes = [exc] * len(work)
            # A request's Ack covers its batches up to the first that failed; one stored
            # after it (same group) is not acknowledged: the agent resends it, and the
            # store skips it as a replay.
            acked: dict[int, tuple[int, int, int, int, int]] = {}  # and the batches so far
            store_failed: set[int] = set()
            for (req_id, _, _, done, entries), outcome in zip(work, outcomes, strict=True):
                if isinstance(outcome, Exception):
                    # The first failure of the request: it replaces a validation failure
                    # recorded for a later batch of it.
                    failed[req_id] = failure(outcome)
                    store_failed.add(req_id)
                    continue
                durable, log_id = outcome
                if log_id is not None:
                    self.remember(log_id, done)
                    self.pending_points += len(done.point_values)
                if req_id in store_failed:
                    continue
                _, _, points_before, entries_before, batches = acked.get(req_id, (0, 0, 0, 0, 0))
                points_now = points_before + point_count(done)
                acked[req_id] = (durable, done.max_seq, points_now, entries_before + entries, batches + 1)
            replies: list[tuple[int, str, Any, Any]] = []
            for req_id, *_ in msgs:
                if req_id in failed:
                    kind, message = failed[req_id]
                    replies.append((req_id, kind, message, acked.get(req_id)))
                elif req_id in acked:
                    replies.append((req_id, "ok", acked[req_id][:4], None))
                else:  # no batch in it: never sent by the serving process
                    replies.append((req_id, "invalid", "a request without batches", None))
            try:
                conn.send(replies)
            except (OSError, ValueError):  # the parent is gone: nobody is left to answer
                break
            self.note_requests(started, time.monotonic())
        # Stopping: catch up for a moment; what is left stays logged for the next start.
        deadline = time.monotonic() + 5.0
        while self.pending_points and time.monotonic() < deadline and self.materialise():
            pass
