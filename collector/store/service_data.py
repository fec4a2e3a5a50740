"""What a customer's period of service is made of: the reads behind routine operations
reports, product upgrade records and service-operation analyses.

:class:`ServiceDataRepo` wraps a :class:`~collector.store.Store`; every read takes a
:class:`~collector.store.Scope` and one customer, filtered in SQL.
"""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from collector.store.case_records import CaseRecord
from collector.store.cases import CaseRepo
from collector.store.desk_cases import TimeEntry, TimeLog
from collector.store.queries import Scope, UpgradeInfo, upgrade_info, upgrades_select
from collector.store.schema import customers, hosts, inventory, product_upgrades
from collector.store.schema_cases import cases
from collector.store.schema_desk import case_time_entries
from collector.store.store import Store

__all__ = ["CaseFacts", "PeriodCounts", "ServiceDataRepo"]


@dataclass(frozen=True, slots=True)
class CaseFacts:
    """What an analysis needs of a case (no timeline, no evidence)."""

    id: str
    type: str
    subtype: str | None
    severity: str
    state: str
    hosts: tuple[str, ...]
    layer: str | None
    """The top probable cause's layer (cases detection opened), else None."""
    opened_at: float
    acknowledged_at: float | None
    resolved_at: float | None


@dataclass(frozen=True, slots=True)
class PeriodCounts:
    """A period's figures for the comparison with earlier periods."""

    opened: int
    emergency: int
    resolved: int
    onsite_minutes: int
    remote_minutes: int


