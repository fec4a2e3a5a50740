"""sock_diag against real sockets on 127.0.0.1 / ::1 opened by the test itself.

Other tests on this machine open and close sockets concurrently, so counts are
compared as increases of at least what this test created, and listeners by port.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import struct
import time
from collections.abc import Iterator

import pytest

from checks.network._sockdiag import (
    ALL_STATES,
    NLMSG_DONE,
    NLMSG_ERROR,
    SOCK_DIAG_BY_FAMILY,
    ListenSocket,
    build_compat_request,
    build_request,
    dump_tcp,
    parse_messages,
    tcp_sockets,
)
from checks.probe import Probe
from tests.conftest import fixture_probe


@contextlib.contextmanager
def listener(
    backlog: int = 5, family: int = socket.AF_INET, host: str = "127.0.0.1"
) -> Iterator[socket.socket]:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.bind((host, 0))
        sock.listen(backlog)
        yield sock
    finally:
        sock.close()


def total(summary_counts: dict[str, dict[str, int]], state: str) -> int:
    return sum(states[state] for states in summary_counts.values())


@pytest.mark.parametrize("method", ["compat", "v2"])
def test_listeners_report_address_port_backlog_and_accept_queue(method):
    with listener(backlog=7) as server:
        port = server.getsockname()[1]
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        try:
            summary = dump_tcp(method=method)
        finally:
            for client in clients:
                client.close()
    ours = [s for s in summary.listeners if s.port == port]
    assert ours == [ListenSocket("ipv4", "127.0.0.1", port, accept_queue=2, backlog=7)]


def test_ipv6_listener_is_reported_with_its_family():
    try:
        ctx = listener(family=socket.AF_INET6, host="::1")
        server = ctx.__enter__()
    except OSError as exc:  # pragma: no cover - this host has IPv6 loopback; others may not
        pytest.fail(f"IPv6 loopback unavailable: {exc}")
    try:
        port = server.getsockname()[1]
        summary = dump_tcp()
        assert [s for s in summary.listeners if s.port == port] == [ListenSocket("ipv6", "::1", port, 0, 5)]
        assert summary.counts["ipv6"]["LISTEN"] >= 1
    finally:
        ctx.__exit__(None, None, None)


@pytest.mark.parametrize("method", ["compat", "v2"])
def test_states_count_established_pairs_and_close_wait(method):
    before = dump_tcp(method=method).counts
    with listener(backlog=16) as server:
        port = server.getsockname()[1]
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        accepted = [server.accept()[0] for _ in range(3)]
        established = dump_tcp(method=method).counts
        for client in clients:
            client.close()  # the peer's FIN puts each accepted socket in CLOSE_WAIT
        time.sleep(0.05)
        closing = dump_tcp(method=method).counts
        for sock in accepted:
            sock.close()
    assert set(established) == {"ipv4", "ipv6"}
    assert established["ipv4"]["ESTABLISHED"] >= 6  # both ends of three pairs
    assert total(closing, "CLOSE_WAIT") - total(before, "CLOSE_WAIT") >= 3
    assert total(closing, "FIN_WAIT2") - total(before, "FIN_WAIT2") >= 3


def test_compat_and_v2_agree_on_our_listeners():
    with listener() as a, listener() as b:
        ports = {a.getsockname()[1], b.getsockname()[1]}
        compat = {s for s in dump_tcp(method="compat").listeners if s.port in ports}
        v2 = {s for s in dump_tcp(method="v2").listeners if s.port in ports}
    assert compat == v2
    assert {s.port for s in compat} == ports


def test_listen_only_dump_has_no_other_states():
    with listener() as server:
        summary = dump_tcp(states=1 << 10)
        assert server.getsockname()[1] in {s.port for s in summary.listeners}
    assert all(
        count == 0 for states in summary.counts.values() for s, count in states.items() if s != "LISTEN"
    )


def test_tcp_sockets_memoises_and_serves_listen_only_from_a_full_dump():
    probe = Probe()
    full = tcp_sockets(probe)
    assert full.summary is not None and full.error is None
    assert tcp_sockets(probe) is full
    assert tcp_sockets(probe, listen_only=True) is full
    probe.new_cycle()
    listen_only = tcp_sockets(probe, listen_only=True)
    assert listen_only is not full and listen_only.summary is not None


def test_listen_only_first_does_the_full_dump_when_the_last_cycle_wanted_one():
    # host.listening_ports runs before network.tcp_states: one netlink dump serves both.
    probe = Probe()
    tcp_sockets(probe, listen_only=True)
    tcp_sockets(probe)
    assert {"network:sock_diag:tcp:listen", "network:sock_diag:tcp"} <= probe.cache.keys()
    probe.new_cycle()
    listeners = tcp_sockets(probe, listen_only=True)
    assert probe.cache.get("network:sock_diag:tcp") is listeners
    assert "network:sock_diag:tcp:listen" not in probe.cache
    assert tcp_sockets(probe) is listeners
    # Without a full request in a cycle (network.tcp_states disabled), the next cycle
    # goes back to the LISTEN-only dump.
    probe.new_cycle()
    tcp_sockets(probe, listen_only=True)
    assert set(probe.cache) == {"network:sock_diag:tcp"}
    probe.new_cycle()
    tcp_sockets(probe, listen_only=True)
    assert set(probe.cache) == {"network:sock_diag:tcp:listen"}
    probe.new_cycle()
    tcp_sockets(probe, listen_only=True)
    assert set(probe.cache) == {"network:sock_diag:tcp:listen"}


def test_tcp_sockets_refuses_to_describe_a_fixture_tree():
    outcome = tcp_sockets(fixture_probe("net-basic"))
    assert outcome.summary is None
    assert "probe root" in (outcome.error or "")


def test_tcp_sockets_reports_refused_netlink_instead_of_raising(monkeypatch):
    # A kernel that refuses NETLINK_SOCK_DIAG (seccomp, gVisor) cannot be produced here
    # unprivileged, so socket creation is made to fail the way it does there.
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr("checks.network._sockdiag.socket.socket", refuse)
    outcome = tcp_sockets(Probe())
    assert outcome.summary is None
    assert outcome.error == "NETLINK_SOCK_DIAG unavailable: Operation not permitted"


# -- parsing crafted replies --------------------------------------------------------


def message(kind: int, payload: bytes, seq: int = 1) -> bytes:
    return struct.pack("=IHHII", 16 + len(payload), kind, 2, seq, 0) + payload


def diag_msg(family: int, state: int, port: int = 0, address: bytes = bytes(16), queues=(0, 0)) -> bytes:
    sockid = struct.pack(">HH", port, 0) + address + bytes(16) + bytes(12)
    return struct.pack("=BBBB", family, state, 0, 0) + sockid + struct.pack("=IIIII", 0, *queues, 0, 0)


def test_parse_counts_states_maps_new_syn_recv_and_ignores_other_families():
    counts: dict[int, list[int]] = {2: [0] * 12, 10: [0] * 12}
    listeners: list[ListenSocket] = []
    data = b"".join(
        [
            message(SOCK_DIAG_BY_FAMILY, diag_msg(2, 1)),
            message(SOCK_DIAG_BY_FAMILY, diag_msg(2, 12)),  # NEW_SYN_RECV request socket
            message(
                SOCK_DIAG_BY_FAMILY, diag_msg(10, 10, 443, socket.inet_pton(socket.AF_INET6, "::"), (1, 128))
            ),
            message(SOCK_DIAG_BY_FAMILY, diag_msg(44, 1)),  # a family we do not count
            message(SOCK_DIAG_BY_FAMILY, diag_msg(2, 8), seq=99),  # not ours: skipped
        ]
    )
    assert parse_messages(data, counts, listeners, 1) is False
    assert counts[2][1] == 1 and counts[2][3] == 1 and counts[10][10] == 1 and sum(counts[2]) == 2
    assert listeners == [ListenSocket("ipv6", "::", 443, 1, 128)]
    assert parse_messages(message(NLMSG_DONE, struct.pack("=i", 0)), counts, listeners, 1) is True


@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        pytest.param(
            message(NLMSG_ERROR, struct.pack("=i", -errno.EPERM)), OSError, "refused", id="kernel refusal"
        ),
        pytest.param(
            message(NLMSG_DONE, struct.pack("=i", -errno.EINTR)), OSError, "failed", id="dump failed"
        ),
        pytest.param(message(SOCK_DIAG_BY_FAMILY, b"\x02\x01")[:-1], ValueError, "claims", id="cut datagram"),
        pytest.param(
            message(SOCK_DIAG_BY_FAMILY, b"\x02\x01" + bytes(10)), ValueError, "truncated", id="short msg"
        ),
        pytest.param(struct.pack("=IHHII", 3, 20, 0, 1, 0), ValueError, "claims 3", id="length below header"),
        pytest.param(
            message(SOCK_DIAG_BY_FAMILY, diag_msg(2, 1)) + b"\x00\x01", ValueError, "trailing", id="trailing"
        ),
    ],
)
def test_parse_rejects_errors_and_garbage(data, error, match):
    with pytest.raises(error, match=match):
        parse_messages(data, {2: [0] * 12}, [], 1)


def test_parse_raises_the_kernels_errno():
    with pytest.raises(OSError) as caught:
        parse_messages(message(NLMSG_ERROR, struct.pack("=i", -errno.EPERM)), {2: [0] * 12}, [], 1)
    assert caught.value.errno == errno.EPERM


def test_requests_have_the_kernel_layouts():
    v2 = build_request(socket.AF_INET6, ALL_STATES, 5)
    assert struct.unpack_from("=IHHII", v2) == (72, SOCK_DIAG_BY_FAMILY, 0x301, 5, 0)
    assert struct.unpack_from("=BBBxI", v2, 16) == (socket.AF_INET6, socket.IPPROTO_TCP, 0, ALL_STATES)
    compat = build_compat_request(1 << 10, 3)
    assert struct.unpack_from("=IHHII", compat) == (76, 18, 0x301, 3, 0)
    assert struct.unpack_from("=I", compat, 16 + 52) == (1 << 10,)
