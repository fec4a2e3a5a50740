"""Inspection rules of the host layer: memory, swap, CPU, processes, file descriptors, clock, kernel."""

from __future__ import annotations

from checks.api import Layer, Severity, render_bytes, render_seconds
from collector.inspections.facts import HostFacts
from collector.inspections.rules.base import (
    MIN_SPAN_S,
    SERIOUS_KERNEL_KINDS,
    Above,
    AboveWarn,
    Below,
    Hit,
    days,
    from_results,
    num,
    pct,
    results_else_level,
    rule,
    worst_one,
)

MEMORY_DAYS = Below(warn=30, crit=7)
"""Days until used memory reaches the total at its growth rate."""
SWAP_IN = Above(warn=10, crit=100)
"""Swap-in pages per second, mean over the period."""
CPU_BUSY = Above(warn=85, crit=95)
"""CPU busy percent, mean over the period."""
STEAL = AboveWarn(warn=10)
"""Hypervisor steal percent, mean over the period."""


@rule(
    "MEMORY_PRESSURE",
    Layer.HOST,
    "Low available memory or memory stalls in the latest run.",
    checks=("host.memory", "host.pressure"),
    result_keys=("MEM_LOW", "MEM_PRESSURE", "PRESSURE_MEMORY"),
    metrics=("host_memory_available_bytes", "host_memory_available_percent"),
)
def memory_pressure(host: HostFacts) -> list[Hit]:
    hits = from_results(host, ("MEM_LOW", "MEM_PRESSURE", "PRESSURE_MEMORY"))
    avail = host.one("host_memory_available_bytes")
    percent = host.one("host_memory_available_percent")
    values = (
        {"available": render_bytes(avail.last), "available_percent": pct(percent.last)}
        if avail is not None and percent is not None
        else None
    )
    return worst_one(hits, values)


@rule(
    "MEMORY_GROWING",
    Layer.HOST,
    "Used memory grows (least squares over the period) so it would run out within "
    f"{MEMORY_DAYS.warn:.0f} days "
    f"(CRIT within {MEMORY_DAYS.crit:.0f}).",
    checks=("host.memory",),
    metrics=("host_memory_used_bytes", "host_memory_total_bytes"),
    thresholds=MEMORY_DAYS,
)
def memory_growing(host: HostFacts, limits: Below) -> list[Hit]:
    used = host.one("host_memory_used_bytes")
    total = host.one("host_memory_total_bytes")
    if used is None or total is None or not used.slope_per_day or used.slope_per_day <= 0:
        return []
    if used.last_ts - used.first_ts < MIN_SPAN_S:
        return []
    left = (total.last - used.last) / used.slope_per_day
    severity = limits.level(left)
    if severity is None:
        return []
    values = {
        "growth": render_bytes(used.slope_per_day),
        "used": render_bytes(used.last),
        "total": render_bytes(total.last),
        "days": days(left),
    }
    return [Hit(severity, None, values)]


@rule(
    "SWAP_IN_ACTIVE",
    Layer.HOST,
    f"Swap-in reported, or averaging >= {SWAP_IN.warn:.0f} pages/s over the period.",
    checks=("host.swap",),
    result_keys=("SWAP_IN_HIGH",),
    metrics=("host_swap_in_pages_per_second",),
    thresholds=SWAP_IN,
)
def swap_in(host: HostFacts, limits: Above) -> list[Hit]:
    rate = host.one("host_swap_in_pages_per_second")
    values = {"rate": num(rate.mean), "peak": num(rate.max)} if rate else None
    return results_else_level(host, ("SWAP_IN_HIGH",), rate.mean if rate else None, values, limits)


@rule(
    "SWAP_NEARLY_FULL",
    Layer.HOST,
    "Swap space nearly used up.",
    checks=("host.swap",),
    result_keys=("SWAP_USAGE_HIGH",),
    metrics=("host_swap_used_percent",),
)
def swap_full(host: HostFacts) -> list[Hit]:
    hits = from_results(host, ("SWAP_USAGE_HIGH",))
    used = host.one("host_swap_used_percent")
    return worst_one(hits, {"used_percent": pct(used.last)} if used else None)


@rule(
    "OOM_KILLS",
    Layer.HOST,
    "Any OOM kill during the period (CRIT).",
    checks=("host.oom_kills",),
    result_keys=("OOM_KILLS",),
    metrics=("host_oom_kills_count",),
)
def oom_kills(host: HostFacts) -> list[Hit]:
    hits = from_results(host, ("OOM_KILLS",))
    kills = host.one("host_oom_kills_count")
    count = int(kills.total) if kills is not None else 0
    if not hits and count <= 0:
        return []
    return [Hit(Severity.CRIT, None, {"count": max(count, 1)}, hits[0].result if hits else None)]


@rule(
    "ZOMBIE_PROCESSES",
    Layer.HOST,
    "Zombie processes reported.",
    checks=("host.processes",),
    result_keys=("ZOMBIES",),
    metrics=("host_zombie_processes_count",),
)
def zombies(host: HostFacts) -> list[Hit]:
    hits = from_results(host, ("ZOMBIES",))
    count = host.one("host_zombie_processes_count")
    return worst_one(hits, {"count": num(count.last)} if count else None)


