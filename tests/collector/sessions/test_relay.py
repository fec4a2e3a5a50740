"""The relay end to end on the collector side: real gRPC loopback (a fake agent, see
harness.py, until the agent side is merged), real uvicorn WebSockets, real SQLite."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State
from websockets.sync.client import ClientConnection, connect
from websockets.uri import parse_uri

from collector.sessions.relay import INITIAL_WINDOW
from collector.store import Store
from collector.store.queries import Scope
from collector.store.sessions import SessionRepo
from protos.diag.v1 import agent_pb2 as pb
from tests.collector.sessions.conftest import KEY, open_case
from tests.collector.sessions.harness import FakeAgent, SessionCollector
from tests.integration.harness import batch_msg, wait_for


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path / 'collector.db'}")
    yield s
    s.close()


@pytest.fixture
def collector(sqlite_store: Store) -> Iterator[SessionCollector]:
    c = SessionCollector(sqlite_store)
    yield c
    c.stop()


def _setup(store: Store) -> dict[str, str]:
    case = open_case(store, "acme", "db1")
    open_case(store, "globex", "erp1")
    tokens = {
        "case": case,
        "eng": store.create_api_token("eng", "engineer"),
        "eng2": store.create_api_token("eng2", "engineer"),
        "admin": store.create_api_token("acme-admin", "customer_admin", customer="acme"),
    }
    # the agents' tokens: enrolled by open_case; a fresh token each for the test's streams
    for customer, host in (("acme", "db1"), ("globex", "erp1")):
        _, token = store.enroll_agent(customer, host, f"{customer}-{host}-live")
        tokens[host] = token
    return tokens


def _request(c: SessionCollector, t: dict[str, str], host: str = "db1") -> str:
    r = httpx.post(
        f"{c.base}/api/v1/sessions",
        headers={"Authorization": f"Bearer {t['eng']}"},
        json={
            "host": host,
            "case": t["case"],
            "reason": "disk full",
            "mode": "shell",
            "public_key": KEY,
            "duration_s": 600,
        },
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _ws(c: SessionCollector, sid: str, token: str) -> ClientConnection:
    url = f"{c.ws_base}/api/v1/sessions/{sid}/connect"
    return connect(url, additional_headers={"Authorization": f"Bearer {token}"})


@contextlib.contextmanager
def _stalled_client(c: SessionCollector, sid: str, token: str) -> Iterator[socket.socket]:
    """A WebSocket client that connects, sends one byte and never reads again (small receive buffer)."""
    proto = ClientProtocol(parse_uri(f"{c.ws_base}/api/v1/sessions/{sid}/connect"))
    request = proto.connect()
    request.headers["Authorization"] = f"Bearer {token}"
    proto.send_request(request)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", int(c.base.rsplit(":", 1)[1])))
    try:
        sock.sendall(b"".join(proto.data_to_send()))
        while proto.state is State.CONNECTING:
            proto.receive_data(sock.recv(4096))
        proto.send_binary(b"a")
        sock.sendall(b"".join(proto.data_to_send()))
        yield sock
    finally:
        sock.close()


def _closed_with(ws: ClientConnection) -> tuple[int | None, str]:
    with pytest.raises(ConnectionClosed) as info:
        ws.recv(timeout=5)
    rcvd = info.value.rcvd
    return (rcvd.code, rcvd.reason) if rcvd else (None, "")


def test_grant_approve_relay_and_revoke_cuts_off_at_once(
    collector: SessionCollector, sqlite_store: Store
) -> None:
    t = _setup(sqlite_store)
    agent = FakeAgent(collector.address, t["db1"], "acme-db1-live", approve=False)
    try:
        sid = _request(collector, t)
        grant = agent.grants.get(timeout=5)
        assert (grant.session_id, grant.approval, grant.mode, grant.engineer_public_key) == (
            sid,
            "",
            "shell",
            KEY,
        )
        # not approved by the agent yet: connect is refused with a reason, and audited
        with _ws(collector, sid, t["eng"]) as ws:
            code, reason = _closed_with(ws)
        assert code == 4409 and "not approved by the agent" in reason
        # the customer's admin approves: the agent gets the grant again, approved
        r = httpx.post(
            f"{collector.base}/api/v1/sessions/{sid}/approve",
            headers={"Authorization": f"Bearer {t['admin']}"},
        )
        assert r.status_code == 200 and r.json()["approval"] == "customer_admin"
        again = agent.grants.get(timeout=5)
        assert (again.approval, again.approved_by) == ("customer_admin", "acme-admin")
        agent.send(
            pb.AgentMessage(
                session_status=pb.SessionStatus(
                    session_id=sid, state="approved", host_key="ssh-ed25519 AAAAk", host_key_sha256="SHA256:k"
                )
            )
        )
        repo = SessionRepo(sqlite_store)
        assert wait_for(lambda: repo.get(Scope.everything(), sid).agent_state == "approved", 5)
        shown = httpx.get(
            f"{collector.base}/api/v1/sessions/{sid}", headers={"Authorization": f"Bearer {t['eng']}"}
        ).json()
        assert shown["connectable"] and shown["known_hosts_line"] == f"diag-session-{sid} ssh-ed25519 AAAAk"
        assert f"user@{sid}" in shown["ssh_command"]
        # only its engineer may connect
        with _ws(collector, sid, t["eng2"]) as ws:
            assert _closed_with(ws)[0] == 4403
        with _ws(collector, sid, t["admin"]) as ws:
            assert _closed_with(ws)[0] == 4403
        with _ws(collector, sid, "not-a-token") as ws:
            assert _closed_with(ws)[0] == 4401
        with _ws(collector, sid, t["eng"]) as ws:
            ws.send(b"hello agent")
            assert ws.recv(timeout=5) == b"HELLO AGENT"
            big = bytes(range(256)) * 4096  # 1 MiB: more than both windows
            ws.send(big)
            got = b""
            while len(got) < len(big):
                got += ws.recv(timeout=10)  # type: ignore[operator]
            assert got == big.upper()
            # results keep flowing on the same agent stream while the session is open
            agent.send(batch_msg([1, 2, 3]))
            ack = agent.other.get(timeout=5)
            assert ack.ack.durable_through_seq == 3
            # revoked by the customer's admin: the socket is cut off at once
            r = httpx.post(
                f"{collector.base}/api/v1/sessions/{sid}/revoke",
                headers={"Authorization": f"Bearer {t['admin']}"},
            )
            assert r.status_code == 200 and r.json()["state"] == "revoked"
            started = time.monotonic()
            code, reason = _closed_with(ws)
            assert time.monotonic() - started < 1.0, "revocation must cut the session off within 1 s"
            assert code == 4410 and "revoked" in reason
        assert wait_for(lambda: sid in agent.revoked, 5)
        with _ws(collector, sid, t["eng"]) as ws:
            assert _closed_with(ws)[0] == 4409
        assert wait_for(lambda: any(e.event == "ended" for e in repo.audit(Scope.everything(), sid)), 5)
        events = [e.event for e in repo.audit(Scope.everything(), sid)]
        assert events[:3] == ["requested", "refused", "approved"]
        assert {"agent_approved", "started", "revoked", "ended"} <= set(events)
        streams = repo.streams(Scope.everything(), sid)
        assert (
            streams[-1].bytes_in == len(b"hello agent") + len(big)
            and streams[-1].bytes_out == streams[-1].bytes_in
        )
        assert repo.verify_audit(Scope.everything())[0].first_bad_seq is None
    finally:
        agent.close()


def test_grants_are_resent_on_reconnect_and_expiry_revokes(
    collector: SessionCollector, sqlite_store: Store
) -> None:
    t = _setup(sqlite_store)
    sid = _request(collector, t)  # the agent is offline: stored, sent on connect
    agent = FakeAgent(collector.address, t["db1"], "acme-db1-live")
    try:
        assert agent.grants.get(timeout=5).session_id == sid
        repo = SessionRepo(sqlite_store)
        assert wait_for(lambda: repo.get(Scope.everything(), sid).agent_state == "approved", 5)
        with _ws(collector, sid, t["eng"]) as ws:
            ws.send(b"x")
            assert ws.recv(timeout=5) == b"X"
            # not_after passes: the collector revokes by itself
            with sqlite_store.engine.begin() as conn:
                from collector.store.schema_sessions import sessions

                conn.execute(sessions.update().where(sessions.c.id == sid).values(not_after=time.time()))
            code, reason = _closed_with(ws)
            assert code == 4410 and "expired" in reason
        assert repo.get(Scope.everything(), sid).state == "expired"
        assert wait_for(lambda: sid in agent.revoked, 5)
    finally:
        agent.close()


def test_hostile_agent_frames_are_refused_counted_and_contained(
    collector: SessionCollector, sqlite_store: Store
) -> None:
    t = _setup(sqlite_store)
    sid = _request(collector, t)
    bad = FakeAgent(collector.address, t["db1"], "acme-db1-live", honour_window=False)
    other = FakeAgent(collector.address, t["erp1"], "globex-erp1-live")
    try:
        repo = SessionRepo(sqlite_store)
        assert wait_for(lambda: repo.get(Scope.everything(), sid).agent_state == "approved", 5)
        # another agent claims the session, and sends data for streams it was not given
        other.send(pb.AgentMessage(session_status=pb.SessionStatus(session_id=sid, state="revoked")))
        other.send(pb.AgentMessage(session_data=pb.SessionData(stream_id=1, data=b"spoof")))
        assert wait_for(
            lambda: collector.refused("foreign_session") == 1 and collector.refused("unknown_stream") == 1, 5
        )
        assert repo.get(Scope.everything(), sid).agent_state == "approved"
        with _ws(collector, sid, t["eng"]) as ws:
            ws.send(b"ping")
            assert ws.recv(timeout=5) == b"PING"
            (stream_id,) = bad.opened
            # an oversized frame ends this stream only
            bad.send(
                pb.AgentMessage(session_data=pb.SessionData(stream_id=stream_id, data=b"x" * (32 * 1024 + 1)))
            )
            _code, reason = _closed_with(ws)
            assert "oversized" in reason
        assert collector.refused("oversized") == 1
        assert wait_for(lambda: stream_id in bad.closed, 5)
        # the engineer's client stops reading: the agent may send only what the window allows,
        # so the collector holds at most one window, however much the agent has to send
        with _stalled_client(collector, sid, t["eng"]):
            assert wait_for(lambda: len(bad.opened) == 2, 5)
            stream_id = max(bad.opened)
            sent = bad.flood(stream_id, 64 * 1024 * 1024)
            assert sent < 64 * 1024 * 1024, "the window never closed"
            (relay,) = [s for s in collector.hub._streams.values() if s.stream_id == stream_id]
            assert relay.inbound_bytes <= INITIAL_WINDOW
            # a frame beyond the window is refused and ends that stream
            bad.send(pb.AgentMessage(session_data=pb.SessionData(stream_id=stream_id, data=b"z")))
            assert wait_for(lambda: collector.refused("over_window") == 1, 5)
            assert wait_for(lambda: stream_id in bad.closed, 5)
        # the other agent's stream is untouched: its results are still acknowledged
        other.send(batch_msg([1]))
        assert other.other.get(timeout=5).ack.durable_through_seq == 1
    finally:
        bad.close()
        other.close()


def test_a_stream_status_ends_that_connection_not_the_session(
    collector: SessionCollector, sqlite_store: Store
) -> None:
    """The agent reports each connection's end (SessionStatus with stream_id): the collector
    closes that WebSocket with the agent's reason, and the session stays connectable."""
    t = _setup(sqlite_store)
    agent = FakeAgent(collector.address, t["db1"], "acme-db1-live")
    repo = SessionRepo(sqlite_store)
    try:
        sid = _request(collector, t)
        assert wait_for(lambda: repo.get(Scope.everything(), sid).agent_state == "approved", 5)
        for n, (state, why) in enumerate(
            (("ended", "the shell exited"), ("refused", "too many open streams"))
        ):
            with _ws(collector, sid, t["eng"]) as ws:
                assert wait_for(lambda: len(agent.opened) == n + 1, 5)  # noqa: B023
                stream_id = max(agent.opened)
                status = pb.SessionStatus(session_id=sid, state=state, reason=why, stream_id=stream_id)
                agent.send(pb.AgentMessage(session_status=status))
                code, reason = _closed_with(ws)
            assert why in reason and state in reason, (code, reason)
            record = repo.get(Scope.everything(), sid)
            assert record.agent_state == "approved" and record.connectable(time.time()) is None
        # a stream status naming another session, or a stream that is not open, changes nothing
        agent.send(
            pb.AgentMessage(session_status=pb.SessionStatus(session_id=sid, state="ended", stream_id=99))
        )
        with _ws(collector, sid, t["eng"]) as ws:
            ws.send(b"still here")
            assert ws.recv(timeout=5) == b"STILL HERE"
        assert repo.get(Scope.everything(), sid).agent_state == "approved"
    finally:
        agent.close()
