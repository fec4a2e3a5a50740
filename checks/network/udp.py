"""network.udp: UDP datagram, error and buffer-overflow rates.

Reads the ``Udp`` line pair of ``/proc/net/snmp`` (IPv4, shared with other checks of
the cycle) and the ``Udp6*`` counters of ``/proc/net/snmp6`` when IPv6 is enabled.
Sample of what :func:`collect_udp` returns::

    UdpSection(timestamp=1700000000.0, counters={
        'ipv4': {'InDatagrams': 42, 'NoPorts': 0, 'InErrors': 0, 'OutDatagrams': 43,
                 'RcvbufErrors': 0, 'SndbufErrors': 0},
        'ipv6': {'InDatagrams': 0, 'NoPorts': 0, 'InErrors': 0, 'OutDatagrams': 0,
                 'RcvbufErrors': 0, 'SndbufErrors': 0}})
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
)
from checks.network._common import read_snmp, read_udp6
from checks.probe import Probe

COUNTERS = ("InDatagrams", "OutDatagrams", "NoPorts", "InErrors", "RcvbufErrors", "SndbufErrors")
_METRICS = {
    "InDatagrams": "net_udp_in_datagrams_per_second",
    "OutDatagrams": "net_udp_out_datagrams_per_second",
    "NoPorts": "net_udp_no_port_per_second",
    "InErrors": "net_udp_in_errors_per_second",
    "RcvbufErrors": "net_udp_receive_buffer_errors_per_second",
    "SndbufErrors": "net_udp_send_buffer_errors_per_second",
}


@dataclass(frozen=True, slots=True)
class UdpSection:
    timestamp: float
    counters: dict[str, dict[str, int]]
    """Family (``ipv4``/``ipv6``) → counter name (as in ``/proc/net/snmp``) → value."""


class UdpParams(CheckParams):
    levels_buffer_errors_per_second: Levels = (1.0, 50.0)
    """(warn, crit) for receive plus send buffer errors per second (datagrams dropped
    because a socket buffer was full), both families together."""


def collect_udp(probe: Probe, params: UdpParams) -> UdpSection:
    snmp = read_snmp(probe)
    counters = {"ipv4": {name: snmp.counter("Udp", name) for name in COUNTERS}}
    snmp6 = read_udp6(probe)
    if snmp6 is not None:
        try:
            counters["ipv6"] = {name: snmp6["Udp6" + name] for name in COUNTERS}
        except KeyError as exc:
            raise ValueError(f"/proc/net/snmp6: no {exc.args[0]} counter") from None
    return UdpSection(probe.now(), counters)


def evaluate_udp(params: UdpParams, section: UdpSection, store: ValueStore) -> Iterator[Result | Metric]:
    totals = dict.fromkeys(COUNTERS, 0.0)
    complete = True
    for family, counters in section.counters.items():
        for name in COUNTERS:
            rate = get_rate(store, f"{family}:{name}", section.timestamp, counters[name])
            if rate is None:
                complete = False
                continue
            totals[name] += rate
            yield Metric(_METRICS[name], rate, Unit.PER_SECOND, {"family": family})
    if not complete:
        yield Result(
            Severity.OK, "OK", "First sample of the UDP counters (or a reset): rates from the next run on"
        )
        return
    buffer_errors = totals["RcvbufErrors"] + totals["SndbufErrors"]
    yield check_levels(
        buffer_errors,
        key="UDP_BUFFER_ERRORS",
        label="UDP buffer errors (receive+send)",
        levels_upper=params.levels_buffer_errors_per_second,
        render=lambda v: f"{v:.2f}/s",
    )
    yield Result(
        Severity.OK,
        "OK",
        f"{totals['InDatagrams']:.1f} datagrams/s in, {totals['OutDatagrams']:.1f} out, "
        f"{totals['InErrors']:.2f} in errors/s, {totals['NoPorts']:.2f}/s to closed ports",
    )


UDP = Check(
    name="network.udp",
    layer=Layer.NETWORK,
    summary="UDP datagram rates, input errors and socket buffer overflows",
    collect=collect_udp,
    evaluate=evaluate_udp,
    params=UdpParams,
    keys=("UDP_BUFFER_ERRORS",),
    metrics=(
        MetricSpec(
            "net_udp_in_datagrams_per_second",
            Unit.PER_SECOND,
            "UDP datagrams delivered",
            Direction.NEUTRAL,
            ("family",),
        ),
        MetricSpec(
            "net_udp_out_datagrams_per_second",
            Unit.PER_SECOND,
            "UDP datagrams sent",
            Direction.NEUTRAL,
            ("family",),
        ),
        MetricSpec(
            "net_udp_no_port_per_second",
            Unit.PER_SECOND,
            "UDP datagrams to a port nobody listens on",
            Direction.UP_IS_BAD,
            ("family",),
        ),
        MetricSpec(
            "net_udp_in_errors_per_second",
            Unit.PER_SECOND,
            "UDP datagrams that could not be delivered (buffer errors and bad checksums included)",
            Direction.UP_IS_BAD,
            ("family",),
        ),
        MetricSpec(
            "net_udp_receive_buffer_errors_per_second",
            Unit.PER_SECOND,
            "UDP datagrams dropped because a receive buffer was full",
            Direction.UP_IS_BAD,
            ("family",),
        ),
        MetricSpec(
            "net_udp_send_buffer_errors_per_second",
            Unit.PER_SECOND,
            "UDP datagrams dropped because a send buffer was full",
            Direction.UP_IS_BAD,
            ("family",),
        ),
    ),
    interval_s=60,
    rates=True,
    timeout_s=5,
)
