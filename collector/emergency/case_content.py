"""What an emergency case records of the incident it was opened for."""

from __future__ import annotations

from collector.incidents import Incident
from collector.store.cases import CaseContent

__all__ = ["case_content"]


def case_content(incident: Incident) -> CaseContent:
    """What a case shows of ``incident``: title, severity, hosts, ranked causes, members, snapshot."""
    members = []
    for m in sorted(
        incident.members.values(), key=lambda m: (m.first_onset_ts, m.signal.host or "", m.signal.series)
    ):
        s = m.signal
        ev = s.evidence
        members.append(
            {
                "host": s.host,
                "series": s.series,
                "metric": str(ev.get("metric", "")),
                "check": s.check,
                "labels": dict(ev.get("labels") or {}),
                "layer": None if s.layer is None else s.layer.value,
                "kind": s.kind.value,
                "key": s.key,
                "baseline": ev.get("expected"),
                "observed": ev.get("observed"),
                "score": m.peak_score,
                "severity": m.peak_severity.value,
                "onset_ts": m.first_onset_ts,
                "recovered_ts": m.recovered_ts,
                "active": m.active,
                "fired": m.fired,
                "summary": s.summary,
            }
        )
    return CaseContent(
        incident_id=incident.id,
        customer=incident.customer,
        kind=incident.kind.value,
        title=incident.title,
        severity=incident.severity.value,
        hosts=incident.hosts,
        causes=[c.to_dict() for c in incident.causes],
        members=members,
        incident=incident.to_dict(),
        onset_at=incident.onset_ts,
        detected_at=incident.opened_ts,
    )
