"""network.tcp_retransmits: TCP retransmission rate and error counters.

Reads the ``Tcp`` line pair of ``/proc/net/snmp`` (shared with other checks of the
cycle). Sample of what :func:`collect_tcp_retransmits` returns::

    TcpCountersSection(timestamp=1700000000.0, in_segs=3476, out_segs=2296,
                       retrans_segs=0, in_errs=0, attempt_fails=11, estab_resets=5, out_rsts=22)
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
    render_percent,
)
from checks.network._common import read_snmp
from checks.probe import Probe


@dataclass(frozen=True, slots=True)
class TcpCountersSection:
    timestamp: float
    in_segs: int
    out_segs: int
    retrans_segs: int
    in_errs: int
    attempt_fails: int
    estab_resets: int
    out_rsts: int


class TcpRetransmitsParams(CheckParams):
    levels_retransmit_percent: Levels = (2.0, 5.0)
    """(warn, crit) for retransmitted segments as a percentage of segments sent."""
    min_out_segments_per_second: float = 1.0
    """Below this send rate the percentage is reported but not judged: on an idle host
    one retransmit of ten segments is 10% and means nothing."""


def collect_tcp_retransmits(probe: Probe, params: TcpRetransmitsParams) -> TcpCountersSection:
    snmp = read_snmp(probe)

    def counter(name: str) -> int:
        return snmp.counter("Tcp", name)

    return TcpCountersSection(
        probe.now(),
        in_segs=counter("InSegs"),
        out_segs=counter("OutSegs"),
        retrans_segs=counter("RetransSegs"),
        in_errs=counter("InErrs"),
        attempt_fails=counter("AttemptFails"),
        estab_resets=counter("EstabResets"),
        out_rsts=counter("OutRsts"),
    )


_RATE_METRICS = (
    ("out_segs", "net_tcp_out_segments_per_second"),
    ("in_segs", "net_tcp_in_segments_per_second"),
    ("retrans_segs", "net_tcp_retransmits_per_second"),
    ("in_errs", "net_tcp_in_errors_per_second"),
    ("attempt_fails", "net_tcp_attempt_fails_per_second"),
    ("estab_resets", "net_tcp_established_resets_per_second"),
    ("out_rsts", "net_tcp_out_resets_per_second"),
)


def evaluate_tcp_retransmits(
    params: TcpRetransmitsParams, section: TcpCountersSection, store: ValueStore
) -> Iterator[Result | Metric]:
    rates: dict[str, float] = {}
    for field, metric in _RATE_METRICS:
        rate = get_rate(store, field, section.timestamp, getattr(section, field))
        if rate is not None:
            rates[field] = rate
            yield Metric(metric, rate, Unit.PER_SECOND)
    if "out_segs" not in rates or "retrans_segs" not in rates:
        yield Result(Severity.OK, "OK", "First sample of the TCP counters: rates from the next run on")
        return
    out, retrans = rates["out_segs"], rates["retrans_segs"]
    # Both rates span the same interval, so their ratio is delta RetransSegs / delta OutSegs.
    percent = retrans / out * 100 if out > 0 else 0.0
    yield Metric("net_tcp_retransmit_percent", percent, Unit.PERCENT)
    summary = f"{retrans:.2f} retransmits/s of {out:.1f} segments/s sent"
    if out < params.min_out_segments_per_second:
        yield Result(
            Severity.OK,
            "OK",
            f"Retransmits: {render_percent(percent)} ({summary}; too little traffic to judge)",
        )
    else:
        result = check_levels(
            percent,
            key="TCP_RETRANS_HIGH",
            label="Retransmits",
            levels_upper=params.levels_retransmit_percent,
            render=render_percent,
        )
        yield Result(result.severity, result.key, f"{result.summary}; {summary}")
    yield Result(
        Severity.OK,
        "OK",
        f"In errors {rates.get('in_errs', 0.0):.2f}/s, failed connection attempts "
        f"{rates.get('attempt_fails', 0.0):.2f}/s, "
        f"resets of established {rates.get('estab_resets', 0.0):.2f}/s",
    )


TCP_RETRANSMITS = Check(
    name="network.tcp_retransmits",
    layer=Layer.NETWORK,
    summary="TCP retransmission percentage, segment rates, input errors and failed connection attempts",
    collect=collect_tcp_retransmits,
    evaluate=evaluate_tcp_retransmits,
    params=TcpRetransmitsParams,
    keys=("TCP_RETRANS_HIGH",),
    metrics=(
        MetricSpec(
            "net_tcp_retransmit_percent",
            Unit.PERCENT,
            "Retransmitted TCP segments as a share of segments sent",
            Direction.UP_IS_BAD,
        ),
        MetricSpec(
            "net_tcp_out_segments_per_second", Unit.PER_SECOND, "TCP segments sent", Direction.NEUTRAL
        ),
        MetricSpec(
            "net_tcp_in_segments_per_second", Unit.PER_SECOND, "TCP segments received", Direction.NEUTRAL
        ),
        MetricSpec(
            "net_tcp_retransmits_per_second",
            Unit.PER_SECOND,
            "TCP segments retransmitted",
            Direction.UP_IS_BAD,
        ),
        MetricSpec(
            "net_tcp_in_errors_per_second",
            Unit.PER_SECOND,
            "TCP segments received in error (bad checksum, malformed)",
            Direction.UP_IS_BAD,
        ),
        MetricSpec(
            "net_tcp_attempt_fails_per_second",
            Unit.PER_SECOND,
            "TCP connection attempts that failed (SYN_SENT/SYN_RECV to CLOSED or LISTEN)",
            Direction.UP_IS_BAD,
        ),
        MetricSpec(
            "net_tcp_established_resets_per_second",
            Unit.PER_SECOND,
            "Established TCP connections reset",
            Direction.UP_IS_BAD,
        ),
        MetricSpec("net_tcp_out_resets_per_second", Unit.PER_SECOND, "TCP resets sent", Direction.UP_IS_BAD),
    ),
    interval_s=60,
    rates=True,
    timeout_s=5,
)
