"""Direct ingest: an agent's batch stored exactly once, in group commits; its gap reports.

Exactly-once: the agent row's ``max_seq`` is read (``SELECT ... FOR UPDATE`` on
PostgreSQL), only entries above it are written, and it is advanced in the same
transaction. A replayed or overlapping batch therefore stores only what is new, and two
collectors handling the same agent serialise on that row. ``UNIQUE(agent_id, seq)`` on
check_results is the safety net under that rule. Direct ingest (in-process mode, tools,
tests) first applies any ingest-log rows its agent still has, keeping seq order.

:class:`IngestRepo` is one part of :class:`~collector.store.Store` (``store.intake``);
``store.ingest``, ``ingest_many`` and ``record_gaps`` are its front door.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import sqlalchemy as sa

from collector.store.batches import (
    GROUP_MAX_BATCHES,
    GROUP_MAX_POINTS,
    STORE_FAILED,
    SeriesRef,
    point_count,
    quarantine_reason,
)
from collector.store.errors import AgentRevoked, StoreError, UnknownAgent
from collector.store.names import customer_shard
from collector.store.observe import Committed
from collector.store.schema import gaps
from collector.store.schema_ingest_log import ingest_log
from collector.store.types import AgentIdentity, GapRow, IngestBatch

if TYPE_CHECKING:
    from collector.store.store import Store

__all__ = ["IngestRepo"]

log = logging.getLogger("collector.store.store")


@dataclass(slots=True)
class _Pending:
    """One caller's batch waiting for a group commit."""

    agent: AgentIdentity
    batch: IngestBatch
    done: bool = False
    result: int = 0
    error: Exception | None = None
    stored_before: int = 0
    host_id: int = 0
    earlier: list[Committed] = field(default_factory=list)
    """Logged batches of this agent that had to be materialised first (see _ingest_one)."""
    payload: bytes | None = None
    """The batch as the agent sent it, kept if the database refuses the batch (quarantine)."""


