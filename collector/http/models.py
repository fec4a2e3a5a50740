"""Request and response models of the JSON API (``/api/v1``): the OpenAPI schema's source."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from collector.http.pages import CURSOR_DESCRIPTION
from collector.store import (
    AgentInfo,
    GapInfo,
    HostDetail,
    HostSummary,
    QuarantinedInfo,
    ResultInfo,
    UpgradeInfo,
)

__all__ = [
    "AgentOut",
    "EnrollRequest",
    "EnrollResponse",
    "GapOut",
    "HostDetailOut",
    "HostOut",
    "ResultOut",
    "RevokeResponse",
    "UpgradeOut",
]

MAX_LIMIT = 1000
SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
"""A customer slug, as the store accepts it."""


def _time(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class _Query(BaseModel):
    # Unknown query parameters are a client mistake worth a 422, not something to ignore.
    model_config = ConfigDict(extra="forbid")


class NoQuery(_Query):
    pass


class CustomerQuery(_Query):
    customer: str | None = Field(
        default=None, max_length=63, pattern=SLUG_PATTERN, description="Only this customer (engineers)."
    )


class HostQuery(CustomerQuery):
    host: str | None = Field(default=None, max_length=253)


class ListQuery(CustomerQuery):
    """One page of a list ordered by name (hosts, agents)."""

    limit: int = Field(default=100, ge=1, le=MAX_LIMIT)
    cursor: str | None = Field(default=None, max_length=200, description=CURSOR_DESCRIPTION)


class UpgradesQuery(HostQuery):
    limit: int = Field(default=100, ge=1, le=MAX_LIMIT)
    cursor: str | None = Field(default=None, max_length=200, description=CURSOR_DESCRIPTION)


class QuarantineQuery(HostQuery):
    limit: int = Field(default=100, ge=1, le=MAX_LIMIT)


class GapsQuery(HostQuery):
    limit: int = Field(default=100, ge=1, le=MAX_LIMIT)
    cursor: str | None = Field(default=None, max_length=200, description=CURSOR_DESCRIPTION)


class ResultsQuery(_Query):
    host: str = Field(max_length=253)
    customer: str | None = Field(default=None, max_length=63, pattern=SLUG_PATTERN)
    check: str | None = Field(default=None, max_length=128)
    since: datetime | None = Field(
        default=None, description="ISO 8601 time (or Unix seconds), 1970 to 9999: results at or after it."
    )
    limit: int = Field(default=100, ge=1, le=MAX_LIMIT)
    cursor: str | None = Field(default=None, max_length=200, description=CURSOR_DESCRIPTION)

    @field_validator("since")
    @classmethod
    def _plausible_since(cls, value: datetime | None) -> datetime | None:
        # Year 1 is a valid ISO date but not an epoch second: .timestamp() fails on it.
        if value is not None and value.year < 1970:
            raise ValueError("must be 1970-01-01 or later")
        return value


class HostOut(_Out):
    customer: str
    name: str
    labels: dict[str, str]
    first_seen: datetime | None
    last_seen: datetime | None
    worst_severity: str | None = Field(description="Worst severity among the latest result of every check.")
    severity_counts: dict[str, int]
    clock_skew_s: float | None = Field(
        default=None,
        description="Seconds the agent's latest batch was stamped ahead of the collector's clock, "
        "when beyond the allowed skew (its timestamps were replaced by their arrival); "
        "null while its clock is fine.",
    )

    @classmethod
    def of(cls, h: HostSummary) -> HostOut:
        return cls(
            customer=h.customer,
            name=h.name,
            labels=h.labels,
            first_seen=_time(h.first_seen),
            last_seen=_time(h.last_seen),
            worst_severity=h.worst_severity,
            severity_counts=h.severity_counts,
            clock_skew_s=h.clock_skew_s,
        )


class ResultOut(_Out):
    host: str
    check: str
    layer: str
    ts: datetime
    severity: str
    key: str
    summary: str
    duration_ms: float
    findings: list[dict[str, Any]]
    inspection_id: str | None
    agent_id: str
    seq: int

    @classmethod
    def of(cls, r: ResultInfo) -> ResultOut:
        return cls(
            host=r.host,
            check=r.check,
            layer=r.layer,
            ts=datetime.fromtimestamp(r.ts, UTC),
            severity=r.severity,
            key=r.key,
            summary=r.summary,
            duration_ms=r.duration_ms,
            findings=r.findings,
            inspection_id=r.inspection_id,
            agent_id=r.agent_id,
            seq=r.seq,
        )


class HostDetailOut(_Out):
    host: HostOut
    facts: dict[str, Any]
    layers: dict[str, list[ResultOut]] = Field(description="Latest result per check, lowest layer first.")

    @classmethod
    def of(cls, d: HostDetail) -> HostDetailOut:
        return cls(
            host=HostOut.of(d.host),
            facts=d.facts,
            layers={layer: [ResultOut.of(r) for r in rows] for layer, rows in d.layers.items()},
        )


class AgentOut(_Out):
    agent_id: str
    customer: str
    host: str
    token_prefix: str = Field(description="First 8 characters of the token, to tell tokens apart.")
    created_at: datetime
    revoked_at: datetime | None
    last_seen_at: datetime | None
    agent_version: str | None
    max_seq: int = Field(description="Highest sequence number stored for this agent.")

    @classmethod
    def of(cls, a: AgentInfo) -> AgentOut:
        return cls(
            agent_id=a.agent_id,
            customer=a.customer,
            host=a.host,
            token_prefix=a.token_prefix,
            created_at=datetime.fromtimestamp(a.created_at, UTC),
            revoked_at=_time(a.revoked_at),
            last_seen_at=_time(a.last_seen_at),
            agent_version=a.agent_version,
            max_seq=a.max_seq,
        )


class GapOut(_Out):
    agent_id: str
    customer: str
    host: str
    first_seq: int
    last_seq: int
    count: int
    reason: str
    dropped_at: datetime
    recorded_at: datetime

    @classmethod
    def of(cls, g: GapInfo) -> GapOut:
        return cls(
            agent_id=g.agent_id,
            customer=g.customer,
            host=g.host,
            first_seq=g.first_seq,
            last_seq=g.last_seq,
            count=g.count,
            reason=g.reason,
            dropped_at=datetime.fromtimestamp(g.dropped_at, UTC),
            recorded_at=datetime.fromtimestamp(g.recorded_at, UTC),
        )


class QuarantinedOut(_Out):
    log_id: int
    agent_id: str
    customer: str
    host: str
    first_seq: int
    last_seq: int
    points: int
    received_at: datetime
    quarantined_at: datetime
    error: str = Field(description="Why it could not be applied (the exception, as logged).")

    @classmethod
    def of(cls, q: QuarantinedInfo) -> QuarantinedOut:
        return cls(
            log_id=q.log_id,
            agent_id=q.agent_id,
            customer=q.customer,
            host=q.host,
            first_seq=q.first_seq,
            last_seq=q.last_seq,
            points=q.points,
            received_at=datetime.fromtimestamp(q.received_at, UTC),
            quarantined_at=datetime.fromtimestamp(q.quarantined_at, UTC),
            error=q.error,
        )


class UpgradeOut(_Out):
    customer: str
    host: str
    product: str
    from_version: str | None = Field(description="None: the product appeared.")
    to_version: str | None = Field(description="None: the product was removed.")
    ts: datetime
    agent_id: str

    @classmethod
    def of(cls, u: UpgradeInfo) -> UpgradeOut:
        return cls(
            customer=u.customer,
            host=u.host,
            product=u.product,
            from_version=u.from_version,
            to_version=u.to_version,
            ts=datetime.fromtimestamp(u.ts, UTC),
            agent_id=u.agent_id,
        )


class EnrollRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer: str = Field(
        min_length=1, max_length=63, pattern=SLUG_PATTERN, description="Customer slug, e.g. acme."
    )
    host: str | None = Field(default=None, max_length=253, description="Host name (default: the agent id).")
    agent_id: str | None = Field(default=None, max_length=253, description="Agent id (default: generated).")


class EnrollResponse(_Out):
    agent_id: str
    customer: str
    host: str
    token: str = Field(description="The agent token. Shown once: it is stored only as a hash.")
    config: str = Field(description="Lines for the agent's config.yaml.")
    command: str = Field(description="The equivalent diag-agent command line.")


class RevokeResponse(_Out):
    agent_id: str
    revoked: bool
