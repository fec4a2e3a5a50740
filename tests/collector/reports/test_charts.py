"""Inline SVG charts: well-formed, escaped, axes in the customer's zone, thresholds and markers drawn."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from collector.reports.charts import Band, Marker, bar_chart, line_chart, nice_ticks, sparkline, time_ticks
from collector.schedule.cron import load_zone

SHANGHAI = load_zone("Asia/Shanghai")
T0 = datetime(2026, 11, 24, 5, 30, tzinfo=UTC)  # 13:30 in Shanghai


def _points(n: int = 11, step_min: int = 10) -> list[tuple[datetime, float]]:
    return [(T0 + timedelta(minutes=i * step_min), float(i * 10)) for i in range(n)]


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def _texts(root: ET.Element) -> list[str]:
    return [el.text or "" for el in root.iter("text")]


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        pytest.param(0.0, 93.0, [0.0, 20.0, 40.0, 60.0, 80.0, 100.0], id="percent"),
        pytest.param(0.0, 0.48, [0.0, 0.1, 0.2, 0.3, 0.4, 0.5], id="small"),
        pytest.param(5.0, 5.0, [5.0, 6.0, 7.0, 8.0, 9.0, 10.0], id="flat series"),
        pytest.param(-3.0, 7.0, [-4.0, -2.0, 0.0, 2.0, 4.0, 6.0, 8.0], id="negative"),
    ],
)
def test_nice_ticks(low, high, expected):
    assert nice_ticks(low, high) == expected


def test_nice_ticks_rejects_nan():
    with pytest.raises(ValueError, match="not finite"):
        nice_ticks(0.0, float("nan"))


def test_time_ticks_are_local_round_times():
    ticks = time_ticks(T0, T0 + timedelta(minutes=100), SHANGHAI)
    assert [label for _, label in ticks] == ["13:30", "14:00", "14:30", "15:00"]
    week = time_ticks(T0, T0 + timedelta(days=7), SHANGHAI)
    assert [label for _, label in week] == ["11-26", "11-28", "11-30"]  # 2-day steps from local midnight


def test_line_chart_draws_series_bands_markers_and_escapes():
    svg = line_chart(
        _points(),
        tz=SHANGHAI,
        fmt=lambda v: f"{v:g} <u>",
        bands=[Band(90.0, "crit & co", "#c0392b"), Band(85.0, "warn", "#d98e04")],
        markers=[Marker(T0 + timedelta(minutes=32), "onset")],
        shade=(T0 + timedelta(minutes=32), T0 + timedelta(minutes=78)),
        aria_label='a "quoted" label',
    )
    root = _parse(svg)  # well-formed XML although labels contain markup characters
    texts = _texts(root)
    assert "100 <u>" in texts and "crit & co" in texts and "onset" in texts
    assert "13:30" in texts and "15:00" in texts
    assert len(list(root.iter("polyline"))) == 1
    band_labels = [el for el in root.iter("text") if el.text in ("crit & co", "warn")]
    ys = sorted(float(el.get("y", 0)) for el in band_labels)
    assert ys[1] - ys[0] >= 11  # labels of close thresholds do not overlap
    assert "http" not in svg and "<script" not in svg


def test_line_chart_needs_two_points():
    with pytest.raises(ValueError, match="at least two points"):
        line_chart(_points()[:1], tz=SHANGHAI, fmt=str)


def test_bar_chart_lengths_follow_values():
    root = _parse(bar_chart([("Host", 50.0), ("Storage", 100.0), ("Bad", 130.0)]))
    bars = [r for r in root.iter("rect") if r.get("fill") != "#e3e7ec"]
    widths = [float(r.get("width", 0)) for r in bars]
    assert widths[1] == pytest.approx(2 * widths[0]) and widths[2] == widths[1]  # clamped at the maximum
    assert [t for t in _texts(root) if t[0].isdigit()] == ["50", "100", "130"]


def test_sparkline():
    root = _parse(sparkline([3.0, 1.0, 2.0], width=90, height=20))
    coords = [tuple(map(float, p.split(","))) for p in root.find("polyline").get("points", "").split()]  # type: ignore[union-attr]
    assert coords[0][0] == 2 and coords[-1][0] == 88 and coords[1][1] == 17  # lowest value at the bottom
    with pytest.raises(ValueError, match="at least two values"):
        sparkline([1.0])