class IngestRepo:
    """See the module docstring."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._queue_lock = threading.Lock()
        self._queue: deque[_Pending] = deque()
        # Ingest groups queue here; on SQLite the group writer also holds the store's write lock.
        self._group_lock = store._write_lock if store._sqlite else threading.Lock()

    def ingest(self, agent: AgentIdentity, batch: IngestBatch, *, payload: bytes | None = None) -> int:
        """Store the batch's new entries durably; returns the agent's durable max seq.

        Group commit: concurrent callers queue their batches, and whichever thread holds
        the group lock writes every queued batch in one transaction (a savepoint each, so
        one bad batch fails alone), then commits once. A commit dirties a page per series
        touched, so fewer, larger commits are what lets SQLite keep up with many agents.

        A batch whose data the database refuses (any error but the store itself failing)
        costs only its own savepoint: it is quarantined, exactly as the materialiser does
        with a logged batch: an ``ingest_log`` row with the reason and ``payload`` (the
        EntryBatch bytes as received, when the caller has them), the agent's ``max_seq``
        advanced past it, and its seq acknowledged. Its neighbours in the group commit.
        Raises AgentRevoked / UnknownAgent (nothing stored) or the database's error when
        the store failed (nothing of the group stored).
        """
        request = _Pending(agent, batch, payload=payload)
        with self._queue_lock:
            self._queue.append(request)
        while not request.done:
            with self._group_lock:
                if request.done:
                    break
                with self._queue_lock:
                    group = self._take_group()
                self._commit_group(group)
        if request.error is not None:
            raise request.error
        return request.result

    def ingest_many(
        self,
        requests: Sequence[tuple[AgentIdentity, IngestBatch]],
        payloads: Sequence[bytes] | None = None,
    ) -> list[int | Exception]:
        """Store several agents' batches from one thread, in as few group commits as the limits allow.

        For a caller that already holds many batches (the ingest worker process drains
        its pipe into one call), this is :meth:`ingest` without a thread per batch.
        Returns, in order, each batch's durable max seq or the exception that batch
        failed with (AgentRevoked, UnknownAgent, StoreError or a database error).
        ``payloads`` (the batches as received, in order) are kept with any batch quarantined.
        """
        pending = [_Pending(agent, batch) for agent, batch in requests]
        for request, payload in zip(pending, payloads or (), strict=False):
            request.payload = payload
        with self._group_lock:
            start = 0
            while start < len(pending):
                group: list[_Pending] = []
                points = 0
                while start < len(pending) and len(group) < GROUP_MAX_BATCHES and points < GROUP_MAX_POINTS:
                    points += point_count(pending[start].batch)
                    group.append(pending[start])
                    start += 1
                self._commit_group(group)
        return [p.result if p.error is None else p.error for p in pending]

    def _take_group(self) -> list[_Pending]:
        """Oldest queued batches first, up to the group limits (called under _queue_lock)."""
        group: list[_Pending] = []
        points = 0
        while self._queue and len(group) < GROUP_MAX_BATCHES and points < GROUP_MAX_POINTS:
            request = self._queue.popleft()
            points += point_count(request.batch)
            group.append(request)
        return group

    def _commit_group(self, group: list[_Pending]) -> None:
        # Lock agent rows in one order (a stable sort keeps each agent's batches in order),
        # so two collectors' groups on PostgreSQL cannot deadlock.
        group.sort(key=lambda r: r.agent.agent_id)
        known: dict[int, dict[SeriesRef, int]] = {}
        hosts_seen: dict[tuple[str, str], int] = {}
        committed = False
        try:
            with self.store._write_engine.begin() as conn:
                for request in group:
                    created: dict[SeriesRef, int] = {}
                    try:
                        with conn.begin_nested():
                            request.result, host_id, request.stored_before = self._ingest_one(
                                conn, request.agent, request.batch, known, created, request.earlier
                            )
                            request.host_id = host_id
                    except (AgentRevoked, UnknownAgent) as exc:  # this batch only; the rest commit
                        request.error = exc
                        continue
                    except STORE_FAILED:
                        raise  # the store, not this batch, failed: the whole group is retried
                    except Exception as exc:
                        # The database refused this batch's data (or it hit a bug): quarantine
                        # it in its own savepoint; the rest of the group commits.
                        log.exception(
                            "batch of agent %s quarantined: the database refused it", request.agent.agent_id
                        )
                        request.earlier.clear()  # rolled back with the savepoint
                        known.clear()  # may hold series ids created in the rolled-back savepoint
                        try:
                            with conn.begin_nested():
                                request.result, host_id, request.stored_before = self._quarantine_batch(
                                    conn, request, exc
                                )
                                request.host_id = host_id
                        except (AgentRevoked, UnknownAgent) as again:
                            request.error = again
                        continue
                    if created:
                        known.setdefault(host_id, {}).update(created)
                    hosts_seen[(request.agent.customer, request.agent.host)] = host_id
            committed = True
        except sa.exc.SQLAlchemyError as exc:  # the transaction failed: every batch of the group with it
            log.warning("ingest transaction of %d batches failed: %s", len(group), type(exc).__name__)
            for request in group:
                request.error = request.error or exc
        finally:
            if not committed:
                for request in group:
                    # Anything else (a bug) propagates to the thread that ran the group;
                    # the others must still learn that their batch was not stored.
                    request.error = request.error or StoreError("ingest transaction failed")
                    request.done = True
        if not committed:
            return
        # Committed: only now may new ids enter the caches (a rollback would orphan them).
        with self.store._cache_lock:
            self.store._host_ids.update(hosts_seen)
        self.store.writes.remember_series(known)
        if self.store._observers:
            notes: list[Committed] = []
            for r in group:
                if r.error is None:
                    notes.extend(r.earlier)
                    if r.result > r.stored_before:
                        notes.append(Committed(r.agent, r.host_id, r.stored_before, r.batch))
            self.store._notify(notes)
        for request in group:
            request.done = True

    def _quarantine_batch(
        self, conn: sa.Connection, request: _Pending, exc: Exception
    ) -> tuple[int, int, int]:
        """Keep a refused batch aside as a quarantined ingest-log row; returns like :meth:`_ingest_one`.

        The agent's ``max_seq`` advances past it, so the batch is acknowledged and never
        retried: it reached the store once, as a quarantined row an engineer can list
        (``diagctl quarantine``), counted in /healthz and /metrics.
        """
        agent, batch = request.agent, request.batch
        stored = int(self.store._lock_agent(conn, agent).max_seq)
        host_id = self.store._host_id(conn, agent)
        if batch.max_seq <= stored:
            return stored, host_id, stored
        now = self.store._clock()
        conn.execute(
            ingest_log.insert().values(
                shard=customer_shard(agent.customer),
                agent_id=agent.agent_id,
                token_id=agent.token_id,
                customer=agent.customer,
                host=agent.host,
                host_id=host_id,
                after_seq=stored,
                max_seq=batch.max_seq,
                received_at=now,
                points=point_count(batch),
                quarantined_at=now,
                error=quarantine_reason(exc),
                payload=request.payload or b"",
            )
        )
        conn.exec_driver_sql(self.store._sql["advance_agent"], (batch.max_seq, now, agent.agent_id))
        return batch.max_seq, host_id, stored

    def _ingest_one(
        self,
        conn: sa.Connection,
        agent: AgentIdentity,
        batch: IngestBatch,
        known: dict[int, dict[SeriesRef, int]],
        created: dict[SeriesRef, int],
        earlier: list[Committed],
    ) -> tuple[int, int, int]:
        """Write one batch's new entries; returns (durable max seq, host id, durable seq before).

        If batches of this agent still wait in the ingest log (appended by a worker
        process or another collector, not yet materialised), they are materialised here
        first, in this transaction, so the agent's entries are always applied in seq order.
        """
        stored = int(self.store._lock_agent(conn, agent).max_seq)
        logged = conn.exec_driver_sql(self.store._sql["agent_logged"], (agent.agent_id,)).all()
        if logged:
            rows = self.store.ingest_log.log_rows(
                conn, [ingest_log.c.id.in_([int(r[0]) for r in logged])], len(logged)
            )
            done = self.store.ingest_log.apply_log_rows(
                conn, rows, {}, None, known, created, self.store._clock()
            )
            created.clear()  # now in ``known``
            earlier.extend(done[0])
        host_id = self.store._host_id(conn, agent)
        seqs = [batch.max_seq]
        seqs.extend(r.seq for r in batch.results)
        seqs.extend(i.seq for i in batch.inventories)
        seqs.extend(h.seq for h in batch.health)
        top = max(seqs)
        if top <= stored:
            return stored, host_id, stored  # a pure replay: everything is already durable
        now = self.store._clock()
        self.store.writes.apply_entries(conn, agent, host_id, stored, batch, known, created, now)
        conn.exec_driver_sql(self.store._sql["advance_agent"], (top, now, agent.agent_id))
        return top, host_id, stored

    def record_gaps(self, agent: AgentIdentity, gap_rows: Sequence[GapRow]) -> list[int]:
        """Record dropped ranges; idempotent on (agent, first_seq). Returns every first_seq now settled.

        A range reported again from the same ``first_seq`` keeps its larger extent. A range
        overlapping one already stored from another ``first_seq`` is not stored (its seqs
        would be counted twice) but is settled all the same, so the agent stops reporting it.
        """
        for gap in gap_rows:
            if gap.first_seq < 1 or gap.last_seq < gap.first_seq or gap.count < 0:
                raise StoreError(f"invalid gap {gap.first_seq}..{gap.last_seq} (count {gap.count})")
        if not gap_rows:
            return []
        now = self.store._clock()
        with self.store._write() as conn:
            self.store._lock_agent(conn, agent)
            fresh = [g for g in gap_rows if not self._overlaps_stored_gap(conn, agent, g)]
            if len(fresh) < len(gap_rows):
                log.warning(
                    "agent %s reported %d gap(s) overlapping recorded ones; not counted twice",
                    agent.agent_id,
                    len(gap_rows) - len(fresh),
                )
            if not fresh:
                return sorted({g.first_seq for g in gap_rows})
            insert = self.store._insert(gaps)
            grown = insert.excluded
            # A range the agent reports again may have grown (it kept dropping): keep the
            # larger extent, never the older, smaller one.
            upsert = insert.on_conflict_do_update(
                index_elements=["agent_id", "first_seq"],
                set_={
                    "last_seq": sa.case(
                        (grown.last_seq > gaps.c.last_seq, grown.last_seq), else_=gaps.c.last_seq
                    ),
                    "count": sa.case(
                        (grown["count"] > gaps.c["count"], grown["count"]), else_=gaps.c["count"]
                    ),
                },
            )
            conn.execute(
                upsert,
                [
                    {
                        "agent_id": agent.agent_id,
                        "first_seq": g.first_seq,
                        "last_seq": g.last_seq,
                        "count": g.count,
                        "reason": g.reason[:64],
                        "dropped_at": g.dropped_at,
                        "recorded_at": now,
                    }
                    for g in fresh
                ],
            )
        return sorted({g.first_seq for g in gap_rows})

    def _overlaps_stored_gap(self, conn: sa.Connection, agent: AgentIdentity, gap: GapRow) -> bool:
        c = gaps.c
        return (
            conn.execute(
                sa.select(c.first_seq)
                .where(
                    c.agent_id == agent.agent_id,
                    c.first_seq != gap.first_seq,
                    c.first_seq <= gap.last_seq,
                    c.last_seq >= gap.first_seq,
                )
                .limit(1)
            ).first()
            is not None
        )
