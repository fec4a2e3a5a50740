"""What the ingest path of the store takes and returns: batches, ingest-log requests and figures."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa

from collector.store.types import AgentIdentity, IngestBatch, PointRow, SessionEntryRow

__all__ = [
    "GROUP_MAX_BATCHES",
    "GROUP_MAX_POINTS",
    "STORE_FAILED",
    "ColumnarBatch",
    "LogAppend",
    "LogDecoder",
    "LogStats",
    "Materialised",
    "SeriesRef",
    "point_columns",
    "point_count",
    "quarantine_reason",
]

GROUP_MAX_BATCHES = 64
"""At most this many batches, and about GROUP_MAX_POINTS points, go into one ingest commit."""
GROUP_MAX_POINTS = 50_000


STORE_FAILED = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.InternalError)
"""Errors that mean the store failed (connection, disk, locks), not one batch's data."""


def quarantine_reason(exc: BaseException) -> str:
    """The reason kept with a quarantined batch (engineers only see it; at most 2000 characters)."""
    return f"{type(exc).__name__}: {exc}"[:2000]


@dataclass(frozen=True, slots=True)
class LogAppend:
    """One validated batch to append to the ingest log."""

    agent: AgentIdentity
    payload: bytes
    """The EntryBatch bytes as received; the materialiser decodes them again after a restart."""
    max_seq: int
    points: int


@dataclass(frozen=True, slots=True)
class LogStats:
    """The ingest log's backlog (rows not yet materialised) and its quarantine."""

    pending_batches: int
    pending_points: int
    oldest_received_at: float | None
    quarantined: int

    def lag_seconds(self, now: float) -> float:
        return 0.0 if self.oldest_received_at is None else max(0.0, now - self.oldest_received_at)


@dataclass(slots=True)
class Materialised:
    """What one :meth:`Store.materialise` call did."""

    batches: int = 0
    points: int = 0
    quarantined: int = 0
    applied_ids: list[int] = field(default_factory=list)


LogDecoder = Callable[[bytes, float], IngestBatch]
"""Turns a logged payload back into a batch (:func:`collector.ingest.decode.decode_logged`)."""


SeriesRef = tuple[str, str, str, tuple[tuple[str, str], ...]]
"""(check, name, unit, labels) of a point: what the store needs to find or create its series."""


@dataclass(slots=True)
class ColumnarBatch(IngestBatch):
    """An :class:`IngestBatch` whose points are columns, as :func:`collector.ingest.decode` builds it.

    No object per point: ``points`` stays empty, and point ``i`` is the series
    ``point_refs[i]`` with the value ``point_values[i]``. ``point_spans`` holds one
    ``(seq, ts, end)`` per result with points, in order: the points from the previous
    span's ``end`` up to this ``end`` (exclusive) belong to the entry ``seq`` at ``ts``.

    >>> b = ColumnarBatch(2, 1, [], [], [], [], [("host.x", "a_ratio", "ratio", ())], [0.5], [(2, 9.0, 1)])
    >>> b.point_rows(), point_count(b)
    ([PointRow(seq=2, ts=9.0, check='host.x', name='a_ratio', unit='ratio', labels=(), value=0.5)], 1)
    """

    point_refs: list[SeriesRef] = field(default_factory=list)
    point_values: list[float] = field(default_factory=list)
    point_spans: list[tuple[int, float, int]] = field(default_factory=list)
    clock_skew_s: float = 0.0
    """How far ahead of the collector's clock the furthest entry was stamped (0: none was
    implausible); those entries carry their arrival time instead (see ``ingest.decode``)."""
    sessions: list[SessionEntryRow] = field(default_factory=list)
    """Spooled session entries (recording chunks, host-side events): see ``store.session_audit``."""

    def point_rows(self) -> list[PointRow]:
        """The points as :class:`PointRow` objects (for tests and tools, not the hot path)."""
        rows: list[PointRow] = []
        start = 0
        for seq, ts, end in self.point_spans:
            for (check, name, unit, labels), value in zip(
                self.point_refs[start:end], self.point_values[start:end], strict=True
            ):
                rows.append(PointRow(seq, ts, check, name, unit, labels, value))
            start = end
        return rows


def point_count(batch: IngestBatch) -> int:
    """How many metric points ``batch`` carries, whichever way they are held."""
    return len(batch.point_values) if isinstance(batch, ColumnarBatch) else len(batch.points)


_Columns = tuple[list[SeriesRef], list[float], list[tuple[int, float, int]]]


def point_columns(batch: IngestBatch) -> _Columns:
    if isinstance(batch, ColumnarBatch):
        return batch.point_refs, batch.point_values, batch.point_spans
    refs: list[SeriesRef] = []
    values: list[float] = []
    spans: list[tuple[int, float, int]] = []
    for p in batch.points:
        refs.append((p.check, p.name, p.unit, p.labels))
        values.append(p.value)
        if spans and spans[-1][0] == p.seq and spans[-1][1] == p.ts:
            spans[-1] = (p.seq, p.ts, len(refs))
        else:
            spans.append((p.seq, p.ts, len(refs)))
    return refs, values, spans
