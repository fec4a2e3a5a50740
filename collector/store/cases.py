"""Cases in the store: scoped reads, detection's side, and the steps shared by every case.

:class:`CaseRepo` reads cases and carries out detection's writes and the steps every case
shares (ack, resolve, close, notes); the service desk's own writes (opening by hand,
transfers, time, decisions, complaint steps) are in :mod:`collector.store.desk_cases`.
Tables: :mod:`collector.store.schema_cases`. Every read that serves a person takes a
:class:`~collector.store.queries.Scope`; a case of another customer is reported exactly
like a case that does not exist (:class:`~collector.store.errors.NotFound`).

States and transitions are in :mod:`collector.store.case_states` (anything else raises
:class:`~collector.store.errors.Conflict` with a message saying what is allowed); a case
detection opens is ``new``, of type ``emergency`` through channel ``automatic``, and a
new incident shortly after recovery reopens a resolved, follow-up or closed case to ``new``.

Notes may be added in any state. Case ids are ``C-<customer>-<number>``, the number
counting per customer from 1.

Writes use their own ``BEGIN IMMEDIATE`` transactions (on SQLite) and never the ingest
path's locks: the live observer calls this repository right after a group commit.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa

from collector.store.case_records import CaseContent, CaseEvent, CaseRecord, IncidentRecord, json_value
from collector.store.case_states import (
    CASE_STATES,
    COMPLAINT_REQUIRED,
    CaseState,
    record_event,
    recorded_complaint_steps,
    transition,
)
from collector.store.engine import SQLITE_IMMEDIATE
from collector.store.errors import Conflict, NotFound
from collector.store.queries import Scope
from collector.store.schema import customers
from collector.store.schema_cases import case_events, case_incidents, cases, detection_state, incidents

if TYPE_CHECKING:
    from collector.store.store import Store

__all__ = [
    "CASE_STATES",
    "EVENT_KINDS",
    "CaseContent",
    "CaseEvent",
    "CaseRecord",
    "CaseRepo",
    "CaseState",
    "IncidentRecord",
    "case_id_for",
]

EVENT_KINDS = (
    "opened",
    "updated",
    "acknowledged",
    "note",
    "recovered",
    "resolved",
    "closed",
    "reopened",
    "suppressed",
    "notified",
    # the service desk
    "started",
    "waiting",
    "resumed",
    "follow_up",
    "transferred",
    "time_logged",
    "decision",
    "release",
    "complaint_step",
)
"""Kinds of case timeline events."""

MAX_TEXT = 10_000
"""Longest note or event text kept."""

_POSITION_SHIFT = 2**32
_POSITION = cases.c.customer_id * sa.literal(_POSITION_SHIFT, sa.BigInteger) + cases.c.number
"""A case's unique position among cases opened at the same time (page cursors)."""


def case_id_for(customer: str, number: int) -> str:
    """The case id of a customer's ``number``-th case.

    >>> case_id_for("acme", 7)
    'C-acme-7'
    """
    return f"C-{customer}-{number}"


def scoped_case(
    conn: sa.Connection, scope: Scope, case_id: str, *columns: Any, hint: str = ""
) -> Mapping[str, Any]:
    """``columns`` of case ``case_id``; NotFound (its message ending in ``hint``) when it does
    not exist or the scope may not see it."""
    found = conn.execute(
        sa.select(*columns)
        .join(customers, customers.c.id == cases.c.customer_id)
        .where(cases.c.id == case_id, scope.where())
    ).first()
    if found is None:
        raise NotFound(f"no case {case_id!r}{hint}")
    return dict(found._mapping)


def next_case_number(conn: sa.Connection, customer_id: int, customer: str) -> tuple[int, str]:
    """The number and id of ``customer``'s next case (call inside the inserting transaction)."""
    number = (
        conn.execute(
            sa.select(sa.func.max(cases.c.number)).where(cases.c.customer_id == customer_id)
        ).scalar()
        or 0
    ) + 1
    return number, case_id_for(customer, number)


