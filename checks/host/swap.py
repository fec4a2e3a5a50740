"""host.swap: swap space used, and pages swapped in and out per second.

Used swap alone is often harmless (cold pages parked long ago); pages swapped *in*
are what hurt, because a task waits for each of them. So the rate of ``pswpin`` from
``/proc/vmstat`` has its own levels (SWAP_IN_HIGH); swap-out is a metric only. Rates
come from the counters' change since the previous run (the first run stores them).

Sample of what :func:`collect_swap` returns::

    SwapSection(now=1700000000.0, total_bytes=2147479552, free_bytes=1932259328,
                pages_in=181234, pages_out=402113)
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
    Severity,
    Unit,
    ValueStore,
    check_levels,
    get_rate,
    render_bytes,
    render_percent,
)
from checks.host._common import read_meminfo, read_vmstat
from checks.probe import Probe


@dataclass(frozen=True, slots=True)
class SwapSection:
    now: float
    total_bytes: int
    free_bytes: int
    pages_in: int
    pages_out: int


class SwapParams(CheckParams):
    levels_used_percent: Levels = (50.0, 80.0)
    """(warn, crit) percent of swap space in use."""
    levels_pages_in_per_second: Levels = (100.0, 1000.0)
    """(warn, crit) pages swapped in per second since the last run (a page is usually 4 KiB)."""


def collect_swap(probe: Probe, params: SwapParams) -> SwapSection:
    meminfo = read_meminfo(probe)
    vmstat = read_vmstat(probe)
    for name in ("SwapTotal", "SwapFree"):
        if name not in meminfo:
            raise ValueError(f"/proc/meminfo: no {name} line")
    for name in ("pswpin", "pswpout"):
        if name not in vmstat:
            raise ValueError(f"/proc/vmstat: no {name} line (truncated file?)")
    return SwapSection(
        now=probe.now(),
        total_bytes=meminfo["SwapTotal"],
        free_bytes=meminfo["SwapFree"],
        pages_in=vmstat["pswpin"],
        pages_out=vmstat["pswpout"],
    )


def evaluate_swap(params: SwapParams, section: SwapSection, store: ValueStore) -> Iterator[Result | Metric]:
    used = max(0, section.total_bytes - section.free_bytes)
    if section.total_bytes == 0:
        used_pct = 0.0
        yield Result(Severity.OK, "OK", "No swap configured")
    else:
        used_pct = 100.0 * used / section.total_bytes
        yield check_levels(
            used_pct,
            key="SWAP_USAGE_HIGH",
            label=f"Swap used {render_bytes(used)} of {render_bytes(section.total_bytes)}",
            levels_upper=params.levels_used_percent,
            render=render_percent,
        )
    yield Metric("host_swap_total_bytes", section.total_bytes, Unit.BYTES)
    yield Metric("host_swap_used_bytes", used, Unit.BYTES)
    yield Metric("host_swap_used_percent", used_pct, Unit.PERCENT)
    rate_in = get_rate(store, "pswpin", section.now, section.pages_in)
    rate_out = get_rate(store, "pswpout", section.now, section.pages_out)
    if rate_in is not None:
        yield check_levels(
            rate_in,
            key="SWAP_IN_HIGH",
            label="Swap-in",
            levels_upper=params.levels_pages_in_per_second,
            render=lambda v: f"{v:.1f} pages/s",
        )
        yield Metric("host_swap_in_pages_per_second", rate_in, Unit.PER_SECOND)
    if rate_out is not None:
        yield Metric("host_swap_out_pages_per_second", rate_out, Unit.PER_SECOND)


SWAP = Check(
    name="host.swap",
    layer=Layer.HOST,
    summary="Swap space used and swap-in/swap-out rates",
    collect=collect_swap,
    evaluate=evaluate_swap,
    params=SwapParams,
    keys=("SWAP_USAGE_HIGH", "SWAP_IN_HIGH"),
    metrics=(
        MetricSpec("host_swap_total_bytes", Unit.BYTES, "Swap space configured (SwapTotal)"),
        MetricSpec("host_swap_used_bytes", Unit.BYTES, "Swap space in use", Direction.UP_IS_BAD),
        MetricSpec("host_swap_used_percent", Unit.PERCENT, "Swap space in use, percent", Direction.UP_IS_BAD),
        MetricSpec(
            "host_swap_in_pages_per_second",
            Unit.PER_SECOND,
            "Pages swapped in per second since the last run (tasks waited for each)",
            Direction.UP_IS_BAD,
        ),
        MetricSpec(
            "host_swap_out_pages_per_second",
            Unit.PER_SECOND,
            "Pages swapped out per second since the last run",
            Direction.UP_IS_BAD,
        ),
    ),
    interval_s=60,
    rates=True,
    timeout_s=5,
)
