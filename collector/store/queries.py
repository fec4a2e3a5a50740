"""Read queries that serve people: always scoped to what the caller may see.

A :class:`Scope` is all customers (engineers) or exactly one (customer admins and
viewers). Every function here filters by it in SQL, so a host of another customer is
indistinguishable from a host that does not exist.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from checks.api import Layer, Severity
from collector.store.errors import Conflict, NotFound
from collector.store.schema import (
    agents,
    check_results,
    customers,
    gaps,
    hosts,
    latest_results,
    product_upgrades,
)
from collector.store.schema_ingest_log import ingest_log

__all__ = [
    "AgentInfo",
    "GapInfo",
    "HostDetail",
    "HostSummary",
    "QuarantinedInfo",
    "ResultInfo",
    "Scope",
    "UpgradeInfo",
    "count_rows",
    "host_detail",
    "list_agents",
    "list_gaps",
    "list_hosts",
    "list_quarantined",
    "list_results",
    "list_upgrades",
    "resolve_host",
]

_LAYER_ORDER = {layer.value: index for index, layer in enumerate(Layer)}
_SEVERITIES = [s.value for s in Severity]


@dataclass(frozen=True, slots=True)
class Scope:
    """What a caller may read: ``customer=None`` means every customer.

    >>> Scope.everything().allows("acme"), Scope.of("acme").allows("globex")
    (True, False)
    """

    customer: str | None

    @classmethod
    def everything(cls) -> Scope:
        return cls(None)

    @classmethod
    def of(cls, customer: str) -> Scope:
        return cls(customer)

    def allows(self, customer: str) -> bool:
        return self.customer is None or self.customer == customer

    def where(self) -> sa.ColumnElement[bool]:
        """SQL condition on ``customers.slug`` (the query must join customers)."""
        return sa.true() if self.customer is None else customers.c.slug == self.customer


@dataclass(frozen=True, slots=True)
class ResultInfo:
    host: str
    check: str
    layer: str
    ts: float
    severity: str
    key: str
    summary: str
    duration_ms: float
    findings: list[dict[str, Any]]
    inspection_id: str | None
    agent_id: str
    seq: int
    row_id: int = 0
    """The row's id: with ``ts``, the position a page of results continues from."""


@dataclass(frozen=True, slots=True)
class HostSummary:
    customer: str
    name: str
    labels: dict[str, str]
    first_seen: float | None
    last_seen: float | None
    worst_severity: str | None
    """Worst severity among the latest result of every check (None: no results yet)."""
    severity_counts: dict[str, int]
    clock_skew_s: float | None = None
    """How far ahead of the collector's clock the agent's latest batch was stamped, when
    beyond the allowed skew (a health problem: its timestamps were replaced by arrival)."""


@dataclass(frozen=True, slots=True)
class HostDetail:
    host: HostSummary
    facts: dict[str, Any]
    layers: dict[str, list[ResultInfo]] = field(default_factory=dict)
    """Latest result per check, grouped by layer (lowest layer first), checks sorted."""


@dataclass(frozen=True, slots=True)
class AgentInfo:
    agent_id: str
    customer: str
    host: str
    token_prefix: str
    created_at: float
    revoked_at: float | None
    last_seen_at: float | None
    agent_version: str | None
    max_seq: int


@dataclass(frozen=True, slots=True)
class GapInfo:
    agent_id: str
    customer: str
    host: str
    first_seq: int
    last_seq: int
    count: int
    reason: str
    dropped_at: float
    recorded_at: float
    row_id: int = 0
    """The row's id: with ``dropped_at``, the position a page of gaps continues from."""


@dataclass(frozen=True, slots=True)
class QuarantinedInfo:
    """An ingest-log row the materialiser could not apply: acknowledged, kept, not stored."""

    log_id: int
    agent_id: str
    customer: str
    host: str
    first_seq: int
    """``first_seq..last_seq``: the seqs this row made durable (the agent's durable seq was
    ``first_seq - 1`` when it was logged); the agent will not send them again."""
    last_seq: int
    points: int
    received_at: float
    quarantined_at: float
    error: str


