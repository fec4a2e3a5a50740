"""Typed records of cases as the store returns them (shared by the emergency and desk repositories).

Re-exported by :mod:`collector.store.cases`, where they have always been imported from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from collector.store.case_states import CaseState, CaseType, Channel

__all__ = ["CaseContent", "CaseEvent", "CaseRecord", "IncidentRecord", "json_value"]


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
    """A case as stored (from detection or the service desk): what the API, diagctl and
    the reports read."""

    id: str
    """Stable id, ``C-<customer>-<number>``."""
    number: int
    """Per-customer case number (1, 2, ...)."""
    customer: str
    """Customer slug."""
    title: str
    """One-line title (from the incident, or as the desk typed it)."""
    severity: str
    """``CRIT``, ``WARN``, ``INFO`` or ``UNKNOWN`` (an incident's worst)."""
    state: CaseState
    """One of :data:`~collector.store.case_states.CASE_STATES`."""
    owner: str | None
    """The assignee: who works the case now (None until taken; changes with a transfer)."""
    hosts: tuple[str, ...]
    """Hosts involved, sorted."""
    incident_id: str | None
    """The incident the case was last opened or reopened for (None: opened by a person)."""
    kind: str | None
    """Incident kind: ``DEGRADATION``, ``AGENT_SILENT`` or ``SITE_OUTAGE`` (None: no incident)."""
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
    type: CaseType = "emergency"
    """What kind of request (:data:`~collector.store.case_states.CASE_TYPES`)."""
    subtype: str | None = None
    """A routine case's subtype (operation_error, data_error, defect_l3, user_training)."""
    channel: Channel = "automatic"
    """How it came in; ``automatic``: opened by detection."""
    description: str | None = None
    """What the customer reported, as the desk took it down."""
    contact: str | None = None
    """The customer's contact person for this case."""
    first_responder: str | None = None
    """Who first took the case (首问负责制): accountable through every transfer."""
    decision: str | None = None
    """Adaptive/perfective cases: the product team's ``accepted``, ``rejected`` or ``deferred``."""
    decision_text: str | None = None
    """Why, in the product team's words."""
    release: str | None = None
    """The product release that delivers the change."""
    upgrade_id: int | None = None
    """The product upgrade record (``/api/v1/upgrades``) that delivered it on the customer's host."""
    position: int = 0
    """Where a page of cases continues from (with ``opened_at``): unique per case."""

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
            "type": self.type,
            "subtype": self.subtype,
            "channel": self.channel,
            "description": self.description,
            "contact": self.contact,
            "first_responder": self.first_responder,
            "decision": self.decision,
            "decision_text": self.decision_text,
            "release": self.release,
            "upgrade_id": self.upgrade_id,
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


def json_value(value: Any) -> Any:
    """A JSON column's value (SQLite without the JSON type returns text)."""
    if isinstance(value, str | bytes):  # JSON stored as text (SQLite without the JSON type)
        return json.loads(value)
    return value
