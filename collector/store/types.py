"""Plain data types exchanged between the gRPC transport and the store.

The transport (collector/grpc) converts protobuf messages into these rows and
hands them to :class:`collector.store.Store`; nothing in here imports SQLAlchemy
or gRPC, so both sides can depend on it cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = [
    "AgentIdentity",
    "GapRow",
    "HealthRow",
    "HostFactsRow",
    "IngestBatch",
    "InventoryRow",
    "PointRow",
    "ResultRow",
    "SessionEntryRow",
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
class SessionEntryRow:
    """A spooled session entry: an asciicast chunk (``kind="chunk"``) or a host-side event."""

    seq: int
    ts: float
    kind: str  # "chunk" | "event"
    session_id: str
    index: int = 0
    data: bytes = b""
    last: bool = False
    sha256: str = ""
    event: str = ""
    actor: str = ""
    detail: str = ""


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
