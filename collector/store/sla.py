"""SLA clocks in the store (:class:`SlaRepo`): what the sweep reads of cases, and ``case_sla``.

This module reads the ``cases`` tables but owns none of them (:mod:`collector.store.cases`
does). It works against both case models: today's states (``open`` ... ``closed``) and the
service desk's (``new`` ... ``closed``, with a ``case_type`` column); a case without a
``case_type`` column is an ``emergency`` case. Its one write to the timeline is the SLA
warning or breach (:meth:`SlaRepo.raise_alerts`), inserted in the same transaction that
marks the clock, and only if the clock was not marked yet: each is raised exactly once,
even when two sweeps race.

Bulk by design (``bench/desk.py``): the sweep reads only cases whose timeline moved since
its watermark (``case_events.id``) or whose clocks were marked dirty, and finds the
thresholds crossed with two indexed range queries.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from collector.store.engine import SQLITE_IMMEDIATE
from collector.store.queries import Scope
from collector.store.schema import customers, hosts
from collector.store.schema_cases import case_events, cases
from collector.store.schema_contracts import case_sla, desk_sweep

if TYPE_CHECKING:
    from collector.store.store import Store

__all__ = ["ALERT_KINDS", "Alert", "CaseInput", "ClockRow", "SlaRepo", "SlaRow"]

ALERT_KINDS = ("sla_warning", "sla_breach")
"""Timeline event kinds the sweep adds (and ignores when looking for changed cases)."""
_CHUNK = 500
_SWEEP = "sla"


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


@dataclass(frozen=True, slots=True)
class CaseInput:
    """What the clocks of one case are computed from."""

    id: str
    customer: str
    customer_id: int
    case_type: str
    state: str
    title: str
    opened_at: float
    hosts: tuple[str, ...]
    host_labels: Mapping[str, Mapping[str, str]]
    events: tuple[tuple[float, str, Mapping[str, Any]], ...]


@dataclass(frozen=True, slots=True)
class ClockRow:
    """One computed clock, as stored."""

    case_id: str
    target: str
    customer_id: int
    case_type: str
    target_s: float
    clock: str
    elapsed_s: float
    warn_at: float | None
    due_at: float | None


@dataclass(frozen=True, slots=True)
class Alert:
    """A threshold crossed and raised (customer, title and opened_at filled for breaches)."""

    case_id: str
    customer: str
    title: str
    target: str
    kind: str
    """``sla_warning`` or ``sla_breach``."""
    at: float
    """When the clock crossed the threshold."""
    target_s: float
    due_at: float | None
    opened_at: float = 0.0


@dataclass(frozen=True, slots=True)
class SlaRow:
    """A clock in the manager's view."""

    case_id: str
    customer: str
    title: str
    case_type: str
    case_state: str
    target: str
    state: str
    clock: str
    target_s: float
    elapsed_s: float
    computed_at: float
    warn_at: float | None
    due_at: float | None
    warned_at: float | None
    breached_at: float | None


