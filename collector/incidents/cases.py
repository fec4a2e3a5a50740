"""The case decision: what the case layer should do about an incident, right now.

:func:`decide` is pure: it reads the incident (including what the case layer told the
engine through ``record_decision``), the :class:`CasePolicy` and the maintenance windows
active on the incident's hosts, and returns one :class:`CaseDecision`. The rules, in
order:

1. *No case yet.* An incident that is not ``OPEN`` (recovering or resolved before it
   reached a case) gets ``NONE``. Below ``min_severity`` → ``NONE``. If the signals on
   hosts outside maintenance windows stay below ``min_severity`` while the whole
   incident reaches it → ``SUPPRESSED`` with the windows (proposed once per incident
   revision and window set; when the windows end and the incident is still open, the
   case opens). Otherwise, if the incident is linked to a previous incident of the
   customer that shared a host and had a case, and began at most ``reopen_window_s``
   after that incident resolved → ``REOPEN_CASE`` of that case; else ``OPEN_CASE``.
2. *A case exists* (exactly one per incident: the engine keeps its id). The incident
   resolved since the case last heard → ``NOTE_RECOVERY``; it changed materially
   (new series or host, higher severity, other kind or top cause) → ``UPDATE_CASE``;
   otherwise ``NONE``. A flapping series or a single recovery is not material, so a
   flapping incident never floods its case.

>>> from checks.api import Severity
>>> from collector.incidents.model import Incident, IncidentKind, IncidentStatus
>>> inc = Incident("inc-1", "acme", IncidentKind.DEGRADATION, IncidentStatus.OPEN,
...                100.0, 90.0, 90.0, 100.0, Severity.WARN)
>>> decide(inc, CasePolicy()).reason_key
'BELOW_SEVERITY'
>>> decide(inc, CasePolicy(min_severity=Severity.WARN)).action.value
'OPEN_CASE'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field

from checks.api import Severity
from collector.incidents.model import CaseAction, CaseDecision, Incident, IncidentStatus

__all__ = ["CasePolicy", "decide"]


class CasePolicy(BaseModel):
    """When incidents become emergency cases."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_severity: Severity = Field(Severity.CRIT, description="Incidents at or above this open a case.")
    reopen_window_s: float = Field(
        3600.0,
        ge=0,
        description="A new incident this soon after a resolved one (sharing a host) reopens its case.",
    )


def _windows_of(incident: Incident, maintenance: Mapping[str, Sequence[str]]) -> tuple[str, ...]:
    return tuple(sorted({w for host in incident.hosts for w in maintenance.get(host, ())}))


def decide(
    incident: Incident,
    policy: CasePolicy | None = None,
    *,
    maintenance: Mapping[str, Sequence[str]] | None = None,
) -> CaseDecision:
    """The case action for ``incident`` now (rules: module docstring).

    ``maintenance``: host → ids of the maintenance windows active on it now (the
    wiring asks the windows component for each of the incident's hosts).
    """
    policy = policy or CasePolicy()
    maintenance = maintenance or {}
    rev = incident.revision
    windows = _windows_of(incident, maintenance)

    def decision(action: CaseAction, key: str, reason: str, case_id: str | None = None) -> CaseDecision:
        return CaseDecision(action, incident.id, rev, case_id, windows, key, reason)

    if incident.case_id is not None:
        if incident.case_revision >= rev:
            return decision(
                CaseAction.NONE, "CASE_UP_TO_DATE", "the case already has this revision", incident.case_id
            )
        if incident.status is IncidentStatus.RESOLVED:
            return decision(
                CaseAction.NOTE_RECOVERY,
                "INCIDENT_RESOLVED",
                "every signal recovered and stayed quiet",
                incident.case_id,
            )
        return decision(
            CaseAction.UPDATE_CASE,
            "INCIDENT_CHANGED",
            f"incident changed: {incident.title}",
            incident.case_id,
        )

    if incident.status is not IncidentStatus.OPEN:
        return decision(CaseAction.NONE, "NOT_OPEN", f"incident is {incident.status.value} and has no case")
    threshold = policy.min_severity.rank
    if incident.severity.rank < threshold:
        return decision(
            CaseAction.NONE,
            "BELOW_SEVERITY",
            f"severity {incident.severity.value} below {policy.min_severity.value}",
        )
    serious = [(host, m) for (host, _), m in incident.members.items() if m.peak_severity.rank >= threshold]
    if serious and all(maintenance.get(host) for host, _ in serious):
        if incident.suppressed_by == windows and incident.suppressed_revision >= rev:
            return decision(CaseAction.NONE, "ALREADY_SUPPRESSED", "already suppressed by these windows")
        return decision(
            CaseAction.SUPPRESSED,
            "MAINTENANCE_WINDOW",
            f"hosts under maintenance ({', '.join(windows)}): no case opened",
        )
    previous = incident.previous_resolved_ts
    if incident.previous_case_id is not None and previous is not None:
        gap = incident.onset_ts - previous
        if gap <= policy.reopen_window_s:
            return decision(
                CaseAction.REOPEN_CASE,
                "REOPEN_WITHIN_WINDOW",
                f"began {gap:.0f} s after incident {incident.previous_incident_id} resolved: "
                "its case is reopened",
                incident.previous_case_id,
            )
    return decision(
        CaseAction.OPEN_CASE, "NEW_INCIDENT", f"new {incident.severity.value} incident: {incident.title}"
    )
