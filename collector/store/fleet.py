"""Reads of the fleet that live detection needs: the agent roster and a host's earlier inventory.

Not scoped: the callers are the collector's own background services, never a person.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

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
    """The store's fleet reads for the collector's own services."""

    def __init__(self, store: Store) -> None:
        self._engine = store.engine

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
