"""Emergency cases in the store: typed records, scoped reads, the case state machine.

:class:`CaseRepo` is the only code that reads or writes the ``cases`` tables
(:mod:`collector.store.schema_cases`). Every read that serves a person takes a
:class:`~collector.store.queries.Scope`; a case of another customer is reported exactly
like a case that does not exist (:class:`~collector.store.errors.NotFound`).

States and transitions (anything else raises :class:`~collector.store.errors.Conflict`
with a message saying what is allowed)::

    open ──ack──► acknowledged ──resolve──► resolved ──close──► closed
      └───────────────resolve──────────────────┘          (reopen: a new incident
    resolved/closed ──reopen (automatic)──► open            shortly after recovery)

Notes may be added in any state. Case ids are ``C-<customer>-<number>``, the number
counting per customer from 1.

Writes use their own ``BEGIN IMMEDIATE`` transactions (on SQLite) and never the ingest
path's locks: the live observer calls this repository right after a group commit.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa

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
    "CaseEvent",
    "CaseRecord",
    "CaseRepo",
    "CaseState",
    "IncidentRecord",
    "case_id_for",
]

CaseState = Literal["open", "acknowledged", "resolved", "closed"]
CASE_STATES: tuple[CaseState, ...] = ("open", "acknowledged", "resolved", "closed")
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
)
"""Kinds of case timeline events."""

MAX_TEXT = 10_000
"""Longest note or event text kept."""


def case_id_for(customer: str, number: int) -> str:
    """The case id of a customer's ``number``-th case.

    >>> case_id_for("acme", 7)
    'C-acme-7'
    """
    return f"C-{customer}-{number}"


@dataclass(frozen=True, slots=True)
class CaseEvent:
    """One line of a case's timeline."""

    ts: float
    """When it happened (Unix seconds)."""
    kind: str
    """What happened: one of :data:`EVENT_KINDS`."""
    actor: str | None
    """Who did it: an API token's name, or None for the collector itself."""
    text: str
    """What happened, in English (a note's text for ``note``)."""
    data: Mapping[str, Any] = field(default_factory=dict, hash=False)
    """Machine-readable details (incident id, revision, windows, notification targets)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "ts": self.ts,
            "kind": self.kind,
            "actor": self.actor,
            "text": self.text,
            "data": dict(self.data),
        }


@dataclass(frozen=True, slots=True)
class CaseRecord:
    """An emergency case as stored: what the API, diagctl and the fault-analysis report read."""

    id: str
    """Stable id, ``C-<customer>-<number>``."""
    number: int
    """Per-customer case number (1, 2, ...)."""
    customer: str
    """Customer slug."""
    title: str
    """One-line English title (from the incident)."""
    severity: str
    """Worst severity of the incident: ``CRIT``, ``WARN``, ``UNKNOWN``."""
    state: CaseState
    """``open``, ``acknowledged``, ``resolved`` or ``closed``."""
    owner: str | None
    """Engineer who acknowledged it (None until acknowledged)."""
    hosts: tuple[str, ...]
    """Hosts involved, sorted."""
    incident_id: str
    """The incident the case was last opened or reopened for."""
    kind: str
    """Incident kind: ``DEGRADATION``, ``AGENT_SILENT`` or ``SITE_OUTAGE``."""
    opened_at: float
    """When the case was opened (Unix seconds)."""
    acknowledged_at: float | None
    """When it was acknowledged, if it was."""
    resolved_at: float | None
    """When it was resolved (cleared on reopen)."""
    closed_at: float | None
    """When it was closed (cleared on reopen)."""
    onset_at: float
    """When the trouble began: the earliest onset among the incident's signals."""
    detected_at: float
    """When the collector noticed it: the incident's opening time."""
    updated_at: float
    """Last change of the case (state, evidence or timeline)."""
    reopened: int
    """How many times the case was reopened by a new incident."""
    causes: list[dict[str, Any]]
    """Ranked probable causes, top first: ``kind, layer, host, confidence, reason,
    reason_key, params, evidence`` (``evidence``: the signals behind it, ``Signal.to_dict`` form)."""
    members: list[dict[str, Any]]
    """The incident's signals: ``host, series, metric, check, labels, layer, kind, key, baseline,
    observed, score, severity, onset_ts, recovered_ts, fired, summary``."""
    events: tuple[CaseEvent, ...]
    """Timeline, oldest first."""
    incident: dict[str, Any] = field(default_factory=dict, hash=False)
    """Snapshot of the incident (``Incident.to_dict()``), including its own timeline."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (times as Unix seconds)."""
        return {
            "id": self.id,
            "number": self.number,
            "customer": self.customer,
            "title": self.title,
            "severity": self.severity,
            "state": self.state,
            "owner": self.owner,
            "hosts": list(self.hosts),
            "incident_id": self.incident_id,
            "kind": self.kind,
            "opened_at": self.opened_at,
            "acknowledged_at": self.acknowledged_at,
            "resolved_at": self.resolved_at,
            "closed_at": self.closed_at,
            "onset_at": self.onset_at,
            "detected_at": self.detected_at,
            "updated_at": self.updated_at,
            "reopened": self.reopened,
            "causes": self.causes,
            "members": self.members,
            "events": [e.to_dict() for e in self.events],
        }


