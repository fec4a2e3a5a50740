"""What a customer's period of service is made of: the reads behind routine operations
reports, product upgrade records and service-operation analyses.

:class:`ServiceDataRepo` wraps a :class:`~collector.store.Store`; every read takes a
:class:`~collector.store.Scope` and one customer, filtered in SQL.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence

import sqlalchemy as sa

from collector.store.case_records import CaseRecord
from collector.store.cases import CaseRepo
from collector.store.desk_cases import TimeEntry, TimeLog
from collector.store.queries import Scope, UpgradeInfo
from collector.store.schema import customers, hosts, product_upgrades
from collector.store.schema_cases import cases
from collector.store.schema_desk import case_time_entries
from collector.store.store import Store

__all__ = ["ServiceDataRepo"]


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
            sa.select(product_upgrades, hosts.c.name.label("host_name"), customers.c.slug)
            .join(hosts, hosts.c.id == product_upgrades.c.host_id)
            .join(customers, customers.c.id == hosts.c.customer_id)
            .where(scope.where(), customers.c.slug == customer)
            .order_by(product_upgrades.c.ts, product_upgrades.c.id)
        )
        if upgrade_ids is not None:
            query = query.where(product_upgrades.c.id.in_(list(upgrade_ids)))
        else:
            query = query.where(product_upgrades.c.ts >= start, product_upgrades.c.ts < end)
        with self._engine.connect() as conn:
            return [
                UpgradeInfo(
                    customer=r.slug,
                    host=r.host_name,
                    product=r.product,
                    from_version=r.from_version,
                    to_version=r.to_version,
                    ts=r.ts,
                    agent_id=r.agent_id,
                    row_id=int(r.id),
                )
                for r in conn.execute(query)
            ]

    def upgrade_cases(self, scope: Scope, customer: str) -> dict[int, str]:
        """Upgrade row id -> the case that delivered it (``cases.upgrade_id``)."""
        query = (
            sa.select(cases.c.upgrade_id, cases.c.id)
            .join(customers, customers.c.id == cases.c.customer_id)
            .where(scope.where(), customers.c.slug == customer, cases.c.upgrade_id.is_not(None))
        )
        with self._engine.connect() as conn:
            return {int(r.upgrade_id): r.id for r in conn.execute(query)}
