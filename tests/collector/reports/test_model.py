"""Report models: validation with clear messages, and the derived figures reports show."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from checks.api import Layer, Severity, Unit
from collector.reports import (
    Coverage,
    Finding,
    Impact,
    LayerScore,
    LocalText,
    ProbableCause,
    Recommendation,
    TimelineEvent,
    TimelineKind,
    Trend,
)

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
TEXT = LocalText("x", "某")


@pytest.mark.parametrize(
    ("build", "message"),
    [
        pytest.param(lambda: LocalText("Disk full", " "), "needs both languages", id="missing translation"),
        pytest.param(lambda: Coverage(selected=3, answered=4), "answered 4 must be within", id="coverage"),
        pytest.param(lambda: LayerScore(Layer.HOST, 101), "outside 0..100", id="score"),
        pytest.param(
            lambda: Finding("K", Severity.WARN, Layer.HOST, TEXT, TEXT, ()),
            "at least one instance",
            id="finding",
        ),
        pytest.param(
            lambda: Trend(TEXT, "m_percent", Unit.PERCENT, "h", ((NOW, 1.0),)),
            "at least two points",
            id="trend",
        ),
        pytest.param(
            lambda: TimelineEvent(datetime(2026, 11, 25, 9, 0), TimelineKind.ONSET),
            "time-zone-aware",
            id="naive time",
        ),
        pytest.param(
            lambda: Impact(("h",), NOW, NOW - timedelta(1), TEXT), "end is before start", id="impact"
        ),
        pytest.param(lambda: ProbableCause(TEXT, 1.5, ()), "outside 0..1", id="confidence"),
        pytest.param(lambda: Recommendation(TEXT, 0), "must be 1 \\(high\\), 2 or 3", id="priority"),
    ],
)
def test_invalid_models_are_rejected(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_inspection_derived_figures(inspection):
    assert inspection.coverage.percent == 91.7
    assert Coverage(0, 0).percent == 100.0
    assert [inspection.count(s) for s in (Severity.CRIT, Severity.WARN, Severity.UNKNOWN)] == [2, 7, 1]
    assert inspection.hosts_with_findings == 10
    assert sum(s.crit + s.warn + s.unknown for s in inspection.layers) == len(inspection.findings)
    ordered = inspection.findings_by_severity
    assert [f.key for f in ordered[:3]] == ["FS_NEARLY_FULL", "SERVICE_UNREACHABLE", "CHECK_ERROR"]
    reboot = next(f for f in inspection.findings if f.key == "REBOOT_REQUIRED")
    assert reboot.host_count == 2
    with pytest.raises(ValueError, match="period_end is before period_start"):
        replace(inspection, period_end=inspection.period_start - timedelta(hours=1))


def test_fault_derived_figures(fault):
    assert fault.time_to_detect_s == 120
    assert fault.time_to_recover_s == 46 * 60
    assert fault.milestone(TimelineKind.NOTE) is None
    assert [r.priority for r in fault.recommendations_by_priority] == [1, 1, 2]
    with pytest.raises(ValueError, match="timeline is empty"):
        replace(fault, timeline=())
