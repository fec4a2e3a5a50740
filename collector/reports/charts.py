"""Small inline-SVG charts for reports: time-axis line charts with thresholds, bars, sparklines.

No JavaScript and no external assets: each function returns one ``<svg>`` element as a
string that renders the same in a browser and in WeasyPrint. Text in the SVG uses the
report's font family (set by the report's CSS on ``svg text``).

>>> svg = sparkline([1.0, 3.0, 2.0])
>>> svg.startswith("<svg") and "polyline" in svg
True
>>> nice_ticks(0.0, 93.0)
[0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from html import escape

__all__ = ["COLORS", "Band", "Marker", "bar_chart", "line_chart", "nice_ticks", "sparkline", "time_ticks"]

COLORS = {
    "line": "#1f4e79",
    "fill": "#1f4e79",
    "grid": "#e3e7ec",
    "axis": "#8a96a3",
    "text": "#4a5561",
    "warn": "#d98e04",
    "crit": "#c0392b",
    "ok": "#2e7d32",
    "baseline": "#6b7c8f",
    "band": "#f6e3e1",
    "envelope": "#cfe3f5",
}

FONT_FAMILY = "Noto Sans CJK SC, Noto Sans, DejaVu Sans, sans-serif"
"""Set on every SVG: WeasyPrint does not apply the page's CSS to SVG text."""
_FONT = 'font-size="10"'


@dataclass(frozen=True, slots=True)
class Marker:
    """A vertical line at a moment (onset, recovery) with a short label."""

    at: datetime
    label: str
    color: str = COLORS["crit"]


@dataclass(frozen=True, slots=True)
class Band:
    """A horizontal reference line (a threshold or a baseline) with a short label."""

    value: float
    label: str
    color: str
    dashed: bool = True


