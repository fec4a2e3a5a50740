from __future__ import annotations

import pytest

from checks.api import Metric, Result, Severity, Unit
from checks.network.sockets import SocketsParams, SocketsSection, collect_sockets, evaluate_sockets
from checks.probe import Probe
from tests.conftest import fixture_probe


def test_collect_reads_sockstat_sockstat6_and_tcp_mem():
    got = collect_sockets(fixture_probe("net-basic"), SocketsParams())
    assert got == SocketsSection(29, 11, 3, 2, 14, 47, 1, 2, 4, (287898, 383867, 575796), got.page_size)


def test_collect_without_ipv6_or_tcp_mem():
    got = collect_sockets(fixture_probe("net-noipv6"), SocketsParams())
    assert (got.tcp6_inuse, got.udp6_inuse, got.tcp_mem_limits_pages, got.tcp_orphan) == (None, None, None, 4)


def test_collect_on_this_host():
    assert collect_sockets(Probe(), SocketsParams()).sockets_used > 0


@pytest.mark.parametrize("host", ["net-garbled", "net-empty"])
def test_collect_rejects_bad_sockstat(host):
    with pytest.raises(ValueError, match="/proc/net/sockstat"):
        collect_sockets(fixture_probe(host), SocketsParams())


def test_collect_rejects_garbled_tcp_mem(tmp_path):
    (tmp_path / "proc/net").mkdir(parents=True)
    (tmp_path / "proc/sys/net/ipv4").mkdir(parents=True)
    (tmp_path / "proc/net/sockstat").write_text(
        "sockets: used 1\nTCP: inuse 1 orphan 0 tw 0 alloc 1 mem 1\nUDP: inuse 0\n"
    )
    (tmp_path / "proc/sys/net/ipv4/tcp_mem").write_text("1 2\n")
    with pytest.raises(ValueError, match="/proc/sys/net/ipv4/tcp_mem"):
        collect_sockets(Probe(root=tmp_path), SocketsParams())


def section(orphans=0, mem_pages=47):
    return SocketsSection(29, 11, orphans, 2, 14, mem_pages, 1, 2, 4, (1000, 2000, 3000), 4096)


@pytest.mark.parametrize(
    ("sec", "expected"),
    [
        pytest.param(section(), [(Severity.OK, "OK")] * 3, id="healthy"),
        pytest.param(section(orphans=1500), [(Severity.OK, "OK"), (Severity.WARN, "TCP_ORPHANS_HIGH"),
                                             (Severity.OK, "OK")], id="orphans warn"),
        pytest.param(section(orphans=6000), [(Severity.OK, "OK"), (Severity.CRIT, "TCP_ORPHANS_HIGH"),
                                             (Severity.OK, "OK")], id="orphans crit"),
        pytest.param(section(mem_pages=2500), [(Severity.OK, "OK"), (Severity.OK, "OK"),
                                               (Severity.WARN, "TCP_MEMORY_PRESSURE")], id="memory pressure"),
    ],
)  # fmt: skip
def test_evaluate(sec, expected):
    out = list(evaluate_sockets(SocketsParams(), sec, {}))
    assert [(r.severity, r.key) for r in out if isinstance(r, Result)] == expected
    assert Metric("net_tcp_memory_bytes", sec.tcp_mem_pages * 4096, Unit.BYTES) in out
    assert Metric("net_udp_inuse_count", 4, Unit.COUNT, {"family": "ipv6"}) in out
