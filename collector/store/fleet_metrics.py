"""The fleet as Prometheus sees it: one snapshot per scrape (cached above), bounded by the fleet.

Every figure here is a count or a timestamp, never a customer's data: the /metrics
endpoint that publishes them is unauthenticated (like every scrape target), so what it
shows is limited to agent ids, customer slugs, and counts. Cardinality is bounded by what
is enrolled: one row per active agent, one per (customer, worst state), one per (customer,
case severity, case state).

One read transaction, three statements, each served by an index:

- agents: the active agents with their customer, ``last_seen_at`` and the ``spool_depth``
  of their newest health entry (a scalar subquery on ``agent_health``'s primary key
  ``(agent_id, seq)``: one index probe per agent, no scan of the health history);
- hosts per worst state: the worst severity of each host's latest results
  (``latest_results``, one small row per host and check), counted per customer;
- cases not yet resolved, per customer, severity and state (``ix_cases_state_opened``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import sqlalchemy as sa

from checks.api import Severity
from collector.store.case_states import ACTIVE_STATES
from collector.store.schema import agent_health, agents, customers, hosts, latest_results
from collector.store.schema_cases import cases
from collector.store.store import Store

__all__ = ["ACTIVE_CASE_STATES", "HOST_STATES", "AgentGauge", "FleetMetricsRepo", "FleetSnapshot"]

HOST_STATES: Final = ("OK", "WARN", "UNKNOWN", "CRIT", "NONE")
"""A host's worst state: the worst severity of its checks' latest results, ``NONE`` before any."""

ACTIVE_CASE_STATES: Final[tuple[str, ...]] = ACTIVE_STATES
"""Case states counted as not yet resolved."""

_BY_RANK: Final = {s.rank: s.value for s in Severity}


@dataclass(frozen=True, slots=True)
class AgentGauge:
    """One active agent: when the collector last stored a batch of it, its spool backlog."""

    agent_id: str
    customer: str
    last_seen_at: float | None
    """Unix seconds of its last stored batch (or accepted Hello); None: never connected."""
    spool_depth: int | None
    """Entries waiting in its spool, from its newest health entry; None: no health yet."""


@dataclass(frozen=True, slots=True)
class FleetSnapshot:
    agents: list[AgentGauge]
    customers: list[str]
    """Every customer slug (the per-customer gauges are zero-filled over them)."""
    hosts_by_state: dict[tuple[str, str], int]
    """(customer, worst state) -> hosts; states from :data:`HOST_STATES`."""
    cases: dict[tuple[str, str, str], int]
    """(customer, severity, state) -> cases not yet resolved."""


class FleetMetricsRepo:
    """The /metrics fleet snapshot (every customer: the collector's own view, not a person's)."""

    def __init__(self, store: Store) -> None:
        self._engine = store.engine

    def snapshot(self) -> FleetSnapshot:
        with self._engine.connect() as conn, conn.begin():
            return FleetSnapshot(
                agents=self._agents(conn),
                customers=[str(s) for s in conn.execute(sa.select(customers.c.slug)).scalars()],
                hosts_by_state=self._hosts_by_state(conn),
                cases=self._cases(conn),
            )

    @staticmethod
    def _agents(conn: sa.Connection) -> list[AgentGauge]:
        newest = (
            sa.select(agent_health.c.document["spool_depth"].as_float())
            .where(agent_health.c.agent_id == agents.c.agent_id)
            .order_by(agent_health.c.seq.desc())
            .limit(1)
            .correlate(agents)
            .scalar_subquery()
        )
        rows = conn.execute(
            sa.select(agents.c.agent_id, customers.c.slug, agents.c.last_seen_at, newest.label("spool"))
            .join(customers, customers.c.id == agents.c.customer_id)
            .where(agents.c.revoked_at.is_(None))
        )
        return [
            AgentGauge(
                str(agent_id),
                str(slug),
                None if seen is None else float(seen),
                None if spool is None else int(spool),
            )
            for agent_id, slug, seen, spool in rows
        ]

    @staticmethod
    def _hosts_by_state(conn: sa.Connection) -> dict[tuple[str, str], int]:
        rank = sa.case(
            *((latest_results.c.severity == s.value, s.rank) for s in Severity),
            else_=Severity.UNKNOWN.rank,  # a severity this version does not know: not OK
        )
        worst = (
            sa.select(latest_results.c.host_id, sa.func.max(rank).label("rank"))
            .group_by(latest_results.c.host_id)
            .subquery()
        )
        rows = conn.execute(
            sa.select(customers.c.slug, worst.c.rank, sa.func.count())
            .select_from(hosts)
            .join(customers, customers.c.id == hosts.c.customer_id)
            .outerjoin(worst, worst.c.host_id == hosts.c.id)
            .group_by(customers.c.slug, worst.c.rank)
        )
        out: dict[tuple[str, str], int] = {}
        for slug, r, n in rows:
            state = "NONE" if r is None else _BY_RANK[int(r)]
            out[(str(slug), state)] = int(n)
        return out

    @staticmethod
    def _cases(conn: sa.Connection) -> dict[tuple[str, str, str], int]:
        rows = conn.execute(
            sa.select(customers.c.slug, cases.c.severity, cases.c.state, sa.func.count())
            .join(customers, customers.c.id == cases.c.customer_id)
            .where(cases.c.state.in_(ACTIVE_CASE_STATES))
            .group_by(customers.c.slug, cases.c.severity, cases.c.state)
        )
        return {(str(slug), str(sev), str(state)): int(n) for slug, sev, state, n in rows}
