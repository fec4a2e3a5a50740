"""Typed report models: the inspection report (巡检报告) and the fault-analysis report (事故分析报告).

A model holds every fact and every figure a report shows; templates only format them.
Derived figures (coverage percentage, counts per severity, durations) are properties of
the model, so a test can compare the rendered report with the model's own numbers.

Text that a person reads and that is not data (a finding's title, its evidence sentence,
a recommendation, the reasoning behind a probable cause) is a :class:`LocalText` holding
both languages; the report renders the requested one. Host names, check keys, metric
names and engineers' case notes are data and are shown as given.

>>> LocalText("Disk nearly full", "磁盘即将写满").get("zh-CN")
'磁盘即将写满'
>>> Coverage(selected=12, answered=11).percent
91.7
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from checks.api import Layer, Severity, Unit

__all__ = [
    "SEVERITY_ORDER",
    "CapacityTrend",
    "CaseInfo",
    "CaseNote",
    "Comparison",
    "Coverage",
    "Customer",
    "EvidenceChart",
    "FaultAnalysisReport",
    "Finding",
    "FindingChange",
    "FindingInstance",
    "HostSummary",
    "Impact",
    "InspectionReport",
    "InventoryChange",
    "Lang",
    "LayerScore",
    "LocalText",
    "OfflineHost",
    "ProbableCause",
    "Recommendation",
    "RejectedCause",
    "RemoteSession",
    "SignOff",
    "ThresholdRow",
    "TimelineEvent",
    "TimelineKind",
    "Trend",
]

Lang = Literal["en", "zh-CN"]

SEVERITY_ORDER: tuple[Severity, ...] = (Severity.CRIT, Severity.UNKNOWN, Severity.WARN, Severity.OK)
"""The order findings are listed in: the most severe first."""


def _aware(name: str, value: datetime | None) -> None:
    if value is not None and value.tzinfo is None:
        raise ValueError(f"{name} must be a time-zone-aware datetime, got naive {value.isoformat()}")


@dataclass(frozen=True, slots=True)
class LocalText:
    """One piece of prose in both report languages."""

    en: str
    zh_cn: str

    def __post_init__(self) -> None:
        if not self.en.strip() or not self.zh_cn.strip():
            raise ValueError(f"LocalText needs both languages, got en={self.en!r} zh-CN={self.zh_cn!r}")

    def get(self, lang: Lang) -> str:
        """The text in ``lang``."""
        return self.zh_cn if lang == "zh-CN" else self.en

    def format(self, **values: object) -> LocalText:
        """Both templates with ``values`` filled in (a missing field raises KeyError).

        >>> LocalText("{n} hosts", "{n} 台主机").format(n=3)
        LocalText(en='3 hosts', zh_cn='3 台主机')
        """
        return LocalText(self.en.format(**values), self.zh_cn.format(**values))


@dataclass(frozen=True, slots=True)
class Customer:
    """Who the report is for. ``logo`` is a file path or the image bytes (PNG, JPEG, GIF, SVG, WebP)."""

    name: str
    timezone: str = "UTC"
    """IANA zone all times in the report are shown in (the customer's settings)."""
    logo: Path | bytes | None = None


@dataclass(frozen=True, slots=True)
class SignOff:
    """The sign-off block: who prepared and reviewed the report; the customer signs on paper."""

    prepared_by: str
    reviewed_by: str | None = None
    organisation: str | None = None
    """The vendor's name, shown above the signatures."""


# --------------------------------------------------------------------------- inspection


@dataclass(frozen=True, slots=True)
class OfflineHost:
    """A selected host that did not answer the inspection."""

    name: str
    last_seen: datetime | None = None

    def __post_init__(self) -> None:
        _aware("OfflineHost.last_seen", self.last_seen)


@dataclass(frozen=True, slots=True)
class Coverage:
    """Hosts answered / hosts selected, and the offline hosts."""

    selected: int
    answered: int
    offline: tuple[OfflineHost, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.answered <= self.selected:
            raise ValueError(f"coverage: answered {self.answered} must be within 0..selected {self.selected}")

    @property
    def percent(self) -> float:
        """Answered hosts as a percentage of selected hosts, one decimal (100.0 when none selected)."""
        return 100.0 if self.selected == 0 else round(100.0 * self.answered / self.selected, 1)


@dataclass(frozen=True, slots=True)
class LayerScore:
    """A layer's health score (0..100) and its finding counts."""

    layer: Layer
    score: int
    crit: int = 0
    warn: int = 0
    unknown: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.score <= 100:
            raise ValueError(f"layer {self.layer.value}: score {self.score} is outside 0..100")


@dataclass(frozen=True, slots=True)
class FindingInstance:
    """Where a finding was seen: a host, optionally an item (mount, interface), and the evidence."""

    host: str
    evidence: LocalText
    item: str | None = None


@dataclass(frozen=True, slots=True)
class Finding:
    """One inspection rule that fired, with every host it fired on (insights-core shape)."""

    key: str
    severity: Severity
    layer: Layer
    title: LocalText
    recommendation: LocalText
    instances: tuple[FindingInstance, ...]

    def __post_init__(self) -> None:
        if not self.instances:
            raise ValueError(f"finding {self.key}: needs at least one instance")

    @property
    def host_count(self) -> int:
        """Distinct hosts the finding was seen on."""
        return len({i.host for i in self.instances})


@dataclass(frozen=True, slots=True)
class HostSummary:
    """One row of the per-host table."""

    name: str
    answered: bool
    worst: Severity = Severity.OK
    crit: int = 0
    warn: int = 0
    unknown: int = 0
    os: str | None = None
    product_version: str | None = None
    top_findings: tuple[str, ...] = ()
    """Keys of the host's worst findings (at most a few: the row stays one line)."""


@dataclass(frozen=True, slots=True)
class Trend:
    """A metric's history over the period, charted with its thresholds."""

    title: LocalText
    metric: str
    unit: Unit
    host: str
    points: tuple[tuple[datetime, float], ...]
    item: str | None = None
    warn: float | None = None
    crit: float | None = None
    days_until_full: float | None = None

    def __post_init__(self) -> None:
        if len(self.points) < 2:
            raise ValueError(f"trend {self.metric} on {self.host}: needs at least two points")
        for ts, _ in self.points:
            _aware(f"trend {self.metric} point", ts)

    @property
    def first(self) -> float:
        return self.points[0][1]

    @property
    def last(self) -> float:
        return self.points[-1][1]

    @property
    def change(self) -> float:
        """Last value minus first value."""
        return self.last - self.first


@dataclass(frozen=True, slots=True)
class FindingChange:
    """A finding in the comparison with the previous inspection."""

    key: str
    severity: Severity
    title: LocalText
    hosts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class InventoryChange:
    """A change of a host's inventory between the two inspections (a version, a package)."""

    host: str
    component: str
    before: str | None
    after: str | None


@dataclass(frozen=True, slots=True)
class CapacityTrend:
    """A capacity forecast: current use, growth per day, days until full (None: not growing)."""

    host: str
    resource: LocalText
    unit: Unit
    current: float
    growth_per_day: float
    item: str | None = None
    days_until_full: float | None = None
    """None: the resource has no limit to run into (connections) or is not growing."""

    @property
    def growing(self) -> bool:
        return self.growth_per_day > 0


@dataclass(frozen=True, slots=True)
class ThresholdRow:
    """The thresholds one inspection rule used, and whether the plan overrode its defaults."""

    rule: str
    title: LocalText
    described: str
    """``warn >= 70, crit >= 90``."""
    overridden: bool


@dataclass(frozen=True, slots=True)
class Comparison:
    """The comparison with the customer's previous inspection."""

    previous_run: str
    previous_at: datetime
    previous_score: int
    new: tuple[FindingChange, ...] = ()
    resolved: tuple[FindingChange, ...] = ()
    persisting: tuple[FindingChange, ...] = ()
    inventory: tuple[InventoryChange, ...] = ()
    capacity: tuple[CapacityTrend, ...] = ()

    def __post_init__(self) -> None:
        _aware("Comparison.previous_at", self.previous_at)


@dataclass(frozen=True, slots=True)
class InspectionReport:
    """巡检报告: everything one inspection report shows."""

    customer: Customer
    plan: str
    run_id: str
    period_start: datetime
    period_end: datetime
    generated_at: datetime
    coverage: Coverage
    overall_score: int
    layers: tuple[LayerScore, ...]
    findings: tuple[Finding, ...]
    hosts: tuple[HostSummary, ...]
    signoff: SignOff
    trends: tuple[Trend, ...] = ()
    comparison: Comparison | None = None
    summary: LocalText | None = None
    thresholds: tuple[ThresholdRow, ...] = ()

    def __post_init__(self) -> None:
        for name in ("period_start", "period_end", "generated_at"):
            _aware(f"InspectionReport.{name}", getattr(self, name))
        if self.period_end < self.period_start:
            raise ValueError("InspectionReport: period_end is before period_start")
        if not 0 <= self.overall_score <= 100:
            raise ValueError(f"InspectionReport: overall score {self.overall_score} is outside 0..100")

    def count(self, severity: Severity) -> int:
        """How many findings of ``severity`` the report lists."""
        return sum(1 for f in self.findings if f.severity is severity)

    @property
    def findings_by_severity(self) -> tuple[Finding, ...]:
        """Findings, most severe first, then by layer (lowest first) and key."""
        layer_order = {layer: i for i, layer in enumerate(Layer)}
        return tuple(
            sorted(
                self.findings,
                key=lambda f: (SEVERITY_ORDER.index(f.severity), layer_order[f.layer], f.key),
            )
        )

    @property
    def hosts_with_findings(self) -> int:
        return sum(1 for h in self.hosts if h.crit or h.warn or h.unknown)


# --------------------------------------------------------------------------- fault analysis


class TimelineKind(enum.Enum):
    """The milestones of an incident, in their usual order."""

    ONSET = "onset"
    DETECTED = "detected"
    CASE_OPENED = "case_opened"
    ACKNOWLEDGED = "acknowledged"
    ACTION = "action"
    RECOVERED = "recovered"
    CLOSED = "closed"
    NOTE = "note"


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    """One line of the timeline; ``text`` adds detail to the milestone's label."""

    at: datetime
    kind: TimelineKind
    text: LocalText | None = None
    host: str | None = None
    actor: str | None = None

    def __post_init__(self) -> None:
        _aware("TimelineEvent.at", self.at)


@dataclass(frozen=True, slots=True)
class CaseInfo:
    """The emergency case (应急性维护) the report closes."""

    case_id: str
    incident_id: str
    severity: Severity
    title: LocalText
    engineer: str
    opened_at: datetime
    closed_at: datetime | None = None

    def __post_init__(self) -> None:
        _aware("CaseInfo.opened_at", self.opened_at)
        _aware("CaseInfo.closed_at", self.closed_at)


@dataclass(frozen=True, slots=True)
class Impact:
    """Which hosts were affected, and from when to when."""

    hosts: tuple[str, ...]
    start: datetime
    end: datetime | None
    description: LocalText
    hosts_total: int | None = None
    """All hosts of the customer, for "3 of 12 hosts"."""

    def __post_init__(self) -> None:
        _aware("Impact.start", self.start)
        _aware("Impact.end", self.end)
        if self.end is not None and self.end < self.start:
            raise ValueError("Impact: end is before start")

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to end (None while ongoing)."""
        return None if self.end is None else (self.end - self.start).total_seconds()


@dataclass(frozen=True, slots=True)
class EvidenceChart:
    """A metric around the onset, with the onset marked and its threshold or baseline."""

    title: LocalText
    metric: str
    unit: Unit
    host: str
    points: tuple[tuple[datetime, float], ...]
    onset: datetime
    recovered: datetime | None = None
    threshold: float | None = None
    baseline: float | None = None

    def __post_init__(self) -> None:
        if len(self.points) < 2:
            raise ValueError(f"evidence chart {self.metric} on {self.host}: needs at least two points")
        _aware("EvidenceChart.onset", self.onset)
        _aware("EvidenceChart.recovered", self.recovered)
        for ts, _ in self.points:
            _aware(f"evidence chart {self.metric} point", ts)


@dataclass(frozen=True, slots=True)
class RejectedCause:
    """An alternative the analysis considered, and why it was ruled out."""

    label: LocalText
    confidence: float
    why_not: LocalText


@dataclass(frozen=True, slots=True)
class ProbableCause:
    """The probable cause: what, where, how confident, the reasoning, the alternatives."""

    label: LocalText
    confidence: float
    reasoning: tuple[LocalText, ...]
    layer: Layer | None = None
    host: str | None = None
    alternatives: tuple[RejectedCause, ...] = ()

    def __post_init__(self) -> None:
        for c in (self.confidence, *(a.confidence for a in self.alternatives)):
            if not 0.0 <= c <= 1.0:
                raise ValueError(f"cause confidence {c} is outside 0..1")


@dataclass(frozen=True, slots=True)
class CaseNote:
    """An action taken, from the case notes: a plain string is the engineer's words, shown as
    written in every language; a :class:`LocalText` when the note was translated."""

    at: datetime
    author: str
    text: LocalText | str

    def __post_init__(self) -> None:
        _aware("CaseNote.at", self.at)


@dataclass(frozen=True, slots=True)
class Recommendation:
    """A measure to prevent recurrence; ``priority`` 1 is the most urgent."""

    text: LocalText
    priority: int = 2
    owner: str | None = None

    def __post_init__(self) -> None:
        if self.priority not in (1, 2, 3):
            raise ValueError(f"recommendation priority {self.priority} must be 1 (high), 2 or 3 (low)")


@dataclass(frozen=True, slots=True)
class RemoteSession:
    """A remote session opened for the case (engineer, host, who approved, when, recorded)."""

    session_id: str
    engineer: str
    host: str
    mode: str
    """``shell`` or ``diagnostic``."""
    state: str
    approved_by: str | None
    start: datetime | None
    """Its first SSH connection (None: nobody connected)."""
    end: datetime | None
    recording: bool

    def __post_init__(self) -> None:
        _aware("RemoteSession.start", self.start)
        _aware("RemoteSession.end", self.end)


@dataclass(frozen=True, slots=True)
class FaultAnalysisReport:
    """事故分析报告: everything one fault-analysis report shows."""

    customer: Customer
    case: CaseInfo
    generated_at: datetime
    summary: LocalText
    impact: Impact
    timeline: tuple[TimelineEvent, ...]
    cause: ProbableCause
    signoff: SignOff
    evidence: tuple[EvidenceChart, ...] = ()
    actions: tuple[CaseNote, ...] = ()
    recommendations: tuple[Recommendation, ...] = field(default=())
    sessions: tuple[RemoteSession, ...] = ()

    def __post_init__(self) -> None:
        _aware("FaultAnalysisReport.generated_at", self.generated_at)
        if not self.timeline:
            raise ValueError("FaultAnalysisReport: the timeline is empty")

    @property
    def recommendations_by_priority(self) -> tuple[Recommendation, ...]:
        """Recommendations, most urgent first (stable within a priority)."""
        return tuple(sorted(self.recommendations, key=lambda r: r.priority))

    def milestone(self, kind: TimelineKind) -> datetime | None:
        """When the first event of ``kind`` happened (None if it did not)."""
        return next((e.at for e in self.timeline if e.kind is kind), None)

    @property
    def time_to_detect_s(self) -> float | None:
        """Seconds from onset to detection."""
        return _span(self.milestone(TimelineKind.ONSET), self.milestone(TimelineKind.DETECTED))

    @property
    def time_to_recover_s(self) -> float | None:
        """Seconds from onset to recovery."""
        return _span(self.milestone(TimelineKind.ONSET), self.milestone(TimelineKind.RECOVERED))


def _span(start: datetime | None, end: datetime | None) -> float | None:
    return None if start is None or end is None else (end - start).total_seconds()
