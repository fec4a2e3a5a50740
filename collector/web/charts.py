"""A host's metric chart: the series, the detector's expected band, and its anomalies.

The band is the live detector's own baseline (:class:`collector.detect.baseline.Baseline`)
replayed over the points shown: for each point, the expected value ± ``enter_z`` scales
*before* the point was learnt; a point outside it (once the baseline has ``min_samples``)
is marked as an anomaly. Drawing is the reports' :func:`collector.reports.charts.line_chart`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from markupsafe import Markup

from checks.api import Unit
from collector.detect.baseline import Baseline, DetectorConfig
from collector.reports import charts
from collector.web.frame import WebFormatter

__all__ = ["HostChart", "host_chart"]


@dataclass(frozen=True, slots=True)
class HostChart:
    title: str
    svg: Markup
    summary: str
    """The text alternative: range, latest value, expected range, anomalies."""
    anomalies: list[tuple[str, str]]
    """(time, value) of each anomaly, for the table under the chart."""


def _unit(unit: str) -> Unit:
    try:
        return Unit(unit)
    except ValueError:
        return Unit.COUNT


def host_chart(
    f: WebFormatter, title: str, unit_name: str, points: list[tuple[float, float]]
) -> HostChart | None:
    """The chart of ``points`` (None when fewer than two)."""
    if len(points) < 2:
        return None
    cfg = DetectorConfig()
    baseline = Baseline(cfg)
    envelope: list[tuple[float, float]] = []
    dots: list[tuple[datetime, float]] = []
    series: list[tuple[datetime, float]] = []
    for ts, value in points:
        seen = baseline.n
        z = baseline.observe(ts, value)
        half = cfg.enter_z * baseline.scale
        envelope.append((baseline.expected - half, baseline.expected + half))
        at = datetime.fromtimestamp(ts, UTC)
        series.append((at, value))
        if seen >= cfg.min_samples and abs(z) >= cfg.enter_z:
            dots.append((at, value))
    unit = _unit(unit_name)
    latest = points[-1][1]
    low, high = envelope[-1]
    summary = f.t(
        "web.chart.summary",
        start=f.ts(points[0][0]),
        end=f.ts(points[-1][0]),
        n=len(points),
        latest=f.value(latest, unit),
        low=f.value(low, unit),
        high=f.value(high, unit),
        anomalies=len(dots),
    )
    svg = charts.line_chart(
        series,
        tz=f.tz,
        fmt=lambda v: f.value(v, unit),
        envelope=envelope,
        dots=dots,
        aria_label=title,
        title=title,
        desc=summary,
    )
    return HostChart(
        title, Markup(svg), summary, [(f.ts(at.timestamp()), f.value(v, unit)) for at, v in dots]
    )