class SlaRepo:
    """Reads of cases for the SLA sweep, and the ``case_sla`` clocks."""

    def __init__(self, store: Store) -> None:
        self._engine = store.engine
        self._write_engine = store.engine.execution_options(**{SQLITE_IMMEDIATE: True})
        self._sqlite = store.dialect == "sqlite"

    # ------------------------------------------------------------------ what changed

    def watermark(self) -> int:
        with self._engine.connect() as conn:
            found = conn.execute(
                sa.select(desk_sweep.c.last_event_id).where(desk_sweep.c.name == _SWEEP)
            ).scalar()
        return int(found or 0)

    def changed_events(
        self, after_event_id: int, recheck: Sequence[int] = ()
    ) -> tuple[list[tuple[int, str | None]], int]:
        """``(event id, case id)`` of timeline events after ``after_event_id`` or among
        ``recheck`` (ids the last pass did not see yet), and the highest id now. SLA alerts
        come with case None: seen, but no reason to compute a case again."""
        with self._engine.connect() as conn:
            top = int(conn.execute(sa.select(sa.func.max(case_events.c.id))).scalar() or 0)
            newer = case_events.c.id > after_event_id
            where = sa.or_(newer, case_events.c.id.in_(list(recheck))) if recheck else newer
            rows = conn.execute(
                sa.select(case_events.c.id, case_events.c.case_id, case_events.c.kind).where(
                    where, case_events.c.id <= top
                )
            ).all()
            found = [(int(r.id), None if r.kind in ALERT_KINDS else str(r.case_id)) for r in rows]
            return found, max(top, after_event_id)

    def dirty_cases(self) -> list[str]:
        with self._engine.connect() as conn:
            found = conn.execute(
                sa.select(case_sla.c.case_id).where(case_sla.c.dirty == sa.true()).distinct()
            ).scalars()
            return sorted(str(case_id) for case_id in found)

    def set_watermark(self, event_id: int, now: float) -> None:
        with self._write_engine.begin() as conn:
            self._set_watermark(conn, event_id, now)

    def _set_watermark(self, conn: sa.Connection, event_id: int, now: float) -> None:
        insert = (sqlite_dialect.insert if self._sqlite else pg_dialect.insert)(desk_sweep)
        conn.execute(
            insert.values(name=_SWEEP, last_event_id=event_id, swept_at=now).on_conflict_do_update(
                index_elements=["name"], set_={"last_event_id": event_id, "swept_at": now}
            )
        )

    # ------------------------------------------------------------------ case inputs

    def case_inputs(self, case_ids: Sequence[str]) -> list[CaseInput]:
        """The cases ``case_ids`` with their timelines and their hosts' labels, in bulk."""
        found: list[CaseInput] = []
        case_type = cases.c.get("case_type")
        type_column = case_type if case_type is not None else sa.literal("emergency")
        with self._engine.connect() as conn:
            for start in range(0, len(case_ids), _CHUNK):
                chunk = list(case_ids[start : start + _CHUNK])
                rows = conn.execute(
                    sa.select(
                        cases.c.id,
                        cases.c.customer_id,
                        customers.c.slug,
                        type_column.label("case_type"),
                        cases.c.state,
                        cases.c.title,
                        cases.c.opened_at,
                        cases.c.hosts,
                    )
                    .join(customers, customers.c.id == cases.c.customer_id)
                    .where(cases.c.id.in_(chunk))
                ).all()
                events: dict[str, list[tuple[float, str, Mapping[str, Any]]]] = {}
                for ev in conn.execute(
                    sa.select(case_events.c.case_id, case_events.c.ts, case_events.c.kind, case_events.c.data)
                    .where(case_events.c.case_id.in_(chunk), case_events.c.kind.not_in(ALERT_KINDS))
                    .order_by(case_events.c.case_id, case_events.c.ts, case_events.c.id)
                ):
                    events.setdefault(ev.case_id, []).append((ev.ts, ev.kind, _json(ev.data) or {}))
                labels = self._labels(conn, {(r.customer_id, h) for r in rows for h in _json(r.hosts) or ()})
                for r in rows:
                    names = tuple(str(h) for h in _json(r.hosts) or ())
                    found.append(
                        CaseInput(
                            id=r.id,
                            customer=r.slug,
                            customer_id=r.customer_id,
                            case_type=str(r.case_type or "emergency"),
                            state=r.state,
                            title=r.title,
                            opened_at=r.opened_at,
                            hosts=names,
                            host_labels={h: labels.get((r.customer_id, h), {}) for h in names},
                            events=tuple(events.get(r.id, ())),
                        )
                    )
        return found

    @staticmethod
    def _labels(conn: sa.Connection, wanted: set[tuple[int, str]]) -> dict[tuple[int, str], dict[str, str]]:
        if not wanted:
            return {}
        ids = sorted({customer for customer, _ in wanted})
        names = sorted({name for _, name in wanted})
        found: dict[tuple[int, str], dict[str, str]] = {}
        for row in conn.execute(
            sa.select(hosts.c.customer_id, hosts.c.name, hosts.c.labels).where(
                hosts.c.customer_id.in_(ids), hosts.c.name.in_(names)
            )
        ):
            found[(row.customer_id, row.name)] = dict(_json(row.labels) or {})
        return found

    # ------------------------------------------------------------------ clocks

    def save_clocks(self, rows: Iterable[ClockRow], *, now: float) -> int:
        """Insert or update computed clocks (keeping when warnings and breaches were raised)."""
        with self._write_engine.begin() as conn:
            return self._save(conn, rows, now)

    def finish_pass(
        self, rows: Iterable[ClockRow], watermark: int | None, now: float, text: Callable[[Alert], str]
    ) -> tuple[int, list[Alert]]:
        """One transaction (one commit) for the end of a sweep: the last computed clocks, the
        new watermark (None: unchanged), and the alerts now due, each raised once
        (:meth:`_raise`): the number of warnings and the breaches raised."""
        with self._write_engine.begin() as conn:
            self._save(conn, rows, now)
            if watermark is not None:
                self._set_watermark(conn, watermark, now)
            return self._raise(conn, now, text)

    def _save(self, conn: sa.Connection, rows: Iterable[ClockRow], now: float) -> int:
        values = [
            {
                "case_id": r.case_id,
                "target": r.target,
                "customer_id": r.customer_id,
                "case_type": r.case_type,
                "target_s": r.target_s,
                "clock": r.clock,
                "elapsed_s": r.elapsed_s,
                "computed_at": now,
                "warn_at": r.warn_at,
                "due_at": r.due_at,
                "warned_at": None,
                "breached_at": None,
                "dirty": False,
            }
            for r in rows
        ]
        if not values:
            return 0
        insert = (sqlite_dialect.insert if self._sqlite else pg_dialect.insert)(case_sla)
        kept = ("case_id", "target", "warned_at", "breached_at")
        statement = insert.on_conflict_do_update(
            index_elements=["case_id", "target"],
            set_={c.name: insert.excluded[c.name] for c in case_sla.c if c.name not in kept},
        )
        for start in range(0, len(values), 5000):
            conn.execute(statement, values[start : start + 5000])
        return len(values)

    def _raise(
        self, conn: sa.Connection, now: float, text: Callable[[Alert], str]
    ) -> tuple[int, list[Alert]]:
        """Mark the clocks due at ``now`` and add their timeline events, in set operations.

        The conditional UPDATEs make each alert happen once, however many sweeps race: a
        row is marked only by the transaction that finds it unmarked, and stamped with this
        pass's ``now``, which is how the INSERT ... SELECT below finds exactly the rows this
        pass marked. A breach marks the warning too (a clock that breaches at once does not
        warn after it). Only breaches come back as :class:`Alert` (they are escalated one
        by one); warnings are counted.
        """
        breached = conn.execute(
            case_sla.update()
            .where(case_sla.c.breached_at.is_(None), case_sla.c.due_at <= now)
            .values(breached_at=now, warned_at=sa.func.coalesce(case_sla.c.warned_at, now))
            .returning(case_sla.c.case_id, case_sla.c.target, case_sla.c.due_at, case_sla.c.target_s)
        ).all()
        conn.execute(
            case_sla.update()
            .where(case_sla.c.warned_at.is_(None), case_sla.c.warn_at <= now)
            .values(warned_at=now)
        )
        warned_now = sa.and_(case_sla.c.warned_at == now, case_sla.c.breached_at.is_(None))
        breached_now = case_sla.c.breached_at == now
        for kind, which, at in (
            ("sla_warning", warned_now, case_sla.c.warn_at),
            ("sla_breach", breached_now, case_sla.c.due_at),
        ):
            combos = conn.execute(
                sa.select(case_sla.c.target, case_sla.c.target_s).where(which).distinct()
            ).all()
            if not combos:
                continue
            # The wording depends only on (target, target seconds): a handful per pass.
            wording = sa.case(
                *[
                    (
                        sa.and_(case_sla.c.target == target, case_sla.c.target_s == target_s),
                        text(Alert("", "", "", target, kind, 0.0, target_s, None))[:10_000],
                    )
                    for target, target_s in combos
                ],
                else_=kind,
            )
            build = sa.func.json_object if self._sqlite else sa.func.jsonb_build_object
            data = build(
                "target",
                case_sla.c.target,
                "at",
                at,
                "due_at",
                case_sla.c.due_at,
                "target_s",
                case_sla.c.target_s,
            )
            columns = ["case_id", "ts", "kind", "actor", "text", "data"]
            conn.execute(
                case_events.insert().from_select(
                    columns,
                    sa.select(
                        case_sla.c.case_id,
                        sa.literal(now, sa.Double()),
                        sa.literal(kind),
                        sa.null(),
                        wording,
                        data,
                    ).where(which),
                )
            )
        # who and what each breach is about, for its escalation
        ids = sorted({r.case_id for r in breached})
        about: dict[str, Any] = {}
        for start in range(0, len(ids), _CHUNK):
            for row in conn.execute(
                sa.select(cases.c.id, customers.c.slug, cases.c.title, cases.c.opened_at)
                .join(customers, customers.c.id == cases.c.customer_id)
                .where(cases.c.id.in_(ids[start : start + _CHUNK]))
            ):
                about[row.id] = row
        alerts = [
            Alert(
                r.case_id,
                about[r.case_id].slug,
                about[r.case_id].title,
                r.target,
                "sla_breach",
                r.due_at,
                r.target_s,
                r.due_at,
                about[r.case_id].opened_at,
            )
            for r in breached
        ]
        warnings = conn.execute(
            sa.select(sa.func.count()).select_from(case_sla).where(warned_now)
        ).scalar_one()
        return int(warnings), alerts

    # ------------------------------------------------------------------ people's views

    def view(self, scope: Scope, *, customer: str | None = None, limit: int = 500) -> list[SlaRow]:
        """Clocks at risk (warned) or breached of cases still open, most urgent first."""
        case_type = cases.c.get("case_type")
        query = (
            sa.select(
                case_sla,
                customers.c.slug,
                cases.c.title,
                cases.c.state.label("case_state"),
                (case_type if case_type is not None else sa.literal("emergency")).label("kind_of_case"),
            )
            .join(customers, customers.c.id == case_sla.c.customer_id)
            .join(cases, cases.c.id == case_sla.c.case_id)
            .where(
                scope.where(),
                case_sla.c.warned_at.is_not(None),
                case_sla.c.clock != "stopped",
                cases.c.state != "closed",
            )
            .order_by(case_sla.c.breached_at.is_(None), case_sla.c.due_at, case_sla.c.case_id)
            .limit(limit)
        )
        if customer is not None:
            query = query.where(customers.c.slug == customer)
        with self._engine.connect() as conn:
            return [
                SlaRow(
                    case_id=r.case_id,
                    customer=r.slug,
                    title=r.title,
                    case_type=str(r.kind_of_case),
                    case_state=r.case_state,
                    target=r.target,
                    state="breached" if r.breached_at is not None else "warning",
                    clock=r.clock,
                    target_s=r.target_s,
                    elapsed_s=r.elapsed_s,
                    computed_at=r.computed_at,
                    warn_at=r.warn_at,
                    due_at=r.due_at,
                    warned_at=r.warned_at,
                    breached_at=r.breached_at,
                )
                for r in conn.execute(query)
            ]

    def cases_at_risk(self, scope: Scope, *, customer: str | None = None) -> tuple[list[str], list[str]]:
        """(breached, at risk): ids of open cases with a breached clock, and of those with a
        clock past its warning and none breached, each most urgent first (see :meth:`view`)."""
        breached: dict[str, None] = {}
        at_risk: dict[str, None] = {}
        for row in self.view(scope, customer=customer, limit=10_000):
            (breached if row.breached_at is not None else at_risk).setdefault(row.case_id)
        return list(breached), [c for c in at_risk if c not in breached]

    def counts(self) -> list[tuple[str, str, int]]:
        """(customer, at_risk|breached, clocks) over open cases' running or paused clocks, for /metrics."""
        state = sa.case((case_sla.c.breached_at.is_not(None), "breached"), else_="at_risk").label("state")
        query = (
            sa.select(customers.c.slug, state, sa.func.count())
            .join(customers, customers.c.id == case_sla.c.customer_id)
            .where(case_sla.c.warned_at.is_not(None), case_sla.c.clock != "stopped")
            .group_by(customers.c.slug, state)
        )
        with self._engine.connect() as conn:
            return [(str(slug), str(st), int(n)) for slug, st, n in conn.execute(query)]

    def breached_cases(self) -> list[tuple[str, int]]:
        """(customer, open cases with a breached clock still running or paused) for every
        customer, zero included, for /metrics."""
        breached = sa.and_(
            case_sla.c.customer_id == customers.c.id,
            case_sla.c.breached_at.is_not(None),
            case_sla.c.clock != "stopped",
        )
        query = (
            sa.select(customers.c.slug, sa.func.count(sa.distinct(case_sla.c.case_id)))
            .select_from(customers.outerjoin(case_sla, breached))
            .group_by(customers.c.slug)
        )
        with self._engine.connect() as conn:
            return [(str(slug), int(n)) for slug, n in conn.execute(query)]

    def totals(self) -> tuple[int, int]:
        """Warnings and breaches ever raised (monotonic while clocks are kept): counters."""
        query = sa.select(
            sa.func.count(case_sla.c.warned_at), sa.func.count(case_sla.c.breached_at)
        ).select_from(case_sla)
        with self._engine.connect() as conn:
            warned, breached = conn.execute(query).one()
        return int(warned), int(breached)
