"""The fleet state: written once per stored batch, read by the dashboard and by /metrics.

Write side (called by the store in the transaction that materialises a batch):

- :func:`refresh_host`: after a batch's results are upserted into ``latest_results``,
  recount that host's latest results per layer and severity (its own rows, found by
  primary key) and write ``fleet_cells`` and ``fleet_hosts`` only if something changed.
  The store calls it after ``touch_host`` has updated the host row, so on PostgreSQL the
  host row's lock serialises writers of one host (two collectors, a materialiser and a
  direct ingest): the recount reads every other writer's committed results.
- :func:`touch_agent`: per stored batch, the agent's ``last_batch_at`` (never moves back)
  and the spool depth of its newest health entry (by seq).

Read side, :class:`FleetStateRepo`, one module for both readers:

- :meth:`FleetStateRepo.overview`: the dashboard's fleet page, per customer in the
  caller's :class:`~collector.store.Scope` (filtered in SQL), neediest first, one page of
  rows with their per-layer counts, and the totals over the whole scope;
- :meth:`FleetStateRepo.snapshot`: the /metrics fleet (every customer: the collector's
  own view, counts and agent ids only).

Every read is a handful of grouped scans over small per-host and per-agent rows (10,000
hosts: tens of milliseconds, ``bench/dashboard.py``), never over ``latest_results`` or the
health history. :meth:`FleetStateRepo.rebuild` recomputes the state from the stored rows
(after a bulk load; migration ``0010_fleet_state`` does the same once).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import sqlalchemy as sa

from checks.api import Layer, Severity
from collector.store.case_states import ACTIVE_STATES
from collector.store.queries import Scope
from collector.store.schema import agent_health, agents, customers, gaps, hosts, latest_results
from collector.store.schema_cases import cases
from collector.store.schema_fleet import fleet_agents, fleet_cells, fleet_hosts
from collector.store.types import HealthRow

if TYPE_CHECKING:
    from collector.store.store import Store

__all__ = [
    "ACTIVE_CASE_STATES",
    "HOST_STATES",
    "SEVERITY_ORDER",
    "AgentGauge",
    "CustomerHealth",
    "FleetOverview",
    "FleetSnapshot",
    "FleetStateRepo",
    "refresh_host",
    "spool_depth_of",
    "touch_agent",
]

SEVERITY_ORDER: Final = tuple(s.value for s in sorted(Severity, key=lambda s: s.rank))
"""OK, WARN, UNKNOWN, CRIT: least to most severe (index = rank)."""
HOST_STATES: Final = (*SEVERITY_ORDER, "NONE")
"""A host's worst state: the worst severity of its checks' latest results, ``NONE`` before any."""
ACTIVE_CASE_STATES: Final[tuple[str, ...]] = ACTIVE_STATES
"""Case states counted as not yet resolved."""

_RANK: Final = {s.value: s.rank for s in Severity}
_UNKNOWN: Final = Severity.UNKNOWN.rank  # a severity this version does not know: not OK
_SPOOL_MAX: Final = 2**62


def _rank(severity: str) -> int:
    return _RANK.get(severity, _UNKNOWN)


# ---------------------------------------------------------------------------- writes


def _cells_of(rows: Iterable[Any]) -> dict[tuple[int, str], list[int]]:
    """(host, layer) -> counts by rank, from (host_id, layer, severity, n) rows."""
    out: dict[tuple[int, str], list[int]] = {}
    for host_id, layer, severity, n in rows:
        out.setdefault((int(host_id), str(layer)), [0, 0, 0, 0])[_rank(str(severity))] += int(n)
    return out


def _worst(counts: Sequence[int]) -> int:
    return max(rank for rank, n in enumerate(counts) if n)


def _sql(conn: sa.Connection) -> dict[str, str]:
    """Per-batch statements in the driver's parameter style (SQLAlchemy's per-call overhead
    was most of their cost on the ingest path, ``bench/fleet_ingest.py``)."""
    return _SQL["qmark" if conn.dialect.name == "sqlite" else "format"]


def _statements(p: str) -> dict[str, str]:
    newer = f"excluded.spool_seq IS NOT NULL AND COALESCE({_FA}.spool_seq, -1) < excluded.spool_seq"
    return {
        # The host's latest results by layer and severity, then its cells (one round trip).
        "recount": (
            "SELECT 1, layer, severity, COUNT(*), 0, 0, 0 FROM latest_results "
            f"WHERE host_id = {p} GROUP BY layer, severity "
            "UNION ALL SELECT 2, layer, '', n_ok, n_warn, n_unknown, n_crit FROM fleet_cells "
            f"WHERE host_id = {p}"
        ),
        "customer": f"SELECT customer_id FROM hosts WHERE id = {p}",
        "drop_cells": f"DELETE FROM fleet_cells WHERE host_id = {p}",
        "drop_host": f"DELETE FROM fleet_hosts WHERE host_id = {p}",
        "add_cell": (
            "INSERT INTO fleet_cells (host_id, layer, customer_id, worst, n_ok, n_warn, n_unknown, n_crit) "
            f"VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})"
        ),
        "add_host": f"INSERT INTO fleet_hosts (host_id, customer_id, worst) VALUES ({p}, {p}, {p})",
        "touch": (
            f"INSERT INTO {_FA} (agent_id, last_batch_at, spool_depth, spool_seq) "
            f"VALUES ({p}, {p}, {p}, {p}) "
            f"ON CONFLICT (agent_id) DO UPDATE SET "
            f"last_batch_at = CASE WHEN excluded.last_batch_at > {_FA}.last_batch_at "
            f"THEN excluded.last_batch_at ELSE {_FA}.last_batch_at END, "
            f"spool_depth = CASE WHEN {newer} THEN excluded.spool_depth ELSE {_FA}.spool_depth END, "
            f"spool_seq = CASE WHEN {newer} THEN excluded.spool_seq ELSE {_FA}.spool_seq END"
        ),
    }


_FA: Final = "fleet_agents"
_SQL: Final = {"qmark": _statements("?"), "format": _statements("%s")}


def refresh_host(conn: sa.Connection, host_id: int) -> bool:
    """Recount ``host_id``'s latest results into its cells; True if the state changed."""
    sql = _sql(conn)
    rows = conn.exec_driver_sql(sql["recount"], (host_id, host_id)).all()
    fresh = _cells_of((host_id, r[1], r[2], r[3]) for r in rows if r[0] == 1)
    current = {(host_id, str(r[1])): [int(n) for n in r[3:]] for r in rows if r[0] == 2}
    if fresh == current:
        return False
    (customer_id,) = conn.exec_driver_sql(sql["customer"], (host_id,)).one()
    conn.exec_driver_sql(sql["drop_cells"], (host_id,))
    conn.exec_driver_sql(sql["drop_host"], (host_id,))
    _add_cells(conn, {host_id: int(customer_id)}, fresh)
    return True


