from __future__ import annotations

import socket

import pytest
from pydantic import ValidationError

from checks.api import Metric, Result, Severity, Unit
from checks.network._sockdiag import ListenSocket
from checks.network.listening_ports import (
    ExpectedPort,
    ListeningPortsParams,
    ListeningSection,
    collect_listening_ports,
    evaluate_listening_ports,
)
from checks.probe import Probe
from tests.conftest import fixture_probe

LISTENERS = (
    ListenSocket("ipv4", "0.0.0.0", 22, 0, 128),
    ListenSocket("ipv6", "::", 22, 0, 128),
    ListenSocket("ipv4", "127.0.0.1", 5432, 0, 244),
    ListenSocket("ipv6", "::1", 6379, 0, 511),
    ListenSocket("ipv4", "127.0.0.1", 8080, 10, 10),
)


def results(out):
    return [(r.item, r.severity, r.key) for r in out if isinstance(r, Result)]


def test_collect_finds_a_real_listener_and_misses_a_closed_port():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(3)
        port = server.getsockname()[1]
        params = ListeningPortsParams(
            expected=(ExpectedPort(port=port), ExpectedPort(port=port, address="10.9.9.9"))
        )
        section = collect_listening_ports(Probe(), params)
        out = list(evaluate_listening_ports(params, section, {}))
    assert results(out) == [
        (f"tcp/{port}", Severity.OK, "OK"),
        (f"tcp/10.9.9.9:{port}", Severity.CRIT, "PORT_NOT_LISTENING"),
    ]
    assert Metric("net_listen_accept_queue_percent", 0.0, Unit.PERCENT, {"port": str(port)}) in out


def test_without_expectations_it_reports_inventory():
    out = list(evaluate_listening_ports(ListeningPortsParams(), ListeningSection(LISTENERS), {}))
    assert out[0] == Metric("net_listening_sockets_count", 5, Unit.COUNT)
    assert results(out) == [(None, Severity.OK, "OK")]
    assert isinstance(out[1], Result)
    assert out[1].summary == "5 listening TCP sockets on 4 ports: 22, 5432, 6379, 8080"


@pytest.mark.parametrize(
    ("expected", "verdicts"),
    [
        pytest.param(ExpectedPort(port=22), [("tcp/22", Severity.OK, "OK")], id="any address"),
        pytest.param(ExpectedPort(port=22, address="10.0.0.5"), [("tcp/10.0.0.5:22", Severity.OK, "OK")],
                     id="wildcard serves a specific address"),
        pytest.param(ExpectedPort(port=5432, address="10.0.0.5"),
                     [("tcp/10.0.0.5:5432", Severity.CRIT, "PORT_NOT_LISTENING")], id="loopback only"),
        pytest.param(ExpectedPort(port=6379, address="::0001"), [("tcp/[::1]:6379", Severity.OK, "OK")],
                     id="ipv6 normalised"),
        pytest.param(ExpectedPort(port=9090), [("tcp/9090", Severity.CRIT, "PORT_NOT_LISTENING")],
                     id="missing"),
        pytest.param(ExpectedPort(port=8080), [("tcp/8080", Severity.OK, "OK"),
                                               ("tcp/8080", Severity.CRIT, "LISTEN_QUEUE_FULL")],
                     id="accept queue full"),
    ],
)  # fmt: skip
def test_expected_ports(expected, verdicts):
    params = ListeningPortsParams(expected=(expected,))
    assert results(evaluate_listening_ports(params, ListeningSection(LISTENERS), {})) == verdicts


def test_netlink_unavailable_is_unknown():
    section = collect_listening_ports(fixture_probe("net-basic"), ListeningPortsParams())
    out = list(evaluate_listening_ports(ListeningPortsParams(), section, {}))
    assert results(out) == [(None, Severity.UNKNOWN, "SOCK_DIAG_UNAVAILABLE")]


@pytest.mark.parametrize(
    "bad",
    [{"port": 0}, {"port": 70000}, {"port": 22, "proto": "udp"}, {"port": 22, "address": "host.example"}],
)
def test_params_reject_bad_ports(bad):
    with pytest.raises(ValidationError):
        ListeningPortsParams(expected=(bad,))
