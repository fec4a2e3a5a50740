"""host.pressure: pressure stall information (PSI) for CPU, I/O and memory.

PSI (kernel 4.20+, ``/proc/pressure/<resource>``) reports the share of wall time in
which *some* runnable task, or *all* non-idle tasks (*full*), were stalled waiting for
the resource, averaged over 10 s, 60 s and 300 s. Unlike utilisation it measures lost
time directly, so it is the best single signal of a host that has become slow.

Levels apply to the ``window`` average (60 s by default: a 60 s check interval would
miss most of a 10 s spike and flap on the rest). CPU 'full' is not judged: at the
system level the kernel reports it only for completeness.

Skipped when ``/proc/pressure`` is absent (no CONFIG_PSI, or ``psi=0``).

Sample of what :func:`collect_pressure` returns::

    PressureSection(resources={'cpu': {'some': {'avg10': 0.21, 'avg60': 0.27, 'avg300': 0.68,
        'total': 8524313.0}, 'full': {...}}, 'io': {...}, 'memory': {...}})
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from checks.api import (
    Check,
    CheckParams,
    Direction,
    Layer,
    Levels,
    Metric,
    MetricSpec,
    Result,
    SkipCheck,
    Unit,
    ValueStore,
    check_levels,
    render_percent,
)
from checks.host._common import read_pressure
from checks.probe import Probe

RESOURCES = ("cpu", "io", "memory")


@dataclass(frozen=True, slots=True)
class PressureSection:
    resources: dict[str, dict[str, dict[str, float]]]


class PressureParams(CheckParams):
    window: Literal["avg10", "avg60"] = "avg60"
    """Which average the levels apply to (both are emitted as metrics)."""
    levels_cpu_some: Levels = (50.0, 80.0)
    """(warn, crit) percent of time some task waited for a CPU."""
    levels_io_some: Levels = (30.0, 60.0)
    """(warn, crit) percent of time some task waited for I/O."""
    levels_io_full: Levels = (10.0, 30.0)
    """(warn, crit) percent of time all non-idle tasks waited for I/O."""
    levels_memory_some: Levels = (20.0, 50.0)
    """(warn, crit) percent of time some task waited for memory (reclaim, swap-in, refault)."""
    levels_memory_full: Levels = (5.0, 15.0)
    """(warn, crit) percent of time all non-idle tasks waited for memory."""


def collect_pressure(probe: Probe, params: PressureParams) -> PressureSection:
    resources = {}
    for resource in RESOURCES:
        values = read_pressure(probe, resource)
        if values is not None:
            resources[resource] = values
    if not resources:
        raise SkipCheck("no pressure stall information (/proc/pressure absent or psi=0)")
    return PressureSection(resources)


def evaluate_pressure(
    params: PressureParams, section: PressureSection, store: ValueStore
) -> Iterator[Result | Metric]:
    levels: dict[tuple[str, str], Levels] = {
        ("cpu", "some"): params.levels_cpu_some,
        ("io", "some"): params.levels_io_some,
        ("io", "full"): params.levels_io_full,
        ("memory", "some"): params.levels_memory_some,
        ("memory", "full"): params.levels_memory_full,
    }
    window_label = params.window[3:] + " s"  # "avg60" -> "60 s"
    for resource in RESOURCES:
        kinds = section.resources.get(resource)
        if kinds is None:
            continue
        for kind in ("some", "full"):
            values = kinds.get(kind)
            if values is None:
                continue
            wanted = levels.get((resource, kind))
            if wanted is not None:
                yield check_levels(
                    values[params.window],
                    key=f"PRESSURE_{resource.upper()}",
                    label=f"Stalled (avg over {window_label})",
                    levels_upper=wanted,
                    render=render_percent,
                    item=f"{resource} {kind}",
                )
            for window in ("avg10", "avg60"):
                yield Metric(
                    "host_pressure_stall_percent",
                    values[window],
                    Unit.PERCENT,
                    {"resource": resource, "kind": kind, "window": window[3:] + "s"},
                )


PRESSURE = Check(
    name="host.pressure",
    layer=Layer.HOST,
    summary="Pressure stall information (PSI) for CPU, I/O and memory",
    collect=collect_pressure,
    evaluate=evaluate_pressure,
    params=PressureParams,
    keys=("PRESSURE_CPU", "PRESSURE_IO", "PRESSURE_MEMORY"),
    metrics=(
        MetricSpec(
            "host_pressure_stall_percent",
            Unit.PERCENT,
            "Percent of time tasks stalled on a resource (PSI), by resource, some/full and window",
            Direction.UP_IS_BAD,
            labels=("resource", "kind", "window"),
        ),
    ),
    interval_s=60,
    timeout_s=5,
)
