"""The outcome of one inspection run: findings, scores, coverage, comparison.

:class:`InspectionResult` holds facts only (no wording beyond the catalogue's two
languages), round-trips through :meth:`InspectionResult.to_dict` / ``from_dict`` so
the store can keep it and the next run can compare with it, and maps one-to-one onto
the report model in ``collector/reports/model.py`` (see :mod:`collector.inspections.report`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from checks.api import Layer, Severity, Unit
from collector.reports.model import LocalText

__all__ = [
    "CapacityTrend",
    "Comparison",
    "Coverage",
    "Finding",
    "FindingRef",
    "HostOutcome",
    "InspectionResult",
    "Instance",
    "InventoryChange",
    "LayerScore",
    "OfflineHost",
    "ThresholdUse",
]


def _text(data: Any) -> LocalText:
    return LocalText(str(data["en"]), str(data["zh_cn"]))


def _text_dict(text: LocalText) -> dict[str, str]:
    return {"en": text.en, "zh_cn": text.zh_cn}


@dataclass(frozen=True, slots=True)
class Instance:
    """Where one finding was seen: host, item (mount, interface, endpoint), severity, evidence."""

    host: str
    severity: Severity
    evidence: LocalText
    item: str | None = None


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule that fired, with every place it fired (insights-core: a stable key)."""

    key: str
    layer: Layer
    severity: Severity
    """The worst severity among the instances."""
    title: LocalText
    recommendation: LocalText
    instances: tuple[Instance, ...]

    @property
    def hosts(self) -> tuple[str, ...]:
        return tuple(sorted({i.host for i in self.instances}))


@dataclass(frozen=True, slots=True)
class LayerScore:
    """A layer's health score (None when no host answered) and its findings per severity."""

    layer: Layer
    score: int | None
    crit: int = 0
    warn: int = 0
    unknown: int = 0


@dataclass(frozen=True, slots=True)
class OfflineHost:
    name: str
    last_seen: float | None


@dataclass(frozen=True, slots=True)
class Coverage:
    """Hosts answered / hosts selected."""

    selected: int
    answered: int
    offline: tuple[OfflineHost, ...] = ()

    @property
    def percent(self) -> float:
        return 100.0 if self.selected == 0 else round(100.0 * self.answered / self.selected, 1)


@dataclass(frozen=True, slots=True)
class HostOutcome:
    """One host's row: its worst finding severity, counts, and what the next run compares with."""

    name: str
    answered: bool
    worst: Severity = Severity.OK
    crit: int = 0
    warn: int = 0
    unknown: int = 0
    top_findings: tuple[str, ...] = ()
    os: str | None = None
    components: dict[str, str] = field(default_factory=dict)
    """Inventory snapshot compared by the next run: ``os``, ``kernel``, ``product:<name>``, ..."""
    gauges: dict[str, float] = field(default_factory=dict)
    """Last values compared by the next run: ``memory_used_bytes``, ``tcp_connections``,
    ``fs_used_bytes:/`` (one per mount point)."""


@dataclass(frozen=True, slots=True)
class FindingRef:
    """A finding instance's identity for comparison: (key, host, item)."""

    key: str
    host: str
    item: str | None
    severity: Severity
    layer: Layer
    previous_severity: Severity | None = None
    """For persisting findings: the severity last time."""


@dataclass(frozen=True, slots=True)
class InventoryChange:
    host: str
    component: str
    before: str | None
    after: str | None


@dataclass(frozen=True, slots=True)
class CapacityTrend:
    """Days until full (None: not growing or no limit), growth per day, change since last run."""

    host: str
    resource: str
    """``filesystem``, ``memory`` or ``tcp_connections``."""
    unit: Unit
    current: float
    growth_per_day: float
    item: str | None = None
    limit: float | None = None
    days_until_full: float | None = None
    previous: float | None = None
    """The value at the previous inspection (None without one)."""

    @property
    def change(self) -> float | None:
        return None if self.previous is None else self.current - self.previous


