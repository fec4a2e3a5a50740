"""Request and response models of the cases API (``/api/v1/cases``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from collector.http.models import SLUG_PATTERN, _Out, _time
from collector.http.models_sessions import CaseSessionOut
from collector.http.pages import CURSOR_DESCRIPTION
from collector.store.case_states import CaseState, CaseType, Channel, allowed_actions, label
from collector.store.cases import CaseEvent, CaseRecord, IncidentRecord

__all__ = [
    "AckRequest",
    "CaseEventOut",
    "CaseOut",
    "CaseSummaryOut",
    "CasesQuery",
    "IncidentOut",
    "NoteRequest",
    "ResolveRequest",
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CasesQuery(_In):
    customer: str | None = Field(
        default=None, max_length=63, pattern=SLUG_PATTERN, description="Only this customer (engineers)."
    )
    state: CaseState | None = Field(default=None, description="Only cases in this state.")
    active: bool = Field(
        default=False, description="Only cases still being worked: new, acknowledged, in_progress, waiting."
    )
    type: CaseType | None = Field(default=None, description="Only cases of this type.")
    channel: Channel | None = Field(default=None, description="Only cases that came in this way.")
    assignee: str | None = Field(
        default=None, min_length=1, max_length=200, description="Only cases assigned to this person."
    )
    limit: int = Field(default=100, ge=1, le=1000)
    cursor: str | None = Field(default=None, max_length=200, description=CURSOR_DESCRIPTION)


class AckRequest(_In):
    owner: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Who owns the case; default: the token's name.",
    )


class NoteRequest(_In):
    text: str = Field(min_length=1, max_length=10_000)


class ResolveRequest(_In):
    note: str | None = Field(default=None, max_length=10_000, description="How it was resolved.")


class CaseEventOut(_Out):
    ts: datetime
    kind: str
    actor: str | None
    text: str
    data: dict[str, Any]

    @classmethod
    def of(cls, e: CaseEvent) -> CaseEventOut:
        return cls(
            ts=datetime.fromtimestamp(e.ts, UTC), kind=e.kind, actor=e.actor, text=e.text, data=dict(e.data)
        )


class CaseSummaryOut(_Out):
    id: str
    number: int
    customer: str
    title: str
    severity: str
    state: str
    owner: str | None = Field(description="The assignee (same as ``assignee``; kept for older clients).")
    assignee: str | None = Field(description="Who works the case now; changes with a transfer.")
    first_responder: str | None = Field(
        description="Who first took the case (首问负责制): accountable through every transfer."
    )
    type: str
    subtype: str | None
    channel: str
    contact: str | None
    labels: dict[str, dict[str, str] | None] = Field(
        description="English and Chinese names of state, type, subtype and channel."
    )
    hosts: list[str]
    kind: str | None = Field(description="Incident kind; None for a case a person opened.")
    incident_id: str | None
    probable_cause: str = Field(description="The top-ranked probable cause, in English.")
    onset_at: datetime
    detected_at: datetime
    opened_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    updated_at: datetime
    reopened: int

    @classmethod
    def fields_of(cls, c: CaseRecord) -> dict[str, Any]:
        return {
            "id": c.id,
            "number": c.number,
            "customer": c.customer,
            "title": c.title,
            "severity": c.severity,
            "state": c.state,
            "owner": c.owner,
            "assignee": c.owner,
            "first_responder": c.first_responder,
            "type": c.type,
            "subtype": c.subtype,
            "channel": c.channel,
            "contact": c.contact,
            "labels": {
                "state": label(c.state),
                "type": label(c.type),
                "subtype": label(c.subtype),
                "channel": label(c.channel),
            },
            "hosts": list(c.hosts),
            "kind": c.kind,
            "incident_id": c.incident_id,
            "probable_cause": str(c.causes[0].get("reason", "")) if c.causes else "",
            "onset_at": _time(c.onset_at),
            "detected_at": _time(c.detected_at),
            "opened_at": _time(c.opened_at),
            "acknowledged_at": _time(c.acknowledged_at),
            "resolved_at": _time(c.resolved_at),
            "closed_at": _time(c.closed_at),
            "updated_at": _time(c.updated_at),
            "reopened": c.reopened,
        }

    @classmethod
    def of(cls, c: CaseRecord) -> CaseSummaryOut:
        return cls(**cls.fields_of(c))


class CaseOut(CaseSummaryOut):
    description: str | None
    decision: str | None = Field(description="Adaptive/perfective: accepted, rejected or deferred.")
    decision_text: str | None
    release: str | None = Field(description="The release that delivers the change.")
    upgrade_id: int | None = Field(description="The upgrade record (/api/v1/upgrades) that delivered it.")
    allowed_actions: list[str] = Field(description="The steps the case's state allows now.")
    causes: list[dict[str, Any]] = Field(description="Ranked probable causes with reasons and evidence.")
    members: list[dict[str, Any]] = Field(
        description="The incident's signals (series, baseline, observed, ...)."
    )
    events: list[CaseEventOut] = Field(description="The case timeline, oldest first.")
    incident_timeline: list[dict[str, Any]] = Field(description="The incident's own timeline.")
    sessions: list[CaseSessionOut] = Field(
        default=[], description="Remote sessions opened for the case, oldest first (GET /cases/{id})."
    )

    @classmethod
    def of(cls, c: CaseRecord, sessions: list[CaseSessionOut] | None = None) -> CaseOut:
        return cls(
            sessions=sessions or [],
            **cls.fields_of(c),
            description=c.description,
            decision=c.decision,
            decision_text=c.decision_text,
            release=c.release,
            upgrade_id=c.upgrade_id,
            allowed_actions=allowed_actions(c.state),
            causes=c.causes,
            members=c.members,
            events=[CaseEventOut.of(e) for e in c.events],
            incident_timeline=list(c.incident.get("timeline", [])),
        )


class IncidentOut(_Out):
    id: str
    customer: str
    case_id: str | None
    kind: str
    status: str
    severity: str
    title: str
    onset_at: datetime
    opened_at: datetime
    updated_at: datetime
    suppressed_by: list[str] = Field(description="Maintenance windows that suppressed its case.")
    timeline: list[dict[str, Any]]

    @classmethod
    def of(cls, i: IncidentRecord) -> IncidentOut:
        return cls(
            id=i.id,
            customer=i.customer,
            case_id=i.case_id,
            kind=i.kind,
            status=i.status,
            severity=i.severity,
            title=i.title,
            onset_at=datetime.fromtimestamp(i.onset_at, UTC),
            opened_at=datetime.fromtimestamp(i.opened_at, UTC),
            updated_at=datetime.fromtimestamp(i.updated_at, UTC),
            suppressed_by=list(i.suppressed_by),
            timeline=list(i.snapshot.get("timeline", [])),
        )
