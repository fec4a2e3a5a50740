"""The ingest log on SQLite and PostgreSQL: append (the Ack path), materialise, quarantine, backpressure.

The worker-process tests use a real :class:`IngestProcess`. To hold log rows pending on
purpose they install a trigger that makes every INSERT into ``points`` fail with an
operational error (what a busy or failing store looks like): appends still commit,
materialisation cannot, until the trigger is dropped.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from collector.ingest.decode import IngestLimits, decode_logged
from collector.ingest.metrics import CollectorMetrics
from collector.ingest.process import IngestProcess, IngestRejected
from collector.ingest.worker import LogSettings
from collector.store import AgentIdentity, Store, StoreError
from collector.store.fleet import FleetRepo
from collector.store.observe import Committed
from collector.store.schema_ingest_log import ingest_log
from collector.store.store import LogAppend
from protos.diag.v1 import agent_pb2 as pb
from tests.collector.store.materialise import materialise_all
from tests.integration.harness import result_entry

METRICS = 2  # points per result entry


def payload(seqs: Sequence[int]) -> bytes:
    data: bytes = pb.EntryBatch(entries=[result_entry(s, METRICS) for s in seqs]).SerializeToString()
    return data


def append(store: Store, agent: AgentIdentity, seqs: Sequence[int]) -> tuple[int, int | None]:
    (outcome,) = store.append_log([LogAppend(agent, payload(seqs), max(seqs), METRICS * len(seqs))])
    assert not isinstance(outcome, Exception), outcome
    return outcome


def count(store: Store, table: str) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one())


def result_seqs(store: Store, agent_id: str) -> list[int]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT seq FROM check_results WHERE agent_id = :a ORDER BY seq"), {"a": agent_id}
        )
        return [int(r[0]) for r in rows]


def max_seq(store: Store, agent_id: str) -> int:
    with store.engine.connect() as conn:
        return int(
            conn.execute(
                sa.text("SELECT max_seq FROM agents WHERE agent_id = :a"), {"a": agent_id}
            ).scalar_one()
        )


def drain(store: Store) -> int:
    return materialise_all(store, max_points=1).batches


@contextmanager
def points_blocked(store: Store) -> Iterator[None]:
    """Every INSERT into points fails with an operational error until the block is lifted."""
    with store.engine.begin() as conn:
        if store.dialect == "sqlite":
            conn.exec_driver_sql(
                "CREATE TRIGGER test_block_points BEFORE INSERT ON points "
                "BEGIN SELECT no_such_function(); END"
            )
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION test_block_points() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'points blocked' USING ERRCODE = 'lock_not_available'; END $$"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER test_block_points BEFORE INSERT ON points "
                "FOR EACH STATEMENT EXECUTE FUNCTION test_block_points()"
            )
    try:
        yield
    finally:
        with store.engine.begin() as conn:
            if store.dialect == "sqlite":
                conn.exec_driver_sql("DROP TRIGGER IF EXISTS test_block_points")
            else:
                conn.exec_driver_sql("DROP TRIGGER IF EXISTS test_block_points ON points")
                conn.exec_driver_sql("DROP FUNCTION IF EXISTS test_block_points()")


def wait_drained(store: Store, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while store.log_stats().pending_batches:
        assert time.monotonic() < deadline, f"log not drained: {store.log_stats()}"
        time.sleep(0.05)


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, int, int]] = []

    def observe(self, committed: Sequence[Committed]) -> None:
        self.seen.extend((c.agent.agent_id, c.stored_before, c.batch.max_seq) for c in committed)

    def tick(self, now: float) -> None:
        pass

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- the store's log API


def test_append_is_durable_at_once_and_materialise_applies_each_entry_once(store: Store) -> None:
    agent, _ = store.enroll_agent("acme", host="web1")
    durable, first = append(store, agent, [1, 2, 3, 4, 5])
    assert durable == 5 and first is not None
    assert max_seq(store, agent.agent_id) == 5  # the resume point moved with the append
    assert count(store, "check_results") == 0  # not materialised yet
    stats = store.log_stats()
    assert (stats.pending_batches, stats.pending_points, stats.quarantined) == (1, 10, 0)
    assert append(store, agent, [1, 2, 3, 4, 5]) == (5, None)  # a replay appends nothing
    assert count(store, "ingest_log") == 1
    assert append(store, agent, [4, 5, 6, 7])[0] == 7  # overlapping: only 6, 7 are new
    done = store.materialise()
    assert (done.batches, done.quarantined) == (2, 0)
    assert result_seqs(store, agent.agent_id) == [1, 2, 3, 4, 5, 6, 7]
    assert count(store, "points") == 7 * METRICS
    assert count(store, "ingest_log") == 0
    assert store.materialise().batches == 0
    assert store.log_stats().pending_batches == 0
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT last_seen FROM hosts")).scalar_one() is not None


def test_a_store_without_a_log_decoder_leaves_logged_rows_alone(store: Store) -> None:
    """The decoder is injected by the ingest layer; a store opened without one refuses to
    apply logged rows (a StoreError) and quarantines nothing, so nothing is set aside."""
    agent, _ = store.enroll_agent("acme", host="web1")
    append(store, agent, [1, 2, 3])
    bare = Store(store.engine)  # same database, no decoder
    with pytest.raises(StoreError, match="log_decoder"):
        bare.materialise()
    stats = store.log_stats()
    assert (stats.pending_batches, stats.quarantined) == (1, 0)
    assert store.materialise().batches == 1  # the fixture's store has the decoder
    assert result_seqs(store, agent.agent_id) == [1, 2, 3]


def test_one_group_with_several_batches_of_an_agent_appends_each_entry_once(store: Store) -> None:
    """A group may hold an agent's batch from a stream being replaced beside the new one's."""
    a, _ = store.enroll_agent("acme", host="web1")
    b, _ = store.enroll_agent("acme", host="web2")
    outcomes = store.append_log(
        [
            LogAppend(a, payload([1, 2]), 2, 2 * METRICS),
            LogAppend(b, payload([1]), 1, METRICS),
            LogAppend(a, payload([2, 3, 4]), 4, 3 * METRICS),  # overlaps the first: 3, 4 are new
            LogAppend(a, payload([3]), 3, METRICS),  # covered by the group's earlier batches
        ]
    )
    assert [o if isinstance(o, Exception) else o[0] for o in outcomes] == [2, 1, 4, 4]
    assert [not isinstance(o, Exception) and o[1] is None for o in outcomes] == [False, False, False, True]
    assert (max_seq(store, a.agent_id), max_seq(store, b.agent_id)) == (4, 1)
    drain(store)
    assert result_seqs(store, a.agent_id) == [1, 2, 3, 4] and result_seqs(store, b.agent_id) == [1]


def test_a_revoked_agent_appends_nothing(store: Store) -> None:
    agent, _ = store.enroll_agent("acme", host="web1")
    other, _ = store.enroll_agent("acme", host="web2")
    store.revoke_agent(agent.agent_id)
    outcomes = store.append_log(
        [LogAppend(agent, payload([1]), 1, METRICS), LogAppend(other, payload([1]), 1, METRICS)]
    )
    assert type(outcomes[0]).__name__ == "AgentRevoked"
    assert outcomes[1] == (1, outcomes[1][1]) and outcomes[1][1] is not None  # type: ignore[index]
    assert count(store, "ingest_log") == 1 and max_seq(store, agent.agent_id) == 0


def quarantine(store: Store, agent: AgentIdentity, seqs: Sequence[int]) -> int:
    """Log a batch whose stored bytes then go bad, and materialise: the row is quarantined."""
    _, log_id = append(store, agent, seqs)
    assert log_id is not None
    with store.engine.begin() as conn:
        conn.execute(ingest_log.update().where(ingest_log.c.id == log_id).values(payload=b"\xff\xff\xff"))
    materialise_all(store)
    return log_id


def test_quarantined_rows_are_listed_newest_first_and_scoped(store: Store) -> None:
    from collector.store import Scope

    web, _ = store.enroll_agent("acme", host="web1")
    db, _ = store.enroll_agent("acme", host="db1")
    other, _ = store.enroll_agent("globex", host="app1")
    append(store, web, [1, 2])  # applied: never listed
    first = quarantine(store, web, [3, 4])
    second = quarantine(store, db, [1])
    third = quarantine(store, other, [1, 2, 3])
    everything = FleetRepo(store).quarantined_log_rows(Scope.everything())
    assert [q.log_id for q in everything] == [third, second, first]
    web_row = everything[2]
    assert (web_row.customer, web_row.host, web_row.agent_id) == ("acme", "web1", web.agent_id)
    assert (web_row.first_seq, web_row.last_seq, web_row.points) == (3, 4, 2 * METRICS)
    assert "EntryBatch" in web_row.error and web_row.quarantined_at >= web_row.received_at
    assert [q.log_id for q in FleetRepo(store).quarantined_log_rows(Scope.of("acme"))] == [second, first]
    assert [
        q.log_id for q in FleetRepo(store).quarantined_log_rows(Scope.of("acme"), customer="globex")
    ] == []
    assert [q.log_id for q in FleetRepo(store).quarantined_log_rows(Scope.everything(), host="web1")] == [
        first
    ]
    assert [q.log_id for q in FleetRepo(store).quarantined_log_rows(Scope.everything(), limit=1)] == [third]


def test_a_row_that_cannot_be_applied_is_quarantined_and_the_rest_go_on(store: Store) -> None:
    agent, _ = store.enroll_agent("acme", host="web1")
    append(store, agent, [1, 2])
    _, bad_id = append(store, agent, [3, 4])
    append(store, agent, [5, 6])
    _, refused_id = append(store, agent, [7, 8])
    append(store, agent, [9])
    with store.engine.begin() as conn:  # the stored bytes went bad (disk, a bug): not an EntryBatch
        conn.execute(ingest_log.update().where(ingest_log.c.id == bad_id).values(payload=b"\xff\xff\xff"))
        # and a row the database refuses: its host does not exist (a foreign key fails)
        conn.execute(ingest_log.update().where(ingest_log.c.id == refused_id).values(host_id=987_654))
    done = store.materialise()
    assert (done.batches, done.quarantined) == (3, 2)
    assert result_seqs(store, agent.agent_id) == [1, 2, 5, 6, 9]
    stats = store.log_stats()
    assert (stats.pending_batches, stats.quarantined) == (0, 2)
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(ingest_log.c.id, ingest_log.c.error).order_by(ingest_log.c.id)).all()
    assert [r.id for r in rows] == [bad_id, refused_id]  # kept, with why
    assert "EntryBatch" in rows[0].error and "IntegrityError" in rows[1].error
    assert store.materialise().batches + store.materialise().quarantined == 0  # never retried blindly


def test_observers_hear_each_batch_once_after_materialising_in_seq_order(store: Store) -> None:
    recorder = Recorder()
    store.add_observer(recorder)
    a, _ = store.enroll_agent("acme", host="web1")
    b, _ = store.enroll_agent("acme", host="web2")
    for first in (1, 3, 5, 7):
        append(store, a, [first, first + 1])
        append(store, b, [first, first + 1])
    assert recorder.seen == []  # logged is not materialised
    assert drain(store) == 8
    for agent in (a, b):
        mine = [(before, top) for who, before, top in recorder.seen if who == agent.agent_id]
        assert mine == [(0, 2), (2, 4), (4, 6), (6, 8)]
    assert len(recorder.seen) == 8


def test_direct_ingest_applies_the_agents_logged_batches_first(store: Store) -> None:
    """In-process ingest (no log) after log rows of the same agent: seq order is kept."""
    recorder = Recorder()
    store.add_observer(recorder)
    agent, _ = store.enroll_agent("acme", host="web1")
    append(store, agent, [1, 2, 3])
    assert store.ingest(agent, decode_logged(payload([4, 5]))) == 5
    assert result_seqs(store, agent.agent_id) == [1, 2, 3, 4, 5]
    assert count(store, "ingest_log") == 0
    assert recorder.seen == [(agent.agent_id, 0, 3), (agent.agent_id, 3, 5)]


def test_log_gauges_show_the_backlog_and_its_age(store: Store) -> None:
    agent, _ = store.enroll_agent("acme", host="web1")
    metrics = CollectorMetrics()
    now = [time.time() + 30.0]
    metrics.watch_ingest_log(store.log_stats, lambda: now[0])
    append(store, agent, [1, 2, 3])
    value = metrics.registry.get_sample_value
    assert value("diag_ingest_log_pending_batches") == 1
    assert value("diag_ingest_log_pending_points") == 3 * METRICS
    assert 29.0 < (value("diag_ingest_log_lag_seconds") or 0) < 60.0
    store.materialise()
    now[0] += 1.0  # past the per-scrape cache
    assert value("diag_ingest_log_pending_batches") == 0 and value("diag_ingest_log_lag_seconds") == 0


# --------------------------------------------------------------------------- the worker process


def url_of(store: Store) -> str:
    return store.engine.url.render_as_string(hide_password=False)


def test_kill_9_with_log_rows_pending_loses_and_duplicates_nothing(store: Store) -> None:
    agents = [store.enroll_agent(c, host=f"h{i}")[0] for i, c in enumerate(("acme", "acme", "globex"))]
    with points_blocked(store):
        worker = IngestProcess(
            url_of(store), {}, IngestLimits(), log_settings=LogSettings(direct_max_points=0)
        )
        worker.start()
        try:
            for first in range(1, 13, 3):  # 4 batches per agent, each acked before the next
                for agent in agents:
                    seqs = [first, first + 1, first + 2]
                    assert worker.submit(agent, payload(seqs), first - 1).result(30) == (
                        first + 2,
                        first + 2,
                        3 * METRICS,
                        3,
                    )
            assert store.log_stats().pending_batches == 12  # acked, durable, not materialised
            assert count(store, "check_results") == 0
            assert worker.pid is not None
            os.kill(worker.pid, signal.SIGKILL)
        finally:
            worker.close()
    assert [max_seq(store, a.agent_id) for a in agents] == [12, 12, 12]
    restarted = IngestProcess(url_of(store), {}, IngestLimits())
    restarted.start()
    try:
        wait_drained(store)
        # A replay after the restart (the agent never saw its last Ack) is acked, not stored again.
        assert restarted.submit(agents[0], payload([10, 11, 12]), 0).result(30)[0] == 12
    finally:
        restarted.close()
    for agent in agents:
        assert result_seqs(store, agent.agent_id) == list(range(1, 13))
    assert count(store, "points") == 3 * 12 * METRICS
    assert count(store, "ingest_log") == 0


def test_below_saturation_a_batch_is_stored_directly_and_visible_at_its_ack(store: Store) -> None:
    agent, _ = store.enroll_agent("acme", host="web1")
    worker = IngestProcess(url_of(store), {}, IngestLimits())  # default: direct for small groups
    worker.start()
    try:
        assert worker.submit(agent, payload([1, 2]), 0).result(30)[0] == 2
        assert result_seqs(store, agent.agent_id) == [1, 2]  # no log row, nothing to wait for
        assert count(store, "ingest_log") == 0
    finally:
        worker.close()


def test_at_its_bound_the_log_stops_growing_and_acks_wait_for_the_store(store: Store) -> None:
    """Backpressure: over the bound a batch is materialised before its Ack (never appended)."""
    agent, _ = store.enroll_agent("acme", host="web1")
    settings = LogSettings(max_pending_points=4 * METRICS, direct_max_points=0)
    worker = IngestProcess(url_of(store), {}, IngestLimits(), log_settings=settings)
    worker.start()
    try:
        with points_blocked(store):
            assert worker.submit(agent, payload([1, 2, 3, 4]), 0).result(30)[0] == 4  # logged: at the bound
            assert count(store, "check_results") == 0
            # Over the bound and the store cannot take points: the Ack waits, then fails; nothing kept.
            with pytest.raises(IngestRejected) as refused:
                worker.submit(agent, payload([5]), 4).result(30)
            assert refused.value.kind == "store_error"
            assert max_seq(store, agent.agent_id) == 4 and count(store, "ingest_log") == 1
        # The store works again: the batch is stored with the agent's logged ones before its Ack.
        assert worker.submit(agent, payload([5]), 4).result(30)[0] == 5
        assert result_seqs(store, agent.agent_id) == [1, 2, 3, 4, 5]
        assert count(store, "ingest_log") == 0
    finally:
        worker.close()


def test_an_agent_over_the_bound_waits_for_the_store_through_grpc(store: Store) -> None:
    """Through the real gRPC service: what an agent sees when the log is full and the store fails."""
    import asyncio
    import threading
    from concurrent.futures import Future
    from typing import Any

    import grpc  # type: ignore[import-untyped, unused-ignore]

    from collector.ingest.grpc_server import start_grpc_server, stop_grpc_server
    from collector.ingest.grpc_service import AgentStreamService, GrpcSettings
    from tests.integration.harness import batch_msg, hello_msg, run_stream

    agent, token = store.enroll_agent("acme", host="web1")
    settings = GrpcSettings(listen="127.0.0.1:0")
    log_settings = LogSettings(max_pending_points=1, direct_max_points=0)
    worker = IngestProcess(url_of(store), {}, IngestLimits(), log_settings=log_settings)
    worker.start()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def call(coro: Any) -> Any:
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, loop)
        return fut.result(30)

    metrics = CollectorMetrics()
    service = AgentStreamService(store, settings, metrics, ingest_processes=[worker])
    server, port, health = call(start_grpc_server(service, settings))
    address = f"127.0.0.1:{port}"
    try:
        with points_blocked(store):
            messages = [hello_msg(agent.agent_id), batch_msg([1, 2]), batch_msg([3])]
            replies, code, details = run_stream(address, token, messages)
        assert [r.ack.durable_through_seq for r in replies[1:]] == [2]  # logged, acked
        assert code == grpc.StatusCode.UNAVAILABLE and "retry later" in details
        assert metrics.registry.get_sample_value("diag_ingest_rejects_total", {"reason": "store_error"}) == 1
        assert max_seq(store, agent.agent_id) == 2
        replies, code, _ = run_stream(address, token, [hello_msg(agent.agent_id), batch_msg([3])])
        assert code == grpc.StatusCode.OK and replies[-1].ack.durable_through_seq == 3
        # Nothing is lost: 3 is stored before its Ack when the log is still over the bound, or
        # through the log when the worker drained 1-2 first (the store is back by now: a race
        # between that drain and this stream, not a property of either path).
        deadline = time.monotonic() + 30
        while result_seqs(store, agent.agent_id) != [1, 2, 3] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert result_seqs(store, agent.agent_id) == [1, 2, 3]
    finally:
        call(stop_grpc_server(server, service, health, 0.5))
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        worker.close()
