"""Reads for the web dashboard: the fleet by customer and layer, a host's series, inventory.

Every query for people takes a :class:`~collector.store.Scope` and filters by it in SQL,
as :mod:`collector.store.queries` does: another customer's rows are never read.
:meth:`DashboardRepo.token_active` lets a web session end when its API token is revoked
or expires.

The fleet overview is aggregated in the database (10,000 hosts answer in one round trip
per table, see ``bench/dashboard.py``): per (customer, layer) the number of hosts whose
worst latest result in that layer is OK, WARN, UNKNOWN or CRIT; per customer its hosts,
silent agents, spool backlog (the latest health entry of each agent), gaps of the last day
and active cases.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from checks.api import Layer, Severity
from collector.store.case_states import ACTIVE_STATES
from collector.store.queries import Scope, resolve_host
from collector.store.schema import (
    agent_health,
    agents,
    api_tokens,
    customers,
    gaps,
    hosts,
    inventory,
    inventory_changes,
    latest_results,
    series,
)
from collector.store.schema_cases import cases
from collector.store.store import Store

__all__ = ["CustomerHealth", "DashboardRepo", "InventoryChange", "SeriesInfo"]

SEVERITY_ORDER: tuple[str, ...] = tuple(sorted((s.value for s in Severity), key=lambda v: Severity(v).rank))
"""OK, WARN, UNKNOWN, CRIT: least to most severe."""
_RANK_OF = {s.value: s.rank for s in Severity}
_SEVERITY_BY_RANK = {s.rank: s.value for s in Severity}


@dataclass(slots=True)
class CustomerHealth:
    """One row of the fleet overview."""

    customer: str
    hosts: int = 0
    layers: dict[str, dict[str, int]] = field(default_factory=dict)
    """layer -> severity -> hosts whose worst latest result in that layer has it."""
    agents_active: int = 0
    agents_silent: int = 0
    """Active agents not heard from within the silence threshold (or never)."""
    spool_backlog: int = 0
    """Entries waiting in the agents' spools (their latest health reports)."""
    agents_backlogged: int = 0
    gaps_recent: int = 0
    """Gap reports (entries an agent dropped) within the period asked for."""
    dropped_recent: int = 0
    cases_active: int = 0
    cases_crit: int = 0

    def worst(self, layer: str) -> str | None:
        """The worst severity of ``layer`` across the customer's hosts (None: no results)."""
        found = [s for s in SEVERITY_ORDER if self.layers.get(layer, {}).get(s)]
        return found[-1] if found else None

    @property
    def worst_overall(self) -> str | None:
        found = [w for w in (self.worst(layer.value) for layer in Layer) if w is not None]
        return max(found, key=_RANK_OF.__getitem__) if found else None

    def attention(self) -> tuple[int, ...]:
        """Sort key, most in need of attention first (use ascending)."""
        worst = self.worst_overall
        return (
            -self.cases_crit,
            -_RANK_OF.get(worst or "OK", 0),
            -self.cases_active,
            -self.agents_silent,
            -self.gaps_recent,
            -self.agents_backlogged,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "customer": self.customer,
            "hosts": self.hosts,
            "worst": self.worst_overall,
            "layers": {
                layer.value: {"worst": self.worst(layer.value), "counts": self.layers.get(layer.value, {})}
                for layer in Layer
            },
            "agents_active": self.agents_active,
            "agents_silent": self.agents_silent,
            "spool_backlog": self.spool_backlog,
            "agents_backlogged": self.agents_backlogged,
            "gaps_recent": self.gaps_recent,
            "dropped_recent": self.dropped_recent,
            "cases_active": self.cases_active,
            "cases_crit": self.cases_crit,
        }


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    check: str
    name: str
    unit: str
    labels: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class InventoryChange:
    ts: float
    changes: Any


def _rank_case() -> sa.ColumnElement[int]:
    return sa.case(*[(latest_results.c.severity == sev, rank) for sev, rank in _RANK_OF.items()], else_=-1)


