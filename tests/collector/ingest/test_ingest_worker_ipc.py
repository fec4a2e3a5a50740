"""The pipe between the serving process and an ingest worker, and the worker's own housekeeping.

Real pipes (``multiprocessing.Pipe``, a socketpair) and, for the asyncio path, a real
worker process on SQLite. Nothing is mocked but the worker's store in the garbage
collection test, where only ``log_stats`` is ever called.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import pickle
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa

from collector.ingest.decode import IngestLimits, decode_logged
from collector.ingest.process import PIPE_HIGH_WATER, IngestProcess, IngestRejected, _frame_bytes
from collector.ingest.worker import (
    BUSY_GC_INTERVAL_S,
    BUSY_WINDOW_S,
    FULL_GC_INTERVAL_S,
    GC_QUIET_S,
    SATURATED_SHARE,
    LogSettings,
    _Inbox,
    _LogWorker,
)
from collector.store import Store
from protos.diag.v1 import agent_pb2 as pb
from tests.collector.store.materialise import materialise_all
from tests.integration.harness import result_entry


@pytest.fixture
def pipe() -> Iterator[tuple[Any, Any]]:
    parent, child = multiprocessing.Pipe()
    yield parent, child
    parent.close()
    child.close()


def test_frames_are_what_multiprocessing_connection_reads(pipe: tuple[Any, Any]) -> None:
    """The asyncio side writes frames itself; the worker's Connection must read them as its own."""
    parent, child = pipe
    items = [(1, "agent", b"\x00" * 70_000, 5, None), (2, "agent", b"", 6, 10), None]
    frame = _frame_bytes(pickle.dumps(items))
    writer = threading.Thread(target=lambda: os.write(parent.fileno(), frame), daemon=True)
    writer.start()
    assert child.recv() == items
    writer.join()


def test_the_inbox_hands_out_whole_frames_only(pipe: tuple[Any, Any]) -> None:
    parent, child = pipe
    inbox = _Inbox(child)
    assert not inbox.wait(0.0)  # nothing sent: no request, no blocking
    frame = _frame_bytes(pickle.dumps([("a", 1), ("b", 2), ("c", 3)]))
    raw = parent.fileno()
    os.write(raw, frame[:7])  # half a frame: the worker must not block on the rest
    assert not inbox.wait(0.0)
    # The rest, then a frame in the long form (-1, then an 8-byte size, as multiprocessing
    # frames 2 GiB and more), in two pieces split inside its header.
    last = pickle.dumps([("d", 4), None])
    long_form = struct.pack("!iQ", -1, len(last)) + last
    os.write(raw, frame[7:] + long_form[:6])
    assert inbox.wait(1.0)
    assert inbox.take(2) == [("a", 1), ("b", 2)]  # at most a group; the rest waits
    assert inbox.wait(0.0)
    assert inbox.take(10) == [("c", 3)]
    assert not inbox.wait(0.0)
    os.write(raw, long_form[6:])
    assert inbox.wait(1.0)
    assert inbox.take(10) == [("d", 4), None]
    parent.close()
    with pytest.raises(EOFError):
        inbox.wait(1.0)


def test_a_frame_larger_than_the_socket_buffer_arrives_whole(pipe: tuple[Any, Any]) -> None:
    parent, child = pipe
    inbox = _Inbox(child)
    big = [(i, b"x" * 100_000) for i in range(40)]  # 4 MB, far over the socketpair's buffer
    writer = threading.Thread(target=lambda: parent.send(big), daemon=True)
    writer.start()
    got: list[Any] = []
    while len(got) < len(big):
        if inbox.wait(5.0):
            got.extend(inbox.take(1000))
    writer.join()
    assert got == big


class _Stats:
    pending_points = 0


def _worker() -> _LogWorker:
    store = SimpleNamespace(log_stats=lambda *_: _Stats())
    return _LogWorker(store, LogSettings(), IngestLimits(), 8, None)


@pytest.fixture
def gc_off() -> Iterator[None]:
    was = gc.isenabled()
    gc.disable()
    yield
    if was:
        gc.enable()


def _collections(generation: int) -> int:
    return int(gc.get_stats()[generation]["collections"])


