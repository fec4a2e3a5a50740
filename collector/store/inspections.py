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

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from collector.inspections.facts import HostFacts
from collector.inspections.model import InspectionResult
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
    report_deliveries,
    reports,
)
from collector.store.store import Store

__all__ = [
    "COMPLETION_CHECK",
    "CustomerProfile",
    "InspectionRepo",
    "ReportRecord",
    "RunRecord",
    "TargetHost",
]

COMPLETION_CHECK = "application.agent"
"""A host answered an inspection when this check's result (the agent's own check, which it
runs and spools last, see ``agent/inspection.py``) tagged with the inspection id is stored."""
MAX_LOGO_BYTES = 512 * 1024
MAX_BUCKETS = 200
"""Metric history is read as at most this many time buckets per series (averages)."""
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
class ReportRecord:
    id: int
    customer: str
    kind: str
    subject: str
    lang: str
    format: str
    created_at: float
    sha256: str
    size: int
    path: str | None
    version: str | None = None
    """What the content was rendered from (see ``collector.reports.versions``)."""


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


def _report(row: Any) -> ReportRecord:
    return ReportRecord(
        id=int(row.id),
        customer=row.slug,
        kind=row.kind,
        subject=row.subject,
        lang=row.lang,
        format=row.format,
        created_at=row.created_at,
        sha256=row.sha256,
        size=int(row.size),
        path=row.path,
        version=row.version,
    )


_RUN_COLUMNS = [c for c in inspection_runs.c if c.name != "result"]
_REPORT_COLUMNS = [c for c in reports.c if c.name != "content"]


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """A run's report e-mailed to its plan's recipients (``report_deliveries``)."""

    id: int
    customer: str
    run_id: str
    recipients: tuple[str, ...]
    lang: str
    state: str
    """pending (not sent yet, or being retried), sent, or failed (given up; see last_error)."""
    attempts: int
    created_at: float
    next_at: float
    sent_at: float | None
    last_error: str | None


_LOST_MAX = float(2**53)
"""Lost-entry counts are reported up to this (exact in a float; far above any real count)."""


