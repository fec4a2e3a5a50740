from __future__ import annotations

import socket
from typing import Any

import pytest

from checks.api import Metric, Result, Severity, Unit
from checks.network.udp import COUNTERS, UdpParams, UdpSection, collect_udp, evaluate_udp
from checks.probe import Probe
from tests.conftest import fixture_probe


def test_collect_reads_ipv4_and_ipv6_counters():
    got = collect_udp(fixture_probe("net-basic"), UdpParams())
    expected = {"InDatagrams": 42, "OutDatagrams": 43, "NoPorts": 0, "InErrors": 0, "RcvbufErrors": 0}
    assert got.counters["ipv4"] == {**expected, "SndbufErrors": 0}
    assert set(got.counters["ipv6"]) == set(COUNTERS)


def test_collect_without_ipv6():
    assert list(collect_udp(fixture_probe("net-noipv6"), UdpParams()).counters) == ["ipv4"]


@pytest.mark.parametrize("host", ["net-garbled", "net-empty"])
def test_collect_rejects_bad_snmp(host):
    with pytest.raises(ValueError, match="/proc/net/snmp"):
        collect_udp(fixture_probe(host), UdpParams())


def test_real_datagram_to_a_closed_port_is_counted():
    probe, params = Probe(), UdpParams()
    store: dict[str, Any] = {}
    list(evaluate_udp(params, collect_udp(probe, params), store))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for _ in range(3):
            sender.sendto(b"x", ("127.0.0.1", port))
    probe.new_cycle()
    section = collect_udp(probe, params)
    assert section.counters["ipv4"]["NoPorts"] - store["ipv4:NoPorts"][1] >= 3


def sample(ts, rcvbuf=0, sndbuf=0):
    counters = dict.fromkeys(COUNTERS, 0)
    counters.update(RcvbufErrors=rcvbuf, SndbufErrors=sndbuf, InDatagrams=int(ts * 100))
    return UdpSection(ts, {"ipv4": counters, "ipv6": dict.fromkeys(COUNTERS, 0)})


@pytest.mark.parametrize(
    ("rcvbuf", "sndbuf", "expected"),
    [
        pytest.param(0, 0, (Severity.OK, "OK"), id="clean"),
        pytest.param(60, 30, (Severity.WARN, "UDP_BUFFER_ERRORS"), id="1.5/s warns"),
        pytest.param(6000, 0, (Severity.CRIT, "UDP_BUFFER_ERRORS"), id="100/s critical"),
    ],
)
def test_evaluate(rcvbuf, sndbuf, expected):
    store: dict[str, Any] = {}
    first = list(evaluate_udp(UdpParams(), sample(0.0), store))
    assert [(r.severity, r.key) for r in first if isinstance(r, Result)] == [(Severity.OK, "OK")]
    out = list(evaluate_udp(UdpParams(), sample(60.0, rcvbuf, sndbuf), store))
    assert [(r.severity, r.key) for r in out if isinstance(r, Result)] == [expected, (Severity.OK, "OK")]
    assert Metric("net_udp_in_datagrams_per_second", 100.0, Unit.PER_SECOND, {"family": "ipv4"}) in out
    assert (
        Metric("net_udp_receive_buffer_errors_per_second", rcvbuf / 60, Unit.PER_SECOND, {"family": "ipv4"})
        in out
    )
