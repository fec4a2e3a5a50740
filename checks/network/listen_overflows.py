"""network.listen_overflows: connections lost because a listen queue was full.

Reads ``ListenOverflows`` (accept queue full) and ``ListenDrops`` (every SYN or
handshake-completing ACK dropped at a listener, overflows included) from the
``TcpExt`` line pair of ``/proc/net/netstat``, plus ``TCPReqQFullDrop`` and
``SyncookiesSent`` (SYN queue full). Sample of what :func:`collect_listen_overflows`
returns::

    ListenSection(timestamp=1700000000.0, overflows=0, drops=0, req_queue_full_drops=0, syncookies_sent=0)
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
    get_delta,
    get_rate,
)
from checks.network._common import read_netstat
from checks.probe import Probe


@dataclass(frozen=True, slots=True)
class ListenSection:
    timestamp: float
    overflows: int
    drops: int
    req_queue_full_drops: int | None
    """``TCPReqQFullDrop`` (None on kernels without it)."""
    syncookies_sent: int | None


class ListenOverflowsParams(CheckParams):
    levels_drops_per_second: Levels | None = None
    """(warn, crit) for listen drops per second. None (the default): any drop since the
    previous run warns, because every one is a client that could not connect."""


def collect_listen_overflows(probe: Probe, params: ListenOverflowsParams) -> ListenSection:
    netstat = read_netstat(probe)
    return ListenSection(
        probe.now(),
        overflows=netstat.counter("TcpExt", "ListenOverflows"),
        drops=netstat.counter("TcpExt", "ListenDrops"),
        req_queue_full_drops=netstat.optional("TcpExt", "TCPReqQFullDrop"),
        syncookies_sent=netstat.optional("TcpExt", "SyncookiesSent"),
    )


def evaluate_listen_overflows(
    params: ListenOverflowsParams, section: ListenSection, store: ValueStore
) -> Iterator[Result | Metric]:
    now = section.timestamp
    for name, value, metric in (
        ("req_queue_full_drops", section.req_queue_full_drops, "net_tcp_syn_queue_drops_per_second"),
        ("syncookies_sent", section.syncookies_sent, "net_tcp_syncookies_sent_per_second"),
    ):
        rate = None if value is None else get_rate(store, name, now, value)
        if rate is not None:
            yield Metric(metric, rate, Unit.PER_SECOND)
    previous_ts = store.get("ts")
    store["ts"] = now
    drop_delta = get_delta(store, "drops", section.drops)
    overflow_delta = get_delta(store, "overflows", section.overflows)
    if previous_ts is None or now <= previous_ts or drop_delta is None or overflow_delta is None:
        yield Result(Severity.OK, "OK", "First sample of the listen counters: rates from the next run on")
        return
    drop_rate = drop_delta / (now - previous_ts)
    overflow_rate = overflow_delta / (now - previous_ts)
    yield Metric("net_tcp_listen_overflows_per_second", overflow_rate, Unit.PER_SECOND)
    yield Metric("net_tcp_listen_drops_per_second", drop_rate, Unit.PER_SECOND)
    detail = (
        f"{drop_delta:.0f} listen drops ({overflow_delta:.0f} accept-queue overflows) since the previous run"
    )
    if params.levels_drops_per_second is not None:
        result = check_levels(
            drop_rate,
            key="LISTEN_OVERFLOW",
            label="Listen drops",
            levels_upper=params.levels_drops_per_second,
            render=lambda v: f"{v:.2f}/s",
        )
        yield Result(result.severity, result.key, f"{result.summary}; {detail}")
    elif drop_delta > 0:
        yield Result(
            Severity.WARN, "LISTEN_OVERFLOW", f"{detail}: a listener's queue is full or it accepts too slowly"
        )
    else:
        yield Result(Severity.OK, "OK", detail)


LISTEN_OVERFLOWS = Check(
    name="network.listen_overflows",
    layer=Layer.NETWORK,
    summary="Connections dropped because a listening socket's queue was full",
    collect=collect_listen_overflows,
    evaluate=evaluate_listen_overflows,
    params=ListenOverflowsParams,
    keys=("LISTEN_OVERFLOW",),
    metrics=(
        MetricSpec(
            "net_tcp_listen_overflows_per_second",
            Unit.PER_SECOND,
            "Connections dropped because a listener's accept queue was full",
            Direction.UP_IS_BAD,
        ),
        MetricSpec(
            "net_tcp_listen_drops_per_second",
            Unit.PER_SECOND,
            "SYNs or handshake ACKs dropped at a listening socket (overflows included)",
            Direction.UP_IS_BAD,
        ),
        MetricSpec(
            "net_tcp_syn_queue_drops_per_second",
            Unit.PER_SECOND,
            "SYNs dropped because the SYN queue was full (TCPReqQFullDrop)",
            Direction.UP_IS_BAD,
        ),
        MetricSpec(
            "net_tcp_syncookies_sent_per_second",
            Unit.PER_SECOND,
            "SYN cookies sent because a SYN queue overflowed (flood or undersized backlog)",
            Direction.UP_IS_BAD,
        ),
    ),
    interval_s=60,
    rates=True,
    timeout_s=5,
)
