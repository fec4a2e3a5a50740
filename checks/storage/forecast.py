"""storage.forecast: days until each filesystem is full, from its recent growth.

The store keeps a bounded history per mount (at most ``max_samples`` points, at most
one per ``sample_every_s``) of ``(timestamp, used bytes)``. The growth rate is the
least-squares slope of that history; once the history spans ``min_history_s`` and the
filesystem is growing, ``days left = free bytes / slope``. A resized filesystem starts a
new history. Mounts whose ``statvfs`` fails are left to ``storage.filesystem``, which
reports them as ``FS_UNREADABLE``.

Sample of what :func:`collect_forecast` returns::

    ForecastSection(ts=1700000000.0, filesystems=(
        FsPoint(mountpoint='/', used_bytes=30817538048, free_bytes=19723161600, size_bytes=52710469632),
    ))

>>> least_squares_slope([(0.0, 10.0), (10.0, 30.0), (20.0, 50.0)])
2.0
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from pydantic import Field

from checks.api import (
    Check,
    Direction,
    Layer,
    Levels,
    Metric,
    MetricSpec,
    Result,
    Severity,
    Unit,
    ValueStore,
    check_levels,
    render_bytes,
    render_seconds,
)
from checks.probe import Probe
from checks.storage._common import MountSelection, selected_mounts, statvfs_cached

SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True, slots=True)
class FsPoint:
    mountpoint: str
    used_bytes: int
    free_bytes: int
    size_bytes: int


@dataclass(frozen=True, slots=True)
class ForecastSection:
    ts: float
    filesystems: tuple[FsPoint, ...]


class ForecastParams(MountSelection):
    levels_days_left: Levels = (30.0, 7.0)
    """(warn, crit) lower levels on the days until the filesystem is full."""
    sample_every_s: float = Field(default=300.0, gt=0)
    """Keep at most one history sample per this many seconds."""
    max_samples: int = Field(default=48, ge=2, le=1000)
    """History length per mount (48 samples every 300 s: the last 4 hours)."""
    min_history_s: float = Field(default=3600.0, ge=0)
    """No forecast before the history spans this long (a burst is not a trend)."""


def least_squares_slope(points: Sequence[tuple[float, float]]) -> float:
    """Slope of the least-squares line through ``(x, y)`` points (0 for fewer than two x values)."""
    n = len(points)
    if n < 2:
        return 0.0
    x0 = points[0][0]  # centre on the first point: epoch seconds squared lose precision
    mean_x = sum(p[0] - x0 for p in points) / n
    mean_y = sum(p[1] for p in points) / n
    sxx = sum((p[0] - x0 - mean_x) ** 2 for p in points)
    if sxx == 0:
        return 0.0
    return sum((p[0] - x0 - mean_x) * (p[1] - mean_y) for p in points) / sxx


def collect_forecast(probe: Probe, params: ForecastParams) -> ForecastSection:
    points = []
    for mount in selected_mounts(probe, params):
        usage = statvfs_cached(probe, mount.mountpoint)
        if isinstance(usage, OSError):
            continue  # storage.filesystem reports it; a forecast has nothing to add
        points.append(FsPoint(mount.mountpoint, usage.used_bytes, usage.free_bytes, usage.size_bytes))
    return ForecastSection(probe.now(), tuple(points))


def _history(store: ValueStore, fs: FsPoint, ts: float, params: ForecastParams) -> list[tuple[float, float]]:
    """Update and return the stored history of one mount."""
    key = f"h:{fs.mountpoint}"
    entry = store.get(key)
    samples: list[list[float]] = []
    if isinstance(entry, dict) and entry.get("size") == fs.size_bytes:
        samples = [s for s in entry.get("samples", []) if s[0] < ts]  # drop samples "from the future"
    # 10% slack: a run scheduled every sample_every_s that fires a little early still samples.
    if not samples or ts - samples[-1][0] >= 0.9 * params.sample_every_s:
        samples.append([ts, float(fs.used_bytes)])
    samples = samples[-params.max_samples :]
    store[key] = {"size": fs.size_bytes, "samples": samples}
    return [(s[0], s[1]) for s in samples]


def evaluate_forecast(
    params: ForecastParams, section: ForecastSection, store: ValueStore
) -> Iterator[Result | Metric]:
    current = {f"h:{fs.mountpoint}" for fs in section.filesystems}
    for key in [k for k in store if k.startswith("h:") and k not in current]:
        del store[key]  # unmounted: keep the store bounded
    if not section.filesystems:
        yield Result(Severity.OK, "OK", "No filesystems selected")
        return
    for fs in section.filesystems:
        item = fs.mountpoint
        history = _history(store, fs, section.ts, params)
        span = history[-1][0] - history[0][0]
        if span < params.min_history_s:
            yield Result(
                Severity.OK,
                "OK",
                f"Collecting history: {len(history)} samples over {render_seconds(span)}"
                f" (forecast after {render_seconds(params.min_history_s)})",
                item,
            )
            continue
        slope = least_squares_slope(history)
        labels = {"mountpoint": item}
        yield Metric("storage_fs_growth_bytes_per_second", slope, Unit.BYTES_PER_SECOND, labels)
        if slope <= 0:
            yield Result(
                Severity.OK, "OK", f"Not growing ({render_bytes(slope * SECONDS_PER_DAY)}/day)", item
            )
            continue
        days_left = fs.free_bytes / slope / SECONDS_PER_DAY
        yield Metric("storage_fs_days_until_full_days", days_left, Unit.DAYS, labels)
        yield check_levels(
            days_left,
            key="FS_FILLING_UP",
            label=f"Growing {render_bytes(slope * SECONDS_PER_DAY)}/day, full in",
            levels_lower=params.levels_days_left,
            render=lambda d: f"{d:.1f} days",
            item=item,
        )


FORECAST = Check(
    name="storage.forecast",
    layer=Layer.STORAGE,
    summary="Days until each filesystem is full at its recent growth rate",
    collect=collect_forecast,
    evaluate=evaluate_forecast,
    params=ForecastParams,
    keys=("FS_FILLING_UP",),
    metrics=(
        MetricSpec(
            "storage_fs_growth_bytes_per_second",
            Unit.BYTES_PER_SECOND,
            "Growth of used space (least-squares slope over the recent history; negative when shrinking)",
            Direction.UP_IS_BAD,
            labels=("mountpoint",),
        ),
        MetricSpec(
            "storage_fs_days_until_full_days",
            Unit.DAYS,
            "Days until the filesystem is full at the current growth rate (only while growing)",
            Direction.DOWN_IS_BAD,
            labels=("mountpoint",),
        ),
    ),
    interval_s=300,
    timeout_s=10,
)
