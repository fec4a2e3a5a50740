"""host.memory: available memory, page cache, dirty pages, slab, huge pages, commit and PSI.

"Available" is the kernel's own estimate (``MemAvailable``) of what can be handed out
without swapping: free memory plus reclaimable cache and slab. "Used" is total minus
available, as ``free`` (procps 4) shows it.

The commit ratio is ``Committed_AS / CommitLimit``. With strict overcommit
(``vm.overcommit_memory = 2``) the kernel refuses allocations at 1.0, so
``levels_commit_strict`` applies; in the default heuristic modes the limit is not
enforced, and a ratio well above 1 only says that much promised memory would not fit
if it were all touched (``levels_commit``).

Sample of what :func:`collect_memory` returns (abridged; values in bytes)::

    MemorySection(meminfo={'MemTotal': 25276502016, 'MemFree': 24644571136,
        'MemAvailable': 24671277056, 'Buffers': 4952064, 'Cached': 248823808, ...,
        'CommitLimit': 12638248960, 'Committed_AS': 1025355776, 'HugePages_Total': 0, ...},
        overcommit_mode=0, pressure={'some': {'avg10': 0.0, 'avg60': 0.0, 'avg300': 0.0, 'total': 0.0},
        'full': {'avg10': 0.0, 'avg60': 0.0, 'avg300': 0.0, 'total': 0.0}})
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
    render_bytes,
    render_percent,
)
from checks.host._common import read_meminfo, read_pressure
from checks.probe import Probe

# meminfo field -> metric name (all in bytes)
_BYTE_FIELDS = (
    ("Buffers", "host_memory_buffers_bytes"),
    ("Cached", "host_memory_cached_bytes"),
    ("Dirty", "host_memory_dirty_bytes"),
    ("Writeback", "host_memory_writeback_bytes"),
    ("SReclaimable", "host_memory_slab_reclaimable_bytes"),
    ("SUnreclaim", "host_memory_slab_unreclaimable_bytes"),
)
_REQUIRED = ("MemTotal", "MemAvailable", "CommitLimit", "Committed_AS")


@dataclass(frozen=True, slots=True)
class MemorySection:
    meminfo: dict[str, int]
    overcommit_mode: int | None
    pressure: dict[str, dict[str, float]] | None


class MemoryParams(CheckParams):
    levels_available_percent: Levels = (10.0, 5.0)
    """(warn, crit) lower levels for MemAvailable as percent of MemTotal."""
    levels_commit: Levels = (1.5, 2.0)
    """(warn, crit) Committed_AS / CommitLimit when overcommit is heuristic (modes 0 and 1)."""
    levels_commit_strict: Levels = (0.9, 0.98)
    """(warn, crit) Committed_AS / CommitLimit under strict overcommit (mode 2: allocations fail at 1)."""
    levels_pressure_some: Levels = (20.0, 50.0)
    """(warn, crit) PSI memory 'some' avg10: percent of time at least one task stalled on memory."""
    levels_pressure_full: Levels = (5.0, 15.0)
    """(warn, crit) PSI memory 'full' avg10: percent of time all non-idle tasks stalled on memory."""


def collect_memory(probe: Probe, params: MemoryParams) -> MemorySection:
    meminfo = read_meminfo(probe)
    missing = [name for name in _REQUIRED if name not in meminfo]
    if missing:
        raise ValueError(f"/proc/meminfo: missing {', '.join(missing)} (kernel older than 3.14?)")
    try:
        mode: int | None = int(probe.read_text("/proc/sys/vm/overcommit_memory"))
    except FileNotFoundError:
        mode = None  # no sysctl in this view (some containers): judge with heuristic levels
    except ValueError:
        raise ValueError("/proc/sys/vm/overcommit_memory: not an integer") from None
    return MemorySection(meminfo=meminfo, overcommit_mode=mode, pressure=read_pressure(probe, "memory"))


def evaluate_memory(
    params: MemoryParams, section: MemorySection, store: ValueStore
) -> Iterator[Result | Metric]:
    info = section.meminfo
    total = info["MemTotal"]
    available = info["MemAvailable"]
    available_pct = 100.0 * available / total if total else 0.0
    yield check_levels(
        available_pct,
        key="MEM_LOW",
        label=f"Available {render_bytes(available)} of {render_bytes(total)}",
        levels_lower=params.levels_available_percent,
        render=render_percent,
    )
    strict = section.overcommit_mode == 2
    commit_ratio = info["Committed_AS"] / info["CommitLimit"] if info["CommitLimit"] else 0.0
    yield check_levels(
        commit_ratio,
        key="MEM_OVERCOMMITTED",
        label="Committed / commit limit" + (" (strict overcommit)" if strict else ""),
        levels_upper=params.levels_commit_strict if strict else params.levels_commit,
    )
    yield Metric("host_memory_total_bytes", total, Unit.BYTES)
    yield Metric("host_memory_available_bytes", available, Unit.BYTES)
    yield Metric("host_memory_available_percent", available_pct, Unit.PERCENT)
    yield Metric("host_memory_used_bytes", max(0, total - available), Unit.BYTES)
    for field, metric in _BYTE_FIELDS:
        if field in info:
            yield Metric(metric, info[field], Unit.BYTES)
    yield Metric("host_memory_commit_ratio", commit_ratio, Unit.RATIO)
    if "HugePages_Total" in info:
        yield Metric("host_memory_hugepages_total_count", info["HugePages_Total"], Unit.COUNT)
        yield Metric("host_memory_hugepages_free_count", info.get("HugePages_Free", 0), Unit.COUNT)
    if section.pressure is not None:
        for kind, levels in (("some", params.levels_pressure_some), ("full", params.levels_pressure_full)):
            values = section.pressure.get(kind)
            if values is None:
                continue  # 'full' appeared in kernel 5.x for some resources; absent is not an error
            yield check_levels(
                values["avg10"],
                key="MEM_PRESSURE",
                label=f"Memory pressure ({kind}, 10 s)",
                levels_upper=levels,
                render=render_percent,
            )
            yield Metric("host_memory_pressure_percent", values["avg10"], Unit.PERCENT, {"kind": kind})


MEMORY = Check(
    name="host.memory",
    layer=Layer.HOST,
    summary="Available memory, cache, dirty pages, slab, huge pages, commit ratio and memory pressure",
    collect=collect_memory,
    evaluate=evaluate_memory,
    params=MemoryParams,
    keys=("MEM_LOW", "MEM_OVERCOMMITTED", "MEM_PRESSURE"),
    metrics=(
        MetricSpec("host_memory_total_bytes", Unit.BYTES, "Physical memory (MemTotal)"),
        MetricSpec(
            "host_memory_available_bytes",
            Unit.BYTES,
            "Memory available without swapping (MemAvailable)",
            Direction.DOWN_IS_BAD,
        ),
        MetricSpec(
            "host_memory_available_percent",
            Unit.PERCENT,
            "MemAvailable as percent of MemTotal",
            Direction.DOWN_IS_BAD,
        ),
        MetricSpec("host_memory_used_bytes", Unit.BYTES, "MemTotal minus MemAvailable", Direction.UP_IS_BAD),
        MetricSpec("host_memory_buffers_bytes", Unit.BYTES, "Block device buffers"),
        MetricSpec("host_memory_cached_bytes", Unit.BYTES, "Page cache (Cached)"),
        MetricSpec(
            "host_memory_dirty_bytes", Unit.BYTES, "Dirty pages waiting to be written", Direction.UP_IS_BAD
        ),
        MetricSpec(
            "host_memory_writeback_bytes", Unit.BYTES, "Pages being written back now", Direction.UP_IS_BAD
        ),
        MetricSpec("host_memory_slab_reclaimable_bytes", Unit.BYTES, "Reclaimable kernel slab"),
        MetricSpec(
            "host_memory_slab_unreclaimable_bytes",
            Unit.BYTES,
            "Unreclaimable kernel slab (grows with kernel memory leaks)",
            Direction.UP_IS_BAD,
        ),
        MetricSpec(
            "host_memory_commit_ratio",
            Unit.RATIO,
            "Committed_AS divided by CommitLimit",
            Direction.UP_IS_BAD,
        ),
        MetricSpec("host_memory_hugepages_total_count", Unit.COUNT, "Reserved huge pages (HugePages_Total)"),
        MetricSpec("host_memory_hugepages_free_count", Unit.COUNT, "Unused reserved huge pages"),
        MetricSpec(
            "host_memory_pressure_percent",
            Unit.PERCENT,
            "PSI memory stall time over the last 10 s (some or full)",
            Direction.UP_IS_BAD,
            labels=("kind",),
        ),
    ),
    interval_s=60,
    timeout_s=5,
)
