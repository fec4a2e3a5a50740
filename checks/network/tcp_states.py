"""network.tcp_states: TCP sockets per state and address family.

Counted over NETLINK_SOCK_DIAG (:mod:`checks.network._sockdiag`, what ``ss`` uses).
When netlink is refused (a sandbox, a seccomp profile) the check falls back to the
totals of ``/proc/net/sockstat`` (TIME_WAIT and sockets in use, no per-state split)
and says so; it never reads ``/proc/net/tcp``. Sample of what :func:`collect_tcp_states`
returns::

    TcpStatesSection(source='netlink',
        counts={'ipv4': {'ESTABLISHED': 2, 'SYN_SENT': 0, 'SYN_RECV': 0, 'FIN_WAIT1': 0,
                         'FIN_WAIT2': 0, 'TIME_WAIT': 2, 'CLOSE': 0, 'CLOSE_WAIT': 0,
                         'LAST_ACK': 0, 'LISTEN': 9, 'CLOSING': 0},
                'ipv6': {..., 'LISTEN': 2, ...}},
        fallback_reason=None, sockstat_time_wait=None, sockstat_inuse=None)
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
    Severity,
    Unit,
    ValueStore,
    check_levels,
)
from checks.network._common import read_sockstat, require_counter
from checks.network._sockdiag import STATE_NAMES, tcp_sockets
from checks.probe import Probe


@dataclass(frozen=True, slots=True)
class TcpStatesSection:
    source: Literal["netlink", "sockstat"]
    counts: dict[str, dict[str, int]]
    """Family → state → sockets (netlink only; empty for the sockstat fallback)."""
    fallback_reason: str | None = None
    sockstat_time_wait: int | None = None
    """TIME_WAIT sockets of every family (sockstat ``TCP: tw``), fallback only."""
    sockstat_inuse: int | None = None
    """TCP sockets in use, IPv4 plus IPv6, fallback only."""


class TcpStatesParams(CheckParams):
    levels_close_wait: Levels = (200, 1000)
    """(warn, crit) for CLOSE_WAIT sockets (both families): the peer closed, the local
    application never did. A growing count is a descriptor leak."""
    levels_time_wait: Levels = (20_000, 50_000)
    """(warn, crit) for TIME_WAIT sockets (both families): many short connections;
    near ``tcp_max_tw_buckets`` the kernel drops them early and ports run short."""


def collect_tcp_states(probe: Probe, params: TcpStatesParams) -> TcpStatesSection:
    outcome = tcp_sockets(probe)
    if outcome.summary is not None:
        return TcpStatesSection("netlink", outcome.summary.counts)
    path = "/proc/net/sockstat"
    sockstat = read_sockstat(probe, path)
    if sockstat is None:
        raise FileNotFoundError(f"{path} is absent and {outcome.error}")
    inuse = require_counter(sockstat, "TCP", "inuse", path)
    sockstat6 = read_sockstat(probe, "/proc/net/sockstat6")
    if sockstat6 is not None:
        inuse += require_counter(sockstat6, "TCP6", "inuse", "/proc/net/sockstat6")
    return TcpStatesSection(
        "sockstat",
        {},
        fallback_reason=outcome.error,
        sockstat_time_wait=require_counter(sockstat, "TCP", "tw", path),
        sockstat_inuse=inuse,
    )


def evaluate_tcp_states(
    params: TcpStatesParams, section: TcpStatesSection, store: ValueStore
) -> Iterator[Result | Metric]:
    if section.source == "sockstat":
        time_wait = section.sockstat_time_wait or 0
        yield Result(
            Severity.OK,
            "OK",
            f"Per-state counts unavailable ({section.fallback_reason}); "
            f"totals from /proc/net/sockstat: {section.sockstat_inuse} in use, {time_wait} TIME_WAIT",
        )
        yield check_levels(
            time_wait,
            key="TCP_TIME_WAIT_HIGH",
            label="TIME_WAIT",
            levels_upper=params.levels_time_wait,
            render=_int,
        )
        yield Metric(
            "net_tcp_connections_count", time_wait, Unit.COUNT, {"state": "TIME_WAIT", "family": "all"}
        )
        yield Metric("net_tcp_sockets_in_use_count", section.sockstat_inuse or 0, Unit.COUNT)
        return
    totals = dict.fromkeys(STATE_NAMES, 0)
    for family, states in section.counts.items():
        for state, count in states.items():
            totals[state] += count
            yield Metric("net_tcp_connections_count", count, Unit.COUNT, {"state": state, "family": family})
    in_use = sum(count for state, count in totals.items() if state != "TIME_WAIT")
    yield Metric("net_tcp_sockets_in_use_count", in_use, Unit.COUNT)
    yield Result(
        Severity.OK,
        "OK",
        f"{totals['ESTABLISHED']} established, {totals['LISTEN']} listening, "
        f"{totals['TIME_WAIT']} TIME_WAIT, {totals['CLOSE_WAIT']} CLOSE_WAIT (via netlink sock_diag)",
    )
    yield check_levels(
        totals["CLOSE_WAIT"],
        key="TCP_CLOSE_WAIT_HIGH",
        label="CLOSE_WAIT (possible socket leak)",
        levels_upper=params.levels_close_wait,
        render=_int,
    )
    yield check_levels(
        totals["TIME_WAIT"],
        key="TCP_TIME_WAIT_HIGH",
        label="TIME_WAIT",
        levels_upper=params.levels_time_wait,
        render=_int,
    )


def _int(value: float) -> str:
    return f"{value:.0f}"


TCP_STATES = Check(
    name="network.tcp_states",
    layer=Layer.NETWORK,
    summary="TCP sockets per state (netlink sock_diag), CLOSE_WAIT leaks and TIME_WAIT pile-ups",
    collect=collect_tcp_states,
    evaluate=evaluate_tcp_states,
    params=TcpStatesParams,
    keys=("TCP_CLOSE_WAIT_HIGH", "TCP_TIME_WAIT_HIGH"),
    metrics=(
        MetricSpec(
            "net_tcp_connections_count",
            Unit.COUNT,
            "TCP sockets in one state (family 'all' when only sockstat totals are available)",
            Direction.NEUTRAL,
            ("state", "family"),
        ),
        MetricSpec(
            "net_tcp_sockets_in_use_count",
            Unit.COUNT,
            "TCP sockets in any state but TIME_WAIT, both families",
            Direction.NEUTRAL,
        ),
    ),
    interval_s=60,
    timeout_s=5,
)