class InspectionRepo:
    """See the module docstring."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._engine = store.engine

    # ------------------------------------------------------------------ customers

    def _customer_id(self, conn: sa.Connection, scope: Scope, slug: str) -> int:
        if not scope.allows(slug):
            raise NotFound(f"no customer {slug!r}")
        found = conn.execute(sa.select(customers.c.id).where(customers.c.slug == slug)).scalar_one_or_none()
        if found is None:
            raise NotFound(f"no customer {slug!r}")
        return int(found)

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

    def previous_result(self, customer: str, plan: str, before: float) -> InspectionResult | None:
        """*internal*: the result of the latest finished run of ``plan`` created before ``before``."""
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
        return InspectionResult.from_dict(dict(row.result))

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
    ) -> list[HostFacts]:
        """*internal*: :class:`HostFacts` of the named hosts for one run.

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
                facts.append(HostFacts(name, answered=False))
                continue
            document = docs.get(row.id)
            facts.append(
                HostFacts.build(
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

    # ------------------------------------------------------------------ reports

    def add_report(
        self,
        customer: str,
        kind: str,
        subject: str,
        lang: str,
        fmt: str,
        content: bytes,
        *,
        path: str | None = None,
        version: str | None = None,
    ) -> ReportRecord:
        """*internal*: store a rendered report as a service record of ``customer``."""
        with self.store._write() as conn:
            cid = self._customer_id(conn, Scope.everything(), customer)
            new_id = conn.execute(
                reports.insert()
                .values(
                    customer_id=cid,
                    kind=kind,
                    subject=subject,
                    lang=lang,
                    format=fmt,
                    created_at=self.store._clock(),
                    sha256=hashlib.sha256(content).hexdigest(),
                    size=len(content),
                    content=content,
                    path=path,
                    version=version,
                )
                .returning(reports.c.id)
            ).scalar_one()
        return self.report(Scope.of(customer), int(new_id))

    def _reports_query(self, scope: Scope) -> Any:
        return (
            sa.select(*_REPORT_COLUMNS, customers.c.slug)
            .join(customers, customers.c.id == reports.c.customer_id)
            .where(scope.where())
        )

    def report(self, scope: Scope, report_id: int) -> ReportRecord:
        with self._engine.connect() as conn:
            row = conn.execute(self._reports_query(scope).where(reports.c.id == report_id)).first()
        if row is None:
            raise NotFound(f"no report {report_id}")
        return _report(row)

    def report_content(self, scope: Scope, report_id: int) -> tuple[ReportRecord, bytes]:
        """A report and its bytes; NotFound outside the scope."""
        record = self.report(scope, report_id)
        with self._engine.connect() as conn:
            content = conn.execute(sa.select(reports.c.content).where(reports.c.id == report_id)).scalar_one()
        return record, bytes(content)

    def reports(
        self,
        scope: Scope,
        *,
        customer: str | None = None,
        kind: str | None = None,
        subject: str | None = None,
        lang: str | None = None,
        fmt: str | None = None,
        version: str | None = None,
        limit: int = 100,
    ) -> list[ReportRecord]:
        """Service records, newest first."""
        query = self._reports_query(scope)
        for column, value in (
            (reports.c.version, version),
            (customers.c.slug, customer),
            (reports.c.kind, kind),
            (reports.c.subject, subject),
            (reports.c.lang, lang),
            (reports.c.format, fmt),
        ):
            if value is not None:
                query = query.where(column == value)
        query = query.order_by(reports.c.created_at.desc(), reports.c.id.desc()).limit(limit)
        with self._engine.connect() as conn:
            return [_report(r) for r in conn.execute(query)]

    # ------------------------------------------------------------------ report deliveries

    def _delivery(self, row: Any) -> DeliveryRecord:
        return DeliveryRecord(
            id=int(row.id),
            customer=row.slug,
            run_id=row.run_id,
            recipients=tuple(row.recipients),
            lang=row.lang,
            state=row.state,
            attempts=int(row.attempts),
            created_at=float(row.created_at),
            next_at=float(row.next_at),
            sent_at=None if row.sent_at is None else float(row.sent_at),
            last_error=row.last_error,
        )

    def _deliveries_query(self) -> Any:
        return sa.select(report_deliveries, customers.c.slug).join(
            customers, customers.c.id == report_deliveries.c.customer_id
        )

    def queue_delivery(self, customer: str, run_id: str, recipients: Sequence[str], lang: str) -> None:
        """*internal*: e-mail ``run_id``'s report to ``recipients`` (once per run)."""
        now = self.store._clock()
        with self.store._write() as conn:
            cid = self._customer_id(conn, Scope.everything(), customer)
            conn.execute(
                self.store._insert(report_deliveries)
                .values(
                    customer_id=cid,
                    run_id=run_id,
                    recipients=list(recipients),
                    lang=lang,
                    state="pending",
                    attempts=0,
                    created_at=now,
                    next_at=now,
                )
                .on_conflict_do_nothing(index_elements=["run_id"])
            )

    def claim_deliveries(self, now: float, lease_s: float, limit: int = 10) -> list[DeliveryRecord]:
        """*internal*: pending deliveries due at ``now``, each leased to this caller for ``lease_s``.

        The lease is a compare-and-set of ``next_at``: of several collectors sharing the store,
        one sends a given report; if it dies mid-send, the lease runs out and another retries.
        """
        with self.store._write() as conn:
            due = conn.execute(
                self._deliveries_query()
                .where(report_deliveries.c.state == "pending", report_deliveries.c.next_at <= now)
                .order_by(report_deliveries.c.next_at)
                .limit(limit)
            ).all()
            claimed = []
            for row in due:
                done = conn.execute(
                    report_deliveries.update()
                    .where(report_deliveries.c.id == row.id, report_deliveries.c.next_at == row.next_at)
                    .values(next_at=now + lease_s)
                )
                if done.rowcount == 1:
                    claimed.append(self._delivery(row))
        return claimed

    def finish_delivery(
        self, delivery_id: int, *, state: str, attempts: int, next_at: float, error: str | None = None
    ) -> None:
        """*internal*: record an attempt's outcome (sent, failed, or pending again at ``next_at``)."""
        values: dict[str, Any] = {
            "state": state,
            "attempts": attempts,
            "next_at": next_at,
            "last_error": error,
        }
        if state == "sent":
            values["sent_at"] = self.store._clock()
        with self.store._write() as conn:
            conn.execute(
                report_deliveries.update().where(report_deliveries.c.id == delivery_id).values(**values)
            )

    def deliveries(self, scope: Scope, run_id: str | None = None) -> list[DeliveryRecord]:
        """Report e-mails, newest first, of the customers ``scope`` may read."""
        query = self._deliveries_query().where(scope.where()).order_by(report_deliveries.c.created_at.desc())
        if run_id is not None:
            query = query.where(report_deliveries.c.run_id == run_id)
        with self.store.engine.connect() as conn:
            return [self._delivery(row) for row in conn.execute(query)]
