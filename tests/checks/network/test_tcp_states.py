from __future__ import annotations

import errno
import socket

import pytest

from checks.api import Metric, Result, Severity, Unit
from checks.network._sockdiag import STATE_NAMES
from checks.network.tcp_states import (
    TcpStatesParams,
    TcpStatesSection,
    collect_tcp_states,
    evaluate_tcp_states,
)
from checks.probe import Probe
from tests.conftest import fixture_probe


def counts(**states):
    row = dict.fromkeys(STATE_NAMES, 0)
    row.update(states)
    return row


def test_collect_uses_netlink_on_this_host_and_sees_our_close_wait():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
        client.close()  # accepted side is now CLOSE_WAIT
        try:
            section = collect_tcp_states(Probe(), TcpStatesParams())
        finally:
            accepted.close()
    assert section.source == "netlink" and section.fallback_reason is None
    assert section.counts["ipv4"]["CLOSE_WAIT"] >= 1
    assert section.counts["ipv4"]["LISTEN"] >= 1


def test_collect_falls_back_to_sockstat_when_netlink_is_refused(monkeypatch):
    # Refusal cannot be produced unprivileged here: make the netlink socket fail as it
    # does under seccomp/gVisor, and read the fixture's sockstat files through the root
    # probe's fallback path (a fixture-rooted probe never asks netlink).
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr("checks.network._sockdiag.socket.socket", refuse)
    section = collect_tcp_states(Probe(), TcpStatesParams())
    assert section.source == "sockstat"
    assert section.fallback_reason == "NETLINK_SOCK_DIAG unavailable: Operation not permitted"
    assert section.sockstat_inuse is not None and section.sockstat_time_wait is not None


def test_collect_on_fixture_tree_reads_sockstat_totals():
    section = collect_tcp_states(fixture_probe("net-basic"), TcpStatesParams())
    assert (section.source, section.sockstat_inuse, section.sockstat_time_wait) == ("sockstat", 13, 2)


def test_collect_fallback_without_ipv6_and_with_garbled_sockstat():
    assert collect_tcp_states(fixture_probe("net-noipv6"), TcpStatesParams()).sockstat_inuse == 230
    with pytest.raises(ValueError, match="/proc/net/sockstat"):
        collect_tcp_states(fixture_probe("net-garbled"), TcpStatesParams())


@pytest.mark.parametrize(
    ("close_wait", "time_wait", "expected"),
    [
        pytest.param(0, 10, [(Severity.OK, "OK"), (Severity.OK, "OK")], id="quiet"),
        pytest.param(200, 10, [(Severity.WARN, "TCP_CLOSE_WAIT_HIGH"), (Severity.OK, "OK")], id="leak warns"),
        pytest.param(
            1000, 10, [(Severity.CRIT, "TCP_CLOSE_WAIT_HIGH"), (Severity.OK, "OK")], id="leak critical"
        ),
        pytest.param(
            0, 60_000, [(Severity.OK, "OK"), (Severity.CRIT, "TCP_TIME_WAIT_HIGH")], id="tw pile-up"
        ),
    ],
)
def test_evaluate_levels_sum_both_families(close_wait, time_wait, expected):
    section = TcpStatesSection(
        "netlink",
        {
            "ipv4": counts(ESTABLISHED=5, CLOSE_WAIT=close_wait - close_wait // 2, TIME_WAIT=time_wait),
            "ipv6": counts(LISTEN=2, CLOSE_WAIT=close_wait // 2),
        },
    )
    out = list(evaluate_tcp_states(TcpStatesParams(), section, {}))
    results = [(r.severity, r.key) for r in out if isinstance(r, Result)]
    assert results == [(Severity.OK, "OK"), *expected]
    metrics = [m for m in out if isinstance(m, Metric)]
    assert len(metrics) == 2 * len(STATE_NAMES) + 1
    assert (
        Metric("net_tcp_connections_count", 2, Unit.COUNT, {"state": "LISTEN", "family": "ipv6"}) in metrics
    )
    in_use = 5 + 2 + close_wait
    assert Metric("net_tcp_sockets_in_use_count", in_use, Unit.COUNT) in metrics


def test_evaluate_fallback_says_which_source_and_judges_time_wait():
    section = TcpStatesSection(
        "sockstat", {}, "netlink refused", sockstat_time_wait=30_512, sockstat_inuse=230
    )
    out = list(evaluate_tcp_states(TcpStatesParams(), section, {}))
    results = [r for r in out if isinstance(r, Result)]
    assert [(r.severity, r.key) for r in results] == [
        (Severity.OK, "OK"),
        (Severity.WARN, "TCP_TIME_WAIT_HIGH"),
    ]
    assert "netlink refused" in results[0].summary and "/proc/net/sockstat" in results[0].summary
    assert (
        Metric("net_tcp_connections_count", 30_512, Unit.COUNT, {"state": "TIME_WAIT", "family": "all"})
        in out
    )
