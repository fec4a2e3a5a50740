"""Plain data types exchanged between the gRPC transport and the store.

The transport (collector/grpc) converts protobuf messages into these rows and
hands them to :class:`collector.store.Store`; nothing in here imports SQLAlchemy
or gRPC, so both sides can depend on it cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = [
    "AgentIdentity",
    "ColumnarBatch",
    "GapRow",
    "HealthRow",
    "HostFactsRow",
    "IngestBatch",
    "InventoryRow",
    "PointColumns",
    "PointRow",
    "ResultRow",
    "SeriesRef",
    "point_columns",
    "point_count",
]


@dataclass(frozen=True, slots=True)
class AgentIdentity:
    agent_id: str
    customer: str  # customer slug, e.g. "acme"
    host: str  # host name the agent was enrolled for (or its agent_id)
    token_id: int


class ResultRow(NamedTuple):
    """One check result as stored. A named tuple, not a frozen dataclass: ingest builds one
    per result on its hot path, and a frozen dataclass's ``__init__`` costs four times as much."""

    seq: int
    ts: float
    check: str
    layer: str
    severity: str
    key: str
    summary: str
    duration_ms: float
    findings_json: str
    inspection_id: str | None


@dataclass(frozen=True, slots=True)
class PointRow:
    seq: int
    ts: float
    check: str
    name: str
    unit: str
    labels: tuple[tuple[str, str], ...]
    value: float


@dataclass(frozen=True, slots=True)
class InventoryRow:
    seq: int
    ts: float
    document: dict[str, Any]
    sha256: str


@dataclass(frozen=True, slots=True)
class HealthRow:
    seq: int
    ts: float
    document: dict[str, Any]


@dataclass(frozen=True, slots=True)
class GapRow:
    first_seq: int
    last_seq: int
    count: int
    reason: str
    dropped_at: float


@dataclass(slots=True)
class IngestBatch:
    max_seq: int  # highest seq in the batch (all entry kinds)
    min_seq: int
    results: list[ResultRow]
    points: list[PointRow]
    inventories: list[InventoryRow]
    health: list[HealthRow]


@dataclass(frozen=True, slots=True)
class HostFactsRow:
    hostname: str
    agent_version: str
    labels: dict[str, str]
    os_id: str
    os_version: str
    kernel: str
    arch: str
    cpu_count: int
    memory_bytes: int
    boot_time: float


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


PointColumns = tuple[list[SeriesRef], list[float], list[tuple[int, float, int]]]


def point_columns(batch: IngestBatch) -> PointColumns:
    """The batch's points as (series refs, values, spans), whichever way they are held."""
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
