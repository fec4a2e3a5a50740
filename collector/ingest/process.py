"""The serving process's side of an ingest worker process (:mod:`collector.ingest.worker`).

:class:`IngestProcess` starts the child, sends it batches over a pipe (from threads or the
serving event loop) and settles each request's future with the child's reply.
"""

from __future__ import annotations

from typing import Any, Final

from collector.ingest.decode import IngestLimits
from collector.ingest.worker import LogSettings, worker_main

__all__ = ["PIPE_HIGH_WATER", "IngestProcess", "IngestRejected"]


class IngestRejected(Exception):
    """The ingest worker refused a batch: ``kind`` is invalid, batch_too_large, rate_limited,
    revoked or store_error.

    ``acked`` is set when the request carried several batches and those before the refused
    one are durable: (durable, max_seq, points, entries, batches) for them, to acknowledge
    before the stream ends with the error.
    """

    def __init__(self, kind: str, message: str, acked: tuple[int, int, int, int, int] | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.acked = acked


class IngestProcess:
    """Validate and log batches in a child process, which also materialises its log shard.

    One Python process is bound to one core by the GIL; on a collector whose CPU goes
    into ingest, moving validation and the store into a second process lets the event
    loop (gRPC, HTTP) and the store work in parallel. The child opens its own
    :class:`~collector.store.Store` on the same URL. Its Ack path is short: validate
    (:func:`decode`), append the batch as one ingest-log row and advance the agent's
    durable seq (:meth:`Store.append_log`), reply. Behind it, the same process
    materialises its shard of the log (:meth:`Store.materialise`, then the observers)
    whenever the pipe is idle, in small transactions so a new request waits little.

    The log is for bursts: when it is empty and a group is small (a fleet below
    saturation), the worker stores the group directly (:meth:`Store.ingest_many`, one
    transaction, visible at the Ack), which costs less than logging and materialising. When
    the backlog reaches :attr:`LogSettings.max_pending_points`, it stores directly too:
    the log stops growing and each Ack waits for its batch (and that agent's older logged
    batches) to be materialised, so the fleet slows to the store's pace (backpressure).
    Requests travel as serialized protobuf bytes over a pipe; replies are (durable seq,
    max seq, points).
    """

    def __init__(
        self,
        store_url: str,
        store_options: dict[str, Any],
        limits: IngestLimits,
        threads: int = 16,
        log_settings: LogSettings | None = None,
    ) -> None:
        import multiprocessing
        import queue
        import threading
        from concurrent.futures import Future

        self._ctx = multiprocessing.get_context("spawn")
        self._store_url = store_url
        self._store_options = store_options
        self._limits = limits
        self._threads = threads
        self._log_settings = log_settings or LogSettings()
        self._pending: dict[int, Future[tuple[int, int, int, int]]] = {}
        self._lock = threading.Lock()
        self._next_id = 0
        self._outbox: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._conn: Any = None
        self._proc: Any = None
        self._threads_started: list[threading.Thread] = []
        self._mode: str | None = None
        """How requests reach the pipe, fixed by the first submit: "threads" (:meth:`submit`,
        from any thread) or "asyncio" (:meth:`submit_async`, the serving event loop)."""
        self._loop: Any = None
        self._writer: Any = None
        self._attached: Any = None
        self._frame: list[Any] = []
        self._reader_task: Any = None
        self._drain_task: Any = None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else int(self._proc.pid)

    def start(self, timeout: float = 60.0) -> None:
        """Start the child and wait until its store is open."""
        parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(
            target=worker_main,
            args=(
                child,
                self._store_url,
                self._store_options,
                self._limits,
                self._threads,
                self._log_settings,
            ),
            name="diag-ingest",
            daemon=True,
        )
        self._proc.start()
        child.close()
        if not parent.poll(timeout):
            self._proc.kill()
            raise RuntimeError("the ingest worker did not start in time")
        hello = parent.recv()
        if hello[0] != "ready":
            raise RuntimeError(f"the ingest worker failed to start: {hello[1]}")
        self._conn = parent

    def submit(
        self,
        identity: AgentIdentityLike,
        batch: bytes | list[bytes],
        after_seq: int,
        max_entries: int | None = None,
    ) -> Any:
        """Queue a serialized EntryBatch as the agent sent it (hostile bytes), or several, in order.

        Returns a concurrent Future of (durable, max_seq, points, entries) for all of them.
        ``max_entries`` is what the agent's rate limit allows now: a batch that takes the
        request past it is refused (``rate_limited``) before it is decoded or stored. When
        a later batch of several is refused, the :class:`IngestRejected` carries what the
        earlier ones got (:attr:`IngestRejected.acked`).
        """
        import asyncio
        import threading
        from concurrent.futures import Future

        with self._lock:
            if self._mode is None:
                self._mode = "threads"
                for target in (self._send_loop, self._recv_loop):
                    t = threading.Thread(target=target, name=f"ingest-{target.__name__}", daemon=True)
                    t.start()
                    self._threads_started.append(t)
        if self._mode == "asyncio":
            return asyncio.run_coroutine_threadsafe(
                self.submit_async(identity, batch, after_seq, max_entries), self._loop
            )
        future: Future[tuple[int, int, int, int]] = Future()
        with self._lock:
            self._next_id += 1
            req_id = self._next_id
            self._pending[req_id] = future
        self._outbox.put((req_id, identity, batch, after_seq, max_entries))
        return future

    async def submit_async(
        self,
        identity: AgentIdentityLike,
        batch: bytes | list[bytes],
        after_seq: int,
        max_entries: int | None = None,
    ) -> tuple[int, int, int, int]:
        """:meth:`submit` for the event loop that serves the agents: no threads in between.

        The first call attaches this worker's pipe to the running loop. Requests queued in
        one loop iteration go to the worker in one frame, and replies resolve the waiting
        coroutines directly, so a batch costs no thread handoff (and no GIL convoy) in the
        serving process.
        """
        import asyncio

        if self._mode == "threads":
            result: tuple[int, int, int, int] = await asyncio.wrap_future(
                self.submit(identity, batch, after_seq, max_entries)
            )
            return result
        if self._mode is None:
            self._mode = "asyncio"
            self._loop = asyncio.get_running_loop()
            self._attached = self._loop.create_task(self._attach())
        await asyncio.shield(self._attached)
        future: asyncio.Future[tuple[int, int, int, int]] = self._loop.create_future()
        self._next_id += 1
        self._pending[self._next_id] = future  # type: ignore[assignment]  # this mode's futures
        if not self._frame:
            self._loop.call_soon(self._flush)
        self._frame.append((self._next_id, identity, batch, after_seq, max_entries))
        return await future

    async def _attach(self) -> None:
        import asyncio
        import os
        import socket

        if self._conn is None:
            raise IngestRejected("store_error", "ingest worker not started")
        sock = socket.socket(fileno=os.dup(self._conn.fileno()))  # the Pipe's socketpair end
        sock.setblocking(False)
        reader, self._writer = await asyncio.open_unix_connection(sock=sock)
        self._reader_task = asyncio.get_running_loop().create_task(self._read_replies(reader))

    def _flush(self, force: bool = False) -> None:
        """Send the requests queued since the last frame as one frame, once the pipe has room.

        While the worker is busy the pipe fills; requests then wait here, as Python
        objects, until it drains, and go together in one frame. Writing them on
        regardless would pile them up in the transport's buffer, which is copied whole
        each time it grows (quadratic in the backlog), on the serving loop.
        """
        import pickle

        writer = self._writer
        if not self._frame:
            return
        if writer is None or writer.is_closing():
            frame, self._frame = self._frame, []
            self._fail_requests(frame, IngestRejected("store_error", "ingest worker unavailable"))
            return
        if not force and writer.transport.get_write_buffer_size() > PIPE_HIGH_WATER:
            if self._drain_task is None:
                self._drain_task = self._loop.create_task(self._flush_when_drained())
            return
        frame, self._frame = self._frame, []
        writer.write(_frame_bytes(pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL)))

    async def _flush_when_drained(self) -> None:
        """Wait for the pipe to take what it holds, then send what queued meanwhile."""
        try:
            await self._writer.drain()
        except (ConnectionError, OSError):
            pass  # the worker is gone: _flush fails what is queued
        finally:
            self._drain_task = None
        self._flush()

    def _fail_requests(self, frame: list[Any], exc: Exception) -> None:
        for item in frame:
            future = self._pending.pop(item[0], None)
            if future is not None and not future.done():
                future.set_exception(exc)

    async def _read_replies(self, reader: Any) -> None:
        import asyncio
        import pickle
        import struct

        try:
            while True:
                (size,) = struct.unpack("!i", await reader.readexactly(4))
                if size == -1:  # multiprocessing's header for frames of 2 GiB or more
                    (size,) = struct.unpack("!Q", await reader.readexactly(8))
                for req_id, *reply in pickle.loads(await reader.readexactly(size)):
                    _settle(self._pending.pop(req_id, None), *reply)
        except (asyncio.IncompleteReadError, OSError):
            pass  # the worker exited
        finally:
            self._fail_all(IngestRejected("store_error", "ingest worker exited"))

    def _send_loop(self) -> None:
        import queue

        # Everything queued goes in one frame: one pickle and one write for a burst of
        # batches, which the worker then stores as one group.
        while True:
            frame = [self._outbox.get()]
            while frame[-1] is not None:
                try:
                    frame.append(self._outbox.get_nowait())
                except queue.Empty:
                    break
            try:
                self._conn.send(frame)
                if frame[-1] is None:
                    return
            except (OSError, ValueError) as exc:  # the worker is gone: fail this request, stop sending
                self._fail_all(
                    IngestRejected("store_error", f"ingest worker unavailable ({type(exc).__name__})")
                )
                return

    def _recv_loop(self) -> None:
        while True:
            try:
                replies = self._conn.recv()  # one frame per group the worker stored
            except (EOFError, OSError):  # the worker exited: every waiting batch fails, none was acked
                self._fail_all(IngestRejected("store_error", "ingest worker exited"))
                return
            for req_id, *reply in replies:
                with self._lock:
                    future = self._pending.pop(req_id, None)
                _settle(future, *reply)

    def _fail_all(self, exc: Exception) -> None:
        loop = self._loop
        if self._mode == "asyncio" and loop is not None and loop.is_running() and _running_loop() is not loop:
            loop.call_soon_threadsafe(self._fail_all_now, exc)  # asyncio futures belong to their loop
            return
        self._fail_all_now(exc)

    def _fail_all_now(self, exc: Exception) -> None:
        import contextlib

        with self._lock:
            pending, self._pending = self._pending, {}
        for future in pending.values():
            # RuntimeError: an asyncio future whose loop is already closed (shutdown);
            # nobody is left waiting on it.
            with contextlib.suppress(RuntimeError):
                if not future.done():
                    future.set_exception(exc)

    def close(self) -> None:
        """Stop the child (it finishes what it started) and fail anything still waiting.

        Callable from any thread, including after the serving loop has stopped.
        """
        if self._mode == "threads":
            self._outbox.put(None)  # the send loop forwards it: one writer on the pipe
        elif self._conn is not None:
            self._send_stop()
        if self._proc is not None:
            self._proc.join(10)
            if self._proc.is_alive():
                self._proc.kill()
        self._fail_all(IngestRejected("store_error", "ingest worker stopped"))

    def _send_stop(self) -> None:
        import contextlib
        import pickle
        import threading

        loop = self._loop
        if loop is not None and loop.is_running() and self._writer is not None:
            sent = threading.Event()

            def stop() -> None:
                self._flush(force=True)
                if not self._writer.is_closing():
                    self._writer.write(_frame_bytes(pickle.dumps([None])))
                sent.set()

            if _running_loop() is loop:
                stop()
            else:
                loop.call_soon_threadsafe(stop)
                sent.wait(5)
            return
        # No loop (never attached, or it has stopped): write on the pipe directly; an
        # error means the worker is already gone.
        with contextlib.suppress(OSError, ValueError):
            self._conn.send([None])


def _settle(future: Any, kind: str, payload: Any, acked: tuple[int, int, int, int, int] | None) -> None:
    """Resolve a request's future (asyncio or concurrent) with the worker's reply to it."""
    if future is None or future.done():  # cancelled, or failed already
        return
    if kind == "ok":
        future.set_result(payload)
    else:
        future.set_exception(IngestRejected(kind, payload, acked))


def _running_loop() -> Any:
    import asyncio

    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


PIPE_HIGH_WATER: Final = 256 * 1024
"""Bytes in the serving process's pipe buffer above which requests wait to be sent together."""


def _frame_bytes(payload: bytes) -> bytes:
    """``payload`` framed as :class:`multiprocessing.connection.Connection` frames it."""
    import struct

    size = len(payload)
    head = struct.pack("!i", size) if size < 0x7FFFFFFF else struct.pack("!iQ", -1, size)
    return head + payload


AgentIdentityLike = Any
_Request = tuple[int, AgentIdentityLike, bytes | list[bytes], int, int | None]
"""(request id, identity, one EntryBatch's bytes or several, after_seq, max_entries)."""
