"""host.processes: process and thread counts, zombies, tasks in D state, pid/thread headroom.

Everything comes from the shared per-cycle process table (:mod:`checks.proctable`),
plus ``/proc/sys/kernel/pid_max`` and ``/proc/sys/kernel/threads-max``. Every thread
takes a pid, so the thread total is compared with both limits (PID_EXHAUSTION): when
either runs out, ``fork`` and ``pthread_create`` fail everywhere on the host.

A zombie is harmless by itself, but many mean a parent that never reaps its
children; the summary names the parents holding the most.

Sample of what :func:`collect_processes` returns::

    ProcessesSection(processes=91, threads=203, zombies=0, blocked=0, pid_max=32768,
                     threads_max=192730, zombie_parents=(), blocked_names=())
"""

from __future__ import annotations

from collections import Counter
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
    render_percent,
)
from checks.probe import Probe
from checks.proctable import process_table

_NAMES_SHOWN = 3


@dataclass(frozen=True, slots=True)
class ProcessesSection:
    processes: int
    threads: int
    zombies: int
    blocked: int
    pid_max: int
    threads_max: int
    zombie_parents: tuple[tuple[str, int], ...]
    """``("name[pid]", zombie count)`` of the parents holding the most zombies, most first."""
    blocked_names: tuple[str, ...]
    """``name[pid]`` of a few processes in D state."""


class ProcessesParams(CheckParams):
    levels_zombies: Levels = (10.0, 50.0)
    """(warn, crit) number of zombie processes."""
    levels_blocked: Levels = (5.0, 20.0)
    """(warn, crit) number of processes in uninterruptible sleep (D state) at the moment of the run."""
    levels_pid_usage_percent: Levels = (80.0, 90.0)
    """(warn, crit) threads as percent of kernel.pid_max and of kernel.threads-max."""


def _read_int(probe: Probe, path: str) -> int:
    text = probe.read_text(path).strip()
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{path}: expected an integer, got {text[:40]!r}") from None


def collect_processes(probe: Probe, params: ProcessesParams) -> ProcessesSection:
    table = process_table(probe)
    by_pid = {p.pid: p.name for p in table}
    zombie_parents: Counter[int] = Counter()
    blocked: list[str] = []
    threads = 0
    for proc in table:
        threads += proc.threads
        if proc.state == "Z":
            zombie_parents[proc.ppid] += 1
        elif proc.state == "D":
            blocked.append(f"{proc.name}[{proc.pid}]")
    return ProcessesSection(
        processes=len(table),
        threads=threads,
        zombies=sum(zombie_parents.values()),
        blocked=len(blocked),
        pid_max=_read_int(probe, "/proc/sys/kernel/pid_max"),
        threads_max=_read_int(probe, "/proc/sys/kernel/threads-max"),
        zombie_parents=tuple(
            (f"{by_pid.get(ppid, '?')}[{ppid}]", count)
            for ppid, count in zombie_parents.most_common(_NAMES_SHOWN)
        ),
        blocked_names=tuple(blocked[:_NAMES_SHOWN]),
    )


def evaluate_processes(
    params: ProcessesParams, section: ProcessesSection, store: ValueStore
) -> Iterator[Result | Metric]:
    yield Result(Severity.OK, "OK", f"{section.processes} processes, {section.threads} threads")
    zombies = check_levels(
        section.zombies, key="ZOMBIES", label="Zombies", levels_upper=params.levels_zombies, render=_count
    )
    if section.zombie_parents:
        parents = ", ".join(f"{name} holds {count}" for name, count in section.zombie_parents)
        zombies = Result(zombies.severity, zombies.key, f"{zombies.summary}; parents: {parents}")
    yield zombies
    blocked = check_levels(
        section.blocked,
        key="PROCS_BLOCKED",
        label="Processes in D state",
        levels_upper=params.levels_blocked,
        render=_count,
    )
    if section.blocked_names:
        blocked = Result(
            blocked.severity, blocked.key, f"{blocked.summary}: {', '.join(section.blocked_names)}"
        )
    yield blocked
    pid_pct = 100.0 * section.threads / section.pid_max if section.pid_max > 0 else 0.0
    threads_pct = 100.0 * section.threads / section.threads_max if section.threads_max > 0 else 0.0
    yield check_levels(
        pid_pct,
        key="PID_EXHAUSTION",
        label=f"{section.threads} threads of {section.pid_max}",
        levels_upper=params.levels_pid_usage_percent,
        render=render_percent,
        item="pid_max",
    )
    yield check_levels(
        threads_pct,
        key="PID_EXHAUSTION",
        label=f"{section.threads} threads of {section.threads_max}",
        levels_upper=params.levels_pid_usage_percent,
        render=render_percent,
        item="threads-max",
    )
    yield Metric("host_processes_count", section.processes, Unit.COUNT)
    yield Metric("host_threads_count", section.threads, Unit.COUNT)
    yield Metric("host_zombie_processes_count", section.zombies, Unit.COUNT)
    yield Metric("host_processes_blocked_count", section.blocked, Unit.COUNT)
    yield Metric("host_pid_usage_percent", pid_pct, Unit.PERCENT)
    yield Metric("host_threads_usage_percent", threads_pct, Unit.PERCENT)


def _count(value: float) -> str:
    return f"{value:.0f}"


PROCESSES = Check(
    name="host.processes",
    layer=Layer.HOST,
    summary="Process and thread counts, zombies, D-state processes, pid and thread limits",
    collect=collect_processes,
    evaluate=evaluate_processes,
    params=ProcessesParams,
    keys=("ZOMBIES", "PROCS_BLOCKED", "PID_EXHAUSTION"),
    metrics=(
        MetricSpec("host_processes_count", Unit.COUNT, "Processes (thread-group leaders)"),
        MetricSpec("host_threads_count", Unit.COUNT, "Threads of all processes", Direction.UP_IS_BAD),
        MetricSpec("host_zombie_processes_count", Unit.COUNT, "Zombie processes", Direction.UP_IS_BAD),
        MetricSpec(
            "host_processes_blocked_count",
            Unit.COUNT,
            "Processes in uninterruptible sleep (D state)",
            Direction.UP_IS_BAD,
        ),
        MetricSpec(
            "host_pid_usage_percent",
            Unit.PERCENT,
            "Threads as percent of kernel.pid_max",
            Direction.UP_IS_BAD,
        ),
        MetricSpec(
            "host_threads_usage_percent",
            Unit.PERCENT,
            "Threads as percent of kernel.threads-max",
            Direction.UP_IS_BAD,
        ),
    ),
    interval_s=60,
    timeout_s=10,
)
