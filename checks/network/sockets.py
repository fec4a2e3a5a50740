"""network.sockets: socket totals and TCP memory from ``/proc/net/sockstat`` and ``sockstat6``.

Also reads ``/proc/sys/net/ipv4/tcp_mem`` (pages: low, pressure, high) so TCP
memory can be judged against the kernel's own pressure threshold. Sample of what
:func:`collect_sockets` returns::

    SocketsSection(sockets_used=29, tcp_inuse=11, tcp_orphan=0, tcp_tw=2, tcp_alloc=14,
                   tcp_mem_pages=47, udp_inuse=0, tcp6_inuse=2, udp6_inuse=0,
                   tcp_mem_limits_pages=(287898, 383867, 575796),
                   page_size=4096)
"""

from __future__ import annotations

import os
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
    render_bytes,
)
from checks.network._common import read_sockstat, require_counter
from checks.probe import Probe

_SOCKSTAT = "/proc/net/sockstat"
_SOCKSTAT6 = "/proc/net/sockstat6"
_TCP_MEM = "/proc/sys/net/ipv4/tcp_mem"
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class SocketsSection:
    sockets_used: int
    tcp_inuse: int
    tcp_orphan: int
    tcp_tw: int
    tcp_alloc: int
    tcp_mem_pages: int
    udp_inuse: int
    tcp6_inuse: int | None
    udp6_inuse: int | None
    tcp_mem_limits_pages: tuple[int, int, int] | None
    """``tcp_mem``: below low no pressure, above pressure the kernel trims buffers, at high it refuses."""
    page_size: int


class SocketsParams(CheckParams):
    levels_orphans: Levels = (1000, 5000)
    """(warn, crit) for orphaned TCP sockets (closed by the application, not yet by the
    peer). Past ``tcp_max_orphans`` the kernel resets them and logs 'too many orphaned sockets'."""


def _optional_ints(probe: Probe, path: str, count: int) -> list[int] | None:
    try:
        text = probe.read_text(path)
    except (FileNotFoundError, PermissionError):  # sysctl hidden in some containers: judge without it
        return None
    fields = text.split()
    try:
        values = [int(field) for field in fields]
    except ValueError:
        raise ValueError(f"{path}: expected {count} integers, got {text.strip()[:60]!r}") from None
    if len(values) != count:
        raise ValueError(f"{path}: expected {count} integers, got {text.strip()[:60]!r}")
    return values


def collect_sockets(probe: Probe, params: SocketsParams) -> SocketsSection:
    sockstat = read_sockstat(probe, _SOCKSTAT)
    if sockstat is None:
        raise FileNotFoundError(f"{_SOCKSTAT} is absent")
    sockstat6 = read_sockstat(probe, _SOCKSTAT6)
    limits = _optional_ints(probe, _TCP_MEM, 3)

    def tcp(name: str) -> int:
        return require_counter(sockstat, "TCP", name, _SOCKSTAT)

    return SocketsSection(
        sockets_used=require_counter(sockstat, "sockets", "used", _SOCKSTAT),
        tcp_inuse=tcp("inuse"),
        tcp_orphan=tcp("orphan"),
        tcp_tw=tcp("tw"),
        tcp_alloc=tcp("alloc"),
        tcp_mem_pages=tcp("mem"),
        udp_inuse=require_counter(sockstat, "UDP", "inuse", _SOCKSTAT),
        tcp6_inuse=None if sockstat6 is None else require_counter(sockstat6, "TCP6", "inuse", _SOCKSTAT6),
        udp6_inuse=None if sockstat6 is None else require_counter(sockstat6, "UDP6", "inuse", _SOCKSTAT6),
        tcp_mem_limits_pages=None if limits is None else (limits[0], limits[1], limits[2]),
        page_size=PAGE_SIZE,
    )