def test_the_worker_collects_garbage_in_lulls_not_during_a_burst(gc_off: None) -> None:
    w = _worker()
    now = 10_000.0
    w.next_full_gc = now + FULL_GC_INTERVAL_S  # the start-up full collection is done
    w.last_gc = now
    young, full = _collections(1), _collections(2)
    t = now + 1.0
    w.last_request = t - BUSY_WINDOW_S / 2  # a burst is arriving
    w.collect_garbage(t)
    assert (_collections(1), _collections(2)) == (young, full)  # nothing during the burst
    t = now + BUSY_GC_INTERVAL_S + 1.0
    w.last_request = t - BUSY_WINDOW_S / 2
    w.collect_garbage(t)  # but never longer apart than this
    assert (_collections(1), _collections(2)) == (young + 1, full)
    w.collect_garbage(t + 2 * BUSY_WINDOW_S)  # a pause in a closed-loop burst is no lull
    assert (_collections(1), _collections(2)) == (young + 1, full)
    w.collect_garbage(t + GC_QUIET_S)  # a lull: the young generations every tick
    assert (_collections(1), _collections(2)) == (young + 2, full)
    w.collect_garbage(now + FULL_GC_INTERVAL_S + 60.0)  # quiet and due: the whole heap
    assert _collections(2) == full + 1


def test_the_ack_share_tells_a_saturated_worker_from_a_trickle() -> None:
    """In a saturated burst the worker defers materialising; a trickle of requests must not look like one."""
    w = _worker()
    t = 100.0
    w.share_since = t
    for k in range(20):  # 1 ms of requests every 20 ms
        w.note_requests(t + k * 0.02, t + k * 0.02 + 0.001)
    assert 0 < w.ack_share < SATURATED_SHARE
    t += 1.0
    for k in range(30):  # back to back, after a pause
        w.note_requests(t + k * 0.01, t + (k + 1) * 0.01)
    assert w.ack_share >= 0.9
    w.note_requests(t + 5.0, t + 5.001)  # one request after a long pause ends the busy window
    assert w.ack_share < SATURATED_SHARE


def test_with_automatic_gc_on_the_worker_leaves_it_alone() -> None:
    assert gc.isenabled()
    w = _worker()
    before = [_collections(g) for g in range(3)]
    w.collect_garbage(1e9)
    assert [_collections(g) for g in range(3)] == before


def _payload(seqs: list[int]) -> bytes:
    data: bytes = pb.EntryBatch(entries=[result_entry(s) for s in seqs]).SerializeToString()
    return data


def test_asyncio_submissions_a_thread_submission_and_a_close_after_the_loop_stopped(tmp_path: Path) -> None:
    """The serving loop's path: many submissions in one loop iteration, then shutdown."""
    url = f"sqlite:///{tmp_path / 'collector.db'}"
    store = Store.open(url, log_decoder=decode_logged)
    agents = [store.enroll_agent("acme", host=f"h{i}")[0] for i in range(30)]
    worker = IngestProcess(url, {}, IngestLimits())
    worker.start()
    loop = asyncio.new_event_loop()
    try:

        async def burst() -> list[Any]:
            calls = [worker.submit_async(a, _payload([1, 2]), 0) for a in agents]
            calls.append(worker.submit_async(agents[0], _payload([2]), 2))  # a replay: refused
            return await asyncio.gather(*calls, return_exceptions=True)

        outcomes = loop.run_until_complete(burst())
        assert outcomes[:-1] == [(2, 2, 4, 2)] * 30
        assert "not above the previous seq 2" in str(outcomes[-1])
        # A thread other than the loop's may still submit while the loop runs.
        runner = threading.Thread(target=loop.run_forever, daemon=True)
        runner.start()
        assert worker.submit(agents[1], _payload([3]), 2).result(30) == (3, 3, 2, 1)
        loop.call_soon_threadsafe(loop.stop)
        runner.join(10)
    finally:
        worker.close()  # the loop has stopped: the stop marker goes straight on the pipe
        loop.close()
    assert worker._proc is not None and worker._proc.exitcode == 0  # a clean exit
    materialise_all(store)  # what the worker left logged at its stop (serve drains it at the next start)
    with store.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT COUNT(*) FROM check_results")).scalar_one()
    assert stored == 30 * 2 + 1  # every acknowledged entry, once
    store.close()


