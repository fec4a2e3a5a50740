"""The records the incident engine keeps and hands out: incidents, members, timeline, decisions.

An :class:`Incident` is owned by the :class:`~collector.incidents.engine.IncidentEngine`:
read it freely, change it only through the engine (``feed``, ``tick``,
``record_decision``). Every record has ``to_dict``/``from_dict`` for the engine's JSON
state and for the case's evidence.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from checks.api import Severity
from collector.incidents.causes import Cause, OutageFacts
from collector.incidents.signals import Signal, SignalKind

__all__ = [
    "CaseAction",
    "CaseDecision",
    "Incident",
    "IncidentKind",
    "IncidentStatus",
    "Member",
    "TimelineEntry",
]


class IncidentKind(enum.Enum):
    """What an incident is about (it may change as signals join: see the engine docstring)."""

    DEGRADATION = "DEGRADATION"
    """Anomalies and/or CRIT checks (possibly with silent agents among them)."""
    AGENT_SILENT = "AGENT_SILENT"
    """Only silent agents, while their neighbours keep reporting: agent or host down."""
    SITE_OUTAGE = "SITE_OUTAGE"
    """Most or all of a customer's (or network's) agents silent together."""


class IncidentStatus(enum.Enum):
    """``OPEN`` → ``RECOVERING`` (every signal recovered) → ``RESOLVED`` (after the quiet period).

    A signal firing again while ``RECOVERING`` puts the incident back to ``OPEN``.
    """

    OPEN = "OPEN"
    RECOVERING = "RECOVERING"
    RESOLVED = "RESOLVED"


class CaseAction(enum.Enum):
    """What the case layer should do for an incident (see :func:`~collector.incidents.cases.decide`)."""

    OPEN_CASE = "OPEN_CASE"
    REOPEN_CASE = "REOPEN_CASE"
    UPDATE_CASE = "UPDATE_CASE"
    NOTE_RECOVERY = "NOTE_RECOVERY"
    SUPPRESSED = "SUPPRESSED"
    NONE = "NONE"


@dataclass(frozen=True, slots=True)
class CaseDecision:
    """The outcome of :func:`~collector.incidents.cases.decide` for one incident revision."""

    action: CaseAction
    incident_id: str
    revision: int
    """The incident revision this decision covers (pass it back via ``record_decision``)."""
    case_id: str | None = None
    """The case to reopen / update / note on (None for OPEN_CASE, SUPPRESSED, NONE)."""
    windows: tuple[str, ...] = ()
    """Maintenance windows that suppressed the case, or that cover some of its hosts."""
    reason_key: str = ""
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "action": self.action.value,
            "incident_id": self.incident_id,
            "revision": self.revision,
            "case_id": self.case_id,
            "windows": list(self.windows),
            "reason_key": self.reason_key,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One line of an incident's timeline: when, a stable key, English text, where."""

    ts: float
    key: str
    text: str
    host: str | None = None
    series: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"ts": self.ts, "key": self.key, "text": self.text, "host": self.host, "series": self.series}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TimelineEntry:
        """The inverse of :meth:`to_dict`."""
        host, series = data.get("host"), data.get("series")
        return cls(
            float(data["ts"]),
            str(data["key"]),
            str(data["text"]),
            None if host is None else str(host),
            None if series is None else str(series),
        )


