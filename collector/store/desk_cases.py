"""The service desk's writes on cases (issue 14): opening by hand, steps, transfers, time,
product decisions, complaint handling.

Cases are the one object of :mod:`collector.store.cases` (reads, ack/resolve/close, notes);
this repository adds what the desk does beside detection. Every call takes a
:class:`~collector.store.queries.Scope` and answers :class:`~collector.store.errors.NotFound`
for a case the scope may not see, exactly as for one that does not exist; a step the
case's state or type does not allow raises :class:`~collector.store.errors.Conflict`
saying what is allowed; bad values raise :class:`~collector.store.errors.StoreError`
naming the field. Each write is one transaction: nothing is half-written.

Timeline (``case_events``): every state change carries ``{"from": old, "to": new}`` in its
``data`` (the SLA clocks read them); nothing else does: a transfer records
``assignee_from``, ``assignee_to`` and ``reason``; a complaint step ``step`` (and
``team``, ``summary``); a decision ``decision``; a release ``release`` and ``upgrade_id``;
logged time ``minutes``, ``activity``, ``mode``, ``work_date``, ``engineer``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from collector.store.case_records import CaseRecord
from collector.store.case_states import (
    ACTIVE_STATES,
    CASE_TYPES,
    CHANNELS,
    COMPLAINT_STEPS,
    ROUTINE_SUBTYPES,
    Action,
    record_event,
    recorded_complaint_steps,
    transition,
)
from collector.store.cases import MAX_TEXT, CaseRepo, next_case_number, scoped_case
from collector.store.engine import SQLITE_IMMEDIATE
from collector.store.errors import Conflict, NotFound, StoreError
from collector.store.queries import Scope
from collector.store.schema import customers, hosts, product_upgrades
from collector.store.schema_cases import cases
from collector.store.schema_desk import case_time_entries

if TYPE_CHECKING:
    from collector.store.store import Store

__all__ = [
    "DECISIONS",
    "DESK_STEPS",
    "SEVERITIES",
    "DeskOverview",
    "DeskRepo",
    "NewCase",
    "TimeEntry",
    "TimeLog",
]

DESK_STEPS: tuple[Action, ...] = ("start", "wait", "resume", "follow-up", "reopen")
"""Steps :meth:`DeskRepo.step` carries out (``ack``/``take``, ``resolve`` and ``close`` are
:class:`CaseRepo`'s, shared with detection's cases)."""
DECISIONS = ("accepted", "rejected", "deferred")
SEVERITIES = ("CRIT", "WARN", "INFO")
PRODUCT_TYPES = ("adaptive", "perfective")
"""Case types whose change the product team decides on."""


@dataclass(frozen=True, slots=True)
class NewCase:
    """A request as the desk (or a customer admin) takes it down."""

    customer: str
    type: str
    channel: str
    title: str
    subtype: str | None = None
    description: str | None = None
    host: str | None = None
    contact: str | None = None
    severity: str = "WARN"


@dataclass(frozen=True, slots=True)
class TimeEntry:
    """Time an engineer logged on a case."""

    id: int
    case_id: str
    engineer: str
    minutes: int
    activity: str
    mode: str
    """``onsite`` or ``remote``."""
    work_date: dt.date
    logged_by: str
    logged_at: float


@dataclass(frozen=True, slots=True)
class TimeLog:
    """A case's time entries (oldest first) and their totals."""

    entries: tuple[TimeEntry, ...]
    total_minutes: int
    onsite_minutes: int
    remote_minutes: int


@dataclass(frozen=True, slots=True)
class DeskOverview:
    """What the service manager's view shows."""

    by_state: dict[str, int]
    by_type: dict[str, int]
    """Cases still being worked, per type."""
    unassigned: tuple[str, ...]
    waiting_on_customer: tuple[str, ...]
    complaints_open: tuple[str, ...]
    minutes_logged_30d: int


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise StoreError(message)