@dataclass(frozen=True, slots=True)
class UpgradeInfo:
    customer: str
    host: str
    product: str
    from_version: str | None
    to_version: str | None
    ts: float
    agent_id: str
    row_id: int = 0  # the position a page of upgrades ended at (see list_upgrades)


def _findings(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):  # JSON stored by an older writer as text
        value = json.loads(value)
    return list(value) if isinstance(value, list) else []


def resolve_host(
    conn: sa.Connection, scope: Scope, host: str, customer: str | None = None
) -> tuple[int, str]:
    """``(host_id, customer slug)`` of a host the scope can see; NotFound or Conflict."""
    query = (
        sa.select(hosts.c.id, customers.c.slug)
        .join(customers, customers.c.id == hosts.c.customer_id)
        .where(hosts.c.name == host, scope.where())
    )
    if customer is not None:
        query = query.where(customers.c.slug == customer)
    rows = conn.execute(query).all()
    if not rows:
        raise NotFound(f"no host {host!r}" + (f" for customer {customer!r}" if customer else ""))
    if len(rows) > 1:
        owners = ", ".join(sorted(r.slug for r in rows))
        raise Conflict(f"host name {host!r} exists for several customers ({owners}): name the customer")
    return int(rows[0].id), str(rows[0].slug)


def list_hosts(
    conn: sa.Connection, scope: Scope, *, limit: int | None = None, offset: int = 0
) -> list[HostSummary]:
    """Hosts by customer and name; ``limit``/``offset``: one page of them."""
    counts = (
        sa.select(latest_results.c.host_id, latest_results.c.severity, sa.func.count().label("n"))
        .group_by(latest_results.c.host_id, latest_results.c.severity)
        .subquery()
    )
    per_host: dict[int, dict[str, int]] = {}
    host_rows = conn.execute(
        sa.select(hosts, customers.c.slug)
        .join(customers, customers.c.id == hosts.c.customer_id)
        .where(scope.where())
        .order_by(customers.c.slug, hosts.c.name, hosts.c.id)
        .limit(limit)
        .offset(offset)
    ).all()
    ids = [r.id for r in host_rows]
    if ids:
        for row in conn.execute(sa.select(counts).where(counts.c.host_id.in_(ids))):
            per_host.setdefault(row.host_id, {})[row.severity] = int(row.n)
    return [_summary(row, per_host.get(row.id, {})) for row in host_rows]


def _summary(row: Any, counts: dict[str, int]) -> HostSummary:
    worst: str | None = None
    if counts:
        known = [Severity(s) for s in counts if s in _SEVERITIES]
        worst = Severity.worst(*known).value if known else None
    return HostSummary(
        customer=row.slug,
        name=row.name,
        labels=dict(row.labels or {}),
        first_seen=row.first_seen,
        last_seen=row.last_seen,
        worst_severity=worst,
        severity_counts=dict(sorted(counts.items())),
        clock_skew_s=None if row.clock_skew_s is None else float(row.clock_skew_s),
    )


def host_detail(conn: sa.Connection, scope: Scope, host: str, customer: str | None = None) -> HostDetail:
    host_id, _slug = resolve_host(conn, scope, host, customer)
    row = conn.execute(
        sa.select(hosts, customers.c.slug)
        .join(customers, customers.c.id == hosts.c.customer_id)
        .where(hosts.c.id == host_id)
    ).one()
    latest = conn.execute(
        sa.select(latest_results).where(latest_results.c.host_id == host_id).order_by(latest_results.c.check)
    ).all()
    counts: dict[str, int] = {}
    layers: dict[str, list[ResultInfo]] = {}
    for r in sorted(latest, key=lambda r: (_LAYER_ORDER.get(r.layer, len(_LAYER_ORDER)), r.layer, r.check)):
        counts[r.severity] = counts.get(r.severity, 0) + 1
        layers.setdefault(r.layer, []).append(_result(r, host))
    return HostDetail(host=_summary(row, counts), facts=dict(row.facts or {}), layers=layers)


