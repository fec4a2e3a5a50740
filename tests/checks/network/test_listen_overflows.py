from __future__ import annotations

import socket
import time
from typing import Any

import pytest

from checks.api import Metric, Result, Severity, Unit
from checks.network.listen_overflows import (
    ListenOverflowsParams,
    ListenSection,
    collect_listen_overflows,
    evaluate_listen_overflows,
)
from checks.probe import Probe
from tests.conftest import fixture_probe


def test_collect_reads_tcpext_counters():
    got = collect_listen_overflows(fixture_probe("net-basic"), ListenOverflowsParams())
    assert got == ListenSection(
        1_700_000_000.0, overflows=5, drops=9, req_queue_full_drops=1, syncookies_sent=0
    )


@pytest.mark.parametrize(("host", "match"), [("net-garbled", "ListenDrops"), ("net-empty", "empty")])
def test_collect_rejects_bad_netstat(host, match):
    with pytest.raises(ValueError, match=f"/proc/net/netstat.*{match}"):
        collect_listen_overflows(fixture_probe(host), ListenOverflowsParams())


def run(params, samples):
    store: dict[str, Any] = {}
    outs = [list(evaluate_listen_overflows(params, s, store)) for s in samples]
    return [[(r.severity, r.key) for r in out if isinstance(r, Result)] for out in outs], outs


@pytest.mark.parametrize(
    ("params", "drops", "expected"),
    [
        pytest.param(ListenOverflowsParams(), 0, (Severity.OK, "OK"), id="no drops"),
        pytest.param(ListenOverflowsParams(), 1, (Severity.WARN, "LISTEN_OVERFLOW"), id="any drop warns"),
        pytest.param(
            ListenOverflowsParams(levels_drops_per_second=(1, 10)), 30, (Severity.OK, "OK"), id="rate ok"
        ),
        pytest.param(
            ListenOverflowsParams(levels_drops_per_second=(1, 10)),
            600,
            (Severity.CRIT, "LISTEN_OVERFLOW"),
            id="rate crit",
        ),
    ],
)
def test_evaluate(params, drops, expected):
    results, outs = run(
        params, [ListenSection(0.0, 10, 20, 0, 0), ListenSection(60.0, 10 + drops, 20 + drops, 0, 0)]
    )
    assert results == [[(Severity.OK, "OK")], [expected]]
    assert Metric("net_tcp_listen_drops_per_second", drops / 60, Unit.PER_SECOND) in outs[1]


def test_optional_counters_absent_on_old_kernels():
    _, outs = run(
        ListenOverflowsParams(), [ListenSection(0.0, 0, 0, None, None), ListenSection(1.0, 0, 0, None, None)]
    )
    assert {m.name for m in outs[1] if isinstance(m, Metric)} == {
        "net_tcp_listen_overflows_per_second",
        "net_tcp_listen_drops_per_second",
    }


def test_real_accept_queue_overflow_is_detected():
    """Fill a real listener's accept queue on 127.0.0.1 and watch the kernel count it."""
    probe, params = Probe(), ListenOverflowsParams()
    store: dict[str, Any] = {}
    list(evaluate_listen_overflows(params, collect_listen_overflows(probe, params), store))
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)  # accept queue of one: the next handshakes overflow
    clients = []
    try:
        for _ in range(4):
            client = socket.socket()
            client.setblocking(False)
            client.connect_ex(server.getsockname())
            clients.append(client)
        time.sleep(0.2)
    finally:
        for client in clients:
            client.close()
        server.close()
    probe.new_cycle()
    out = list(evaluate_listen_overflows(params, collect_listen_overflows(probe, params), store))
    assert [(r.severity, r.key) for r in out if isinstance(r, Result)] == [(Severity.WARN, "LISTEN_OVERFLOW")]