class DeskRepo:
    """The service desk's case writes in ``store``'s database."""

    def __init__(self, store: Store) -> None:
        self._cases = CaseRepo(store)
        self._engine = store.engine
        self._write_engine = store.engine.execution_options(**{SQLITE_IMMEDIATE: True})

    # ------------------------------------------------------------------ opening

    def open(self, scope: Scope, new: NewCase, *, actor: str, now: float) -> CaseRecord:
        """Open a case by hand (state ``new``); the case number counts per customer."""
        _check(new.type in CASE_TYPES, f"type: expected one of {', '.join(CASE_TYPES)}, not {new.type!r}")
        if new.type == "routine":
            _check(
                new.subtype in ROUTINE_SUBTYPES,
                f"subtype: a routine case needs one of {', '.join(ROUTINE_SUBTYPES)}",
            )
        else:
            _check(new.subtype is None, f"subtype: only routine cases have one, not {new.type} cases")
        people = tuple(c for c in CHANNELS if c != "automatic")
        _check(
            new.channel in people,
            f"channel: expected one of {', '.join(people)} (automatic is for cases detection opens)",
        )
        _check(new.severity in SEVERITIES, f"severity: expected one of {', '.join(SEVERITIES)}")
        _check(bool(new.title.strip()), "title: must not be empty")
        if not scope.allows(new.customer):
            raise NotFound(f"no customer {new.customer!r}")
        for attempt in range(3):
            try:
                case_id = self._open(new, actor=actor, now=now)
                break
            except sa.exc.IntegrityError:  # another writer took the number
                if attempt == 2:
                    raise
        return self._cases.get(scope, case_id)

    def _open(self, new: NewCase, *, actor: str, now: float) -> str:
        with self._write_engine.begin() as conn:
            customer_id = conn.execute(
                sa.select(customers.c.id).where(customers.c.slug == new.customer)
            ).scalar()
            if customer_id is None:
                raise StoreError(f"customer: no customer {new.customer!r}")
            if new.host is not None:
                known = conn.execute(
                    sa.select(hosts.c.id).where(hosts.c.customer_id == customer_id, hosts.c.name == new.host)
                ).scalar()
                _check(known is not None, f"host: customer {new.customer} has no host {new.host!r}")
            number, case_id = next_case_number(conn, customer_id, new.customer)
            conn.execute(
                cases.insert().values(
                    id=case_id, customer_id=customer_id, number=number, incident_id=None, kind=None,
                    title=new.title.strip()[:500], severity=new.severity, state="new", owner=None,
                    hosts=[] if new.host is None else [new.host], causes=[], members=[], incident={},
                    onset_at=now, detected_at=now, opened_at=now, updated_at=now,
                    acknowledged_at=None, resolved_at=None, closed_at=None, reopened=0,
                    type=new.type, subtype=new.subtype, channel=new.channel,
                    description=(new.description or "").strip()[:MAX_TEXT] or None,
                    contact=new.contact, first_responder=None,
                )
            )  # fmt: skip
            record_event(
                conn, case_id, now, "opened", actor, f"case opened ({new.type}, {new.channel}): {new.title}",
                {"type": new.type, "channel": new.channel, "from": None, "to": "new"},
            )  # fmt: skip
        return case_id

    # ------------------------------------------------------------------ steps

    def step(
        self, scope: Scope, case_id: str, action: Action, *, actor: str, now: float, note: str | None = None
    ) -> CaseRecord:
        """start, wait, resume, follow-up or reopen (see :mod:`collector.store.case_states`)."""
        _check(action in DESK_STEPS, f"action: expected one of {', '.join(DESK_STEPS)}")
        values: dict[str, Any] = {}
        if action == "reopen":
            values = {"resolved_at": None, "closed_at": None, "reopened": cases.c.reopened + 1}
        note = (note or "").strip()
        text = action.replace("-", " ") + (f": {note}" if note else "")
        with self._write_engine.begin() as conn:
            state = self._row(conn, scope, case_id)["state"]
            transition(
                conn, case_id, state, action, actor=actor, now=now, text=text, values=values,
                data={"note": note} if note else {},
            )  # fmt: skip
        return self._cases.get(scope, case_id)

    def transfer(
        self, scope: Scope, case_id: str, *, to: str, reason: str, actor: str, now: float
    ) -> CaseRecord:
        """Hand the case to ``to``; its first responder stays accountable."""
        to, reason = to.strip(), reason.strip()
        _check(bool(to), "to: name who takes the case over")
        _check(bool(reason), "reason: say why the case is transferred")
        with self._write_engine.begin() as conn:
            row = self._row(conn, scope, case_id)
            if row["state"] == "closed":
                raise Conflict(f"case {case_id} is closed: reopen it before transferring it")
            if row["owner"] == to:
                raise Conflict(f"case {case_id} is already assigned to {to}")
            conn.execute(cases.update().where(cases.c.id == case_id).values(owner=to, updated_at=now))
            record_event(
                conn, case_id, now, "transferred", actor,
                f"transferred from {row['owner'] or 'nobody'} to {to}: {reason}",
                {"assignee_from": row["owner"], "assignee_to": to, "reason": reason[:MAX_TEXT]},
            )  # fmt: skip
        return self._cases.get(scope, case_id)

    # ------------------------------------------------------------------ time

    def log_time(
        self,
        scope: Scope,
        case_id: str,
        *,
        minutes: int,
        activity: str,
        mode: str,
        work_date: dt.date,
        engineer: str,
        actor: str,
        now: float,
    ) -> TimeEntry:
        """Log ``minutes`` (1 to 1440) of ``engineer``'s work on the case on ``work_date``."""
        _check(1 <= minutes <= 1440, "minutes: expected 1 to 1440 (one day)")
        _check(mode in ("onsite", "remote"), "mode: expected onsite or remote")
        activity = activity.strip()
        _check(bool(activity), "activity: say what was done")
        _check(bool(engineer.strip()), "engineer: must not be empty")
        _check(
            work_date <= dt.datetime.fromtimestamp(now, dt.UTC).date() + dt.timedelta(days=1),
            "work_date: must not be in the future",
        )
        with self._write_engine.begin() as conn:
            self._row(conn, scope, case_id)
            key = conn.execute(
                case_time_entries.insert().values(
                    case_id=case_id, engineer=engineer.strip(), minutes=minutes, activity=activity[:500],
                    mode=mode, work_date=work_date, logged_by=actor, logged_at=now,
                )
            ).inserted_primary_key  # fmt: skip
            entry_id = int(key[0]) if key else 0
            record_event(
                conn, case_id, now, "time_logged", actor,
                f"{engineer} logged {minutes} min ({mode}) on {work_date.isoformat()}: {activity}",
                {"minutes": minutes, "activity": activity[:500], "mode": mode,
                 "work_date": work_date.isoformat(), "engineer": engineer},
            )  # fmt: skip
            conn.execute(cases.update().where(cases.c.id == case_id).values(updated_at=now))
        return TimeEntry(
            int(entry_id), case_id, engineer.strip(), minutes, activity[:500], mode, work_date, actor, now
        )

    def time_log(self, scope: Scope, case_id: str) -> TimeLog:
        """The case's time entries, oldest first, with totals."""
        with self._engine.connect() as conn:
            self._row(conn, scope, case_id)
            rows = conn.execute(
                sa.select(case_time_entries)
                .where(case_time_entries.c.case_id == case_id)
                .order_by(case_time_entries.c.work_date, case_time_entries.c.id)
            ).all()
        entries = tuple(
            TimeEntry(
                r.id, r.case_id, r.engineer, r.minutes, r.activity, r.mode, r.work_date, r.logged_by,
                r.logged_at,
            )
            for r in rows
        )  # fmt: skip
        onsite = sum(e.minutes for e in entries if e.mode == "onsite")
        remote = sum(e.minutes for e in entries if e.mode == "remote")
        return TimeLog(entries, onsite + remote, onsite, remote)

    # ------------------------------------------------------------------ product decisions

    def decide(
        self, scope: Scope, case_id: str, *, decision: str, text: str, actor: str, now: float
    ) -> CaseRecord:
        """Record the product team's decision on an adaptive or perfective case."""
        _check(decision in DECISIONS, f"decision: expected one of {', '.join(DECISIONS)}")
        text = text.strip()
        _check(bool(text), "text: give the product team's reasons")
        with self._write_engine.begin() as conn:
            row = self._product_case(conn, scope, case_id, "a decision")
            conn.execute(
                cases.update()
                .where(cases.c.id == case_id)
                .values(decision=decision, decision_text=text[:MAX_TEXT], updated_at=now)
            )
            record_event(
                conn, case_id, now, "decision", actor, f"product decision: {decision}: {text}",
                {"decision": decision, "previous": row["decision"]},
            )  # fmt: skip
        return self._cases.get(scope, case_id)

    def set_release(
        self,
        scope: Scope,
        case_id: str,
        *,
        release: str,
        upgrade_id: int | None,
        actor: str,
        now: float,
    ) -> CaseRecord:
        """Record the release that delivers an accepted change, and optionally the upgrade
        record (one of the case's customer's) that brought it to the customer's host."""
        release = release.strip()
        _check(bool(release), "release: name the release that delivers the change")
        with self._write_engine.begin() as conn:
            row = self._product_case(conn, scope, case_id, "a release")
            if row["decision"] != "accepted":
                raise Conflict(
                    f"case {case_id}'s change is {row['decision'] or 'not decided yet'}: "
                    "record an accepted decision before its release"
                )
            if upgrade_id is not None:
                found = conn.execute(
                    sa.select(product_upgrades.c.id)
                    .join(hosts, hosts.c.id == product_upgrades.c.host_id)
                    .where(product_upgrades.c.id == upgrade_id, hosts.c.customer_id == row["customer_id"])
                ).scalar()
                if found is None:
                    raise StoreError(f"upgrade_id: no upgrade record {upgrade_id} of this case's customer")
            conn.execute(
                cases.update()
                .where(cases.c.id == case_id)
                .values(release=release[:200], upgrade_id=upgrade_id, updated_at=now)
            )
            record_event(
                conn, case_id, now, "release", actor,
                f"delivered in release {release}" + (f" (upgrade record {upgrade_id})" if upgrade_id else ""),
                {"release": release[:200], "upgrade_id": upgrade_id},
            )  # fmt: skip
        return self._cases.get(scope, case_id)

    # ------------------------------------------------------------------ complaints

    def complaint_step(
        self,
        scope: Scope,
        case_id: str,
        *,
        step: str,
        text: str,
        actor: str,
        now: float,
        team: str | None = None,
        summary: str | None = None,
    ) -> CaseRecord:
        """Record one step of a complaint's handling (see
        :data:`~collector.store.case_states.COMPLAINT_STEPS`): ``handed_over`` names the
        ``team``; ``outcome`` needs a ``summary``; ``callback`` follows the outcome."""
        _check(step in COMPLAINT_STEPS, f"step: expected one of {', '.join(COMPLAINT_STEPS)}")
        text = text.strip()
        _check(bool(text), "text: describe the step")
        if step == "handed_over":
            _check(bool(team and team.strip()), "team: name the responsible team")
        if step == "outcome":
            _check(bool(summary and summary.strip()), "summary: summarise the complaint's outcome")
        with self._write_engine.begin() as conn:
            row = self._row(conn, scope, case_id)
            if row["type"] != "complaint":
                raise Conflict(f"case {case_id} is a {row['type']} case: complaint steps are for complaints")
            if row["state"] == "closed":
                raise Conflict(f"case {case_id} is closed: reopen it to record more of its handling")
            if step == "callback" and "outcome" not in recorded_complaint_steps(conn, case_id):
                raise Conflict(f"complaint {case_id}: record its outcome before the callback to the customer")
            data: dict[str, Any] = {"step": step}
            if team:
                data["team"] = team.strip()[:200]
            if summary:
                data["summary"] = summary.strip()[:MAX_TEXT]
            record_event(
                conn, case_id, now, "complaint_step", actor, f"{step.replace('_', ' ')}: {text}", data
            )
            conn.execute(cases.update().where(cases.c.id == case_id).values(updated_at=now))
        return self._cases.get(scope, case_id)

    # ------------------------------------------------------------------ the manager's view

    def overview(self, scope: Scope, *, now: float, customer: str | None = None) -> DeskOverview:
        """Counts and queues a service manager watches (SLA risk is the SLA clocks')."""
        cond = scope.where() if customer is None else sa.and_(scope.where(), customers.c.slug == customer)
        joined = cases.join(customers, customers.c.id == cases.c.customer_id)
        with self._engine.connect() as conn:
            by_state = {
                str(state): int(n)
                for state, n in conn.execute(
                    sa.select(cases.c.state, sa.func.count())
                    .select_from(joined)
                    .where(cond)
                    .group_by(cases.c.state)
                )
            }
            by_type = {
                str(kind): int(n)
                for kind, n in conn.execute(
                    sa.select(cases.c.type, sa.func.count())
                    .select_from(joined)
                    .where(cond, cases.c.state.in_(ACTIVE_STATES))
                    .group_by(cases.c.type)
                )
            }

            def ids(*where: sa.ColumnElement[bool]) -> tuple[str, ...]:
                return tuple(
                    conn.execute(
                        sa.select(cases.c.id)
                        .select_from(joined)
                        .where(cond, *where)
                        .order_by(cases.c.opened_at, cases.c.id)
                        .limit(100)
                    ).scalars()
                )

            unassigned = ids(cases.c.state == "new", cases.c.owner.is_(None))
            waiting = ids(cases.c.state == "waiting_on_customer")
            complaints = ids(cases.c.type == "complaint", cases.c.state != "closed")
            minutes = conn.execute(
                sa.select(sa.func.coalesce(sa.func.sum(case_time_entries.c.minutes), 0))
                .select_from(case_time_entries.join(cases, cases.c.id == case_time_entries.c.case_id).join(
                    customers, customers.c.id == cases.c.customer_id))
                .where(cond, case_time_entries.c.logged_at >= now - 30 * 86400)
            ).scalar_one()  # fmt: skip
        return DeskOverview(by_state, by_type, unassigned, waiting, complaints, int(minutes))

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _row(conn: sa.Connection, scope: Scope, case_id: str) -> Mapping[str, Any]:
        columns = (cases.c.state, cases.c.owner, cases.c.type, cases.c.decision, cases.c.customer_id)
        return scoped_case(conn, scope, case_id, *columns)

    def _product_case(self, conn: sa.Connection, scope: Scope, case_id: str, what: str) -> Mapping[str, Any]:
        row = self._row(conn, scope, case_id)
        if row["type"] not in PRODUCT_TYPES:
            raise Conflict(
                f"case {case_id} is a {row['type']} case: only adaptive and perfective cases record {what}"
            )
        return row
