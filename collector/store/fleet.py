"""The fleet as stored: hosts, agents, results, gaps, upgrades, the ingest quarantine.

The queries for people take a :class:`~collector.store.Scope`, filtered in SQL (a host of
another customer is indistinguishable from one that does not exist). The roster and a
host's earlier inventory are for the collector's own live detection, never a person.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from collector.store import queries
from collector.store.queries import Scope
from collector.store.schema import agents, customers, hosts, inventory_changes
from collector.store.store import Store

__all__ = ["FleetRepo", "RosterEntry"]


@dataclass(frozen=True, slots=True)
class RosterEntry:
    """One active (not revoked) agent with its host's labels."""

    customer: str
    host: str
    last_seen_at: float | None
    labels: dict[str, str]


class FleetRepo:
    """Reads of the fleet: scoped ones for people, the roster for live detection."""

    def __init__(self, store: Store) -> None:
        self._engine = store.engine

    # ------------------------------------------------------------------ queries for people (scoped)

    def list_hosts(
        self, scope: Scope, *, limit: int | None = None, offset: int = 0
    ) -> list[queries.HostSummary]:
        with self._engine.connect() as conn:
            return queries.list_hosts(conn, scope, limit=limit, offset=offset)

    def host_detail(self, scope: Scope, host: str, customer: str | None = None) -> queries.HostDetail:
        """Raises NotFound (also for hosts outside the scope) or Conflict (ambiguous name)."""
        with self._engine.connect() as conn:
            return queries.host_detail(conn, scope, host, customer)

    def results(
        self,
        scope: Scope,
        host: str,
        check: str | None = None,
        since: float | None = None,
        limit: int = 100,
        customer: str | None = None,
        before: tuple[float, int] | None = None,
    ) -> list[queries.ResultInfo]:
        with self._engine.connect() as conn:
            return queries.list_results(
                conn, scope, host, check=check, since=since, limit=limit, customer=customer, before=before
            )

    def agents(self, scope: Scope, *, limit: int | None = None, offset: int = 0) -> list[queries.AgentInfo]:
        with self._engine.connect() as conn:
            return queries.list_agents(conn, scope, limit=limit, offset=offset)

    def gaps(
        self,
        scope: Scope,
        host: str | None = None,
        customer: str | None = None,
        *,
        limit: int | None = None,
        before: tuple[float, int] | None = None,
    ) -> list[queries.GapInfo]:
        with self._engine.connect() as conn:
            return queries.list_gaps(conn, scope, host, customer, limit=limit, before=before)

    def quarantined_log_rows(
        self, scope: Scope, host: str | None = None, customer: str | None = None, limit: int = 100
    ) -> list[queries.QuarantinedInfo]:
        """Ingest-log rows the materialiser quarantined, newest first (see :meth:`Store.materialise`)."""
        with self._engine.connect() as conn:
            return queries.list_quarantined(conn, scope, host, customer, limit)

    def upgrades(
        self,
        scope: Scope,
        host: str | None = None,
        customer: str | None = None,
        *,
        limit: int | None = None,
        before: tuple[float, int] | None = None,
    ) -> list[queries.UpgradeInfo]:
        with self._engine.connect() as conn:
            return queries.list_upgrades(conn, scope, host, customer, limit=limit, before=before)

    def stats(self) -> dict[str, int]:
        """Row counts for the /metrics gauges (cheap tables only)."""
        with self._engine.connect() as conn:
            return queries.count_rows(conn)

    # ------------------------------------------------------------------ for live detection

    def roster(self) -> list[RosterEntry]:
        """Every active agent, with its host's labels (empty when the host has none yet)."""
        query = (
            sa.select(customers.c.slug, agents.c.host, agents.c.last_seen_at, hosts.c.labels)
            .join(customers, customers.c.id == agents.c.customer_id)
            .outerjoin(
                hosts, sa.and_(hosts.c.customer_id == agents.c.customer_id, hosts.c.name == agents.c.host)
            )
            .where(agents.c.revoked_at.is_(None))
        )
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        out = []
        for slug, host, last_seen_at, labels in rows:
            if isinstance(labels, str):
                labels = json.loads(labels)
            out.append(
                RosterEntry(
                    str(slug),
                    str(host),
                    None if last_seen_at is None else float(last_seen_at),
                    {str(k): str(v) for k, v in dict(labels or {}).items()},
                )
            )
        return out

    def previous_inventory(self, host_id: int, seq: int) -> Mapping[str, Any] | None:
        """The host's inventory document recorded before ``seq``, if any."""
        with self._engine.connect() as conn:
            doc = conn.execute(
                sa.select(inventory_changes.c.document)
                .where(inventory_changes.c.host_id == host_id, inventory_changes.c.seq < seq)
                .order_by(inventory_changes.c.seq.desc())
                .limit(1)
            ).scalar()
        if isinstance(doc, str):
            doc = json.loads(doc)
        return doc if isinstance(doc, dict) else None