class CaseRepo:
    """Cases, their timeline, incidents and detection state in ``store``'s database."""

    def __init__(self, store: Store) -> None:
        self._engine = store.engine
        self._write_engine = store.engine.execution_options(**{SQLITE_IMMEDIATE: True})

    # ------------------------------------------------------------------ reads

    def get(self, scope: Scope, case_id: str) -> CaseRecord:
        """The case ``case_id``; NotFound when it does not exist or the scope may not see it."""
        with self._engine.connect() as conn:
            rows = self._select(conn, scope, cases.c.id == case_id, limit=1)
        if not rows:
            raise NotFound(f"no case {case_id!r}")
        return rows[0]

    def list(
        self,
        scope: Scope,
        state: str | Sequence[str] | None = None,
        customer: str | None = None,
        limit: int = 100,
        *,
        type: str | None = None,
        channel: str | None = None,
        assignee: str | None = None,
        before: tuple[float, int] | None = None,
    ) -> list[CaseRecord]:
        """Cases the scope may see, newest first; optionally of one state (or several),
        customer, type, channel and assignee; ``before``: (opened_at, position) the
        previous page ended at."""
        cond: sa.ColumnElement[bool] = sa.true()
        if state is not None:
            wanted = [state] if isinstance(state, str) else list(state)
            unknown = [s for s in wanted if s not in CASE_STATES]
            if unknown:
                raise ValueError(
                    f"unknown case state {unknown[0]!r}; expected one of {', '.join(CASE_STATES)}"
                )
            cond = cases.c.state.in_(wanted)
        for column, value in (
            (customers.c.slug, customer),
            (cases.c.type, type),
            (cases.c.channel, channel),
            (cases.c.owner, assignee),
        ):
            if value is not None:
                cond = sa.and_(cond, column == value)
        if before is not None:
            ts, position = before
            cond = sa.and_(
                cond,
                sa.or_(cases.c.opened_at < ts, sa.and_(cases.c.opened_at == ts, position > _POSITION)),
            )
        with self._engine.connect() as conn:
            return self._select(conn, scope, cond, limit=limit)

    def by_incident(self, incident_id: str) -> str | None:
        """The case opened or reopened for ``incident_id`` (not scoped: for the live observer)."""
        with self._engine.connect() as conn:
            found = conn.execute(
                sa.select(case_incidents.c.case_id).where(case_incidents.c.incident_id == incident_id)
            ).scalar()
        return None if found is None else str(found)

    def incidents(
        self, scope: Scope, customer: str | None = None, limit: int = 100
    ) -> builtins.list[IncidentRecord]:
        """Incidents the scope may see, newest first."""
        query = (
            sa.select(incidents, customers.c.slug)
            .join(customers, customers.c.id == incidents.c.customer_id)
            .where(scope.where())
            .order_by(incidents.c.opened_at.desc(), incidents.c.id)
            .limit(limit)
        )
        if customer is not None:
            query = query.where(customers.c.slug == customer)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            IncidentRecord(
                id=r.id,
                customer=r.slug,
                case_id=r.case_id,
                kind=r.kind,
                status=r.status,
                severity=r.severity,
                title=r.title,
                onset_at=r.onset_at,
                opened_at=r.opened_at,
                updated_at=r.updated_at,
                suppressed_by=tuple(json_value(r.suppressed_by)),
                snapshot=json_value(r.snapshot),
            )
            for r in rows
        ]

    def _select(
        self, conn: sa.Connection, scope: Scope, cond: sa.ColumnElement[bool], *, limit: int
    ) -> builtins.list[CaseRecord]:
        rows = conn.execute(
            sa.select(cases, customers.c.slug)
            .join(customers, customers.c.id == cases.c.customer_id)
            .where(scope.where(), cond)
            .order_by(cases.c.opened_at.desc(), _POSITION.desc())
            .limit(limit)
        ).all()
        events: dict[str, list[CaseEvent]] = {r.id: [] for r in rows}
        if rows:
            for e in conn.execute(
                sa.select(case_events)
                .where(case_events.c.case_id.in_(list(events)))
                .order_by(case_events.c.ts, case_events.c.id)
            ):
                events[e.case_id].append(CaseEvent(e.ts, e.kind, e.actor, e.text, json_value(e.data)))
        return [self._record(r, events[r.id]) for r in rows]

    @staticmethod
    def _record(r: Any, events: Iterable[CaseEvent]) -> CaseRecord:
        return CaseRecord(
            id=r.id,
            number=r.number,
            customer=r.slug,
            title=r.title,
            severity=r.severity,
            state=r.state,
            owner=r.owner,
            hosts=tuple(json_value(r.hosts)),
            incident_id=r.incident_id,
            kind=r.kind,
            opened_at=r.opened_at,
            acknowledged_at=r.acknowledged_at,
            resolved_at=r.resolved_at,
            closed_at=r.closed_at,
            onset_at=r.onset_at,
            detected_at=r.detected_at,
            updated_at=r.updated_at,
            reopened=r.reopened,
            causes=list(json_value(r.causes)),
            members=list(json_value(r.members)),
            events=tuple(events),
            incident=dict(json_value(r.incident)),
            type=r.type,
            subtype=r.subtype,
            channel=r.channel,
            description=r.description,
            contact=r.contact,
            first_responder=r.first_responder,
            decision=r.decision,
            decision_text=r.decision_text,
            release=r.release,
            upgrade_id=r.upgrade_id,
            position=int(r.customer_id) * _POSITION_SHIFT + int(r.number),
        )

    # ------------------------------------------------------------------ the live side

    def open_case(
        self, content: CaseContent, *, now: float, text: str = "", data: Mapping[str, Any] | None = None
    ) -> str:
        """Open a case for ``content.incident_id``; idempotent: returns the existing case id if
        one was already opened or reopened for that incident."""
        for attempt in range(3):
            try:
                return self._open_case(content, now=now, text=text, data=data)
            except sa.exc.IntegrityError:  # another collector took the number (or the incident)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _open_case(
        self, content: CaseContent, *, now: float, text: str, data: Mapping[str, Any] | None
    ) -> str:
        with self._write_engine.begin() as conn:
            existing = conn.execute(
                sa.select(case_incidents.c.case_id).where(case_incidents.c.incident_id == content.incident_id)
            ).scalar()
            if existing is not None:
                return str(existing)
            customer_id = self._customer_id(conn, content.customer)
            number, case_id = next_case_number(conn, customer_id, content.customer)
            conn.execute(
                cases.insert().values(
                    id=case_id,
                    customer_id=customer_id,
                    number=number,
                    state="new",
                    owner=None,
                    type="emergency",
                    channel="automatic",
                    opened_at=now,
                    acknowledged_at=None,
                    resolved_at=None,
                    closed_at=None,
                    reopened=0,
                    **self._content_values(content, now),
                )
            )
            conn.execute(
                case_incidents.insert().values(
                    incident_id=content.incident_id, case_id=case_id, linked_at=now
                )
            )
            record_event(
                conn,
                case_id,
                now,
                "opened",
                None,
                text or f"case opened: {content.title}",
                {"incident_id": content.incident_id, **(data or {}), "from": None, "to": "new"},
            )
        return case_id

    def update_case(
        self,
        case_id: str,
        content: CaseContent,
        *,
        now: float,
        kind: str = "updated",
        text: str = "",
        data: Mapping[str, Any] | None = None,
    ) -> None:
        """Refresh the case's evidence from its incident and add a timeline event."""
        with self._write_engine.begin() as conn:
            self._state(conn, Scope.everything(), case_id)
            conn.execute(
                cases.update().where(cases.c.id == case_id).values(**self._content_values(content, now))
            )
            record_event(
                conn, case_id, now, kind, None, text or f"case updated: {content.title}",
                {"incident_id": content.incident_id, **(data or {})},
            )  # fmt: skip

    def refresh_case(self, case_id: str, content: CaseContent, *, now: float) -> None:
        """Refresh the evidence (members, causes, snapshot) without a timeline event.

        Only while ``content``'s incident is the case's current one (a case reopened by a
        newer incident keeps that one's evidence).
        """
        with self._write_engine.begin() as conn:
            conn.execute(
                cases.update()
                .where(cases.c.id == case_id, cases.c.incident_id == content.incident_id)
                .values(**self._content_values(content, now))
            )

    def reopen_case(self, case_id: str, content: CaseContent, *, now: float, text: str = "") -> bool:
        """Attach a new incident to ``case_id`` and reopen it if it was resolved or closed.

        Idempotent on the incident; returns True when the case was reopened or newly linked.
        """
        with self._write_engine.begin() as conn:
            linked = conn.execute(
                sa.select(case_incidents.c.case_id).where(case_incidents.c.incident_id == content.incident_id)
            ).scalar()
            if linked is not None:
                return False
            state = self._state(conn, Scope.everything(), case_id)
            values: dict[str, Any] = self._content_values(content, now)
            reopens = state in ("resolved", "follow_up", "closed")
            if reopens:
                values.update(state="new", resolved_at=None, closed_at=None, reopened=cases.c.reopened + 1)
            conn.execute(cases.update().where(cases.c.id == case_id).values(**values))
            conn.execute(
                case_incidents.insert().values(
                    incident_id=content.incident_id, case_id=case_id, linked_at=now
                )
            )
            record_event(
                conn,
                case_id,
                now,
                "reopened",
                None,
                text or f"case reopened by incident {content.incident_id}: {content.title}",
                {
                    "incident_id": content.incident_id,
                    "previous_state": state,
                    **({"from": state, "to": "new"} if reopens else {}),
                },
            )
        return True

    def add_event(
        self,
        case_id: str,
        kind: str,
        text: str,
        *,
        now: float,
        actor: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        """Add a timeline event (recovered, suppressed, notified, ...) without a state change."""
        with self._write_engine.begin() as conn:
            self._state(conn, Scope.everything(), case_id)
            record_event(conn, case_id, now, kind, actor, text, data or {})
            conn.execute(cases.update().where(cases.c.id == case_id).values(updated_at=now))

    def save_incident(self, incident: Mapping[str, Any], *, now: float) -> None:
        """Upsert the snapshot (``Incident.to_dict()``) of an incident."""
        values = {
            "case_id": incident.get("case_id"),
            "kind": str(incident["kind"]),
            "status": str(incident["status"]),
            "severity": str(incident["severity"]),
            "title": str(incident["title"])[:500],
            "onset_at": float(incident["onset_ts"]),
            "opened_at": float(incident["opened_ts"]),
            "updated_at": now,
            "suppressed_by": list(incident.get("suppressed_by") or ()),
            "snapshot": dict(incident),
        }
        with self._write_engine.begin() as conn:
            updated = conn.execute(
                incidents.update().where(incidents.c.id == str(incident["id"])).values(**values)
            ).rowcount
            if not updated:
                customer_id = self._customer_id(conn, str(incident["customer"]))
                conn.execute(
                    incidents.insert().values(id=str(incident["id"]), customer_id=customer_id, **values)
                )

    # ------------------------------------------------------------------ people's actions

    def acknowledge(
        self,
        scope: Scope,
        case_id: str,
        *,
        actor: str,
        owner: str | None = None,
        now: float,
        action: Literal["ack", "take"] = "ack",
    ) -> CaseRecord:
        """new → acknowledged (``ack`` or ``take``); ``owner`` (default ``actor``) becomes the
        assignee and, if the case has none yet, its accountable first responder."""
        who = owner or actor
        with self._write_engine.begin() as conn:
            state = self._state(conn, scope, case_id)
            transition(
                conn, case_id, state, action, actor=actor, now=now,
                text=f"acknowledged; owner {who}",
                values={
                    "owner": who,
                    "acknowledged_at": now,
                    "first_responder": sa.func.coalesce(cases.c.first_responder, who),
                },
                data={"owner": who},
            )  # fmt: skip
        return self.get(scope, case_id)

    def add_note(self, scope: Scope, case_id: str, *, actor: str, text: str, now: float) -> CaseRecord:
        """Add an engineer's note (any state)."""
        text = text.strip()
        if not text:
            raise Conflict("a note needs text")
        with self._write_engine.begin() as conn:
            self._state(conn, scope, case_id)
            record_event(conn, case_id, now, "note", actor, text[:MAX_TEXT], {})
            conn.execute(cases.update().where(cases.c.id == case_id).values(updated_at=now))
        return self.get(scope, case_id)

    def resolve(
        self, scope: Scope, case_id: str, *, actor: str, note: str | None = None, now: float
    ) -> CaseRecord:
        """new, acknowledged, in_progress or waiting_on_customer → resolved."""
        text = "resolved" + (f": {note.strip()[:MAX_TEXT]}" if note and note.strip() else "")
        with self._write_engine.begin() as conn:
            state = self._state(conn, scope, case_id)
            transition(
                conn, case_id, state, "resolve", actor=actor, now=now, text=text,
                values={"resolved_at": now}, data={"note": note} if note else {},
            )  # fmt: skip
        return self.get(scope, case_id)

    def close(self, scope: Scope, case_id: str, *, actor: str, now: float) -> CaseRecord:
        """resolved or follow_up → closed (a complaint needs its outcome and callback first)."""
        with self._write_engine.begin() as conn:
            state = self._state(conn, scope, case_id)
            missing = self._complaint_steps_missing(conn, case_id)
            if missing and state in ("resolved", "follow_up"):
                raise Conflict(
                    f"complaint {case_id} cannot be closed before its {' and '.join(missing)} "
                    f"are recorded (POST /api/v1/cases/{case_id}/complaint-steps)"
                )
            transition(
                conn, case_id, state, "close", actor=actor, now=now, text="closed",
                values={"closed_at": now},
            )  # fmt: skip
        return self.get(scope, case_id)

    @staticmethod
    def _complaint_steps_missing(conn: sa.Connection, case_id: str) -> builtins.list[str]:
        """For a complaint: which of ``outcome`` and ``callback`` are not on its timeline yet."""
        if conn.execute(sa.select(cases.c.type).where(cases.c.id == case_id)).scalar() != "complaint":
            return []
        steps = recorded_complaint_steps(conn, case_id)
        return [step for step in COMPLAINT_REQUIRED if step not in steps]

    # ------------------------------------------------------------------ detection state

    def save_state(self, shard: str, blob: bytes, *, now: float) -> None:
        """Store the detection state of ``shard`` (replacing the previous one)."""
        with self._write_engine.begin() as conn:
            updated = conn.execute(
                detection_state.update()
                .where(detection_state.c.shard == shard)
                .values(saved_at=now, state=blob)
            ).rowcount
            if not updated:
                conn.execute(detection_state.insert().values(shard=shard, saved_at=now, state=blob))

    def load_state(self, shard: str) -> bytes | None:
        """The detection state of ``shard`` saved last, or None."""
        with self._engine.connect() as conn:
            found = conn.execute(
                sa.select(detection_state.c.state).where(detection_state.c.shard == shard)
            ).scalar()
        return None if found is None else bytes(found)

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _customer_id(conn: sa.Connection, slug: str) -> int:
        found = conn.execute(sa.select(customers.c.id).where(customers.c.slug == slug)).scalar()
        if found is None:
            raise NotFound(f"no customer {slug!r}")
        return int(found)

    @staticmethod
    def _state(conn: sa.Connection, scope: Scope, case_id: str) -> str:
        return str(scoped_case(conn, scope, case_id, cases.c.state)["state"])

    @staticmethod
    def _content_values(content: CaseContent, now: float) -> dict[str, Any]:
        return {
            "incident_id": content.incident_id,
            "kind": content.kind,
            "title": content.title[:500],
            "severity": content.severity,
            "hosts": list(content.hosts),
            "causes": content.causes,
            "members": content.members,
            "incident": content.incident,
            "onset_at": content.onset_at,
            "detected_at": content.detected_at,
            "updated_at": now,
        }