@dataclass(slots=True)
class Member:
    """One series (or check, or agent) of an incident, with its firing history."""

    signal: Signal
    """The latest firing signal of the series."""
    first_onset_ts: float
    peak_score: float
    peak_severity: Severity
    active: bool = True
    fired: int = 1
    """How often it fired within this incident (more than 1: it flapped)."""
    recovered_ts: float | None = None
    recovery_reason: str = ""

    def view(self) -> Signal:
        """The signal as cause ranking sees it: first onset, peak score and severity."""
        return replace(
            self.signal, onset_ts=self.first_onset_ts, score=self.peak_score, severity=self.peak_severity
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "signal": self.signal.to_dict(),
            "first_onset_ts": self.first_onset_ts,
            "peak_score": self.peak_score,
            "peak_severity": self.peak_severity.value,
            "active": self.active,
            "fired": self.fired,
            "recovered_ts": self.recovered_ts,
            "recovery_reason": self.recovery_reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Member:
        """The inverse of :meth:`to_dict`."""
        recovered = data.get("recovered_ts")
        return cls(
            signal=Signal.from_dict(data["signal"]),
            first_onset_ts=float(data["first_onset_ts"]),
            peak_score=float(data["peak_score"]),
            peak_severity=Severity(data["peak_severity"]),
            active=bool(data["active"]),
            fired=int(data["fired"]),
            recovered_ts=None if recovered is None else float(recovered),
            recovery_reason=str(data.get("recovery_reason", "")),
        )


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(slots=True)
class Incident:
    """A group of problem signals of one customer that began close together.

    ``revision`` grows on every *material* change (a series or host joins, severity rises,
    the kind or the top cause changes, the incident resolves); a flapping series, a
    single recovery or a timeline note do not change it, so cases are updated only when
    something worth telling happened. ``case_revision`` is the revision the case has seen.
    """

    id: str
    customer: str
    kind: IncidentKind
    status: IncidentStatus
    opened_ts: float
    onset_ts: float
    last_onset_ts: float
    updated_ts: float
    severity: Severity
    members: dict[tuple[str, str], Member] = field(default_factory=dict)
    """Keyed by (host, series)."""
    changes: list[Signal] = field(default_factory=list)
    """CHANGE signals within the lookback before the onset: the change candidates."""
    causes: list[Cause] = field(default_factory=list)
    """Probable causes, top first."""
    timeline: list[TimelineEntry] = field(default_factory=list)
    timeline_dropped: int = 0
    revision: int = 1
    recovered_ts: float | None = None
    resolved_ts: float | None = None
    outage: OutageFacts | None = None
    case_id: str | None = None
    case_revision: int = 0
    suppressed_by: tuple[str, ...] = ()
    suppressed_revision: int = 0
    previous_incident_id: str | None = None
    previous_case_id: str | None = None
    previous_resolved_ts: float | None = None

    @property
    def hosts(self) -> tuple[str, ...]:
        """The hosts with a signal in the incident, sorted."""
        return tuple(sorted({host for host, _ in self.members}))

    @property
    def is_open(self) -> bool:
        """True unless resolved (``RECOVERING`` counts as open: a signal may fire again)."""
        return self.status is not IncidentStatus.RESOLVED

    @property
    def active_members(self) -> list[Member]:
        """The members still firing."""
        return [m for m in self.members.values() if m.active]

    @property
    def top_cause(self) -> Cause | None:
        """The most probable cause, if any."""
        return self.causes[0] if self.causes else None

    @property
    def title(self) -> str:
        """A one-line English title for the case.

        Examples: ``Degradation on db1, web1: probable cause storage on db1``,
        ``Agent silent on web2``, ``Site or network outage: 5 of 6 agents of acme silent``.
        """
        hosts = self.hosts
        shown = ", ".join(hosts[:3]) + (f" +{len(hosts) - 3} more" if len(hosts) > 3 else "")
        if self.kind is IncidentKind.SITE_OUTAGE and self.outage is not None:
            scope = (
                f"network {self.outage.network} of {self.customer}" if self.outage.network else self.customer
            )
            outage = self.outage
            return f"Site or network outage: {outage.silent} of {outage.total} agents of {scope} silent"
        if self.kind is IncidentKind.AGENT_SILENT:
            return f"Agent silent on {shown}"
        top = self.top_cause
        return f"Degradation on {shown}" + (f": probable cause {top.label}" if top is not None else "")

    def member_signals(self) -> list[Signal]:
        """Every member as cause ranking sees it (first onset, peak score), by onset."""
        return sorted(
            (m.view() for m in self.members.values()), key=lambda s: (s.onset_ts, s.host or "", s.series)
        )

    def silent_hosts(self) -> set[str]:
        """Hosts whose agent is silent right now in this incident."""
        return {
            h for (h, _), m in self.members.items() if m.active and m.signal.kind is SignalKind.AGENT_SILENT
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, complete (the engine's state and the case's evidence)."""
        return {
            "id": self.id,
            "customer": self.customer,
            "kind": self.kind.value,
            "status": self.status.value,
            "title": self.title,
            "hosts": list(self.hosts),
            "opened_ts": self.opened_ts,
            "onset_ts": self.onset_ts,
            "last_onset_ts": self.last_onset_ts,
            "updated_ts": self.updated_ts,
            "severity": self.severity.value,
            "members": [m.to_dict() for m in self.members.values()],
            "changes": [c.to_dict() for c in self.changes],
            "causes": [c.to_dict() for c in self.causes],
            "timeline": [t.to_dict() for t in self.timeline],
            "timeline_dropped": self.timeline_dropped,
            "revision": self.revision,
            "recovered_ts": self.recovered_ts,
            "resolved_ts": self.resolved_ts,
            "outage": None if self.outage is None else self.outage.to_dict(),
            "case_id": self.case_id,
            "case_revision": self.case_revision,
            "suppressed_by": list(self.suppressed_by),
            "suppressed_revision": self.suppressed_revision,
            "previous_incident_id": self.previous_incident_id,
            "previous_case_id": self.previous_case_id,
            "previous_resolved_ts": self.previous_resolved_ts,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Incident:
        """The inverse of :meth:`to_dict` (``title`` and ``hosts`` are derived, not read)."""
        members = [Member.from_dict(m) for m in data["members"]]
        outage = data.get("outage")
        return cls(
            id=str(data["id"]),
            customer=str(data["customer"]),
            kind=IncidentKind(data["kind"]),
            status=IncidentStatus(data["status"]),
            opened_ts=float(data["opened_ts"]),
            onset_ts=float(data["onset_ts"]),
            last_onset_ts=float(data["last_onset_ts"]),
            updated_ts=float(data["updated_ts"]),
            severity=Severity(data["severity"]),
            members={(m.signal.host or "", m.signal.series): m for m in members},
            changes=[Signal.from_dict(c) for c in data.get("changes", ())],
            causes=[Cause.from_dict(c) for c in data.get("causes", ())],
            timeline=[TimelineEntry.from_dict(t) for t in data.get("timeline", ())],
            timeline_dropped=int(data.get("timeline_dropped", 0)),
            revision=int(data["revision"]),
            recovered_ts=_opt_float(data.get("recovered_ts")),
            resolved_ts=_opt_float(data.get("resolved_ts")),
            outage=None if outage is None else OutageFacts.from_dict(outage),
            case_id=_opt_str(data.get("case_id")),
            case_revision=int(data.get("case_revision", 0)),
            suppressed_by=tuple(str(w) for w in data.get("suppressed_by", ())),
            suppressed_revision=int(data.get("suppressed_revision", 0)),
            previous_incident_id=_opt_str(data.get("previous_incident_id")),
            previous_case_id=_opt_str(data.get("previous_case_id")),
            previous_resolved_ts=_opt_float(data.get("previous_resolved_ts")),
        )