@rule(
    "FD_EXHAUSTION",
    Layer.HOST,
    "Host-wide or per-process file descriptors near their limit.",
    checks=("host.file_descriptors",),
    result_keys=("FD_SYSTEM_EXHAUSTION", "FD_PROCESS_NEAR_LIMIT"),
    metrics=("host_fd_system_usage_percent", "host_fd_process_usage_max_percent"),
)
def fd_exhaustion(host: HostFacts) -> list[Hit]:
    system = from_results(host, ("FD_SYSTEM_EXHAUSTION",))
    usage = host.one("host_fd_system_usage_percent")
    found = worst_one(system, {"used_percent": pct(usage.max)} if usage else None)
    proc = from_results(host, ("FD_PROCESS_NEAR_LIMIT",))
    top = host.one("host_fd_process_usage_max_percent")
    found += [
        Hit(h.severity, h.item or "process", {"used_percent": pct(top.max)} if top else {}, h.result)
        for h in proc
    ]
    return found


@rule(
    "PID_EXHAUSTION",
    Layer.HOST,
    "Threads near kernel.pid_max.",
    checks=("host.processes",),
    result_keys=("PID_EXHAUSTION",),
    metrics=("host_pid_usage_percent",),
)
def pid_exhaustion(host: HostFacts) -> list[Hit]:
    hits = from_results(host, ("PID_EXHAUSTION",))
    usage = host.one("host_pid_usage_percent")
    return worst_one(hits, {"used_percent": pct(usage.max)} if usage else None)


@rule(
    "CLOCK_UNSYNCHRONISED",
    Layer.HOST,
    "Clock unsynchronised or off by too much.",
    checks=("host.clock",),
    result_keys=("CLOCK_UNSYNCHRONIZED", "CLOCK_OFFSET_HIGH"),
    metrics=("host_clock_offset_seconds", "host_clock_synchronized_boolean"),
)
def clock(host: HostFacts) -> list[Hit]:
    hits = from_results(host, ("CLOCK_UNSYNCHRONIZED", "CLOCK_OFFSET_HIGH"))
    offset = host.one("host_clock_offset_seconds")
    values = {"offset": render_seconds(abs(offset.last))} if offset else None
    if hits:
        return worst_one(hits, values)
    synced = host.one("host_clock_synchronized_boolean")
    if synced is not None and synced.last < 1:
        return [Hit(Severity.WARN, None, values or {"offset": "—"})]
    return []


@rule(
    "CPU_SATURATED",
    Layer.HOST,
    f"CPU busy, load or a saturated core reported, or CPU busy averaging >= {CPU_BUSY.warn:.0f}%.",
    checks=("host.cpu", "host.load", "host.cpu_cores"),
    result_keys=("CPU_BUSY", "LOAD_HIGH", "CPU_CORE_SATURATED"),
    metrics=("host_cpu_busy_percent",),
    thresholds=CPU_BUSY,
)
def cpu_saturated(host: HostFacts, limits: Above) -> list[Hit]:
    busy = host.one("host_cpu_busy_percent")
    values = {"busy": pct(busy.mean), "peak": pct(busy.max)} if busy else None
    keys = ("CPU_BUSY", "LOAD_HIGH", "CPU_CORE_SATURATED")
    return results_else_level(host, keys, busy.mean if busy else None, values, limits)


@rule(
    "CPU_STEAL",
    Layer.HOST,
    f"Hypervisor steal reported or averaging >= {STEAL.warn:.0f}%.",
    checks=("host.cpu",),
    result_keys=("CPU_STEAL_HIGH",),
    metrics=("host_cpu_mode_percent",),
    thresholds=STEAL,
)
def cpu_steal(host: HostFacts, limits: AboveWarn) -> list[Hit]:
    steal = host.one("host_cpu_mode_percent", mode="steal")
    values = {"steal": pct(steal.mean)} if steal else None
    return results_else_level(host, ("CPU_STEAL_HIGH",), steal.mean if steal else None, values, limits)


@rule(
    "UNEXPECTED_REBOOT",
    Layer.HOST,
    "The host rebooted without a planned shutdown.",
    checks=("host.uptime",),
    result_keys=("HOST_REBOOTED_UNEXPECTEDLY",),
)
def unexpected_reboot(host: HostFacts) -> list[Hit]:
    return worst_one(from_results(host, ("HOST_REBOOTED_UNEXPECTEDLY",)))


KERNEL_EVENT_KEYS = (
    "KERNEL_HARDWARE_ERROR",
    "KERNEL_LOCKUP",
    "KERNEL_HUNG_TASK",
    "KERNEL_FS_ERROR",
    "KERNEL_IO_ERROR",
    "KERNEL_NIC_TIMEOUT",
    "KERNEL_SEGFAULT",
)


@rule(
    "KERNEL_ERRORS",
    Layer.HOST,
    "Kernel log errors during the period, per kind (hardware, lockup, hung task, "
    "filesystem and I/O errors CRIT).",
    checks=("host.kernel_events",),
    result_keys=KERNEL_EVENT_KEYS,
    metrics=("host_kernel_events_count",),
)
def kernel_errors(host: HostFacts) -> list[Hit]:
    by_kind: dict[str, Hit] = {}
    for metric in host.series("host_kernel_events_count"):
        kind = metric.label("kind") or "unknown"
        if metric.total > 0:
            severity = Severity.CRIT if kind in SERIOUS_KERNEL_KINDS else Severity.WARN
            by_kind[kind] = Hit(severity, kind, {"count": num(metric.total), "kind": kind})
    for result in host.results_with(KERNEL_EVENT_KEYS):
        kind = result.key.removeprefix("KERNEL_").lower()
        if kind not in by_kind:
            by_kind[kind] = Hit(result.severity, kind, {}, result)
    return [by_kind[k] for k in sorted(by_kind)]
