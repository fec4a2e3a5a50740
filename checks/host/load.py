"""host.load: system load averages, normalised per CPU core.

Sample of what :func:`collect_load` returns (read from ``/proc/loadavg`` and
``/sys/devices/system/cpu/online``)::

    LoadSection(load1=0.52, load5=0.41, load15=0.3, running=2, total=312, cores=2)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from checks.api import (
    Check,
    CheckParams,
    Direction,
    Layer,
    Levels,
    Metric,
    MetricSpec,
    Result,
    Unit,
    ValueStore,
    check_levels,
)
from checks.probe import Probe


@dataclass(frozen=True, slots=True)
class LoadSection:
    load1: float
    load5: float
    load15: float
    running: int
    total: int
    cores: int


class LoadParams(CheckParams):
    levels_per_core: Levels = (2.0, 4.0)
    """(warn, crit) for the 5-minute load average divided by the core count."""


def count_online_cpus(text: str) -> int:
    """Count CPUs in a kernel CPU list such as ``0-3,6,8-9``.

    >>> count_online_cpus("0-3,6,8-9\\n")
    7
    """
    total = 0
    for part in text.strip().split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        total += int(high or low) - int(low) + 1
    return total


def collect_load(probe: Probe, params: LoadParams) -> LoadSection:
    fields = probe.read_text("/proc/loadavg").split()
    if len(fields) < 4 or "/" not in fields[3]:
        raise ValueError(f"/proc/loadavg: expected 'l1 l5 l15 running/total pid', got {' '.join(fields)!r}")
    running, total = fields[3].split("/", 1)
    cores = probe.memo(
        "cpu_online", lambda: count_online_cpus(probe.read_text("/sys/devices/system/cpu/online"))
    )
    return LoadSection(float(fields[0]), float(fields[1]), float(fields[2]), int(running), int(total), cores)


def evaluate_load(params: LoadParams, section: LoadSection, store: ValueStore) -> Iterator[Result | Metric]:
    cores = max(section.cores, 1)
    per_core = section.load5 / cores
    yield check_levels(
        per_core,
        key="LOAD_HIGH",
        label=f"Load per core (5 min, {cores} cores)",
        levels_upper=params.levels_per_core,
    )
    for window, value in (("1m", section.load1), ("5m", section.load5), ("15m", section.load15)):
        yield Metric("host_load_per_core_ratio", value / cores, Unit.RATIO, {"window": window})
    yield Metric("host_cpu_cores_count", cores, Unit.COUNT)
    yield Metric("host_runnable_tasks_count", section.running, Unit.COUNT)


LOAD = Check(
    name="host.load",
    layer=Layer.HOST,
    summary="Load averages per CPU core",
    collect=collect_load,
    evaluate=evaluate_load,
    params=LoadParams,
    keys=("LOAD_HIGH",),
    metrics=(
        MetricSpec(
            "host_load_per_core_ratio",
            Unit.RATIO,
            "Load average divided by online CPU cores",
            Direction.UP_IS_BAD,
            labels=("window",),
        ),
        MetricSpec("host_cpu_cores_count", Unit.COUNT, "Online CPU cores"),
        MetricSpec("host_runnable_tasks_count", Unit.COUNT, "Runnable tasks right now", Direction.UP_IS_BAD),
    ),
    interval_s=60,
    timeout_s=5,
)