def evaluate_sockets(
    params: SocketsParams, section: SocketsSection, store: ValueStore
) -> Iterator[Result | Metric]:
    tcp_bytes = section.tcp_mem_pages * section.page_size
    yield Metric("net_sockets_used_count", section.sockets_used, Unit.COUNT)
    for family, tcp, udp in (
        ("ipv4", section.tcp_inuse, section.udp_inuse),
        ("ipv6", section.tcp6_inuse, section.udp6_inuse),
    ):
        if tcp is not None:
            yield Metric("net_tcp_inuse_count", tcp, Unit.COUNT, {"family": family})
        if udp is not None:
            yield Metric("net_udp_inuse_count", udp, Unit.COUNT, {"family": family})
    yield Metric("net_tcp_orphans_count", section.tcp_orphan, Unit.COUNT)
    yield Metric("net_tcp_time_wait_count", section.tcp_tw, Unit.COUNT)
    yield Metric("net_tcp_allocated_count", section.tcp_alloc, Unit.COUNT)
    yield Metric("net_tcp_memory_bytes", tcp_bytes, Unit.BYTES)
    yield Result(
        Severity.OK,
        "OK",
        f"{section.sockets_used} sockets used; TCP {section.tcp_inuse + (section.tcp6_inuse or 0)} in use, "
        f"{section.tcp_tw} TIME_WAIT, {render_bytes(tcp_bytes)} buffers",
    )
    yield check_levels(
        section.tcp_orphan,
        key="TCP_ORPHANS_HIGH",
        label="Orphaned TCP sockets",
        levels_upper=params.levels_orphans,
        render=lambda v: f"{v:.0f}",
    )
    if section.tcp_mem_limits_pages is not None:
        _low, pressure, high = section.tcp_mem_limits_pages
        yield Metric("net_tcp_memory_pressure_threshold_bytes", pressure * section.page_size, Unit.BYTES)
        yield check_levels(
            section.tcp_mem_pages,
            key="TCP_MEMORY_PRESSURE",
            label="TCP buffer memory (tcp_mem pressure/high)",
            levels_upper=(pressure, high),
            render=lambda pages: render_bytes(pages * section.page_size),
        )


SOCKETS = Check(
    name="network.sockets",
    layer=Layer.NETWORK,
    summary="Socket totals, orphaned TCP sockets and TCP buffer memory against the kernel's limits",
    collect=collect_sockets,
    evaluate=evaluate_sockets,
    params=SocketsParams,
    keys=("TCP_ORPHANS_HIGH", "TCP_MEMORY_PRESSURE"),
    metrics=(
        MetricSpec("net_sockets_used_count", Unit.COUNT, "Sockets of every kind in use", Direction.NEUTRAL),
        MetricSpec(
            "net_tcp_inuse_count",
            Unit.COUNT,
            "TCP sockets in use (not TIME_WAIT)",
            Direction.NEUTRAL,
            ("family",),
        ),
        MetricSpec("net_udp_inuse_count", Unit.COUNT, "UDP sockets in use", Direction.NEUTRAL, ("family",)),
        MetricSpec(
            "net_tcp_orphans_count",
            Unit.COUNT,
            "TCP sockets no longer attached to a file descriptor",
            Direction.UP_IS_BAD,
        ),
        MetricSpec(
            "net_tcp_time_wait_count",
            Unit.COUNT,
            "TCP sockets in TIME_WAIT (all families)",
            Direction.UP_IS_BAD,
        ),
        MetricSpec(
            "net_tcp_allocated_count", Unit.COUNT, "TCP sockets allocated (any state)", Direction.NEUTRAL
        ),
        MetricSpec(
            "net_tcp_memory_bytes", Unit.BYTES, "Memory held by TCP socket buffers", Direction.UP_IS_BAD
        ),
        MetricSpec(
            "net_tcp_memory_pressure_threshold_bytes",
            Unit.BYTES,
            "TCP buffer memory above which the kernel enters memory pressure (tcp_mem[1])",
            Direction.NEUTRAL,
        ),
    ),
    interval_s=60,
    timeout_s=5,
)