def _add_cells(
    conn: sa.Connection, customer_of: dict[int, int], cells: dict[tuple[int, str], list[int]]
) -> None:
    """Insert ``cells`` and their hosts' rows (their old rows are gone)."""
    if not cells:
        return
    worst: dict[int, int] = {}
    rows = []
    for (host_id, layer), counts in cells.items():
        w = _worst(counts)
        worst[host_id] = max(w, worst.get(host_id, 0))
        rows.append((host_id, layer, customer_of[host_id], w, *counts))
    sql = _sql(conn)
    conn.exec_driver_sql(sql["add_cell"], rows)
    conn.exec_driver_sql(sql["add_host"], [(h, customer_of[h], w) for h, w in worst.items()])


def spool_depth_of(document: Any) -> int | None:
    """The ``spool_depth`` of a health document: a non-negative whole number, else None."""
    value = document.get("spool_depth") if isinstance(document, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return int(min(max(value, 0), _SPOOL_MAX))


def touch_agent(conn: sa.Connection, agent_id: str, now: float, health: Iterable[HealthRow]) -> None:
    """Record a stored batch of ``agent_id`` at ``now`` with its new ``health`` entries:
    the time never moves back, the spool depth only to a newer entry's."""
    conn.exec_driver_sql(_sql(conn)["touch"], _agent_row(agent_id, now, health))


def _agent_row(
    agent_id: str, at: float, health: Iterable[HealthRow]
) -> tuple[str, float, int | None, int | None]:
    newest = max(health, key=lambda h: h.seq, default=None)
    if newest is None:
        return agent_id, at, None, None
    return agent_id, at, spool_depth_of(newest.document), newest.seq


# ---------------------------------------------------------------------------- read models

_SUMMED: Final = (
    "hosts",
    "agents_active",
    "agents_silent",
    "spool_backlog",
    "agents_backlogged",
    "gaps_recent",
    "dropped_recent",
    "cases_active",
    "cases_crit",
)


@dataclass(slots=True)
class CustomerHealth:
    """One customer on the fleet page (or, with ``customer=""``, the totals of a scope)."""

    customer: str
    name: str = ""
    hosts: int = 0
    hosts_by_worst: dict[str, int] = field(default_factory=dict)
    """Severity -> hosts whose worst latest result has it (hosts without results: not here)."""
    layers: dict[str, dict[str, int]] = field(default_factory=dict)
    """layer -> severity -> hosts whose worst latest result in that layer has it."""
    agents_active: int = 0
    agents_silent: int = 0
    """Active agents with no batch stored within the silence threshold (or never)."""
    spool_backlog: int = 0
    """Entries waiting in the agents' spools (their newest health entries)."""
    agents_backlogged: int = 0
    gaps_recent: int = 0
    """Gap reports (entries an agent dropped) within the period asked for."""
    dropped_recent: int = 0
    cases_active: int = 0
    cases_crit: int = 0

    def worst(self, layer: str) -> str | None:
        """The worst severity of ``layer`` across the hosts (None: no results in it)."""
        found = [s for s in SEVERITY_ORDER if self.layers.get(layer, {}).get(s)]
        return found[-1] if found else None

    @property
    def worst_overall(self) -> str | None:
        found = [s for s in SEVERITY_ORDER if self.hosts_by_worst.get(s)]
        return found[-1] if found else None

    @property
    def state(self) -> str:
        """The worst overall, ``NONE`` without any result (the page's state filter)."""
        return self.worst_overall or "NONE"

    def attention(self) -> tuple[int, ...]:
        """Sort key, most in need of attention first (use ascending)."""
        return (
            -self.cases_crit,
            -_RANK.get(self.worst_overall or "", -1),
            -self.cases_active,
            -self.agents_silent,
            -self.gaps_recent,
            -self.agents_backlogged,
        )

    @classmethod
    def totals(cls, rows: Sequence[CustomerHealth]) -> CustomerHealth:
        """The sum of ``rows``' counts (not their layers): the totals row (``customer=""``)."""
        total = cls("")
        for name in _SUMMED:
            setattr(total, name, sum(getattr(r, name) for r in rows))
        for sev in SEVERITY_ORDER:
            n = sum(r.hosts_by_worst.get(sev, 0) for r in rows)
            if n:
                total.hosts_by_worst[sev] = n
        return total

    def to_dict(self) -> dict[str, Any]:
        return {
            "customer": self.customer,
            "name": self.name,
            "hosts": self.hosts,
            "worst": self.worst_overall,
            "hosts_by_worst": {s: self.hosts_by_worst.get(s, 0) for s in SEVERITY_ORDER},
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
class FleetOverview:
    rows: list[CustomerHealth]
    """This page's customers, neediest first, with their per-layer counts."""
    total: CustomerHealth
    """The whole scope (every customer, whatever the filter), with per-layer counts."""
    customers: int
    """Customers in the scope."""
    matched: int
    """Customers that pass the filter (the pages divide these)."""
    offset: int
    limit: int


@dataclass(frozen=True, slots=True)
class AgentGauge:
    """One active agent: when the collector last stored a batch of it, its spool backlog."""

    agent_id: str
    customer: str
    last_batch_at: float | None
    """Unix seconds of its last stored batch; None: none stored (a Hello does not count)."""
    connected: bool
    """It has connected at least once (an accepted Hello)."""
    enrolled_at: float
    spool_depth: int | None
    """Entries waiting in its spool, from its newest health entry; None: no health yet."""


@dataclass(frozen=True, slots=True)
class FleetSnapshot:
    agents: list[AgentGauge]
    customers: list[str]
    """Every customer slug (the per-customer gauges are zero-filled over them)."""
    hosts_by_state: dict[tuple[str, str], int]
    """(customer, worst state) -> hosts; states from :data:`HOST_STATES` (zeros left out)."""
    cases: dict[tuple[str, str, str], int]
    """(customer, severity, state) -> cases not yet resolved."""


# ---------------------------------------------------------------------------- reads


def _in_scope(column: sa.ColumnElement[int], ids: dict[int, Any], scoped: bool) -> sa.ColumnElement[bool]:
    return column.in_(list(ids)) if scoped else sa.true()


class FleetStateRepo:
    """See the module docstring."""

    def __init__(self, store: Store) -> None:
        self._engine = store.engine

    def overview(
        self,
        scope: Scope,
        *,
        now: float,
        silent_after_s: float,
        recent_s: float,
        search: str = "",
        state: str = "",
        offset: int = 0,
        limit: int = 50,
    ) -> FleetOverview:
        """The scope's customers, neediest first: ``limit`` of them from ``offset``.

        ``search`` matches a customer's slug or name (any case); ``state`` one of
        :data:`HOST_STATES` (the customer's worst). The totals ignore both.
        """
        with self._engine.connect() as conn, conn.begin():
            by_id = self._customers(conn, scope)
            scoped = scope.customer is not None
            self._per_customer(conn, by_id, scoped, now=now, silent_after_s=silent_after_s, recent_s=recent_s)
            total = CustomerHealth.totals(list(by_id.values()))
            needle = search.strip().lower()
            ordered = sorted(
                (
                    (cid, r)
                    for cid, r in by_id.items()
                    if (not needle or needle in r.customer or needle in r.name.lower())
                    and (not state or r.state == state)
                ),
                key=lambda item: (item[1].attention(), item[1].customer),
            )
            page = dict(ordered[offset : offset + limit])
            fc = fleet_cells.c
            if page:
                for cid, layer, worst, n in conn.execute(
                    sa.select(fc.customer_id, fc.layer, fc.worst, sa.func.count())
                    .where(fc.customer_id.in_(list(page)))
                    .group_by(fc.customer_id, fc.layer, fc.worst)
                ).all():
                    page[int(cid)].layers.setdefault(str(layer), {})[SEVERITY_ORDER[int(worst)]] = int(n)
            for layer, worst, n in conn.execute(
                sa.select(fc.layer, fc.worst, sa.func.count())
                .where(_in_scope(fc.customer_id, by_id, scoped))
                .group_by(fc.layer, fc.worst)
            ).all():
                total.layers.setdefault(str(layer), {})[SEVERITY_ORDER[int(worst)]] = int(n)
        return FleetOverview(list(page.values()), total, len(by_id), len(ordered), offset, limit)

    def snapshot(self) -> FleetSnapshot:
        """Every active agent, hosts by worst state and unresolved cases per customer."""
        with self._engine.connect() as conn, conn.begin():
            by_id = self._customers(conn, Scope.everything())
            self._host_counts(conn, by_id, scoped=False)
            a, f = agents.c, fleet_agents.c
            rows = conn.execute(
                sa.select(
                    a.agent_id, a.customer_id, f.last_batch_at, a.last_seen_at, a.created_at, f.spool_depth
                )
                .select_from(agents.outerjoin(fleet_agents, f.agent_id == a.agent_id))
                .where(a.revoked_at.is_(None))
            )
            gauges = [
                AgentGauge(
                    str(agent_id),
                    by_id[int(cid)].customer,
                    None if batch_at is None else float(batch_at),
                    seen is not None,
                    float(created),
                    None if depth is None else int(depth),
                )
                for agent_id, cid, batch_at, seen, created, depth in rows
            ]
            case_counts = self._case_counts(conn, by_id, scoped=False)
        hosts_by_state: dict[tuple[str, str], int] = {}
        for row in by_id.values():
            states = dict(row.hosts_by_worst, NONE=row.hosts - sum(row.hosts_by_worst.values()))
            hosts_by_state.update({(row.customer, s): n for s, n in states.items() if n})
        return FleetSnapshot(
            gauges,
            [r.customer for r in by_id.values()],
            hosts_by_state,
            {(by_id[cid].customer, sev, st): n for (cid, sev, st), n in case_counts.items()},
        )

    def rebuild(self) -> None:
        """Recompute every host's cells and every agent's spool depth from the stored rows.

        For a store filled without the ingest path (a bulk load, a restore of the tables
        alone); ingest keeps the state current by itself. An agent's ``last_batch_at`` is
        kept, or taken from its ``last_seen_at`` if it has stored entries and none is known.
        """
        lr = latest_results.c
        with self._engine.begin() as conn:
            cells = _cells_of(
                conn.execute(
                    sa.select(lr.host_id, lr.layer, lr.severity, sa.func.count()).group_by(
                        lr.host_id, lr.layer, lr.severity
                    )
                )
            )
            customer_of = {
                int(h): int(c) for h, c in conn.execute(sa.select(hosts.c.id, hosts.c.customer_id))
            }
            conn.execute(fleet_cells.delete())
            conn.execute(fleet_hosts.delete())
            _add_cells(conn, customer_of, cells)
            newest = (
                sa.select(agent_health.c.agent_id, sa.func.max(agent_health.c.seq).label("seq"))
                .group_by(agent_health.c.agent_id)
                .subquery()
            )
            health = {
                str(agent_id): HealthRow(int(seq), 0.0, doc)
                for agent_id, seq, doc in conn.execute(
                    sa.select(agent_health.c.agent_id, agent_health.c.seq, agent_health.c.document).join(
                        newest,
                        sa.and_(
                            newest.c.agent_id == agent_health.c.agent_id, newest.c.seq == agent_health.c.seq
                        ),
                    )
                )
            }
            fa = fleet_agents.c
            known = {
                str(a): float(t) for a, t in conn.execute(sa.select(fa.agent_id, fa.last_batch_at)).all()
            }
            rows = [
                # A known time is kept; an agent that stored entries gets its last_seen_at.
                _agent_row(str(a), known.get(str(a), float(seen)), [health[a]] if a in health else [])
                for a, seen in conn.execute(
                    sa.select(agents.c.agent_id, agents.c.last_seen_at).where(
                        agents.c.max_seq > 0, agents.c.last_seen_at.is_not(None)
                    )
                ).all()
            ]
            if rows:
                conn.exec_driver_sql(_sql(conn)["touch"], rows)

    # ------------------------------------------------------------------ per customer

    @staticmethod
    def _customers(conn: sa.Connection, scope: Scope) -> dict[int, CustomerHealth]:
        return {
            int(cid): CustomerHealth(str(slug), str(name))
            for cid, slug, name in conn.execute(
                sa.select(customers.c.id, customers.c.slug, customers.c.name).where(scope.where())
            ).all()
        }

    @staticmethod
    def _host_counts(conn: sa.Connection, by_id: dict[int, CustomerHealth], *, scoped: bool) -> None:
        h = hosts.c
        for cid, n in conn.execute(
            sa.select(h.customer_id, sa.func.count())
            .where(_in_scope(h.customer_id, by_id, scoped))
            .group_by(h.customer_id)
        ).all():
            by_id[int(cid)].hosts = int(n)
        fh = fleet_hosts.c
        for cid, worst, n in conn.execute(
            sa.select(fh.customer_id, fh.worst, sa.func.count())
            .where(_in_scope(fh.customer_id, by_id, scoped))
            .group_by(fh.customer_id, fh.worst)
        ).all():
            by_id[int(cid)].hosts_by_worst[SEVERITY_ORDER[int(worst)]] = int(n)

    @staticmethod
    def _case_counts(
        conn: sa.Connection, by_id: dict[int, CustomerHealth], *, scoped: bool
    ) -> dict[tuple[int, str, str], int]:
        c = cases.c
        return {
            (int(cid), str(sev), str(st)): int(n)
            for cid, sev, st, n in conn.execute(
                sa.select(c.customer_id, c.severity, c.state, sa.func.count())
                .where(c.state.in_(ACTIVE_CASE_STATES), _in_scope(c.customer_id, by_id, scoped))
                .group_by(c.customer_id, c.severity, c.state)
            )
        }

    def _per_customer(
        self,
        conn: sa.Connection,
        by_id: dict[int, CustomerHealth],
        scoped: bool,
        *,
        now: float,
        silent_after_s: float,
        recent_s: float,
    ) -> None:
        self._host_counts(conn, by_id, scoped=scoped)
        a, f = agents.c, fleet_agents.c
        silent = sa.or_(f.last_batch_at.is_(None), f.last_batch_at < now - silent_after_s)
        for cid, active, quiet, backlog, backlogged in conn.execute(
            sa.select(
                a.customer_id,
                sa.func.count(),
                sa.func.sum(sa.case((silent, 1), else_=0)),
                sa.func.sum(sa.func.coalesce(f.spool_depth, 0)),
                sa.func.sum(sa.case((f.spool_depth > 0, 1), else_=0)),
            )
            .select_from(agents.outerjoin(fleet_agents, f.agent_id == a.agent_id))
            .where(a.revoked_at.is_(None), _in_scope(a.customer_id, by_id, scoped))
            .group_by(a.customer_id)
        ).all():
            row = by_id[int(cid)]
            row.agents_active, row.agents_silent = int(active), int(quiet or 0)
            row.spool_backlog, row.agents_backlogged = int(backlog or 0), int(backlogged or 0)
        g = gaps.c
        for cid, n, dropped in conn.execute(
            sa.select(a.customer_id, sa.func.count(), sa.func.sum(g["count"]))
            .select_from(gaps.join(agents, a.agent_id == g.agent_id))
            .where(g.dropped_at >= now - recent_s, _in_scope(a.customer_id, by_id, scoped))
            .group_by(a.customer_id)
        ).all():
            by_id[int(cid)].gaps_recent, by_id[int(cid)].dropped_recent = int(n), int(dropped or 0)
        for (cid, sev, _state), n in self._case_counts(conn, by_id, scoped=scoped).items():
            by_id[cid].cases_active += n
            if sev == Severity.CRIT.value:
                by_id[cid].cases_crit += n
