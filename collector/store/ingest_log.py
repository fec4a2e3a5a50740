"""The ingest log: batches made durable ahead of materialisation, and their materialiser.

The log splits the ingest transaction in two for the worker processes: the Ack waits only
for one log row per batch plus the agent's ``max_seq`` advance (:meth:`IngestLog.append_log`);
the materialiser applies the row later and deletes it in the same transaction
(:meth:`IngestLog.materialise`), so every entry is still applied exactly once. A row that
cannot be applied is quarantined, never dropped.

:class:`IngestLog` is one part of :class:`~collector.store.Store` (``store.ingest_log``);
``store.append_log``, ``log_stats`` and ``materialise`` are its front door.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from collector.store.batches import (
    GROUP_MAX_BATCHES,
    GROUP_MAX_POINTS,
    STORE_FAILED,
    LogAppend,
    LogDecoder,
    LogStats,
    Materialised,
    SeriesRef,
    quarantine_reason,
)
from collector.store.errors import AgentRevoked, StoreError, UnknownAgent
from collector.store.names import customer_shard
from collector.store.observe import Committed
from collector.store.schema_ingest_log import ingest_log
from collector.store.types import AgentIdentity, IngestBatch

if TYPE_CHECKING:
    from collector.store.store import Store

__all__ = ["IngestLog"]

log = logging.getLogger("collector.store.store")

_LOG_LOCK_NS = 0x6C6F67  # "log": PostgreSQL advisory locks (namespace, shard) of materialisers


class IngestLog:
    """See the module docstring."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def append_log(self, requests: Sequence[LogAppend]) -> list[tuple[int, int | None] | Exception]:
        """Append validated batches to the ingest log in one transaction (the Ack path).

        Per batch: lock the agent row, skip a pure replay (nothing appended), else insert
        one log row (the payload as received, the durable seq before it) and advance the
        agent's ``max_seq`` in the same transaction. Returns, in order, each batch's
        (durable max seq, log row id or None for a replay) or the exception that batch
        failed with (AgentRevoked, UnknownAgent; a database error fails them all).
        """
        out: list[tuple[int, int | None] | Exception] = [StoreError("not appended")] * len(requests)
        if not requests:
            return out
        # Agent rows locked in one order, so two collectors' appends cannot deadlock.
        order = sorted(range(len(requests)), key=lambda i: requests[i].agent.agent_id)
        rows: list[dict[str, Any]] = []
        row_of: list[int] = []
        hosts_seen: dict[tuple[str, str], int] = {}
        # Per agent in this group: its durable max seq so far (locked once, then advanced
        # here as its batches are appended) and the row update, written once at the end.
        durable: dict[str, int] = {}
        advances: dict[str, tuple[int, float, str]] = {}
        now = self.store._clock()
        try:
            with self.store._write() as conn:
                for i in order:
                    request = requests[i]
                    agent = request.agent
                    try:
                        stored = durable.get(agent.agent_id)
                        if stored is None:
                            stored = durable[agent.agent_id] = int(
                                self.store._lock_agent(conn, agent).max_seq
                            )
                        if request.max_seq <= stored:
                            out[i] = (stored, None)  # a pure replay: already durable
                            continue
                        host_id = self.store._host_id(conn, agent)
                    except (AgentRevoked, UnknownAgent) as exc:  # nothing of it written
                        out[i] = exc
                        continue
                    hosts_seen[(agent.customer, agent.host)] = host_id
                    durable[agent.agent_id] = request.max_seq
                    advances[agent.agent_id] = (request.max_seq, now, agent.agent_id)
                    rows.append(
                        {
                            "shard": customer_shard(agent.customer),
                            "agent_id": agent.agent_id,
                            "token_id": agent.token_id,
                            "customer": agent.customer,
                            "host": agent.host,
                            "host_id": host_id,
                            "after_seq": stored,
                            "max_seq": request.max_seq,
                            "received_at": now,
                            "points": request.points,
                            "payload": request.payload,
                        }
                    )
                    row_of.append(i)
                if advances:
                    conn.exec_driver_sql(self.store._sql["advance_agent"], list(advances.values()))
                if rows:
                    ids = (
                        conn.execute(
                            ingest_log.insert().returning(ingest_log.c.id, sort_by_parameter_order=True), rows
                        )
                        .scalars()
                        .all()
                    )
                    for i, log_id in zip(row_of, ids, strict=True):
                        out[i] = (requests[i].max_seq, int(log_id))
        except sa.exc.SQLAlchemyError as exc:  # the transaction failed: none of it is durable
            log.warning("ingest log append of %d batches failed: %s", len(requests), type(exc).__name__)
            return [o if isinstance(o, Exception) else exc for o in out]
        with self.store._cache_lock:
            self.store._host_ids.update(hosts_seen)
        return out

    def log_stats(self, shard_count: int = 1, shard_index: int = 0) -> LogStats:
        """The backlog of one materialiser's shard (all shards with the defaults)."""
        pending = ingest_log.c.quarantined_at.is_(None)
        where = [] if shard_count <= 1 else [(ingest_log.c.shard % shard_count) == shard_index]
        with self.store.engine.connect() as conn:
            row = conn.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.coalesce(sa.func.sum(ingest_log.c.points), 0),
                    sa.func.min(ingest_log.c.received_at),
                ).where(pending, *where)
            ).one()
            quarantined = conn.execute(
                sa.select(sa.func.count()).where(ingest_log.c.quarantined_at.is_not(None), *where)
            ).scalar_one()
        oldest = None if row[2] is None else float(row[2])
        return LogStats(int(row[0]), int(row[1]), oldest, int(quarantined))

    def materialise(
        self,
        *,
        shard_count: int = 1,
        shard_index: int = 0,
        max_points: int = GROUP_MAX_POINTS,
        max_batches: int = 4 * GROUP_MAX_BATCHES,
        cache: dict[int, IngestBatch] | None = None,
        decoder: LogDecoder | None = None,
    ) -> Materialised:
        """Apply the oldest pending log rows of a shard in one transaction, deleting them in it.

        Rows go in id order (per agent: seq order). A row that cannot be applied (its
        payload no longer decodes, or the database refuses its data) is rolled back to
        its savepoint and quarantined (kept, with the error), so it never blocks the rows
        behind it and is never silently lost. ``cache`` maps log ids to batches the
        caller still holds decoded (the appending worker; left unchanged); other rows are decoded from
        their payload with ``decoder``. Observers hear of the applied batches after the
        commit. On PostgreSQL, a transaction-scoped advisory lock per customer shard keeps
        two materialisers (two collectors) from applying one customer's rows at once.
        """
        cache = {} if cache is None else cache
        where: list[Any] = [ingest_log.c.quarantined_at.is_(None)]
        if shard_count > 1:
            where.append((ingest_log.c.shard % shard_count) == shard_index)
        with self.store.engine.connect() as conn:  # nothing pending: no write transaction at all
            if conn.execute(sa.select(ingest_log.c.id).where(*where).limit(1)).first() is None:
                return Materialised()
        known: dict[int, dict[SeriesRef, int]] = {}
        created: dict[SeriesRef, int] = {}
        now = self.store._clock()
        with self.store._write() as conn:
            rows = self.log_rows(conn, where, max_batches)
            if rows and not self.store._sqlite:
                locked = {
                    shard
                    for shard in sorted({r.shard for r in rows})
                    if conn.execute(
                        sa.text("SELECT pg_try_advisory_xact_lock(:key)"),
                        {"key": (_LOG_LOCK_NS << 32) | int(shard)},
                    ).scalar_one()
                }
                # Re-read under the locks: another materialiser may have applied some meanwhile.
                ids = [r.id for r in rows if r.shard in locked]
                rows = self.log_rows(conn, [*where, ingest_log.c.id.in_(ids)], max_batches) if ids else []
            total = 0
            for n, r in enumerate(rows):
                total += int(r.points)
                if total >= max_points and n + 1 < len(rows):
                    rows = rows[: n + 1]
                    break
            committed, done = self.apply_log_rows(conn, rows, cache, decoder, known, created, now)
        self.store.writes.remember_series(known)
        self.store._notify(committed)
        return done

    def log_rows(self, conn: sa.Connection, where: list[Any], limit: int) -> list[Any]:
        c = ingest_log.c
        return list(
            conn.execute(
                sa.select(
                    c.id,
                    c.shard,
                    c.agent_id,
                    c.token_id,
                    c.customer,
                    c.host,
                    c.host_id,
                    c.after_seq,
                    c.max_seq,
                    c.points,
                    c.received_at,
                )
                .where(*where)
                .order_by(c.id)
                .limit(limit)
            ).all()
        )

    def apply_log_rows(
        self,
        conn: sa.Connection,
        rows: Sequence[Any],
        cache: dict[int, IngestBatch],
        decoder: LogDecoder | None,
        known: dict[int, dict[SeriesRef, int]],
        created: dict[SeriesRef, int],
        now: float,
    ) -> tuple[list[Committed], Materialised]:
        """Apply log ``rows`` (in order) in ``conn``'s transaction; delete or quarantine each."""
        done = Materialised()
        committed: list[Committed] = []
        if not rows:
            return committed, done
        missing = [int(r.id) for r in rows if int(r.id) not in cache]
        payloads: dict[int, bytes] = {}
        if missing:
            payloads = {
                int(i): bytes(p)
                for i, p in conn.execute(
                    sa.select(ingest_log.c.id, ingest_log.c.payload).where(ingest_log.c.id.in_(missing))
                )
            }
            decoder = decoder or self.store._log_decoder
            if decoder is None:  # before any row is touched: nothing is quarantined for it
                raise StoreError("ingest log rows wait to be applied but the store has no log_decoder")
        bad: list[dict[str, Any]] = []
        for r in rows:
            log_id = int(r.id)
            agent = AgentIdentity(r.agent_id, r.customer, r.host, int(r.token_id))
            host_id = int(r.host_id)
            try:
                batch = cache.get(log_id)
                if batch is None:
                    assert decoder is not None
                    batch = decoder(payloads[log_id], float(r.received_at))
                with conn.begin_nested():
                    self.store.writes.apply_entries(
                        conn, agent, host_id, int(r.after_seq), batch, known, created, now
                    )
            except STORE_FAILED:
                raise  # the store, not this row, failed: the whole chunk is retried later
            except Exception as exc:
                # This row's data cannot be applied (refused, undecodable, or it hits a bug):
                # keep it aside with the reason, carry on with the rest.
                created.clear()
                log.exception("ingest log row %d (agent %s) quarantined", log_id, agent.agent_id)
                bad.append({"b_id": log_id, "b_at": now, "b_error": quarantine_reason(exc)})
                continue
            if created:
                known.setdefault(host_id, {}).update(created)
                created.clear()
            done.applied_ids.append(log_id)
            done.batches += 1
            done.points += int(r.points)
            committed.append(Committed(agent, host_id, int(r.after_seq), batch))
        if done.applied_ids:
            deleted = conn.execute(ingest_log.delete().where(ingest_log.c.id.in_(done.applied_ids))).rowcount
            if deleted != len(done.applied_ids):  # someone else applied them: undo ours
                raise StoreError(f"ingest log rows vanished while materialising ({deleted} deleted)")
        if bad:
            conn.execute(
                ingest_log.update()
                .where(ingest_log.c.id == sa.bindparam("b_id"))
                .values(quarantined_at=sa.bindparam("b_at"), error=sa.bindparam("b_error")),
                bad,
            )
            done.quarantined = len(bad)
        return committed, done