def _result(r: Any, host: str) -> ResultInfo:
    return ResultInfo(
        host=host,
        check=r.check,
        layer=r.layer,
        ts=r.ts,
        severity=r.severity,
        key=r.key,
        summary=r.summary,
        duration_ms=r.duration_ms,
        findings=_findings(r.findings),
        inspection_id=r.inspection_id,
        agent_id=r.agent_id,
        seq=int(r.seq),
        row_id=int(r._mapping.get("id", 0) or 0),
    )


def _before(ts_column: Any, id_column: Any, before: tuple[float, int] | None) -> sa.ColumnElement[bool]:
    """Rows after ``before`` in (ts, id) descending order: where the previous page ended."""
    if before is None:
        return sa.true()
    ts, row_id = before
    return sa.or_(ts_column < ts, sa.and_(ts_column == ts, id_column < row_id))


def list_results(
    conn: sa.Connection,
    scope: Scope,
    host: str,
    *,
    check: str | None = None,
    since: float | None = None,
    limit: int = 100,
    customer: str | None = None,
    before: tuple[float, int] | None = None,
) -> list[ResultInfo]:
    """Results of one host, newest first; ``before``: (ts, row id) the previous page ended at."""
    host_id, _slug = resolve_host(conn, scope, host, customer)
    query = sa.select(check_results).where(
        check_results.c.host_id == host_id, _before(check_results.c.ts, check_results.c.id, before)
    )
    if check is not None:
        query = query.where(check_results.c.check == check)
    if since is not None:
        query = query.where(check_results.c.ts >= since)
    query = query.order_by(check_results.c.ts.desc(), check_results.c.id.desc()).limit(limit)
    return [_result(r, host) for r in conn.execute(query)]


def list_agents(
    conn: sa.Connection, scope: Scope, *, limit: int | None = None, offset: int = 0
) -> list[AgentInfo]:
    """Agents by customer, host and id; ``limit``/``offset``: one page of them."""
    rows = conn.execute(
        sa.select(agents, customers.c.slug)
        .join(customers, customers.c.id == agents.c.customer_id)
        .where(scope.where())
        .order_by(customers.c.slug, agents.c.host, agents.c.agent_id)
        .limit(limit)
        .offset(offset)
    )
    return [
        AgentInfo(
            agent_id=r.agent_id,
            customer=r.slug,
            host=r.host,
            token_prefix=r.token_prefix,
            created_at=r.created_at,
            revoked_at=r.revoked_at,
            last_seen_at=r.last_seen_at,
            agent_version=r.agent_version,
            max_seq=int(r.max_seq),
        )
        for r in rows
    ]


def list_gaps(
    conn: sa.Connection,
    scope: Scope,
    host: str | None = None,
    customer: str | None = None,
    *,
    limit: int | None = None,
    before: tuple[float, int] | None = None,
) -> list[GapInfo]:
    """Gaps, newest first; ``before``: (dropped_at, row id) the previous page ended at."""
    query = (
        sa.select(gaps, agents.c.host, customers.c.slug)
        .join(agents, agents.c.agent_id == gaps.c.agent_id)
        .join(customers, customers.c.id == agents.c.customer_id)
        .where(scope.where(), _before(gaps.c.dropped_at, gaps.c.id, before))
        .order_by(gaps.c.dropped_at.desc(), gaps.c.id.desc())
    )
    if limit is not None:
        query = query.limit(limit)
    if host is not None:
        _host_id, slug = resolve_host(conn, scope, host, customer)
        query = query.where(agents.c.host == host, customers.c.slug == slug)
    return [
        GapInfo(
            agent_id=r.agent_id,
            customer=r.slug,
            host=r.host,
            first_seq=int(r.first_seq),
            last_seq=int(r.last_seq),
            count=int(r._mapping["count"]),
            reason=r.reason,
            dropped_at=r.dropped_at,
            recorded_at=r.recorded_at,
            row_id=int(r.id),
        )
        for r in conn.execute(query)
    ]


