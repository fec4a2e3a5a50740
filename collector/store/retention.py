"""Retention: raw points roll up into 5-minute buckets, old rows go away.

Each kind of data keeps its own horizon (:class:`RetentionPolicy`). Raw points older
than ``raw_points_days`` are folded into ``points_rollup`` (min, max, avg, count per
bucket) and deleted, a range of series per transaction so the SQLite write lock is
never held for long. A bucket that was already rolled up (points that arrived late)
is merged, never overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

__all__ = ["RetentionPolicy", "delete_older", "rollup_chunk", "rollup_cutoff"]

DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    raw_points_days: float = 14.0
    rollup_days: float = 400.0
    results_days: float = 90.0
    health_days: float = 14.0
    gaps_days: float = 365.0
    rollup_resolution_s: int = 300
    series_per_transaction: int = 500

    def __post_init__(self) -> None:
        for name in ("raw_points_days", "rollup_days", "results_days", "health_days", "gaps_days"):
            if getattr(self, name) <= 0:
                raise ValueError(f"retention {name} must be > 0")
        if self.rollup_resolution_s <= 0 or self.series_per_transaction <= 0:
            raise ValueError("rollup_resolution_s and series_per_transaction must be > 0")


_ROLLUP_SQL = {
    "sqlite": """
        INSERT INTO points_rollup (series_id, resolution_s, bucket_ts, min, max, avg, count)
        SELECT series_id, :res, CAST(ts / :res AS INTEGER) * :res AS bucket,
               MIN(value), MAX(value), AVG(value), COUNT(*)
        FROM points WHERE ts < :cutoff AND series_id BETWEEN :lo AND :hi
        GROUP BY series_id, bucket
        ON CONFLICT (series_id, resolution_s, bucket_ts) DO UPDATE SET
            min = MIN(points_rollup.min, excluded.min),
            max = MAX(points_rollup.max, excluded.max),
            avg = (points_rollup.avg * points_rollup.count + excluded.avg * excluded.count)
                  / (points_rollup.count + excluded.count),
            count = points_rollup.count + excluded.count
    """,
    "postgresql": """
        INSERT INTO points_rollup (series_id, resolution_s, bucket_ts, min, max, avg, count)
        SELECT series_id, :res, floor(ts / :res) * :res AS bucket,
               MIN(value), MAX(value), AVG(value), COUNT(*)
        FROM points WHERE ts < :cutoff AND series_id BETWEEN :lo AND :hi
        GROUP BY series_id, bucket
        ON CONFLICT (series_id, resolution_s, bucket_ts) DO UPDATE SET
            min = LEAST(points_rollup.min, excluded.min),
            max = GREATEST(points_rollup.max, excluded.max),
            avg = (points_rollup.avg * points_rollup.count + excluded.avg * excluded.count)
                  / (points_rollup.count + excluded.count),
            count = points_rollup.count + excluded.count
    """,
}


def rollup_cutoff(policy: RetentionPolicy, now: float) -> float:
    """Raw points before this go: aligned to a bucket so no bucket is split.

    >>> rollup_cutoff(RetentionPolicy(raw_points_days=1), 86_400 + 1_000)
    900.0
    """
    res = policy.rollup_resolution_s
    return float(int((now - policy.raw_points_days * DAY) // res) * res)


def rollup_chunk(conn: sa.Connection, policy: RetentionPolicy, cutoff: float, lo: int, hi: int) -> int:
    """Roll up and delete raw points of series ``lo..hi`` before ``cutoff``; rows deleted."""
    params = {"res": policy.rollup_resolution_s, "cutoff": cutoff, "lo": lo, "hi": hi}
    conn.execute(sa.text(_ROLLUP_SQL[conn.dialect.name]), params)
    deleted = conn.execute(
        sa.text("DELETE FROM points WHERE ts < :cutoff AND series_id BETWEEN :lo AND :hi"), params
    )
    return int(deleted.rowcount or 0)


def delete_older(conn: sa.Connection, table: str, column: str, before: float) -> int:
    # Identifiers come from Store.apply_retention's constants, never from input.
    result = conn.execute(sa.text(f"DELETE FROM {table} WHERE {column} < :before"), {"before": before})
    return int(result.rowcount or 0)