class DashboardRepo:
    """See the module docstring."""

    def __init__(self, store: Store) -> None:
        self._engine = store.engine

    def token_active(self, token_id: int, now: float) -> bool:
        """True while the API token exists, is not revoked and has not expired."""
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(api_tokens.c.revoked_at, api_tokens.c.expires_at).where(api_tokens.c.id == token_id)
            ).first()
        return row is not None and row.revoked_at is None and (row.expires_at is None or row.expires_at > now)

    def fleet(
        self, scope: Scope, *, now: float, silent_after_s: float, recent_s: float
    ) -> list[CustomerHealth]:
        """Every customer the scope sees, most in need of attention first."""
        out: dict[str, CustomerHealth] = {}
        with self._engine.connect() as conn:

            def row(slug: str) -> CustomerHealth:
                return out.setdefault(slug, CustomerHealth(slug))

            for slug, n in conn.execute(
                sa.select(customers.c.slug, sa.func.count(hosts.c.id))
                .select_from(customers)
                .outerjoin(hosts, hosts.c.customer_id == customers.c.id)
                .where(scope.where())
                .group_by(customers.c.slug)
            ):
                row(slug).hosts = int(n)
            per_host = (
                sa.select(
                    latest_results.c.host_id,
                    latest_results.c.layer,
                    sa.func.max(_rank_case()).label("rank"),
                )
                .group_by(latest_results.c.host_id, latest_results.c.layer)
                .subquery()
            )
            layer_rows = conn.execute(
                sa.select(customers.c.slug, per_host.c.layer, per_host.c.rank, sa.func.count())
                .select_from(per_host)
                .join(hosts, hosts.c.id == per_host.c.host_id)
                .join(customers, customers.c.id == hosts.c.customer_id)
                .where(scope.where())
                .group_by(customers.c.slug, per_host.c.layer, per_host.c.rank)
            )
            for slug, layer, rank, n in layer_rows:
                sev = _SEVERITY_BY_RANK.get(int(rank))
                if sev is not None:
                    row(slug).layers.setdefault(layer, {})[sev] = int(n)
            silent = sa.or_(agents.c.last_seen_at.is_(None), agents.c.last_seen_at < now - silent_after_s)
            for slug, active, quiet in conn.execute(
                sa.select(
                    customers.c.slug,
                    sa.func.count(),
                    sa.func.sum(sa.case((silent, 1), else_=0)),
                )
                .join(customers, customers.c.id == agents.c.customer_id)
                .where(scope.where(), agents.c.revoked_at.is_(None))
                .group_by(customers.c.slug)
            ):
                row(slug).agents_active, row(slug).agents_silent = int(active), int(quiet or 0)
            latest = (
                sa.select(agent_health.c.agent_id, sa.func.max(agent_health.c.seq).label("seq"))
                .group_by(agent_health.c.agent_id)
                .subquery()
            )
            depth = agent_health.c.document["spool_depth"].as_float()
            for slug, total, backlogged in conn.execute(
                sa.select(
                    customers.c.slug,
                    sa.func.sum(depth),
                    sa.func.sum(sa.case((depth > 0, 1), else_=0)),
                )
                .select_from(agent_health)
                .join(
                    latest,
                    sa.and_(latest.c.agent_id == agent_health.c.agent_id, latest.c.seq == agent_health.c.seq),
                )
                .join(agents, agents.c.agent_id == agent_health.c.agent_id)
                .join(customers, customers.c.id == agents.c.customer_id)
                .where(scope.where(), agents.c.revoked_at.is_(None))
                .group_by(customers.c.slug)
            ):
                row(slug).spool_backlog, row(slug).agents_backlogged = int(total or 0), int(backlogged or 0)
            for slug, n, dropped in conn.execute(
                sa.select(customers.c.slug, sa.func.count(), sa.func.sum(gaps.c["count"]))
                .select_from(gaps)
                .join(agents, agents.c.agent_id == gaps.c.agent_id)
                .join(customers, customers.c.id == agents.c.customer_id)
                .where(scope.where(), gaps.c.dropped_at >= now - recent_s)
                .group_by(customers.c.slug)
            ):
                row(slug).gaps_recent, row(slug).dropped_recent = int(n), int(dropped or 0)
            for slug, n, crit in conn.execute(
                sa.select(
                    customers.c.slug,
                    sa.func.count(),
                    sa.func.sum(sa.case((cases.c.severity == "CRIT", 1), else_=0)),
                )
                .join(customers, customers.c.id == cases.c.customer_id)
                .where(scope.where(), cases.c.state.in_(ACTIVE_STATES))
                .group_by(customers.c.slug)
            ):
                row(slug).cases_active, row(slug).cases_crit = int(n), int(crit or 0)
        return sorted(out.values(), key=lambda c: (c.attention(), c.customer))

    def host_series(self, scope: Scope, host: str, customer: str | None, limit: int = 12) -> list[SeriesInfo]:
        """The host's metric series (by check and name), at most ``limit``; NotFound outside the scope."""
        with self._engine.connect() as conn:
            host_id, _slug = resolve_host(conn, scope, host, customer)
            rows = conn.execute(
                sa.select(series.c.check, series.c.name, series.c.unit, series.c.labels)
                .where(series.c.host_id == host_id)
                .order_by(series.c.check, series.c.name, series.c.labels_key)
                .limit(limit)
            ).all()
        out = []
        for r in rows:
            labels = json.loads(r.labels) if isinstance(r.labels, str) else dict(r.labels or {})
            out.append(
                SeriesInfo(
                    r.check, r.name, r.unit, tuple(sorted((str(k), str(v)) for k, v in labels.items()))
                )
            )
        return out

    def host_inventory(
        self, scope: Scope, host: str, customer: str | None, limit: int = 20
    ) -> tuple[dict[str, Any] | None, float | None, list[InventoryChange]]:
        """(latest inventory document, its time, recent changes newest first)."""
        with self._engine.connect() as conn:
            host_id, _slug = resolve_host(conn, scope, host, customer)
            current = conn.execute(
                sa.select(inventory.c.document, inventory.c.ts).where(inventory.c.host_id == host_id)
            ).first()
            changes = conn.execute(
                sa.select(inventory_changes.c.ts, inventory_changes.c.changes)
                .where(inventory_changes.c.host_id == host_id)
                .order_by(inventory_changes.c.ts.desc(), inventory_changes.c.id.desc())
                .limit(limit)
            ).all()
        doc: dict[str, Any] | None = None
        ts: float | None = None
        if current is not None:
            raw = json.loads(current.document) if isinstance(current.document, str) else current.document
            doc, ts = (dict(raw) if isinstance(raw, dict) else None), float(current.ts)
        return (
            doc,
            ts,
            [
                InventoryChange(
                    float(c.ts), json.loads(c.changes) if isinstance(c.changes, str) else c.changes
                )
                for c in changes
            ],
        )