class ServiceDataRepo:
    """See the module docstring."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._engine = store.engine

    def period_cases(
        self, scope: Scope, customer: str, start: float, end: float, *, limit: int = 100_000
    ) -> list[CaseRecord]:
        """Cases of ``customer`` open at some time in [start, end): opened before ``end``
        and not resolved before ``start``; newest first."""
        cond = sa.and_(
            customers.c.slug == customer,
            cases.c.opened_at < end,
            sa.or_(cases.c.resolved_at.is_(None), cases.c.resolved_at >= start),
        )
        repo = CaseRepo(self.store)
        with self._engine.connect() as conn:
            return repo._select(conn, scope, cond, limit=limit)

    def time_logs(self, scope: Scope, case_ids: Sequence[str]) -> dict[str, TimeLog]:
        """The time entries of each case (oldest first, with totals), in one query per 500 cases."""
        entries: dict[str, builtins.list[TimeEntry]] = {cid: [] for cid in case_ids}
        ids = list(case_ids)
        with self._engine.connect() as conn:
            for i in range(0, len(ids), 500):
                rows = conn.execute(
                    sa.select(case_time_entries)
                    .join(cases, cases.c.id == case_time_entries.c.case_id)
                    .join(customers, customers.c.id == cases.c.customer_id)
                    .where(scope.where(), case_time_entries.c.case_id.in_(ids[i : i + 500]))
                    .order_by(case_time_entries.c.work_date, case_time_entries.c.id)
                )
                for r in rows:
                    entries[r.case_id].append(
                        TimeEntry(
                            r.id,
                            r.case_id,
                            r.engineer,
                            r.minutes,
                            r.activity,
                            r.mode,
                            r.work_date,
                            r.logged_by,
                            r.logged_at,
                        )
                    )
        out = {}
        for cid, found in entries.items():
            onsite = sum(e.minutes for e in found if e.mode == "onsite")
            remote = sum(e.minutes for e in found if e.mode == "remote")
            out[cid] = TimeLog(tuple(found), onsite + remote, onsite, remote)
        return out

    def upgrades(
        self,
        scope: Scope,
        customer: str,
        start: float,
        end: float,
        *,
        upgrade_ids: Sequence[int] | None = None,
    ) -> list[UpgradeInfo]:
        """Version changes of ``customer``'s hosts in [start, end) (or exactly ``upgrade_ids``),
        oldest first."""
        query = (
            upgrades_select()
            .where(scope.where(), customers.c.slug == customer)
            .order_by(product_upgrades.c.ts, product_upgrades.c.id)
        )
        if upgrade_ids is not None:
            query = query.where(product_upgrades.c.id.in_(list(upgrade_ids)))
        else:
            query = query.where(product_upgrades.c.ts >= start, product_upgrades.c.ts < end)
        with self._engine.connect() as conn:
            return [upgrade_info(r) for r in conn.execute(query)]

    def upgrade_cases(self, scope: Scope, customer: str) -> dict[int, str]:
        """Upgrade row id -> the case that delivered it (``cases.upgrade_id``)."""
        query = (
            sa.select(cases.c.upgrade_id, cases.c.id)
            .join(customers, customers.c.id == cases.c.customer_id)
            .where(scope.where(), customers.c.slug == customer, cases.c.upgrade_id.is_not(None))
        )
        with self._engine.connect() as conn:
            return {int(r.upgrade_id): r.id for r in conn.execute(query)}

    # ------------------------------------------------------------------ analysis

    def case_facts(self, scope: Scope, customer: str, start: float, end: float) -> list[CaseFacts]:
        """Cases of ``customer`` opened in [start, end), oldest first: one query, no timelines."""
        query = (
            sa.select(
                cases.c.id,
                cases.c.type,
                cases.c.subtype,
                cases.c.severity,
                cases.c.state,
                cases.c.hosts,
                cases.c.causes,
                cases.c.opened_at,
                cases.c.acknowledged_at,
                cases.c.resolved_at,
            )
            .join(customers, customers.c.id == cases.c.customer_id)
            .where(
                scope.where(),
                customers.c.slug == customer,
                cases.c.opened_at >= start,
                cases.c.opened_at < end,
            )
            .order_by(cases.c.opened_at, cases.c.id)
        )
        with self._engine.connect() as conn:
            return [_facts(r) for r in conn.execute(query)]

    def period_counts(
        self, scope: Scope, customer: str, start: float, end: float, days: tuple[dt.date, dt.date]
    ) -> PeriodCounts:
        """Cases opened, emergency cases opened and cases resolved in [start, end); minutes
        logged on the work dates in [days[0], days[1])."""
        mine = sa.and_(scope.where(), customers.c.slug == customer)
        joined = cases.join(customers, customers.c.id == cases.c.customer_id)
        in_period = sa.and_(cases.c.opened_at >= start, cases.c.opened_at < end)
        counts = (
            sa.select(
                sa.func.count().filter(in_period),
                sa.func.count().filter(in_period, cases.c.type == "emergency"),
                sa.func.count().filter(cases.c.resolved_at >= start, cases.c.resolved_at < end),
            )
            .select_from(joined)
            .where(mine)
        )
        first, last = days
        minutes = (
            sa.select(case_time_entries.c.mode, sa.func.sum(case_time_entries.c.minutes))
            .select_from(case_time_entries.join(joined, cases.c.id == case_time_entries.c.case_id))
            .where(mine, case_time_entries.c.work_date >= first, case_time_entries.c.work_date < last)
            .group_by(case_time_entries.c.mode)
        )
        with self._engine.connect() as conn:
            opened, emergency, resolved = conn.execute(counts).one()
            by_mode = {mode: int(total or 0) for mode, total in conn.execute(minutes)}
        return PeriodCounts(
            int(opened), int(emergency), int(resolved), by_mode.get("onsite", 0), by_mode.get("remote", 0)
        )

    def host_products(self, scope: Scope, customer: str) -> dict[str, dict[str, str]]:
        """Each host's products and versions, from its current inventory."""
        query = (
            sa.select(hosts.c.name, inventory.c.document)
            .join(inventory, inventory.c.host_id == hosts.c.id)
            .join(customers, customers.c.id == hosts.c.customer_id)
            .where(scope.where(), customers.c.slug == customer)
        )
        out: dict[str, dict[str, str]] = {}
        with self._engine.connect() as conn:
            for name, document in conn.execute(query):
                products = document.get("products") if isinstance(document, dict) else None
                if isinstance(products, dict):
                    out[name] = {
                        str(p): str(v) for p, v in products.items() if isinstance(v, str | int | float)
                    }
        return out


def _facts(row: Any) -> CaseFacts:
    causes = row.causes if isinstance(row.causes, list) else []
    layer = causes[0].get("layer") if causes and isinstance(causes[0], dict) else None
    return CaseFacts(
        id=row.id,
        type=row.type,
        subtype=row.subtype,
        severity=row.severity,
        state=row.state,
        hosts=tuple(row.hosts or ()),
        layer=None if layer is None else str(layer),
        opened_at=float(row.opened_at),
        acknowledged_at=None if row.acknowledged_at is None else float(row.acknowledged_at),
        resolved_at=None if row.resolved_at is None else float(row.resolved_at),
    )
