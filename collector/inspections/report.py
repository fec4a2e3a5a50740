"""Build the inspection report model (``collector/reports/model.py``) from a result.

The report shows exactly the result's facts; this module only changes their shape:
Unix times become aware datetimes in the customer's zone, comparison instances are
grouped per finding key, capacity resources get their two-language names, and the
charted trends are taken from the run's metric history.

Two shape differences are deliberate: a layer without a score (no host answered) is
left out of the report's layer table, and the report has a comparison section only
when a previous inspection exists (the first report has no capacity table; its trend
charts still show the growth).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, tzinfo

from checks.api import Severity, Unit
from collector.inspections.catalogue import CATALOGUE
from collector.inspections.facts import HostFacts, MetricSummary
from collector.inspections.model import CapacityTrend as ResultCapacity
from collector.inspections.model import FindingRef, InspectionResult
from collector.reports import model as rm
from collector.schedule.cron import load_zone

__all__ = ["RESOURCE_NAMES", "build_trends", "to_report"]

RESOURCE_NAMES = {
    "filesystem": rm.LocalText("Filesystem", "文件系统"),
    "memory": rm.LocalText("Memory", "内存"),
    "tcp_connections": rm.LocalText("TCP connections", "TCP 连接数"),
}
_TREND_SOURCES = {
    "filesystem": (
        "storage_fs_used_percent",
        Unit.PERCENT,
        rm.LocalText("Filesystem usage", "文件系统使用率"),
    ),
    "memory": ("host_memory_used_bytes", Unit.BYTES, rm.LocalText("Memory in use", "已用内存")),
    "tcp_connections": (
        "net_tcp_sockets_in_use_count",
        Unit.COUNT,
        rm.LocalText("TCP connections", "TCP 连接数"),
    ),
}
MAX_TRENDS = 12
"""Charts per report: the capacity trends closest to full (then fastest growing) first."""


def _at(ts: float, zone: tzinfo) -> datetime:
    return datetime.fromtimestamp(ts, zone)


def _changes(refs: Iterable[FindingRef]) -> tuple[rm.FindingChange, ...]:
    by_key: dict[str, list[FindingRef]] = {}
    for ref in refs:
        by_key.setdefault(ref.key, []).append(ref)
    changes = [
        rm.FindingChange(
            key,
            Severity.worst(*(r.severity for r in group)),
            CATALOGUE[key].title,
            tuple(sorted({r.host for r in group})),
        )
        for key, group in by_key.items()
    ]
    return tuple(sorted(changes, key=lambda c: (-c.severity.rank, c.key)))


def _capacity(trend: ResultCapacity) -> rm.CapacityTrend:
    return rm.CapacityTrend(
        trend.host,
        RESOURCE_NAMES[trend.resource],
        trend.unit,
        trend.current,
        trend.growth_per_day,
        trend.item,
        trend.days_until_full,
    )


def build_trends(
    result: InspectionResult, hosts: Sequence[HostFacts], zone: str | tzinfo = "UTC", limit: int = MAX_TRENDS
) -> tuple[rm.Trend, ...]:
    """Charts for the capacity trends that matter most: soonest full first, then fastest growing."""
    tz = load_zone(zone) if isinstance(zone, str) else zone
    facts = {h.name: h for h in hosts}
    growing = [t for t in result.comparison.capacity if t.growth_per_day > 0]
    growing.sort(key=lambda t: (t.days_until_full is None, t.days_until_full or 0.0, -t.growth_per_day))
    charts = []
    for trend in growing:
        host = facts.get(trend.host)
        metric, unit, title = _TREND_SOURCES[trend.resource]
        series: MetricSummary | None = None
        if host is not None:
            labels = {"mountpoint": trend.item} if trend.item else {}
            series = host.one(metric, **labels)
        if series is None or len(series.points) < 2:
            continue
        warn, crit = (80.0, 90.0) if trend.resource == "filesystem" else (None, None)
        charts.append(
            rm.Trend(
                title,
                metric,
                unit,
                trend.host,
                tuple((_at(ts, tz), value) for ts, value in series.points),
                trend.item,
                warn,
                crit,
                trend.days_until_full,
            )
        )
        if len(charts) == limit:
            break
    return tuple(charts)


def to_report(
    result: InspectionResult,
    customer: rm.Customer,
    signoff: rm.SignOff,
    generated_at: float,
    *,
    trends: tuple[rm.Trend, ...] = (),
    summary: rm.LocalText | None = None,
) -> rm.InspectionReport:
    """The report model for ``result`` (times shown in ``customer.timezone``)."""
    zone = load_zone(customer.timezone)
    comparison = result.comparison
    report_comparison = None
    if comparison.previous_run is not None and comparison.previous_at is not None:
        report_comparison = rm.Comparison(
            comparison.previous_run,
            _at(comparison.previous_at, zone),
            comparison.previous_score if comparison.previous_score is not None else 0,
            _changes(comparison.new),
            _changes(comparison.resolved),
            _changes(comparison.persisting),
            tuple(rm.InventoryChange(c.host, c.component, c.before, c.after) for c in comparison.inventory),
            tuple(_capacity(t) for t in comparison.capacity),
        )
    return rm.InspectionReport(
        customer=customer,
        plan=result.plan,
        run_id=result.run_id,
        period_start=_at(result.period_start, zone),
        period_end=_at(result.period_end, zone),
        generated_at=_at(generated_at, zone),
        coverage=rm.Coverage(
            result.coverage.selected,
            result.coverage.answered,
            tuple(
                rm.OfflineHost(h.name, _at(h.last_seen, zone) if h.last_seen is not None else None)
                for h in result.coverage.offline
            ),
        ),
        overall_score=result.overall_score if result.overall_score is not None else 0,
        layers=tuple(
            rm.LayerScore(s.layer, s.score, s.crit, s.warn, s.unknown)
            for s in result.layers
            if s.score is not None
        ),
        findings=tuple(
            rm.Finding(
                f.key,
                f.severity,
                f.layer,
                f.title,
                f.recommendation,
                tuple(rm.FindingInstance(i.host, i.evidence, i.item) for i in f.instances),
            )
            for f in result.findings
        ),
        hosts=tuple(
            rm.HostSummary(
                h.name,
                h.answered,
                h.worst,
                h.crit,
                h.warn,
                h.unknown,
                h.os,
                ", ".join(
                    f"{name.removeprefix('product:')} {version}"
                    for name, version in sorted(h.components.items())
                    if name.startswith("product:")
                )
                or None,
                h.top_findings,
            )
            for h in result.hosts
        ),
        signoff=signoff,
        trends=trends,
        comparison=report_comparison,
        summary=summary,
        thresholds=tuple(
            rm.ThresholdRow(t.rule, CATALOGUE[t.rule].title, t.described, t.overridden)
            for t in result.thresholds
            if t.rule in CATALOGUE
        ),
    )
