"""What a stored batch becomes: results (and the latest per check), series and points,
inventory (and its changes), agent health; the host touched. Shared by direct ingest
(:mod:`collector.store.ingest`) and the ingest log's materialiser (:mod:`collector.store.ingest_log`).

:class:`Writes` is one part of :class:`~collector.store.Store` (``store.writes``); it keeps
the committed series ids per host, so the hot path does one dict lookup per point.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from collector.store.batches import ColumnarBatch, SeriesRef, point_columns
from collector.store.fleet_state import refresh_host, touch_agent
from collector.store.inventory import extract_products, product_changes
from collector.store.schema import agent_health, inventory, inventory_changes, product_upgrades, series
from collector.store.session_audit import apply_session_entries
from collector.store.types import AgentIdentity, IngestBatch

if TYPE_CHECKING:
    from collector.store.store import Store

__all__ = ["Writes"]

_SERIES_CACHE_MAX = 2_000_000


def _labels_key(labels: tuple[tuple[str, str], ...]) -> str:
    return json.dumps(sorted(labels), separators=(",", ":"))


class Writes:
    """See the module docstring."""

    def __init__(self, store: Store) -> None:
        self.store = store
        # Committed series ids per host: one dict lookup per point on the ingest path.
        self._series_ids: dict[int, dict[SeriesRef, int]] = {}
        self._series_cached = 0

    def apply_entries(
        self,
        conn: sa.Connection,
        agent: AgentIdentity,
        host_id: int,
        stored: int,
        batch: IngestBatch,
        known: dict[int, dict[SeriesRef, int]],
        created: dict[SeriesRef, int],
        now: float,
    ) -> None:
        """Write the entries above ``stored``: results, points, inventory, health, sessions; touch
        the host and record the batch in the fleet state (after the host row's update, see
        fleet_state)."""
        results_changed = self._write_results(conn, agent, host_id, stored, batch)
        refs, values, spans = point_columns(batch)
        if refs:
            self._write_points(conn, host_id, stored, refs, values, spans, known.get(host_id, {}), created)
        for inv in sorted((i for i in batch.inventories if i.seq > stored), key=lambda i: i.seq):
            self._write_inventory(conn, agent, host_id, inv.seq, inv.ts, inv.document, inv.sha256)
        health_rows = {h.seq: h for h in batch.health if h.seq > stored}
        if health_rows:
            conn.execute(
                self.store._insert(agent_health).on_conflict_do_nothing(),
                [
                    {"agent_id": agent.agent_id, "seq": h.seq, "ts": h.ts, "document": h.document}
                    for h in health_rows.values()
                ],
            )
        if isinstance(batch, ColumnarBatch) and batch.sessions:
            apply_session_entries(conn, agent, [e for e in batch.sessions if e.seq > stored], now)
        skew = batch.clock_skew_s if isinstance(batch, ColumnarBatch) else 0.0
        # The host's clock skew is its current state: set by a batch stamped too far ahead,
        # cleared by the next batch that is not.
        conn.exec_driver_sql(
            self.store._sql["touch_host"], (now, now, skew or None, now if skew else None, host_id)
        )
        if results_changed:
            refresh_host(conn, host_id)
        touch_agent(conn, agent.agent_id, now, health_rows.values())

    def remember_series(self, known: dict[int, dict[SeriesRef, int]]) -> None:
        """Cache series ids created by a committed transaction (never before: a rollback orphans them)."""
        if not known:
            return
        with self.store._cache_lock:
            fresh = sum(len(ids) for ids in known.values())
            if self._series_cached + fresh > _SERIES_CACHE_MAX:
                self._series_ids.clear()
                self._series_cached = 0
            for host_id, ids in known.items():
                self._series_ids.setdefault(host_id, {}).update(ids)
            self._series_cached += fresh

    def _write_results(
        self, conn: sa.Connection, agent: AgentIdentity, host_id: int, stored: int, batch: IngestBatch
    ) -> bool:
        # Driver-level SQL with tuples: SQLAlchemy's per-row parameter processing cost more
        # than SQLite's own work here. findings_json is already JSON: stored as is.
        fresh: dict[int, tuple[Any, ...]] = {}
        newest: dict[str, tuple[Any, ...]] = {}
        for r in batch.results:
            if r.seq <= stored or r.seq in fresh:
                continue
            row = (
                host_id,
                r.check,
                agent.agent_id,
                r.seq,
                r.ts,
                r.layer,
                r.severity,
                r.key,
                r.summary,
                r.duration_ms,
                r.findings_json or "[]",
                r.inspection_id or None,
            )
            fresh[r.seq] = row
            current = newest.get(r.check)
            if current is None or (r.ts, r.seq) >= (current[4], current[3]):
                newest[r.check] = row
        if fresh:
            if self.store._sqlite:
                conn.exec_driver_sql(self.store._sql["insert_result"], list(fresh.values()))
                conn.exec_driver_sql(self.store._sql["upsert_latest"], list(newest.values()))
            else:  # one statement over column arrays each: a pipelined row per result cost 4x more
                for sql, rows in (("insert_result", fresh), ("upsert_latest", newest)):
                    conn.exec_driver_sql(
                        self.store._sql[sql], tuple(list(c) for c in zip(*rows.values(), strict=True))
                    )
        return bool(fresh)

    def _write_points(
        self,
        conn: sa.Connection,
        host_id: int,
        stored: int,
        refs: list[SeriesRef],
        values: list[float],
        spans: list[tuple[int, float, int]],
        known: dict[SeriesRef, int],
        created: dict[SeriesRef, int],
    ) -> None:
        """Insert the points of entries above ``stored``.

        ``known``: this host's series created earlier in this transaction (not cached
        until it commits); ``created`` receives the series this call creates.
        """
        cache = self._series_ids.get(host_id, {})
        rows: list[tuple[int, float, float]] = []
        append = rows.append
        holes: list[tuple[int, SeriesRef]] = []
        start = 0
        for seq, ts, end in spans:
            if seq > stored:
                for ref, value in zip(refs[start:end], values[start:end], strict=True):
                    sid = cache.get(ref) or known.get(ref)
                    if sid is None:
                        holes.append((len(rows), ref))
                        sid = 0
                    append((sid, ts, value))
            start = end
        if holes:
            created.update(self._create_series(conn, host_id, {ref: None for _, ref in holes}))
            for i, ref in holes:
                _, ts, value = rows[i]
                rows[i] = (created[ref], ts, value)
        if not rows:
            return
        if self.store._sqlite:
            conn.exec_driver_sql(self.store._sql["insert_points"], rows)
        else:
            ids, stamps, vals = (list(c) for c in zip(*rows, strict=True))
            conn.exec_driver_sql(self.store._sql["insert_points"], (ids, stamps, vals))

    def _create_series(
        self, conn: sa.Connection, host_id: int, missing: dict[SeriesRef, None]
    ) -> dict[SeriesRef, int]:
        rows = [
            {
                "host_id": host_id,
                "check": check,
                "name": name,
                "unit": unit,
                "labels": dict(labels),
                "labels_key": _labels_key(labels),
            }
            for check, name, unit, labels in missing
        ]
        conn.execute(
            self.store._insert(series).on_conflict_do_nothing(
                index_elements=["host_id", "name", "labels_key"]
            ),
            rows,
        )
        names = sorted({ref[1] for ref in missing})
        found = {
            (r.name, r.labels_key): int(r.id)
            for r in conn.execute(
                sa.select(series.c.id, series.c.name, series.c.labels_key).where(
                    series.c.host_id == host_id, series.c.name.in_(names)
                )
            )
        }
        return {ref: found[(ref[1], _labels_key(ref[3]))] for ref in missing}

    def _write_inventory(
        self,
        conn: sa.Connection,
        agent: AgentIdentity,
        host_id: int,
        seq: int,
        ts: float,
        document: dict[str, Any],
        sha256: str,
    ) -> None:
        current = conn.execute(
            sa.select(inventory.c.document, inventory.c.sha256).where(inventory.c.host_id == host_id)
        ).first()
        if current is not None and current.sha256 == sha256:
            # The same document again (an agent re-sends it after a restart): no change to
            # record, but the entry's seq is recorded as the document's latest confirmation.
            conn.execute(
                inventory.update()
                .where(inventory.c.host_id == host_id, inventory.c.seq < seq)
                .values(agent_id=agent.agent_id, seq=seq, ts=ts)
            )
            return
        changes: list[tuple[str, str | None, str | None]] = []
        if current is not None:
            # The first inventory of a host is its baseline, not a list of upgrades.
            changes = product_changes(extract_products(current.document), extract_products(document))
        conn.execute(
            inventory_changes.insert().values(
                host_id=host_id,
                agent_id=agent.agent_id,
                seq=seq,
                ts=ts,
                sha256=sha256,
                previous_sha256=None if current is None else current.sha256,
                document=document,
                changes=[{"product": p, "from": a, "to": b} for p, a, b in changes],
            )
        )
        if changes:
            conn.execute(
                self.store._insert(product_upgrades).on_conflict_do_nothing(),
                [
                    {
                        "host_id": host_id,
                        "agent_id": agent.agent_id,
                        "product": product,
                        "from_version": before,
                        "to_version": after,
                        "ts": ts,
                        "seq": seq,
                    }
                    for product, before, after in changes
                ],
            )
        values = {"agent_id": agent.agent_id, "seq": seq, "ts": ts, "document": document, "sha256": sha256}
        stmt = self.store._insert(inventory).values(host_id=host_id, **values)
        conn.execute(stmt.on_conflict_do_update(index_elements=["host_id"], set_=values))

    def plain_insert_points(self, rows: Sequence[tuple[int, float, float]]) -> None:
        """Benchmark baseline: ``rows`` of (series_id, ts, value) in one transaction.

        The ingest's own points INSERT (executemany on SQLite, one unnest statement on
        PostgreSQL) taken alone: no decode, no agent row, no series lookup, no results.
        """
        with self.store._write() as conn:
            if self.store._sqlite:
                conn.exec_driver_sql(self.store._sql["insert_points"], list(rows))
            else:
                ids, stamps, values = (list(c) for c in zip(*rows, strict=True))
                conn.exec_driver_sql(self.store._sql["insert_points"], (ids, stamps, values))