def test_a_request_of_several_batches_is_acknowledged_up_to_its_first_bad_one(tmp_path: Path) -> None:
    """The serving process merges the batches a stream read while its last request was away.

    The worker stores them in order, as one group; the reply covers all of them, or, when
    one is refused, carries what the batches before it got so that their Ack still goes out.
    """
    url = f"sqlite:///{tmp_path / 'c.db'}"
    store = Store.open(url, log_decoder=decode_logged)
    agent = store.enroll_agent("acme", host="h1")[0]
    worker = IngestProcess(url, {}, IngestLimits(max_batch_entries=3))
    worker.start()
    try:
        merged = worker.submit(agent, [_payload([1, 2]), _payload([3]), _payload([4, 5, 6])], 0)
        assert merged.result(30) == (6, 6, 12, 6)  # (durable, max_seq, points, entries) of all three
        refused = [
            # a batch whose seqs do not rise after the one before it in the same request
            (
                [_payload([7]), _payload([8, 9]), _payload([9]), _payload([10])],
                6,
                None,
                "invalid",
                (9, 9, 6, 3, 2),
            ),
            # over the entry limit after two good ones
            (
                [_payload([10]), _payload([11]), _payload([12, 13, 14, 15])],
                9,
                None,
                "batch_too_large",
                (11, 11, 4, 2, 2),
            ),
            # the rate limit allows 3 entries for the whole request
            ([_payload([12, 13]), _payload([14, 15])], 11, 3, "rate_limited", (13, 13, 4, 2, 1)),
            # the first one is refused: nothing to acknowledge
            ([b"\xff\xff", _payload([14])], 13, None, "invalid", None),
        ]
        for payloads, after, budget, kind, acked in refused:
            with pytest.raises(IngestRejected) as rejected:
                worker.submit(agent, payloads, after, budget).result(30)
            assert (rejected.value.kind, rejected.value.acked) == (kind, acked)
    finally:
        worker.close()
    materialise_all(store)
    with store.engine.connect() as conn:
        seqs = conn.execute(sa.text("SELECT seq FROM check_results ORDER BY seq")).scalars().all()
    assert seqs == list(range(1, 14))  # what was acknowledged, once; nothing after a refused batch
    store.close()


def test_drain_takes_in_what_has_arrived_without_waiting(pipe: tuple[Any, Any]) -> None:
    parent, child = pipe
    inbox = _Inbox(child)
    inbox.drain()  # nothing there: returns at once
    first = _frame_bytes(pickle.dumps([("a", 1)]))
    second = _frame_bytes(pickle.dumps([("b", 2)]))
    os.write(parent.fileno(), first + second[:5])
    inbox.drain()
    assert inbox.take(10) == [("a", 1)]  # the whole frame; half of the next waits for the rest
    os.write(parent.fileno(), second[5:])
    inbox.drain()
    assert inbox.take(10) == [("b", 2)]


def test_the_worker_reads_its_pipe_between_the_requests_of_a_group() -> None:
    """The parent cannot write more than the socket holds until the worker reads it: the worker
    reads between requests, not only between groups, or it starves while the parent's buffer grows."""
    w = _worker()
    calls: list[int] = []
    msgs = [
        (1, "agent", _payload([1, 2]), 0, None),
        (2, "agent", [_payload([1]), _payload([2])], 0, None),
        (3, "agent", b"\xff\xff", 0, None),  # refused: the pipe is still read after it
        (4, "agent", _payload([5]), 0, None),
    ]
    work, failed = w._validate(msgs, lambda exc: ("invalid", str(exc)), lambda: calls.append(len(calls)))
    assert len(calls) == len(msgs)
    assert [item[0] for item in work] == [1, 2, 2, 4] and list(failed) == [3]


def test_requests_wait_in_the_serving_process_while_the_worker_does_not_read(tmp_path: Path) -> None:
    """With the worker stopped (SIGSTOP), the serving loop's pipe buffer stays bounded: requests
    queue as objects and go as one frame when the pipe drains; every one is answered."""
    import signal

    url = f"sqlite:///{tmp_path / 'c.db'}"
    store = Store.open(url, log_decoder=decode_logged)
    agents = [store.enroll_agent("acme", host=f"h{i}")[0] for i in range(40)]
    store.close()
    worker = IngestProcess(url, {}, IngestLimits())
    worker.start()
    pid = worker.pid
    assert pid is not None
    loop = asyncio.new_event_loop()
    payload = _payload(list(range(1, 200)))  # about 70 KB
    try:

        async def scenario() -> tuple[int, int, list[Any]]:
            first = await worker.submit_async(agents[0], _payload([1]), 0)  # attaches the pipe
            assert first[0] == 1
            os.kill(pid, signal.SIGSTOP)
            calls = []
            peak_buffer = peak_queued = 0
            for a in agents[1:]:  # one request per loop iteration, as streams' batches arrive
                calls.append(asyncio.ensure_future(worker.submit_async(a, payload, 0)))
                await asyncio.sleep(0.005)
                assert worker._writer is not None
                peak_buffer = max(peak_buffer, worker._writer.transport.get_write_buffer_size())
                peak_queued = max(peak_queued, len(worker._frame))
            os.kill(pid, signal.SIGCONT)
            return peak_buffer, peak_queued, await asyncio.gather(*calls)

        peak_buffer, peak_queued, outcomes = loop.run_until_complete(scenario())
    finally:
        os.kill(pid, signal.SIGCONT)
        worker.close()
        loop.close()
    frame_size = len(_frame_bytes(pickle.dumps([(0, agents[1], payload, 0, None)])))
    assert peak_queued > 0  # requests held back while the pipe was full
    assert peak_buffer <= PIPE_HIGH_WATER + 2 * frame_size  # not piled up in the transport
    assert [o[:2] for o in outcomes] == [(199, 199)] * (len(agents) - 1)
