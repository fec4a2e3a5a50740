"""host.cpu_cores: per-core utilisation, and cores pinned at 100 % that the average hides.

One core saturated by a single-threaded process (a spinning thread, a serialising
lock, one busy IRQ queue) is a classic collapse: the host average shows 25 % on a
4-core box while the application is stuck. A core whose busy percent (all modes but
idle and iowait) stays at or above ``levels_core_busy`` for ``consecutive_runs``
runs in a row is reported as CPU_CORE_SATURATED with the core as item.

Reads the same memoised ``/proc/stat`` as host.cpu. Sample of what
:func:`collect_cpu_cores` returns::

    CoresSection(cores={'cpu0': (2190, 0, 1498, 44004, 139, 0, 14, 4),
                        'cpu1': (3087, 0, 1888, 42630, 270, 0, 84, 8)})
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pydantic import Field

from checks.api import (
    Check,
    CheckParams,
    Direction,
    Layer,
    Metric,
    MetricSpec,
    Result,
    Severity,
    Unit,
    ValueStore,
    render_percent,
)
from checks.host._common import cpu_percentages, read_proc_stat
from checks.probe import Probe


@dataclass(frozen=True, slots=True)
class CoresSection:
    cores: dict[str, tuple[int, ...]]


class CpuCoresParams(CheckParams):
    levels_core_busy: float = Field(default=95.0, gt=0, le=100)
    """Busy percent at or above which a core counts as saturated during one run."""
    consecutive_runs: int = Field(default=2, ge=1, le=10)
    """Runs in a row a core must be saturated before CPU_CORE_SATURATED is raised."""


def collect_cpu_cores(probe: Probe, params: CpuCoresParams) -> CoresSection:
    return CoresSection(cores=read_proc_stat(probe).cores)


def evaluate_cpu_cores(
    params: CpuCoresParams, section: CoresSection, store: ValueStore
) -> Iterator[Result | Metric]:
    previous: dict[str, list[int]] = store.get("cores") or {}
    streaks: dict[str, int] = store.get("streaks") or {}
    store["cores"] = {name: list(times) for name, times in section.cores.items()}
    busy: dict[str, float] = {}
    for name, times in section.cores.items():
        old = previous.get(name)
        percents = cpu_percentages(old, times) if old else None
        if percents is not None:
            busy[name] = percents["busy"]
    # Only cores measured this run keep a streak: an offlined core's streak ends with it.
    new_streaks = {
        name: streaks.get(name, 0) + 1 for name, value in busy.items() if value >= params.levels_core_busy
    }
    store["streaks"] = new_streaks
    if not busy:
        yield Result(
            Severity.OK,
            "OK",
            f"{len(section.cores)} cores: first sample stored, utilisation from the next run",
        )
        return
    ordered = sorted(busy, key=_core_number)
    hottest = max(ordered, key=busy.__getitem__)
    spread = busy[hottest] - min(busy.values())
    yield Result(
        Severity.OK,
        "OK",
        f"{len(busy)} cores, busiest {hottest} at {render_percent(busy[hottest])}, "
        f"spread {render_percent(spread)}",
    )
    for name in ordered:
        if new_streaks.get(name, 0) >= params.consecutive_runs:
            yield Result(
                Severity.WARN,
                "CPU_CORE_SATURATED",
                f"{render_percent(busy[name])} busy for {new_streaks[name]} runs in a row "
                f"(saturated at {render_percent(params.levels_core_busy)}); "
                "a single-threaded process or IRQ may be pinned to it",
                item=name,
            )
    for name in ordered:
        yield Metric("host_cpu_core_busy_percent", busy[name], Unit.PERCENT, {"core": name})
    yield Metric("host_cpu_core_busy_max_percent", busy[hottest], Unit.PERCENT)
    yield Metric("host_cpu_core_busy_spread_percent", spread, Unit.PERCENT)


def _core_number(name: str) -> int:
    digits = name[3:]
    return int(digits) if digits.isdigit() else -1


CPU_CORES = Check(
    name="host.cpu_cores",
    layer=Layer.HOST,
    summary="Per-core CPU utilisation and saturated single cores",
    collect=collect_cpu_cores,
    evaluate=evaluate_cpu_cores,
    params=CpuCoresParams,
    keys=("CPU_CORE_SATURATED",),
    metrics=(
        MetricSpec(
            "host_cpu_core_busy_percent",
            Unit.PERCENT,
            "Busy percent of one core since the last run",
            Direction.UP_IS_BAD,
            labels=("core",),
        ),
        MetricSpec(
            "host_cpu_core_busy_max_percent",
            Unit.PERCENT,
            "Busy percent of the busiest core since the last run",
            Direction.UP_IS_BAD,
        ),
        MetricSpec(
            "host_cpu_core_busy_spread_percent",
            Unit.PERCENT,
            "Busiest minus least busy core: a large spread means work is not spread across cores",
            Direction.UP_IS_BAD,
        ),
    ),
    interval_s=60,
    rates=True,
    timeout_s=5,
)
