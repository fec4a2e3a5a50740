"""host.cpu: CPU utilisation by mode, context switches, interrupts and tasks blocked on I/O.

Utilisation is the change of the ``cpu`` line of ``/proc/stat`` since the previous run
(kept in the store), so the first run only records a baseline. "Busy" is every mode
but idle and iowait (iowait is idle time with I/O outstanding, reported on its own);
steal is time the hypervisor gave to someone else, which a guest cannot see elsewhere.
``procs_blocked`` is the kernel's count of tasks blocked on I/O right now (D state).

Sample of what :func:`collect_cpu` returns (``/proc/stat`` of a 2-core VM)::

    CpuSection(now=1700000000.0, stat=ProcStat(total=(5277, 0, 3387, 86635, 410, 0, 98, 12),
        cores={'cpu0': (2190, 0, 1498, 44004, 139, 0, 14, 4), 'cpu1': (3087, 0, 1888, 42630, 270, 0, 84, 8)},
        ctxt=892295, intr=369183, btime=1795629275, procs_running=2, procs_blocked=0))
"""

from __future__ import annotations

import dataclasses
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
    Severity,
    Unit,
    ValueStore,
    check_levels,
    get_rate,
    render_percent,
)
from checks.host._common import ProcStat, cpu_percentages, read_proc_stat
from checks.probe import Probe

MODES = ("user", "nice", "system", "iowait", "irq", "steal", "idle")


@dataclass(frozen=True, slots=True)
class CpuSection:
    now: float
    stat: ProcStat


class CpuParams(CheckParams):
    levels_busy: Levels = (85.0, 95.0)
    """(warn, crit) percent of CPU time busy (all modes but idle and iowait), averaged over all cores."""
    levels_iowait: Levels = (20.0, 40.0)
    """(warn, crit) percent of CPU time idle while waiting for I/O."""
    levels_steal: Levels = (10.0, 25.0)
    """(warn, crit) percent of CPU time stolen by the hypervisor (an overcommitted VM host)."""
    levels_blocked: Levels = (8.0, 32.0)
    """(warn, crit) number of tasks blocked on I/O (D state) at the moment of the run."""


def collect_cpu(probe: Probe, params: CpuParams) -> CpuSection:
    return CpuSection(now=probe.now(), stat=read_proc_stat(probe))


def evaluate_cpu(params: CpuParams, section: CpuSection, store: ValueStore) -> Iterator[Result | Metric]:
    stat = section.stat
    previous = store.get("cpu")
    store["cpu"] = list(stat.total)
    percents = cpu_percentages(previous, stat.total) if previous else None
    if percents is None:
        yield Result(Severity.OK, "OK", "CPU: first sample stored, utilisation from the next run")
    else:
        busy = check_levels(
            percents["busy"],
            key="CPU_BUSY",
            label="CPU busy",
            levels_upper=params.levels_busy,
            render=render_percent,
        )
        breakdown = ", ".join(f"{mode} {render_percent(percents[mode])}" for mode in MODES)
        yield dataclasses.replace(busy, details=breakdown)
        yield check_levels(
            percents["iowait"],
            key="CPU_IOWAIT_HIGH",
            label="I/O wait",
            levels_upper=params.levels_iowait,
            render=render_percent,
        )
        yield check_levels(
            percents["steal"],
            key="CPU_STEAL_HIGH",
            label="Steal",
            levels_upper=params.levels_steal,
            render=render_percent,
        )
        yield Metric("host_cpu_busy_percent", percents["busy"], Unit.PERCENT)
        for mode in MODES:
            yield Metric("host_cpu_mode_percent", percents[mode], Unit.PERCENT, {"mode": mode})
    yield check_levels(
        stat.procs_blocked,
        key="CPU_BLOCKED_TASKS",
        label="Tasks blocked on I/O",
        levels_upper=params.levels_blocked,
        render=lambda v: f"{v:.0f}",
    )
    yield Metric("host_procs_blocked_count", stat.procs_blocked, Unit.COUNT)
    ctxt_rate = get_rate(store, "ctxt", section.now, stat.ctxt)
    if ctxt_rate is not None:
        yield Metric("host_context_switches_per_second", ctxt_rate, Unit.PER_SECOND)
    intr_rate = get_rate(store, "intr", section.now, stat.intr)
    if intr_rate is not None:
        yield Metric("host_interrupts_per_second", intr_rate, Unit.PER_SECOND)


CPU = Check(
    name="host.cpu",
    layer=Layer.HOST,
    summary="CPU utilisation by mode, context switches, interrupts, tasks blocked on I/O",
    collect=collect_cpu,
    evaluate=evaluate_cpu,
    params=CpuParams,
    keys=("CPU_BUSY", "CPU_IOWAIT_HIGH", "CPU_STEAL_HIGH", "CPU_BLOCKED_TASKS"),
    metrics=(
        MetricSpec(
            "host_cpu_busy_percent",
            Unit.PERCENT,
            "CPU time busy (all modes but idle and iowait) since the last run, all cores",
            Direction.UP_IS_BAD,
        ),
        MetricSpec(
            "host_cpu_mode_percent",
            Unit.PERCENT,
            "CPU time per mode since the last run (user, nice, system, iowait, irq, steal, idle)",
            Direction.NEUTRAL,
            labels=("mode",),
        ),
        MetricSpec(
            "host_procs_blocked_count", Unit.COUNT, "Tasks blocked on I/O (D state) now", Direction.UP_IS_BAD
        ),
        MetricSpec("host_context_switches_per_second", Unit.PER_SECOND, "Context switches per second"),
        MetricSpec("host_interrupts_per_second", Unit.PER_SECOND, "Interrupts serviced per second"),
    ),
    interval_s=60,
    rates=True,
    timeout_s=5,
)
