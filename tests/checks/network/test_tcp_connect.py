from __future__ import annotations

import socket
import time

import pytest
from pydantic import ValidationError

from checks.api import Metric, Result, Severity, SkipCheck, Unit
from checks.network.tcp_connect import (
    ConnectOutcome,
    Endpoint,
    TcpConnectParams,
    TcpConnectSection,
    collect_tcp_connect,
    evaluate_tcp_connect,
)
from checks.probe import Probe


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once closed: connect is refused


def test_skips_without_endpoints():
    with pytest.raises(SkipCheck, match="no endpoints"):
        collect_tcp_connect(Probe(), TcpConnectParams())


def test_real_listener_refused_port_and_timeout_in_parallel():
    with socket.socket() as server, socket.socket() as full:
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        filler = socket.create_connection(
            full.getsockname()
        )  # fills the accept queue: later SYNs are dropped
        try:
            params = TcpConnectParams(
                endpoints=(
                    Endpoint(name="up", host="127.0.0.1", port=server.getsockname()[1]),
                    Endpoint(name="refused", host="127.0.0.1", port=closed_port()),
                    Endpoint(name="stuck", host="127.0.0.1", port=full.getsockname()[1], timeout_s=0.4),
                    Endpoint(name="stuck2", host="localhost", port=full.getsockname()[1], timeout_s=0.4),
                )
            )
            started = time.monotonic()
            section = collect_tcp_connect(Probe(), params)
            elapsed = time.monotonic() - started
        finally:
            filler.close()
    up, refused, stuck, stuck2 = section.outcomes
    assert up.error is None and up.seconds is not None and 0 < up.seconds < 0.4
    assert (refused.seconds, refused.error) == (None, "connection refused")
    assert (stuck.seconds, stuck.error) == (None, "timed out after 400.0 ms")
    assert stuck2.error == "timed out after 400.0 ms" and stuck2.address == "127.0.0.1"
    assert 0.35 < elapsed < 1.0  # the two timeouts ran in parallel, not one after the other
    out = list(evaluate_tcp_connect(params, section, {}))
    assert [(r.item, r.severity, r.key) for r in out if isinstance(r, Result)] == [
        ("up", Severity.OK, "OK"),
        ("refused", Severity.CRIT, "TCP_CONNECT_FAILED"),
        ("stuck", Severity.CRIT, "TCP_CONNECT_FAILED"),
        ("stuck2", Severity.CRIT, "TCP_CONNECT_FAILED"),
    ]
    assert Metric("net_tcp_connect_success_boolean", 0.0, Unit.BOOLEAN, {"endpoint": "refused"}) in out


def test_unresolvable_host_fails_without_traffic():
    # A label over 63 characters is rejected before any query leaves the host.
    params = TcpConnectParams(endpoints=(Endpoint(name="bad", host="a" * 64 + ".invalid", port=80),))
    (outcome,) = collect_tcp_connect(Probe(), params).outcomes
    assert (
        outcome.seconds is None and outcome.error is not None and outcome.error.startswith("cannot resolve")
    )


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        pytest.param(0.001, (Severity.OK, "OK"), id="fast"),
        pytest.param(0.7, (Severity.WARN, "TCP_CONNECT_SLOW"), id="slow"),
        pytest.param(2.5, (Severity.CRIT, "TCP_CONNECT_SLOW"), id="very slow"),
    ],
)
def test_evaluate_latency_levels(seconds, expected):
    section = TcpConnectSection((ConnectOutcome("db", "db.local", 5432, "10.0.0.9", seconds, None),))
    out = list(evaluate_tcp_connect(TcpConnectParams(), section, {}))
    assert [(r.severity, r.key) for r in out if isinstance(r, Result)] == [expected]
    assert Metric("net_tcp_connect_seconds", seconds, Unit.SECONDS, {"endpoint": "db"}) in out


def test_params_reject_duplicate_names_and_bad_ports():
    with pytest.raises(ValidationError, match="unique"):
        TcpConnectParams(
            endpoints=({"name": "a", "host": "h", "port": 1}, {"name": "a", "host": "h", "port": 2})
        )
    with pytest.raises(ValidationError):
        Endpoint(name="a", host="h", port=0)