def nice_ticks(low: float, high: float, target: int = 5) -> list[float]:
    """Round tick values covering ``low..high`` (about ``target`` intervals)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"axis range {low}..{high} is not finite")
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / target
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(low / step) * step
    ticks: list[float] = []
    value = start
    while value < high + step * 0.999 and len(ticks) < 50:  # bounded: at most 50 ticks
        ticks.append(float(round(value, 10)))
        value += step
    return ticks


_TIME_STEPS = tuple(
    timedelta(**{unit: n})
    for unit, n in (
        ("minutes", 1),
        ("minutes", 5),
        ("minutes", 10),
        ("minutes", 15),
        ("minutes", 30),
        ("hours", 1),
        ("hours", 2),
        ("hours", 3),
        ("hours", 6),
        ("hours", 12),
        ("days", 1),
        ("days", 2),
        ("days", 7),
        ("days", 14),
        ("days", 30),
    )
)


def time_ticks(start: datetime, end: datetime, tz: tzinfo, target: int = 6) -> list[tuple[datetime, str]]:
    """Tick moments between ``start`` and ``end`` on local round boundaries, with labels.

    Labels are language-neutral: ``HH:MM`` within a day, ``MM-DD`` across days.
    """
    span = (end - start).total_seconds()
    step = next((s for s in _TIME_STEPS if s.total_seconds() * target >= span), _TIME_STEPS[-1])
    local = start.astimezone(tz)
    step_s = int(step.total_seconds())
    if step >= timedelta(days=1):
        first = local.replace(hour=0, minute=0, second=0, microsecond=0)
        fmt = "%m-%d"
    else:
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        offset = int((local - midnight).total_seconds())
        first = midnight + timedelta(seconds=(offset // step_s) * step_s)
        fmt = "%H:%M" if span <= 86400 else "%m-%d %H:%M"
    ticks: list[tuple[datetime, str]] = []
    moment = first
    for _ in range(200):  # bounded walk
        if moment > end:
            break
        if moment >= start:
            ticks.append((moment, moment.strftime(fmt)))
        moment = (moment + step).astimezone(tz)
    return ticks


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def line_chart(
    points: Sequence[tuple[datetime, float]],
    *,
    tz: tzinfo,
    fmt: Callable[[float], str],
    bands: Sequence[Band] = (),
    markers: Sequence[Marker] = (),
    shade: tuple[datetime, datetime] | None = None,
    width: int = 640,
    height: int = 150,
    aria_label: str = "",
    envelope: Sequence[tuple[float, float]] | None = None,
    dots: Sequence[tuple[datetime, float]] = (),
    title: str = "",
    desc: str = "",
) -> str:
    """A time-axis line chart; ``fmt`` formats y-axis values (with their unit).

    ``envelope``: a (low, high) band per point (an expected range, such as the detector's
    baseline), drawn under the line; ``dots``: points to mark (anomalies); ``title`` and
    ``desc``: the chart's ``<title>`` and ``<desc>`` (its text alternative).
    """
    if envelope is not None and len(envelope) != len(points):
        raise ValueError("an envelope needs one (low, high) per point")
    if len(points) < 2:
        raise ValueError("a line chart needs at least two points")
    left, right, top, bottom = 62, (52 if bands else 14), 12, 26
    plot_w, plot_h = width - left - right, height - top - bottom
    t0, t1 = points[0][0], points[-1][0]
    for marker in markers:
        t0, t1 = min(t0, marker.at), max(t1, marker.at)
    span = max((t1 - t0).total_seconds(), 1.0)
    values = [v for _, v in points] + [b.value for b in bands]
    if envelope is not None:
        values += [v for pair in envelope for v in pair if math.isfinite(v)]
    ticks = nice_ticks(min(0.0, min(values)) if min(values) >= 0 else min(values), max(values))
    y_lo, y_hi = ticks[0], ticks[-1]
    y_span = (y_hi - y_lo) or 1.0

    def x(ts: datetime) -> float:
        return left + plot_w * (ts - t0).total_seconds() / span

    def y(v: float) -> float:
        return top + plot_h * (1 - (v - y_lo) / y_span)

    out = [
        f'<svg class="chart" font-family="{FONT_FAMILY}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(aria_label)}">'
    ]
    if title:
        out.append(f"<title>{escape(title)}</title>")
    if desc:
        out.append(f"<desc>{escape(desc)}</desc>")
    if shade is not None:
        x0, x1 = x(max(shade[0], t0)), x(min(shade[1], t1))
        out.append(
            f'<rect x="{x0:.1f}" y="{top}" width="{max(x1 - x0, 1):.1f}" height="{plot_h}" '
            f'fill="{COLORS["band"]}"/>'
        )
    for tick in ticks:
        ty = y(tick)
        out.append(
            f'<line x1="{left}" y1="{ty:.1f}" x2="{left + plot_w}" y2="{ty:.1f}" '
            f'stroke="{COLORS["grid"]}" stroke-width="1"/>'
            f'<text x="{left - 6}" y="{ty + 3.5:.1f}" text-anchor="end" {_FONT} '
            f'fill="{COLORS["text"]}">{escape(fmt(tick))}</text>'
        )
    for moment, label in time_ticks(t0, t1, tz):
        tx = x(moment)
        out.append(
            f'<line x1="{tx:.1f}" y1="{top + plot_h}" x2="{tx:.1f}" y2="{top + plot_h + 4}" '
            f'stroke="{COLORS["axis"]}"/>'
            f'<text x="{tx:.1f}" y="{height - 8}" text-anchor="middle" {_FONT} '
            f'fill="{COLORS["text"]}">{escape(label)}</text>'
        )
    out.append(
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
        f'stroke="{COLORS["axis"]}"/>'
    )
    if envelope is not None:
        upper = " ".join(
            f"{x(ts):.1f},{y(hi):.1f}" for (ts, _), (_, hi) in zip(points, envelope, strict=True)
        )
        lower = " ".join(
            f"{x(ts):.1f},{y(lo):.1f}"
            for (ts, _), (lo, _) in reversed(list(zip(points, envelope, strict=True)))
        )
        out.append(
            f'<polygon class="envelope" points="{upper} {lower}" fill="{COLORS["envelope"]}" stroke="none"/>'
        )
    coords = " ".join(f"{x(ts):.1f},{y(v):.1f}" for ts, v in points)
    base = y(max(y_lo, 0.0)) if y_lo <= 0 <= y_hi else top + plot_h
    out.append(
        f'<polygon points="{x(points[0][0]):.1f},{base:.1f} {coords} {x(points[-1][0]):.1f},{base:.1f}" '
        f'fill="{COLORS["fill"]}" fill-opacity="0.06" stroke="none"/>'
        f'<polyline points="{coords}" fill="none" stroke="{COLORS["line"]}" stroke-width="1.6" '
        f'stroke-linejoin="round"/>'
    )
    # labels in the right margin, beside their line, moved apart when thresholds are close
    label_y = _spread([y(b.value) - 3 for b in bands], gap=11.0, low=top - 3)
    for band, ly in zip(bands, label_y, strict=True):
        by = y(band.value)
        dash = ' stroke-dasharray="5 3"' if band.dashed else ""
        out.append(
            f'<line x1="{left}" y1="{by:.1f}" x2="{left + plot_w}" y2="{by:.1f}" '
            f'stroke="{band.color}" stroke-width="1.2"{dash}/>'
            f'<text x="{left + plot_w + 4}" y="{ly + 6.5:.1f}" {_FONT} '
            f'fill="{band.color}">{escape(band.label)}</text>'
        )
    for at, value in dots:
        out.append(
            f'<circle class="anomaly" cx="{x(at):.1f}" cy="{y(value):.1f}" r="3.5" fill="{COLORS["crit"]}"/>'
        )
    for marker in markers:
        mx = x(marker.at)
        out.append(
            f'<line x1="{mx:.1f}" y1="{top}" x2="{mx:.1f}" y2="{top + plot_h}" '
            f'stroke="{marker.color}" stroke-width="1.2"/>'
            f'<text x="{mx + 3:.1f}" y="{top + 9}" {_FONT} fill="{marker.color}">'
            f"{escape(marker.label)}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def _spread(ys: Sequence[float], *, gap: float, low: float) -> list[float]:
    """Label baselines moved apart so no two are closer than ``gap`` (order of ``ys`` kept)."""
    order = sorted(range(len(ys)), key=lambda i: ys[i])
    placed: list[float] = [0.0] * len(ys)
    last = low - gap
    for i in order:
        placed[i] = max(ys[i], last + gap)
        last = placed[i]
    return placed


def score_color(score: float) -> str:
    """Green from 90, amber from 70, red below."""
    return COLORS["ok"] if score >= 90 else COLORS["warn"] if score >= 70 else COLORS["crit"]


def bar_chart(items: Sequence[tuple[str, float]], *, maximum: float = 100.0, width: int = 640) -> str:
    """Horizontal bars (layer scores 0..100), coloured by score, value at the bar's end."""
    row, label_w, value_w = 21, 110, 40
    height = row * len(items) + 6
    bar_w = width - label_w - value_w
    out = [
        f'<svg class="chart" font-family="{FONT_FAMILY}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img">'
    ]
    for i, (label, value) in enumerate(items):
        top = 3 + i * row
        length = bar_w * max(0.0, min(value, maximum)) / maximum
        out.append(
            f'<text x="{label_w - 10}" y="{top + 14}" text-anchor="end" font-size="11" '
            f'fill="{COLORS["text"]}">{escape(label)}</text>'
            f'<rect x="{label_w}" y="{top + 3}" width="{bar_w}" height="13" rx="2" fill="{COLORS["grid"]}"/>'
            f'<rect x="{label_w}" y="{top + 3}" width="{length:.1f}" height="13" rx="2" '
            f'fill="{score_color(value)}"/>'
            f'<text x="{label_w + bar_w + 8}" y="{top + 14}" font-size="11" font-weight="bold" '
            f'fill="{COLORS["text"]}">{_num(value)}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def sparkline(
    values: Sequence[float], *, width: int = 90, height: int = 20, color: str = COLORS["line"]
) -> str:
    """A tiny trend line without axes; the last point is marked."""
    if len(values) < 2:
        raise ValueError("a sparkline needs at least two values")
    lo, hi = min(values), max(values)
    rng = (hi - lo) or 1.0
    step = (width - 4) / (len(values) - 1)
    pts = [(2 + i * step, height - 3 - (height - 6) * (v - lo) / rng) for i, v in enumerate(values)]
    coords = " ".join(f"{px:.1f},{py:.1f}" for px, py in pts)
    lx, ly = pts[-1]
    return (
        f'<svg class="spark" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}">'
        f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="1.3"/>'
        f'<circle cx="{lx:.1f}" cy="{ly:.1f}" r="2" fill="{color}"/></svg>'
    )