@dataclass(frozen=True, slots=True)
class IncidentRecord:
    """An incident as last saved by the live observer (with or without a case)."""

    id: str
    customer: str
    case_id: str | None
    kind: str
    status: str
    severity: str
    title: str
    onset_at: float
    opened_at: float
    updated_at: float
    suppressed_by: tuple[str, ...]
    """Maintenance windows that suppressed its case."""
    snapshot: dict[str, Any]
    """``Incident.to_dict()``: members, causes, timeline."""


@dataclass(frozen=True, slots=True)
class CaseContent:
    """What the incident side hands the repository when it opens or updates a case."""

    incident_id: str
    customer: str
    kind: str
    title: str
    severity: str
    hosts: tuple[str, ...]
    causes: list[dict[str, Any]]
    members: list[dict[str, Any]]
    incident: dict[str, Any]
    onset_at: float
    detected_at: float


def _json(value: Any) -> Any:
    if isinstance(value, str | bytes):  # JSON stored as text (SQLite without the JSON type)
        return json.loads(value)
    return value


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
    ) -> list[CaseRecord]:
        """Cases the scope may see, newest first; optionally of one state (or several) and customer."""
        cond: sa.ColumnElement[bool] = sa.true()
        if state is not None:
            wanted = [state] if isinstance(state, str) else list(state)
            unknown = [s for s in wanted if s not in CASE_STATES]
            if unknown:
                raise ValueError(
                    f"unknown case state {unknown[0]!r}; expected one of {', '.join(CASE_STATES)}"
                )
            cond = cases.c.state.in_(wanted)
        if customer is not None:
            cond = sa.and_(cond, customers.c.slug == customer)
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
                suppressed_by=tuple(_json(r.suppressed_by)),
                snapshot=_json(r.snapshot),
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
            .order_by(cases.c.opened_at.desc(), cases.c.id)
            .limit(limit)
        ).all()
        events: dict[str, list[CaseEvent]] = {r.id: [] for r in rows}
        if rows:
            for e in conn.execute(
                sa.select(case_events)
                .where(case_events.c.case_id.in_(list(events)))
                .order_by(case_events.c.ts, case_events.c.id)
            ):
                events[e.case_id].append(CaseEvent(e.ts, e.kind, e.actor, e.text, _json(e.data)))
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
            hosts=tuple(_json(r.hosts)),
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
            causes=list(_json(r.causes)),
            members=list(_json(r.members)),
            events=tuple(events),
            incident=dict(_json(r.incident)),
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
            number = (
                conn.execute(
                    sa.select(sa.func.max(cases.c.number)).where(cases.c.customer_id == customer_id)
                ).scalar()
                or 0
            ) + 1
            case_id = case_id_for(content.customer, number)
            conn.execute(
                cases.insert().values(
                    id=case_id,
                    customer_id=customer_id,
                    number=number,
                    state="open",
                    owner=None,
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
            self._event(
                conn,
                case_id,
                now,
                "opened",
                None,
                text or f"case opened: {content.title}",
                {"incident_id": content.incident_id, **(data or {})},
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
            self._event(
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
            if state in ("resolved", "closed"):
                values.update(state="open", resolved_at=None, closed_at=None, reopened=cases.c.reopened + 1)
            conn.execute(cases.update().where(cases.c.id == case_id).values(**values))
            conn.execute(
                case_incidents.insert().values(
                    incident_id=content.incident_id, case_id=case_id, linked_at=now
                )
            )
            self._event(
                conn,
                case_id,
                now,
                "reopened",
                None,
                text or f"case reopened by incident {content.incident_id}: {content.title}",
                {"incident_id": content.incident_id, "previous_state": state},
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
            self._event(conn, case_id, now, kind, actor, text, data or {})
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
        self, scope: Scope, case_id: str, *, actor: str, owner: str | None = None, now: float
    ) -> CaseRecord:
        """open → acknowledged; ``owner`` defaults to ``actor``."""
        who = owner or actor
        with self._write_engine.begin() as conn:
            state = self._state(conn, scope, case_id)
            if state != "open":
                raise Conflict(
                    f"case {case_id} is {state}: only an open case can be acknowledged"
                    + (" (it already is)" if state == "acknowledged" else "")
                )
            conn.execute(
                cases.update()
                .where(cases.c.id == case_id)
                .values(state="acknowledged", owner=who, acknowledged_at=now, updated_at=now)
            )
            self._event(
                conn, case_id, now, "acknowledged", actor, f"acknowledged; owner {who}", {"owner": who}
            )
        return self.get(scope, case_id)

    def add_note(self, scope: Scope, case_id: str, *, actor: str, text: str, now: float) -> CaseRecord:
        """Add an engineer's note (any state)."""
        text = text.strip()
        if not text:
            raise Conflict("a note needs text")
        with self._write_engine.begin() as conn:
            self._state(conn, scope, case_id)
            self._event(conn, case_id, now, "note", actor, text[:MAX_TEXT], {})
            conn.execute(cases.update().where(cases.c.id == case_id).values(updated_at=now))
        return self.get(scope, case_id)

    def resolve(
        self, scope: Scope, case_id: str, *, actor: str, note: str | None = None, now: float
    ) -> CaseRecord:
        """open or acknowledged → resolved."""
        with self._write_engine.begin() as conn:
            state = self._state(conn, scope, case_id)
            if state not in ("open", "acknowledged"):
                raise Conflict(
                    f"case {case_id} is {state}: only an open or acknowledged case can be resolved"
                )
            conn.execute(
                cases.update()
                .where(cases.c.id == case_id)
                .values(state="resolved", resolved_at=now, updated_at=now)
            )
            text = "resolved" + (f": {note.strip()[:MAX_TEXT]}" if note and note.strip() else "")
            self._event(conn, case_id, now, "resolved", actor, text, {"note": note} if note else {})
        return self.get(scope, case_id)

    def close(self, scope: Scope, case_id: str, *, actor: str, now: float) -> CaseRecord:
        """resolved → closed."""
        with self._write_engine.begin() as conn:
            state = self._state(conn, scope, case_id)
            if state != "resolved":
                raise Conflict(
                    f"case {case_id} is {state}: only a resolved case can be closed"
                    + (" (resolve it first)" if state in ("open", "acknowledged") else "")
                )
            conn.execute(
                cases.update()
                .where(cases.c.id == case_id)
                .values(state="closed", closed_at=now, updated_at=now)
            )
            self._event(conn, case_id, now, "closed", actor, "closed", {})
        return self.get(scope, case_id)

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
        found = conn.execute(
            sa.select(cases.c.state)
            .join(customers, customers.c.id == cases.c.customer_id)
            .where(cases.c.id == case_id, scope.where())
        ).scalar()
        if found is None:
            raise NotFound(f"no case {case_id!r}")
        return str(found)

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

    @staticmethod
    def _event(
        conn: sa.Connection,
        case_id: str,
        ts: float,
        kind: str,
        actor: str | None,
        text: str,
        data: Mapping[str, Any],
    ) -> None:
        conn.execute(
            case_events.insert().values(
                case_id=case_id, ts=ts, kind=kind, actor=actor, text=text[:MAX_TEXT], data=dict(data)
            )
        )
