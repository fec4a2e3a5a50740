"""Inspection runs, schedule state, reports (service records) and customer profiles in the store.

:class:`InspectionRepo` wraps a :class:`~collector.store.Store`. Every read that serves a
person takes a :class:`~collector.store.Scope`, filtered in SQL: a run or report of another
customer is indistinguishable from one that does not exist. The scheduler and the run
orchestration (collector side, no person) use the unscoped methods marked *internal*.

Exactly-once scheduling: :meth:`InspectionRepo.claim_due` advances a plan's
``last_due_at`` with a compare-and-set ``UPDATE ... WHERE last_due_at < :due``; only the
caller whose update changed the row starts the run, whatever the number of collectors
sharing the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from collector.store.errors import NotFound, StoreError
from collector.store.queries import Scope
from collector.store.schema import (
    agents,
    check_results,
    customers,
    gaps,
    hosts,
    inventory,
    points,
    points_rollup,
    series,
)
from collector.store.schema_inspections import (
    inspection_runs,
    inspection_schedule,
)
from collector.store.store import Store

__all__ = [
    "COMPLETION_CHECK",
    "CustomerProfile",
    "HostEvidence",
    "InspectionRepo",
    "RunRecord",
    "TargetHost",
]

COMPLETION_CHECK = "application.agent"
"""A host answered an inspection when this check's result (the agent's own check, which it
runs and spools last, see ``agent/inspection.py``) tagged with the inspection id is stored."""
MAX_LOGO_BYTES = 512 * 1024
MAX_BUCKETS = 200
"""Metric history is read as at most this many time buckets per series (averages)."""


@dataclass(frozen=True, slots=True)
class HostEvidence:
    """One host's stored evidence for an inspection run, as rows; the inspection builds its
    facts from it (:meth:`collector.inspections.facts.HostFacts.from_evidence`)."""

    name: str
    answered: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    latest: list[tuple[str, float, list[dict[str, Any]]]] = field(default_factory=list)
    """(check, ts, the result dicts as the agent recorded them) per check."""
    series: list[tuple[str, dict[str, str], list[tuple[float, float]]]] = field(default_factory=list)
    """(metric name, labels, points)."""
    inventory: dict[str, Any] | None = None
    last_seen: float | None = None
    lost_results: int = 0


RUN_STATES = ("pending", "running", "done", "failed")


@dataclass(frozen=True, slots=True)
class CustomerProfile:
    """What reports show of a customer: display name, time zone, logo (customers.settings)."""

    slug: str
    name: str
    timezone: str
    logo: bytes | None = None
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: str
    customer: str
    plan: str
    trigger: str
    state: str
    requested_by: str | None
    due_at: float | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    deadline_at: float | None
    period_start: float | None
    period_end: float | None
    hosts_selected: int | None
    hosts_answered: int | None
    hosts: dict[str, Any]
    """``{"selected": [...], "answered": [...], "offline": [...]}`` host names."""
    overall_score: int | None
    scores: dict[str, int | None]
    counts: dict[str, int]
    plan_doc: dict[str, Any]
    error: str | None
    result: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class TargetHost:
    """A host of the customer as the scheduler sees it (fits ``plan.HostLike``)."""

    customer: str
    name: str
    labels: dict[str, str]
    agent_ids: tuple[str, ...]
    last_seen: float | None


def _run(row: Any, with_result: bool) -> RunRecord:
    return RunRecord(
        id=row.id,
        customer=row.slug,
        plan=row.plan,
        trigger=row.trigger,
        state=row.state,
        requested_by=row.requested_by,
        due_at=row.due_at,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        deadline_at=row.deadline_at,
        period_start=row.period_start,
        period_end=row.period_end,
        hosts_selected=row.hosts_selected,
        hosts_answered=row.hosts_answered,
        hosts=dict(row.hosts or {}),
        overall_score=row.overall_score,
        scores=dict(row.scores or {}),
        counts=dict(row.counts or {}),
        plan_doc=dict(row.plan_doc or {}),
        error=row.error,
        result=dict(row.result) if with_result and row.result is not None else None,
    )


_RUN_COLUMNS = [c for c in inspection_runs.c if c.name != "result"]


def customer_id(conn: sa.Connection, scope: Scope, slug: str) -> int:
    """*internal*: the id of customer ``slug``; NotFound when absent or outside ``scope``."""
    if not scope.allows(slug):
        raise NotFound(f"no customer {slug!r}")
    found = conn.execute(sa.select(customers.c.id).where(customers.c.slug == slug)).scalar_one_or_none()
    if found is None:
        raise NotFound(f"no customer {slug!r}")
    return int(found)


_LOST_MAX = float(2**53)
"""Lost-entry counts are reported up to this (exact in a float; far above any real count)."""


class InspectionRepo:
    """See the module docstring."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._engine = store.engine

    # ------------------------------------------------------------------ customers

    def _customer_id(self, conn: sa.Connection, scope: Scope, slug: str) -> int:
        return customer_id(conn, scope, slug)

    def profile(self, scope: Scope, slug: str) -> CustomerProfile:
        """The customer's report identity; NotFound outside the scope."""
        with self._engine.connect() as conn:
            self._customer_id(conn, scope, slug)
            row = conn.execute(sa.select(customers).where(customers.c.slug == slug)).one()
        settings = dict(row.settings or {})
        logo_hex = settings.get("logo_hex")
        logo = bytes.fromhex(logo_hex) if isinstance(logo_hex, str) and logo_hex else None
        public = {k: v for k, v in settings.items() if k != "logo_hex"}
        return CustomerProfile(row.slug, row.name, row.timezone, logo, public)

    def set_profile(
        self,
        scope: Scope,
        slug: str,
        *,
        name: str | None = None,
        timezone: str | None = None,
        logo: bytes | None = None,
        clear_logo: bool = False,
    ) -> CustomerProfile:
        """Change name, time zone and logo (creating the customer for an all-customers scope)."""
        if logo is not None and len(logo) > MAX_LOGO_BYTES:
            raise StoreError(f"logo is {len(logo)} bytes; at most {MAX_LOGO_BYTES} bytes are accepted")
        with self.store._write() as conn:
            exists = conn.execute(
                sa.select(customers.c.id).where(customers.c.slug == slug)
            ).scalar_one_or_none()
            if exists is None:
                if scope.customer is not None:
                    raise NotFound(f"no customer {slug!r}")
                self.store._ensure_customer(conn, slug)
            else:
                self._customer_id(conn, scope, slug)
            row = conn.execute(sa.select(customers).where(customers.c.slug == slug)).one()
            settings = dict(row.settings or {})
            if clear_logo:
                settings.pop("logo_hex", None)
            if logo is not None:
                settings["logo_hex"] = logo.hex()
            values: dict[str, Any] = {"settings": settings}
            if name is not None:
                values["name"] = name
            if timezone is not None:
                values["timezone"] = timezone
            conn.execute(customers.update().where(customers.c.slug == slug).values(**values))
        return self.profile(scope, slug)

    def timezones(self) -> dict[str, str]:
        """*internal*: customer slug -> time zone (fills plans without ``timezone``)."""
        with self._engine.connect() as conn:
            return {
                r.slug: r.timezone for r in conn.execute(sa.select(customers.c.slug, customers.c.timezone))
            }

    # ------------------------------------------------------------------ schedule state

    def schedule_state(self, customer: str, plan: str, initial_due: float) -> float:
        """*internal*: the plan's last handled due time; a new plan starts at ``initial_due``."""
        now = self.store._clock()
        with self.store._write() as conn:
            cid = self._customer_id(conn, Scope.everything(), customer)
            conn.execute(
                self.store._insert(inspection_schedule)
                .values(customer_id=cid, plan=plan, last_due_at=initial_due, updated_at=now)
                .on_conflict_do_nothing(index_elements=["customer_id", "plan"])
            )
            value = conn.execute(
                sa.select(inspection_schedule.c.last_due_at).where(
                    inspection_schedule.c.customer_id == cid, inspection_schedule.c.plan == plan
                )
            ).scalar_one()
        return float(value)

    def claim_due(self, customer: str, plan: str, due_at: float, claimer: str) -> bool:
        """*internal*: compare-and-set the plan's last due time to ``due_at``.

        True for exactly one caller per due time: the one whose update moved it forward.
        """
        with self.store._write() as conn:
            cid = self._customer_id(conn, Scope.everything(), customer)
            done = conn.execute(
                inspection_schedule.update()
                .where(
                    inspection_schedule.c.customer_id == cid,
                    inspection_schedule.c.plan == plan,
                    inspection_schedule.c.last_due_at < due_at,
                )
                .values(last_due_at=due_at, claimed_by=claimer[:200], updated_at=self.store._clock())
            )
            return bool(done.rowcount == 1)

    # ------------------------------------------------------------------ runs

    def create_run(
        self,
        run_id: str,
        customer: str,
        plan: str,
        trigger: str,
        plan_doc: dict[str, Any],
        *,
        requested_by: str | None = None,
        due_at: float | None = None,
    ) -> RunRecord:
        """*internal*: a pending run (the customer must exist)."""
        with self.store._write() as conn:
            cid = self._customer_id(conn, Scope.everything(), customer)
            conn.execute(
                inspection_runs.insert().values(
                    id=run_id,
                    customer_id=cid,
                    plan=plan,
                    trigger=trigger,
                    state="pending",
                    requested_by=requested_by,
                    due_at=due_at,
                    created_at=self.store._clock(),
                    hosts={},
                    scores={},
                    counts={},
                    plan_doc=plan_doc,
                )
            )
        return self.run(Scope.everything(), run_id)

    def update_run(self, run_id: str, **values: Any) -> None:
        """*internal*: set columns of a run (state, times, hosts, result ...)."""
        state = values.get("state")
        if state is not None and state not in RUN_STATES:
            raise StoreError(f"run state {state!r} is not one of {', '.join(RUN_STATES)}")
        with self.store._write() as conn:
            conn.execute(inspection_runs.update().where(inspection_runs.c.id == run_id).values(**values))

    def fail_stale(self, now: float, grace_s: float = 3600.0) -> int:
        """*internal*: runs left pending or running by a collector that stopped mid-run
        (past their deadline, or never started, by ``grace_s``) become failed."""
        with self.store._write() as conn:
            done = conn.execute(
                inspection_runs.update()
                .where(
                    sa.or_(
                        sa.and_(
                            inspection_runs.c.state == "running",
                            inspection_runs.c.deadline_at < now - grace_s,
                        ),
                        sa.and_(
                            inspection_runs.c.state == "pending", inspection_runs.c.created_at < now - grace_s
                        ),
                    )
                )
                .values(
                    state="failed", finished_at=now, error="interrupted: the collector stopped during the run"
                )
            )
            return int(done.rowcount or 0)

    def _runs_query(self, scope: Scope, with_result: bool) -> Any:
        cols = list(inspection_runs.c) if with_result else _RUN_COLUMNS
        return (
            sa.select(*cols, customers.c.slug)
            .join(customers, customers.c.id == inspection_runs.c.customer_id)
            .where(scope.where())
        )

    def run(self, scope: Scope, run_id: str, *, with_result: bool = False) -> RunRecord:
        """One run; NotFound when it does not exist or is outside the scope."""
        with self._engine.connect() as conn:
            row = conn.execute(
                self._runs_query(scope, with_result).where(inspection_runs.c.id == run_id)
            ).first()
        if row is None:
            raise NotFound(f"no inspection run {run_id!r}")
        return _run(row, with_result)

    def runs(
        self,
        scope: Scope,
        *,
        customer: str | None = None,
        plan: str | None = None,
        state: str | None = None,
        limit: int = 100,
    ) -> list[RunRecord]:
        """Runs, newest first."""
        query = self._runs_query(scope, False)
        if customer is not None:
            query = query.where(customers.c.slug == customer)
        if plan is not None:
            query = query.where(inspection_runs.c.plan == plan)
        if state is not None:
            query = query.where(inspection_runs.c.state == state)
        query = query.order_by(inspection_runs.c.created_at.desc(), inspection_runs.c.id.desc()).limit(limit)
        with self._engine.connect() as conn:
            return [_run(r, False) for r in conn.execute(query)]

    def previous_result(self, customer: str, plan: str, before: float) -> dict[str, Any] | None:
        """*internal*: the stored result of the latest finished run of ``plan`` created before ``before``."""
        with self._engine.connect() as conn:
            row = conn.execute(
                self._runs_query(Scope.of(customer), True)
                .where(
                    inspection_runs.c.plan == plan,
                    inspection_runs.c.state == "done",
                    inspection_runs.c.result.is_not(None),
                    inspection_runs.c.created_at < before,
                )
                .order_by(inspection_runs.c.created_at.desc())
                .limit(1)
            ).first()
        if row is None or row.result is None:
            return None
        return dict(row.result)

    # ------------------------------------------------------------------ hosts and answers

    def targets(self, customer: str) -> list[TargetHost]:
        """*internal*: the customer's hosts with their labels and active agents."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(hosts.c.name, hosts.c.labels, hosts.c.last_seen, customers.c.slug)
                .join(customers, customers.c.id == hosts.c.customer_id)
                .where(customers.c.slug == customer)
                .order_by(hosts.c.name)
            ).all()
            agent_rows = conn.execute(
                sa.select(agents.c.host, agents.c.agent_id)
                .join(customers, customers.c.id == agents.c.customer_id)
                .where(customers.c.slug == customer, agents.c.revoked_at.is_(None))
                .order_by(agents.c.agent_id)
            ).all()
        by_host: dict[str, list[str]] = {}
        for a in agent_rows:
            by_host.setdefault(a.host, []).append(a.agent_id)
        return [
            TargetHost(r.slug, r.name, dict(r.labels or {}), tuple(by_host.get(r.name, ())), r.last_seen)
            for r in rows
        ]

    def answered(self, customer: str, run_id: str) -> set[str]:
        """*internal*: names of the customer's hosts whose completion marker for ``run_id`` is stored."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(hosts.c.name)
                .distinct()
                .select_from(check_results)
                .join(hosts, hosts.c.id == check_results.c.host_id)
                .join(customers, customers.c.id == hosts.c.customer_id)
                .where(
                    check_results.c.inspection_id == run_id,
                    check_results.c.check == COMPLETION_CHECK,
                    customers.c.slug == customer,
                )
            )
            return {r.name for r in rows}

    def gather(
        self,
        customer: str,
        run_id: str,
        names: Sequence[str],
        answered: Iterable[str],
        period_start: float,
        period_end: float,
        check_names: Iterable[str] | None = None,
    ) -> list[HostEvidence]:
        """*internal*: :class:`HostEvidence` of the named hosts for one run.

        Results: each check's latest result tagged with ``run_id`` (every finding of it).
        Metrics: the host's series of ``check_names`` (all when None) over the period, read
        as at most :data:`MAX_BUCKETS` time-bucket averages of raw points and roll-ups.
        """
        done = set(answered)
        wanted = None if check_names is None else sorted(set(check_names))
        with self._engine.connect() as conn:
            host_rows = conn.execute(
                sa.select(hosts.c.id, hosts.c.name, hosts.c.labels, hosts.c.last_seen)
                .join(customers, customers.c.id == hosts.c.customer_id)
                .where(customers.c.slug == customer, hosts.c.name.in_(list(names)))
            ).all()
            by_name = {r.name: r for r in host_rows}
            ids = [r.id for r in host_rows]
            latest = self._tagged(conn, run_id, ids)
            history = self._history(conn, ids, period_start, period_end, wanted)
            docs = {
                r.host_id: r.document
                for r in conn.execute(
                    sa.select(inventory.c.host_id, inventory.c.document).where(inventory.c.host_id.in_(ids))
                )
            }
            lost = self._lost(conn, customer, period_start, period_end)
        facts = []
        for name in names:
            row = by_name.get(name)
            if row is None:
                facts.append(HostEvidence(name, answered=False))
                continue
            document = docs.get(row.id)
            facts.append(
                HostEvidence(
                    name,
                    labels=dict(row.labels or {}),
                    answered=name in done,
                    latest=latest.get(row.id, []) if name in done else [],
                    series=history.get(row.id, []),
                    inventory=dict(document) if isinstance(document, dict) else None,
                    last_seen=row.last_seen,
                    lost_results=lost.get(name, 0),
                )
            )
        return facts

    def _tagged(
        self, conn: sa.Connection, run_id: str, ids: list[int]
    ) -> dict[int, list[tuple[str, float, list[dict[str, Any]]]]]:
        rows = conn.execute(
            sa.select(check_results)
            .where(check_results.c.inspection_id == run_id, check_results.c.host_id.in_(ids))
            .order_by(check_results.c.ts, check_results.c.id)
        ).all()
        newest: dict[tuple[int, str], Any] = {}
        for r in rows:
            newest[(r.host_id, r.check)] = r
        out: dict[int, list[tuple[str, float, list[dict[str, Any]]]]] = {}
        for (host_id, check), r in sorted(newest.items()):
            entries = [dict(f) for f in (r.findings or []) if isinstance(f, dict)]
            if not entries:
                entries = [{"severity": r.severity, "key": r.key, "summary": r.summary}]
            out.setdefault(host_id, []).append((check, float(r.ts), entries))
        return out

    def _history(
        self, conn: sa.Connection, ids: list[int], start: float, end: float, wanted: list[str] | None
    ) -> dict[int, list[tuple[str, dict[str, str], list[tuple[float, float]]]]]:
        query = sa.select(series.c.id, series.c.host_id, series.c.name, series.c.labels).where(
            series.c.host_id.in_(ids)
        )
        if wanted is not None:
            query = query.where(series.c.check.in_(wanted))
        refs = {r.id: r for r in conn.execute(query)}
        if not refs:
            return {}
        bucket_s = max(60.0, (end - start) / MAX_BUCKETS)
        raw = sa.select(
            points.c.series_id.label("sid"), points.c.ts.label("ts"), points.c.value.label("v")
        ).where(points.c.ts >= start, points.c.ts <= end)
        rolled = sa.select(
            points_rollup.c.series_id.label("sid"),
            points_rollup.c.bucket_ts.label("ts"),
            points_rollup.c.avg.label("v"),
        ).where(points_rollup.c.bucket_ts >= start, points_rollup.c.bucket_ts <= end)
        both = sa.union_all(raw, rolled).subquery()
        offset = (both.c.ts - start) / bucket_s
        index = sa.func.floor(offset) if self.store.dialect == "postgresql" else sa.cast(offset, sa.Integer)
        bucket = index.label("bucket")
        buckets = conn.execute(
            sa.select(
                both.c.sid, bucket, sa.func.avg(both.c.v).label("v"), sa.func.max(both.c.ts).label("ts")
            )
            .where(both.c.sid.in_(list(refs)))
            .group_by(both.c.sid, bucket)
        ).all()
        per_series: dict[int, list[tuple[float, float]]] = {}
        for b in buckets:
            per_series.setdefault(int(b.sid), []).append((float(b.ts), float(b.v)))
        out: dict[int, list[tuple[str, dict[str, str], list[tuple[float, float]]]]] = {}
        for sid, pts in sorted(per_series.items()):
            ref = refs[sid]
            out.setdefault(ref.host_id, []).append((ref.name, dict(ref.labels or {}), sorted(pts)))
        return out

    def _lost(self, conn: sa.Connection, customer: str, start: float, end: float) -> dict[str, int]:
        rows = conn.execute(
            # Summed as floating point: an integer sum of hostile counts overflowed SQLite's
            # 64-bit integers and failed every inspection of the customer.
            sa.select(agents.c.host, sa.func.sum(gaps.c.count * 1.0).label("n"))
            .join(agents, agents.c.agent_id == gaps.c.agent_id)
            .join(customers, customers.c.id == agents.c.customer_id)
            .where(customers.c.slug == customer, gaps.c.dropped_at >= start, gaps.c.dropped_at <= end)
            .group_by(agents.c.host)
        )
        return {r.host: int(min(float(r.n or 0), _LOST_MAX)) for r in rows}
