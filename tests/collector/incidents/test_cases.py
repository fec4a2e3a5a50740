"""The case decision, table-driven over hand-built incidents, plus the no-storm property."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from checks.api import Severity
from collector.incidents import (
    CasePolicy,
    Incident,
    IncidentKind,
    IncidentStatus,
    Member,
    Signal,
    SignalKind,
    decide,
)
from tests.collector.incidents.drive import T0, drive


def incident(status: str = "OPEN", hosts: dict[str, Severity] | None = None, **kw: Any) -> Incident:
    inc = Incident(
        "inc-1", "acme", IncidentKind.DEGRADATION, IncidentStatus(status), T0, T0, T0, T0, Severity.CRIT
    )
    hosts = {"db1": Severity.CRIT} if hosts is None else hosts
    for host, sev in hosts.items():
        s = Signal(SignalKind.CHECK_CRIT, "acme", host, "check:storage.filesystem", T0, T0, severity=sev)
        inc.members[(host, s.series)] = Member(s, T0, 1.0, sev)
    inc.severity = Severity.worst(*hosts.values())
    for name, value in kw.items():
        setattr(inc, name, value)
    return inc


PREV: dict[str, Any] = {"previous_case_id": "case-7", "previous_incident_id": "inc-0"}

DECISIONS = [
    pytest.param(incident(), {}, {}, ("OPEN_CASE", None, (), "NEW_INCIDENT"), id="crit: open"),
    pytest.param(
        incident(hosts={"db1": Severity.WARN}), {}, {}, ("NONE", None, (), "BELOW_SEVERITY"), id="warn: none"
    ),
    pytest.param(
        incident(hosts={"db1": Severity.WARN}),
        {"min_severity": Severity.WARN},
        {},
        ("OPEN_CASE", None, (), "NEW_INCIDENT"),
        id="warn with a warn policy: open",
    ),
    pytest.param(
        incident("RECOVERING"), {}, {}, ("NONE", None, (), "NOT_OPEN"), id="recovered before a case"
    ),
    pytest.param(incident("RESOLVED"), {}, {}, ("NONE", None, (), "NOT_OPEN"), id="resolved before a case"),
    pytest.param(
        incident(),
        {},
        {"db1": ["mw-2", "mw-1"]},
        ("SUPPRESSED", None, ("mw-1", "mw-2"), "MAINTENANCE_WINDOW"),
        id="host in maintenance: suppressed",
    ),
    pytest.param(
        incident(suppressed_by=("mw-1",), suppressed_revision=1),
        {},
        {"db1": ["mw-1"]},
        ("NONE", None, ("mw-1",), "ALREADY_SUPPRESSED"),
        id="already suppressed at this revision",
    ),
    pytest.param(
        incident(suppressed_by=("mw-1",), suppressed_revision=1, revision=2),
        {},
        {"db1": ["mw-1"]},
        ("SUPPRESSED", None, ("mw-1",), "MAINTENANCE_WINDOW"),
        id="changed while suppressed: annotated again",
    ),
    pytest.param(
        incident(hosts={"db1": Severity.CRIT, "web1": Severity.CRIT}),
        {},
        {"db1": ["mw-1"]},
        ("OPEN_CASE", None, ("mw-1",), "NEW_INCIDENT"),
        id="one of two crit hosts in maintenance: open, annotated",
    ),
    pytest.param(
        incident(hosts={"db1": Severity.CRIT, "web1": Severity.WARN}),
        {},
        {"db1": ["mw-1"]},
        ("SUPPRESSED", None, ("mw-1",), "MAINTENANCE_WINDOW"),
        id="only the maintained host is crit: suppressed",
    ),
    pytest.param(
        incident(previous_resolved_ts=T0 - 3600, **PREV),
        {},
        {},
        ("REOPEN_CASE", "case-7", (), "REOPEN_WITHIN_WINDOW"),
        id="previous case resolved 1 h ago: reopen",
    ),
    pytest.param(
        incident(previous_resolved_ts=T0 - 3601, **PREV),
        {},
        {},
        ("OPEN_CASE", None, (), "NEW_INCIDENT"),
        id="previous case resolved over 1 h ago: new case",
    ),
    pytest.param(
        incident(previous_resolved_ts=T0 - 1, **PREV),
        {"reopen_window_s": 0},
        {},
        ("OPEN_CASE", None, (), "NEW_INCIDENT"),
        id="reopen disabled",
    ),
    pytest.param(
        incident(case_id="case-1", case_revision=1),
        {},
        {},
        ("NONE", "case-1", (), "CASE_UP_TO_DATE"),
        id="case up to date",
    ),
    pytest.param(
        incident(case_id="case-1", case_revision=1, revision=2),
        {},
        {},
        ("UPDATE_CASE", "case-1", (), "INCIDENT_CHANGED"),
        id="changed: update",
    ),
    pytest.param(
        incident("RECOVERING", case_id="case-1", case_revision=1),
        {},
        {},
        ("NONE", "case-1", (), "CASE_UP_TO_DATE"),
        id="recovering: wait for the quiet period",
    ),
    pytest.param(
        incident("RESOLVED", case_id="case-1", case_revision=1, revision=2),
        {},
        {},
        ("NOTE_RECOVERY", "case-1", (), "INCIDENT_RESOLVED"),
        id="resolved: note the recovery",
    ),
    pytest.param(
        incident(case_id="case-1", case_revision=1, revision=2),
        {},
        {"db1": ["mw-1"]},
        ("UPDATE_CASE", "case-1", ("mw-1",), "INCIDENT_CHANGED"),
        id="existing case is updated during maintenance",
    ),
]


@pytest.mark.parametrize(("inc", "policy", "maintenance", "expected"), DECISIONS)
def test_decide(inc: Incident, policy: dict[str, Any], maintenance: dict[str, list[str]], expected):
    d = decide(inc, CasePolicy(**policy), maintenance=maintenance)
    assert (d.action.value, d.case_id, d.windows, d.reason_key) == expected
    assert (d.incident_id, d.revision) == (inc.id, inc.revision)
    assert d.to_dict()["action"] == expected[0]


def test_policy_is_validated():
    with pytest.raises(ValidationError):
        CasePolicy(reopen_window_s=-1)
    with pytest.raises(ValidationError):
        CasePolicy(min_severty=Severity.WARN)  # type: ignore[call-arg]


def test_a_storm_of_signals_opens_exactly_one_case():
    """50 series on 10 hosts of one customer failing within 5 min, each re-reported 3 times."""
    steps = []
    for rep in range(3):
        for i in range(50):
            host, at = f"h{i % 10}", 6 * i
            signal = Signal(
                SignalKind.METRIC_ANOMALY,
                "acme",
                host,
                f"app_s{i}_seconds",
                T0 + at + 60 + rep,
                T0 + at,
                score=0.9,
            )
            steps.append((at + 60 + rep * 300, signal))
    steps.sort(key=lambda s: s[0])
    run = drive(steps)
    assert len(run.engine.incidents()) == 1
    actions = [a for a, _, _ in run.log]
    assert actions.count("OPEN_CASE") == 1
    assert set(actions) == {"OPEN_CASE", "UPDATE_CASE"}
    assert actions.count("UPDATE_CASE") == 49  # one per new series, none for the re-reports
