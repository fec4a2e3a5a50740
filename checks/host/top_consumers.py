"""host.top_consumers: the processes using the most CPU (since the last run) and memory.

CPU percent is top-style (100 % = one core fully used) from each process's
``utime + stime`` change since the previous run, keyed by ``pid:starttime`` in the
store so a reused pid never inherits another process's ticks; the store keeps only
processes alive at this run. The first run only records a baseline.

Levels: PROCESS_CPU_HOG compares one process's CPU with the *whole host's* capacity
(its top-style percent divided by the core count), so a busy multi-threaded database
on 16 cores is not an alert but one process taking most of the machine is; a single
pinned core is host.cpu_cores' job. PROCESS_MEMORY_HOG compares RSS with MemTotal.

Metrics carry ``process`` and ``pid`` labels for the top N only, so cardinality stays
bounded however many processes come and go.

Sample of what :func:`collect_top_consumers` returns (abridged)::

    TopSection(now=1700000000.0, cores=2, mem_total_bytes=25276502016, clock_ticks=100,
        processes=(ProcessInfo(pid=1, name='systemd', state='S', ppid=0, utime_ticks=52,
        stime_ticks=61, threads=1, start_ticks=4, rss_bytes=12582912), ...))
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
    Levels,
    Metric,
    MetricSpec,
    Result,
    Severity,
    Unit,
    ValueStore,
    check_levels,
    render_bytes,
    render_percent,
)
from checks.host._common import read_meminfo
from checks.host.load import count_online_cpus
from checks.probe import Probe
from checks.proctable import CLOCK_TICKS, ProcessInfo, process_table


@dataclass(frozen=True, slots=True)
class TopSection:
    now: float
    cores: int
    mem_total_bytes: int
    clock_ticks: int
    processes: tuple[ProcessInfo, ...]


class TopConsumersParams(CheckParams):
    top_n: int = Field(default=5, ge=1, le=50)
    """How many processes to name and emit metrics for, by CPU and by RSS."""
    levels_process_cpu: Levels = (80.0, 95.0)
    """(warn, crit) one process's CPU as percent of the whole host (all cores)."""
    levels_process_memory: Levels = (75.0, 90.0)
    """(warn, crit) one process's resident memory as percent of MemTotal."""


def collect_top_consumers(probe: Probe, params: TopConsumersParams) -> TopSection:
    cores = probe.memo(
        "cpu_online", lambda: count_online_cpus(probe.read_text("/sys/devices/system/cpu/online"))
    )
    return TopSection(
        now=probe.now(),
        cores=cores,
        mem_total_bytes=read_meminfo(probe)["MemTotal"],
        clock_ticks=CLOCK_TICKS,
        processes=process_table(probe),
    )


def evaluate_top_consumers(
    params: TopConsumersParams, section: TopSection, store: ValueStore
) -> Iterator[Result | Metric]:
    previous: dict[str, int] = store.get("ticks") or {}
    then = store.get("time")
    # ProcessInfo.identity and .cpu_ticks, inlined: this runs for every process.
    identities = [f"{p.pid}:{p.start_ticks}" for p in section.processes]
    ticks = [p.utime_ticks + p.stime_ticks for p in section.processes]
    store["ticks"] = dict(zip(identities, ticks, strict=True))
    store["time"] = section.now
    cores = max(section.cores, 1)

    by_rss = sorted(section.processes, key=lambda p: p.rss_bytes, reverse=True)[: params.top_n]
    cpu: list[tuple[float, ProcessInfo]] = []
    elapsed = section.now - then if isinstance(then, int | float) and previous else 0.0
    if elapsed > 0:
        for proc, identity, now_ticks in zip(section.processes, identities, ticks, strict=True):
            # Absent from the previous run means started since: all its ticks fall in this window.
            delta = now_ticks - previous.get(identity, 0)
            if delta > 0:
                cpu.append((100.0 * delta / section.clock_ticks / elapsed, proc))
        cpu.sort(key=lambda pair: pair[0], reverse=True)
        top_cpu = cpu[: params.top_n]
        listed = ", ".join(f"{_who(p)} {render_percent(pct)}" for pct, p in top_cpu) or "all idle"
        yield Result(Severity.OK, "OK", f"Top CPU (100% = one core): {listed}")
    else:
        top_cpu = []
        yield Result(Severity.OK, "OK", "Top CPU: first sample stored, CPU percent from the next run")
    if by_rss:
        listed = ", ".join(f"{_who(p)} {render_bytes(p.rss_bytes)}" for p in by_rss)
        yield Result(Severity.OK, "OK", f"Top memory (RSS): {listed}")

    for pct, proc in cpu:
        share = pct / cores
        if share < params.levels_process_cpu[0]:
            break  # sorted: nobody after this one reaches the warn level either
        yield check_levels(
            share,
            key="PROCESS_CPU_HOG",
            label=f"CPU {render_percent(pct)} of one core, share of all {cores} cores",
            levels_upper=params.levels_process_cpu,
            render=render_percent,
            item=_who(proc),
        )
    if section.mem_total_bytes > 0:
        for proc in by_rss:
            share = 100.0 * proc.rss_bytes / section.mem_total_bytes
            if share < params.levels_process_memory[0]:
                break  # sorted by RSS: the rest are smaller
            yield check_levels(
                share,
                key="PROCESS_MEMORY_HOG",
                label=f"RSS {render_bytes(proc.rss_bytes)}, share of MemTotal",
                levels_upper=params.levels_process_memory,
                render=render_percent,
                item=_who(proc),
            )

    for pct, proc in top_cpu:
        yield Metric(
            "host_process_cpu_percent", pct, Unit.PERCENT, {"process": proc.name, "pid": str(proc.pid)}
        )
    for proc in by_rss:
        yield Metric(
            "host_process_rss_bytes", proc.rss_bytes, Unit.BYTES, {"process": proc.name, "pid": str(proc.pid)}
        )


def _who(proc: ProcessInfo) -> str:
    return f"{proc.name}[{proc.pid}]"


TOP_CONSUMERS = Check(
    name="host.top_consumers",
    layer=Layer.HOST,
    summary="Top processes by CPU since the last run and by resident memory",
    collect=collect_top_consumers,
    evaluate=evaluate_top_consumers,
    params=TopConsumersParams,
    keys=("PROCESS_CPU_HOG", "PROCESS_MEMORY_HOG"),
    metrics=(
        MetricSpec(
            "host_process_cpu_percent",
            Unit.PERCENT,
            "CPU of one of the top N processes since the last run (100 = one core)",
            Direction.UP_IS_BAD,
            labels=("process", "pid"),
        ),
        MetricSpec(
            "host_process_rss_bytes",
            Unit.BYTES,
            "Resident memory of one of the top N processes",
            Direction.UP_IS_BAD,
            labels=("process", "pid"),
        ),
    ),
    interval_s=60,
    rates=True,
    timeout_s=10,
)
