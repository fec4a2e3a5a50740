"""Reads for the web dashboard: a host's series and inventory, the session's token.

Every query for people takes a :class:`~collector.store.Scope` and filters by it in SQL,
as :mod:`collector.store.queries` does: another customer's rows are never read.
:meth:`DashboardRepo.token_active` lets a web session end when its API token is revoked
or expires.

The fleet overview is :class:`collector.store.fleet_state.FleetStateRepo` (shared with /metrics).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from collector.store.queries import Scope, resolve_host
from collector.store.schema import (
    api_tokens,
    inventory,
    inventory_changes,
    series,
)
from collector.store.store import Store

__all__ = ["DashboardRepo", "InventoryChange", "SeriesInfo"]


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
