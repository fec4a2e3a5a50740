from __future__ import annotations

import pytest

from checks.network._common import (
    CounterTable,
    matches_any,
    parse_net_dev,
    parse_snmp6,
    parse_sockstat,
    read_net_dev,
    read_snmp,
    read_sockstat,
    read_udp6,
)
from tests.conftest import fixture_probe


def test_net_dev_fixture_has_every_interface_with_counters():
    devices = read_net_dev(fixture_probe("net-basic"))
    assert list(devices) == ["lo", "eth0", "eth1", "docker0", "veth1a2b"]
    eth0 = devices["eth0"]
    assert (eth0.rx_bytes, eth0.rx_packets, eth0.rx_errors, eth0.rx_drops) == (119203263, 2961, 3, 7)
    assert (eth0.tx_bytes, eth0.tx_packets, eth0.tx_errors, eth0.tx_drops) == (170755, 1787, 1, 0)


def test_readers_memoise_per_cycle():
    probe = fixture_probe("net-basic")
    assert read_snmp(probe) is read_snmp(probe)
    probe.new_cycle()
    first = read_snmp(probe)
    probe.new_cycle()
    assert read_snmp(probe) is not first


def test_absent_ipv6_files_read_as_none():
    probe = fixture_probe("net-noipv6")
    assert read_sockstat(probe, "/proc/net/sockstat6") is None
    assert read_udp6(probe) is None


@pytest.mark.parametrize(
    ("reader", "path"),
    [
        pytest.param(read_net_dev, "/proc/net/dev", id="net/dev non-numeric counter"),
        pytest.param(
            lambda p: read_snmp(p).counter("Tcp", "OutSegs"), "/proc/net/snmp", id="snmp short value line"
        ),
        pytest.param(
            lambda p: read_sockstat(p, "/proc/net/sockstat"), "/proc/net/sockstat", id="sockstat odd pairs"
        ),
        pytest.param(read_udp6, "/proc/net/snmp6", id="snmp6 name without value"),
    ],
)
def test_garbled_files_raise_value_error_naming_the_file(reader, path):
    with pytest.raises(ValueError, match=path):
        reader(fixture_probe("net-garbled"))


@pytest.mark.parametrize(
    ("reader", "path"),
    [
        pytest.param(read_net_dev, "/proc/net/dev", id="net/dev"),
        pytest.param(read_snmp, "/proc/net/snmp", id="snmp"),
        pytest.param(lambda p: read_sockstat(p, "/proc/net/sockstat"), "/proc/net/sockstat", id="sockstat"),
        pytest.param(read_udp6, "/proc/net/snmp6", id="snmp6"),
    ],
)
def test_empty_files_raise_value_error_naming_the_file(reader, path):
    with pytest.raises(ValueError, match=path):
        reader(fixture_probe("net-empty"))


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("Inter-| x\n face | y\n  eth0: 1 2 3\n", id="too few counters"),
        pytest.param("Inter-| x\n face | y\n  : 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n", id="no name"),
        pytest.param("eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n", id="headers missing"),
    ],
)
def test_net_dev_rejects_malformed_lines(text):
    with pytest.raises(ValueError, match="/proc/net/dev"):
        parse_net_dev(text)


def test_net_dev_accepts_names_glued_to_counters():
    text = "Inter-| x\n face | y\nenp0s31f6:12 1 0 0 0 0 0 0 3 4 0 0 0 0 0 0\n"
    assert parse_net_dev(text)["enp0s31f6"].rx_bytes == 12


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("Tcp: A B\nUdp: 1 2\n", id="section names differ"),
        pytest.param("Tcp: A B\n", id="header without values"),
        pytest.param("Tcp A B\nTcp 1 2\n", id="no colon"),
    ],
)
def test_counter_table_rejects_mismatched_pairs(text):
    with pytest.raises(ValueError, match="/proc/net/netstat"):
        CounterTable(text, "/proc/net/netstat")


def test_counter_table_converts_only_what_is_asked():
    table = CounterTable("TcpExt: A B\nTcpExt: 1 junk\n", "/proc/net/netstat")
    assert table.counter("TcpExt", "A") == 1
    with pytest.raises(ValueError, match="/proc/net/netstat: TcpExt B is not a number"):
        table.counter("TcpExt", "B")


def test_sockstat_and_snmp6_parse_real_shapes():
    assert (
        parse_sockstat("TCP: inuse 1 orphan 2 tw 3 alloc 4 mem 5\n", "/proc/net/sockstat")["TCP"]["tw"] == 3
    )
    assert parse_snmp6("Ip6InReceives 1\nUdp6InErrors\t 7\n", prefix="Udp6") == {"Udp6InErrors": 7}


def test_matches_any_uses_shell_globs():
    assert matches_any("veth1a2b", ("veth*",))
    assert not matches_any("eth0", ("veth*", "docker?"))
