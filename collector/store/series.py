"""Reads of stored metric series for reports: one series' points over a period."""

from __future__ import annotations

import json

import sqlalchemy as sa

from collector.store.schema import customers, hosts, points, points_rollup, series
from collector.store.store import Store

__all__ = ["SeriesRepo"]


class SeriesRepo:
    """Metric series of the store, read by customer, host, metric and labels."""

    def __init__(self, store: Store) -> None:
        self._engine = store.engine

    def points(
        self,
        customer: str,
        host: str,
        metric: str,
        labels: tuple[tuple[str, str], ...],
        start: float,
        end: float,
    ) -> tuple[str, list[tuple[float, float]]] | None:
        """(unit, points) of the series in [start, end]: raw points, else roll-up averages.

        The series with exactly ``labels`` when there is one, else the host's first series of
        ``metric``; None when the host has no series of that metric.
        """
        labels_key = json.dumps(sorted(labels), separators=(",", ":"))
        with self._engine.connect() as conn:
            candidates = conn.execute(
                sa.select(series.c.id, series.c.unit, series.c.labels_key)
                .join(hosts, hosts.c.id == series.c.host_id)
                .join(customers, customers.c.id == hosts.c.customer_id)
                .where(customers.c.slug == customer, hosts.c.name == host, series.c.name == metric)
                .order_by(series.c.id)
            ).all()
            if not candidates:
                return None
            chosen = next((c for c in candidates if c.labels_key == labels_key), candidates[0])
            raw = conn.execute(
                sa.select(points.c.ts, points.c.value)
                .where(points.c.series_id == chosen.id, points.c.ts >= start, points.c.ts <= end)
                .order_by(points.c.ts)
            ).all()
            if len(raw) < 2:
                raw = conn.execute(
                    sa.select(points_rollup.c.bucket_ts, points_rollup.c.avg)
                    .where(
                        points_rollup.c.series_id == chosen.id,
                        points_rollup.c.bucket_ts >= start,
                        points_rollup.c.bucket_ts <= end,
                    )
                    .order_by(points_rollup.c.bucket_ts)
                ).all()
        return str(chosen.unit), [(float(t), float(v)) for t, v in raw]

    def host_count(self, customer: str) -> int:
        """How many hosts the customer has."""
        with self._engine.connect() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count())
                    .select_from(hosts)
                    .join(customers, customers.c.id == hosts.c.customer_id)
                    .where(customers.c.slug == customer)
                ).scalar_one()
            )
