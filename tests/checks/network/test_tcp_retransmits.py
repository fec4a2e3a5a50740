from __future__ import annotations

from typing import Any

import pytest

from checks.api import Metric, Result, Severity, Unit
from checks.network.tcp_retransmits import (
    TcpCountersSection,
    TcpRetransmitsParams,
    collect_tcp_retransmits,
    evaluate_tcp_retransmits,
)
from checks.probe import Probe
from tests.conftest import fixture_probe


def section(ts, out_segs, retrans, in_errs=0, attempt_fails=0):
    return TcpCountersSection(ts, 1000, out_segs, retrans, in_errs, attempt_fails, 0, 0)


def test_collect_reads_tcp_counters_from_snmp():
    got = collect_tcp_retransmits(fixture_probe("net-basic"), TcpRetransmitsParams())
    assert got == TcpCountersSection(1_700_000_000.0, 3476, 2296, 0, 0, 11, 5, 22)


def test_collect_on_this_host():
    assert collect_tcp_retransmits(Probe(), TcpRetransmitsParams()).out_segs > 0


@pytest.mark.parametrize("host", ["net-garbled", "net-empty"])
def test_collect_rejects_bad_snmp(host):
    with pytest.raises(ValueError, match="/proc/net/snmp"):
        collect_tcp_retransmits(fixture_probe(host), TcpRetransmitsParams())


@pytest.mark.parametrize(
    ("out_delta", "retrans_delta", "expected"),
    [
        pytest.param(6000, 60, (Severity.OK, "OK"), id="1 percent"),
        pytest.param(6000, 180, (Severity.WARN, "TCP_RETRANS_HIGH"), id="3 percent warns"),
        pytest.param(6000, 600, (Severity.CRIT, "TCP_RETRANS_HIGH"), id="10 percent critical"),
        pytest.param(30, 10, (Severity.OK, "OK"), id="idle host not judged"),
    ],
)
def test_evaluate_percent_of_segments_sent(out_delta, retrans_delta, expected):
    store: dict[str, Any] = {}
    first = list(evaluate_tcp_retransmits(TcpRetransmitsParams(), section(0.0, 10_000, 100), store))
    assert [(r.severity, r.key) for r in first if isinstance(r, Result)] == [(Severity.OK, "OK")]
    out = list(
        evaluate_tcp_retransmits(
            TcpRetransmitsParams(), section(60.0, 10_000 + out_delta, 100 + retrans_delta, in_errs=6), store
        )
    )
    results = [(r.severity, r.key) for r in out if isinstance(r, Result)]
    assert results == [expected, (Severity.OK, "OK")]
    assert Metric("net_tcp_retransmit_percent", retrans_delta / out_delta * 100, Unit.PERCENT) in out
    assert Metric("net_tcp_out_segments_per_second", out_delta / 60, Unit.PER_SECOND) in out
    assert Metric("net_tcp_in_errors_per_second", 0.0, Unit.PER_SECOND) not in out  # 6 - 0 over 60 s
    assert Metric("net_tcp_in_errors_per_second", 0.1, Unit.PER_SECOND) in out


def test_counter_reset_restarts_rates():
    store: dict[str, Any] = {}
    list(evaluate_tcp_retransmits(TcpRetransmitsParams(), section(0.0, 10_000, 100), store))
    out = list(evaluate_tcp_retransmits(TcpRetransmitsParams(), section(60.0, 50, 0), store))
    assert [m for m in out if isinstance(m, Metric) and m.name == "net_tcp_retransmit_percent"] == []