@dataclass(frozen=True, slots=True)
class Comparison:
    """Against the customer's previous inspection (None fields when there was none)."""

    previous_run: str | None
    previous_at: float | None
    previous_score: int | None
    new: tuple[FindingRef, ...] = ()
    resolved: tuple[FindingRef, ...] = ()
    persisting: tuple[FindingRef, ...] = ()
    inventory: tuple[InventoryChange, ...] = ()
    hosts_added: tuple[str, ...] = ()
    hosts_removed: tuple[str, ...] = ()
    capacity: tuple[CapacityTrend, ...] = ()


@dataclass(frozen=True, slots=True)
class ThresholdUse:
    """The thresholds one applied rule used: the plan's override or the rule's defaults."""

    rule: str
    values: dict[str, float]
    described: str
    """``warn >= 70, crit >= 90``: each field with how it is compared."""
    overridden: bool


@dataclass(frozen=True, slots=True)
class InspectionResult:
    """Everything one inspection run concluded."""

    run_id: str
    plan: str
    customer: str
    language: str
    period_start: float
    period_end: float
    coverage: Coverage
    overall_score: int | None
    layers: tuple[LayerScore, ...]
    findings: tuple[Finding, ...]
    hosts: tuple[HostOutcome, ...]
    comparison: Comparison
    rule_errors: tuple[str, ...] = ()
    """Rules that raised (``KEY on host: ErrorType: message``); their findings are missing."""
    thresholds: tuple[ThresholdUse, ...] = ()
    """The thresholds of the applied rules that have any, by rule key."""

    def count(self, severity: Severity) -> int:
        return sum(1 for f in self.findings if f.severity is severity)

    def finding(self, key: str) -> Finding | None:
        return next((f for f in self.findings if f.key == key), None)

    # ------------------------------------------------------------------ serialisation

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the store keeps it; the next run compares with it)."""
        return {
            "run_id": self.run_id,
            "plan": self.plan,
            "customer": self.customer,
            "language": self.language,
            "period_start": self.period_start,
            "period_end": self.period_end,
            "coverage": {
                "selected": self.coverage.selected,
                "answered": self.coverage.answered,
                "offline": [{"name": h.name, "last_seen": h.last_seen} for h in self.coverage.offline],
            },
            "overall_score": self.overall_score,
            "layers": [
                {
                    "layer": s.layer.value,
                    "score": s.score,
                    "crit": s.crit,
                    "warn": s.warn,
                    "unknown": s.unknown,
                }
                for s in self.layers
            ],
            "findings": [
                {
                    "key": f.key,
                    "layer": f.layer.value,
                    "severity": f.severity.value,
                    "title": _text_dict(f.title),
                    "recommendation": _text_dict(f.recommendation),
                    "instances": [
                        {
                            "host": i.host,
                            "item": i.item,
                            "severity": i.severity.value,
                            "evidence": _text_dict(i.evidence),
                        }
                        for i in f.instances
                    ],
                }
                for f in self.findings
            ],
            "hosts": [
                {
                    "name": h.name,
                    "answered": h.answered,
                    "worst": h.worst.value,
                    "crit": h.crit,
                    "warn": h.warn,
                    "unknown": h.unknown,
                    "top_findings": list(h.top_findings),
                    "os": h.os,
                    "components": dict(h.components),
                    "gauges": dict(h.gauges),
                }
                for h in self.hosts
            ],
            "comparison": _comparison_dict(self.comparison),
            "rule_errors": list(self.rule_errors),
            "thresholds": [
                {"rule": t.rule, "values": t.values, "described": t.described, "overridden": t.overridden}
                for t in self.thresholds
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InspectionResult:
        cov = data["coverage"]
        return cls(
            run_id=data["run_id"],
            plan=data["plan"],
            customer=data["customer"],
            language=data["language"],
            period_start=float(data["period_start"]),
            period_end=float(data["period_end"]),
            coverage=Coverage(
                cov["selected"],
                cov["answered"],
                tuple(OfflineHost(h["name"], h["last_seen"]) for h in cov["offline"]),
            ),
            overall_score=data["overall_score"],
            layers=tuple(
                LayerScore(Layer(s["layer"]), s["score"], s["crit"], s["warn"], s["unknown"])
                for s in data["layers"]
            ),
            findings=tuple(
                Finding(
                    f["key"],
                    Layer(f["layer"]),
                    Severity(f["severity"]),
                    _text(f["title"]),
                    _text(f["recommendation"]),
                    tuple(
                        Instance(i["host"], Severity(i["severity"]), _text(i["evidence"]), i["item"])
                        for i in f["instances"]
                    ),
                )
                for f in data["findings"]
            ),
            hosts=tuple(
                HostOutcome(
                    h["name"],
                    h["answered"],
                    Severity(h["worst"]),
                    h["crit"],
                    h["warn"],
                    h["unknown"],
                    tuple(h["top_findings"]),
                    h["os"],
                    dict(h["components"]),
                    {k: float(v) for k, v in h["gauges"].items()},
                )
                for h in data["hosts"]
            ),
            comparison=_comparison_from(data["comparison"]),
            rule_errors=tuple(data.get("rule_errors", ())),
            thresholds=tuple(
                ThresholdUse(
                    t["rule"], {k: float(v) for k, v in t["values"].items()}, t["described"], t["overridden"]
                )
                for t in data.get("thresholds", ())
            ),
        )


def _ref_dict(ref: FindingRef) -> dict[str, Any]:
    return {
        "key": ref.key,
        "host": ref.host,
        "item": ref.item,
        "severity": ref.severity.value,
        "layer": ref.layer.value,
        "previous_severity": ref.previous_severity.value if ref.previous_severity else None,
    }


def _ref_from(data: dict[str, Any]) -> FindingRef:
    prev = data.get("previous_severity")
    return FindingRef(
        data["key"],
        data["host"],
        data["item"],
        Severity(data["severity"]),
        Layer(data["layer"]),
        Severity(prev) if prev else None,
    )


def _comparison_dict(c: Comparison) -> dict[str, Any]:
    return {
        "previous_run": c.previous_run,
        "previous_at": c.previous_at,
        "previous_score": c.previous_score,
        "new": [_ref_dict(r) for r in c.new],
        "resolved": [_ref_dict(r) for r in c.resolved],
        "persisting": [_ref_dict(r) for r in c.persisting],
        "inventory": [
            {"host": i.host, "component": i.component, "before": i.before, "after": i.after}
            for i in c.inventory
        ],
        "hosts_added": list(c.hosts_added),
        "hosts_removed": list(c.hosts_removed),
        "capacity": [
            {
                "host": t.host,
                "resource": t.resource,
                "unit": t.unit.value,
                "current": t.current,
                "growth_per_day": t.growth_per_day,
                "item": t.item,
                "limit": t.limit,
                "days_until_full": t.days_until_full,
                "previous": t.previous,
            }
            for t in c.capacity
        ],
    }


def _comparison_from(d: dict[str, Any]) -> Comparison:
    return Comparison(
        d["previous_run"],
        d["previous_at"],
        d["previous_score"],
        tuple(_ref_from(r) for r in d["new"]),
        tuple(_ref_from(r) for r in d["resolved"]),
        tuple(_ref_from(r) for r in d["persisting"]),
        tuple(InventoryChange(i["host"], i["component"], i["before"], i["after"]) for i in d["inventory"]),
        tuple(d["hosts_added"]),
        tuple(d["hosts_removed"]),
        tuple(
            CapacityTrend(
                t["host"],
                t["resource"],
                Unit(t["unit"]),
                t["current"],
                t["growth_per_day"],
                t["item"],
                t["limit"],
                t["days_until_full"],
                t["previous"],
            )
            for t in d["capacity"]
        ),
    )