def list_quarantined(
    conn: sa.Connection,
    scope: Scope,
    host: str | None = None,
    customer: str | None = None,
    limit: int = 100,
) -> list[QuarantinedInfo]:
    """Quarantined ingest-log rows, newest first (never their payloads)."""
    log = ingest_log
    query = (
        sa.select(
            log.c.id,
            log.c.agent_id,
            log.c.customer,
            log.c.host,
            log.c.after_seq,
            log.c.max_seq,
            log.c.points,
            log.c.received_at,
            log.c.quarantined_at,
            log.c.error,
        )
        .where(log.c.quarantined_at.is_not(None))
        .order_by(log.c.quarantined_at.desc(), log.c.id.desc())
        .limit(limit)
    )
    for only in (scope.customer, customer):
        if only is not None:
            query = query.where(log.c.customer == only)
    if host is not None:
        query = query.where(log.c.host == host)
    return [
        QuarantinedInfo(
            log_id=int(r.id),
            agent_id=r.agent_id,
            customer=r.customer,
            host=r.host,
            first_seq=int(r.after_seq) + 1,
            last_seq=int(r.max_seq),
            points=int(r.points),
            received_at=float(r.received_at),
            quarantined_at=float(r.quarantined_at),
            error=r.error or "",
        )
        for r in conn.execute(query)
    ]


def list_upgrades(
    conn: sa.Connection,
    scope: Scope,
    host: str | None = None,
    customer: str | None = None,
    *,
    limit: int | None = None,
    before: tuple[float, int] | None = None,
) -> list[UpgradeInfo]:
    """Version changes, newest first; ``before``: (ts, row id) the previous page ended at."""
    query = (
        upgrades_select()
        .where(scope.where(), _before(product_upgrades.c.ts, product_upgrades.c.id, before))
        .order_by(product_upgrades.c.ts.desc(), product_upgrades.c.id.desc())
        .limit(limit)
    )
    if host is not None:
        host_id, _slug = resolve_host(conn, scope, host, customer)
        query = query.where(product_upgrades.c.host_id == host_id)
    return [upgrade_info(r) for r in conn.execute(query)]


def upgrades_select() -> sa.Select[Any]:
    """Version changes joined to their host and customer (rows for :func:`upgrade_info`)."""
    return (
        sa.select(product_upgrades, hosts.c.name.label("host_name"), customers.c.slug)
        .join(hosts, hosts.c.id == product_upgrades.c.host_id)
        .join(customers, customers.c.id == hosts.c.customer_id)
    )


def upgrade_info(r: Any) -> UpgradeInfo:
    """One :func:`upgrades_select` row as an :class:`UpgradeInfo`."""
    return UpgradeInfo(
        customer=r.slug,
        host=r.host_name,
        product=r.product,
        from_version=r.from_version,
        to_version=r.to_version,
        ts=r.ts,
        agent_id=r.agent_id,
        row_id=int(r.id),
    )


def count_rows(conn: sa.Connection) -> dict[str, int]:
    """Cheap gauges for /metrics and /healthz: customers, hosts, active and revoked agents,
    hosts whose agent's clock runs ahead of the collector's."""
    out = {
        "customers": conn.execute(sa.select(sa.func.count()).select_from(customers)).scalar_one(),
        "hosts": conn.execute(sa.select(sa.func.count()).select_from(hosts)).scalar_one(),
        "agents_active": conn.execute(
            sa.select(sa.func.count()).select_from(agents).where(agents.c.revoked_at.is_(None))
        ).scalar_one(),
        "agents_revoked": conn.execute(
            sa.select(sa.func.count()).select_from(agents).where(agents.c.revoked_at.is_not(None))
        ).scalar_one(),
        "hosts_clock_skewed": conn.execute(
            sa.select(sa.func.count()).select_from(hosts).where(hosts.c.clock_skew_s.is_not(None))
        ).scalar_one(),
    }
    return {k: int(v) for k, v in out.items()}
