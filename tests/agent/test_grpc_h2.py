"""agent.grpc_h2: the agent's gRPC-over-HTTP/2 client.

Two kinds of peers:

- the real collector (collector.ingest.grpc_service on grpc.aio, real SQLite store) on
  127.0.0.1, plain, TLS and mTLS with certificates made by ``openssl`` at test time;
- a scripted fake HTTP/2 server (``h2`` in server mode on a real socket) for what a
  real server never does on purpose: malformed headers, trailers, frames and bytes,
  resets, GOAWAY, withheld PING ACKs, tiny flow-control windows.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import pytest

from agent.grpc_h2 import RpcError, StatusCode, StreamCall, TlsConfig, encode_message, percent_decode
from agent.spool import Spool
from agent.streamer import HostIdentity, Streamer, StreamerSettings
from collector.ingest.grpc_service import GrpcSettings
from collector.store.store import Store
from protos.diag.v1 import agent_pb2 as pb
from tests.integration.harness import (
    REPO,
    InProcessCollector,
    batch_msg,
    free_port,
    hello_msg,
    result_seqs,
    wait_for,
)

PATH = "/diag.v1.AgentStream/Connect"


# --- helpers for the real collector ------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path / 'collector.db'}")
    yield s
    s.close()


@pytest.fixture
def token(store: Store) -> str:
    _, tok = store.enroll_agent("acme", "web1", "agent-1")
    return tok


def grpc_settings(**kw: Any) -> GrpcSettings:
    base: dict[str, Any] = {
        "listen": f"127.0.0.1:{free_port()}",
        "max_batch_entries": 1000,
        "rate_limit_entries_per_s": 1e6,
    }
    return GrpcSettings(**{**base, **kw})


@pytest.fixture
def collector(store: Store) -> Iterator[InProcessCollector]:
    c = InProcessCollector(store, grpc_settings(max_message_bytes=16 * 1024 * 1024))
    yield c
    c.stop()


def open_call(address: str, token: str, **kw: Any) -> StreamCall:
    call = StreamCall(address, PATH, (("authorization", f"Bearer {token}"),), connect_timeout_s=5, **kw)
    call.open()
    return call


def send(call: StreamCall, msg: pb.AgentMessage) -> None:
    call.send(msg.SerializeToString())


def reply(call: StreamCall, timeout: float = 10.0) -> pb.CollectorMessage:
    payload = call.recv(timeout)
    assert payload is not None, "the call ended with OK where a reply was expected"
    message: pb.CollectorMessage = pb.CollectorMessage.FromString(payload)
    return message


def status_of(call: StreamCall, timeout: float = 10.0) -> tuple[StatusCode, str]:
    """Read until the call ends; its status code and message."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if call.recv(max(0.01, deadline - time.monotonic())) is None:
                return StatusCode.OK, ""
        except RpcError as exc:
            return exc.code, exc.message
    raise AssertionError("the call did not end in time")


# --- against the real collector ----------------------------------------------------------------


def test_hello_welcome_batches_acks_and_a_clean_close(collector, store, token) -> None:
    call = open_call(collector.address, token)
    send(call, hello_msg("agent-1"))
    welcome = reply(call).welcome
    assert (welcome.agent_id, welcome.customer, welcome.resume_after_seq) == ("agent-1", "acme", 0)
    send(call, batch_msg(range(1, 4)))
    send(call, batch_msg(range(4, 6)))
    assert reply(call).ack.durable_through_seq == 3
    assert reply(call).ack.durable_through_seq == 5
    assert call.close(5.0) is None  # END_STREAM, the collector's loop sees EOF and ends with OK
    assert call.recv(0.1) is None and call.done
    assert result_seqs(store, "agent-1") == [1, 2, 3, 4, 5]
    with pytest.raises(RpcError):  # sending on an ended call is an error, not a silent drop
        send(call, batch_msg([6]))


def test_multi_megabyte_batches_pass_flow_control(collector, store, token) -> None:
    big = [batch_msg(range(1 + i * 200, 201 + i * 200), n_metrics=400) for i in range(2)]
    assert all(m.ByteSize() > 3_000_000 for m in big)  # far beyond any initial HTTP/2 window
    call = open_call(collector.address, token)
    try:
        send(call, hello_msg("agent-1"))
        assert reply(call).WhichOneof("body") == "welcome"
        for msg in big:  # queued back to back: the transport paces them by the server's windows
            send(call, msg)
        assert reply(call, 60).ack.durable_through_seq == 200
        assert reply(call, 60).ack.durable_through_seq == 400
    finally:
        call.close(5.0)
    assert result_seqs(store, "agent-1") == list(range(1, 401))
    assert collector.metrics.registry.get_sample_value("diag_ingest_points_total") == 400 * 400


def test_a_bad_token_is_unauthenticated_with_the_servers_message(collector, store) -> None:
    call = open_call(collector.address, "dga_not-a-real-token")
    send(call, hello_msg("agent-1"))
    assert status_of(call) == (StatusCode.UNAUTHENTICATED, "unknown or revoked agent token")
    with pytest.raises(RpcError) as err:  # later reads see the same end
        call.recv(1)
    assert err.value.code == StatusCode.UNAUTHENTICATED


def test_a_message_over_the_servers_limit_is_resource_exhausted(store, token) -> None:
    c = InProcessCollector(store, grpc_settings(max_message_bytes=64 * 1024))
    try:
        call = open_call(c.address, token)
        send(call, hello_msg("agent-1"))
        reply(call)
        send(call, batch_msg(range(1, 50), n_metrics=100))
        code, _ = status_of(call)
        assert code == StatusCode.RESOURCE_EXHAUSTED
        assert result_seqs(store, "agent-1") == []
    finally:
        c.stop()


def test_nothing_listening_is_unavailable() -> None:
    call = StreamCall(f"127.0.0.1:{free_port()}", PATH, connect_timeout_s=2)
    with pytest.raises(RpcError) as err:
        call.open()
    assert err.value.code == StatusCode.UNAVAILABLE and "cannot connect" in err.value.message


def test_collector_restart_mid_stream_is_unavailable_then_a_new_call_resumes(store, token) -> None:
    settings = grpc_settings()
    first = InProcessCollector(store, settings)
    call = open_call(first.address, token)
    send(call, hello_msg("agent-1"))
    reply(call)
    send(call, batch_msg(range(1, 3)))
    assert reply(call).ack.durable_through_seq == 2
    first.stop()
    code, message = status_of(call)
    assert code == StatusCode.UNAVAILABLE, message
    second = InProcessCollector(store, settings)  # same port
    try:
        again = open_call(second.address, token)
        send(again, hello_msg("agent-1"))
        assert reply(again).welcome.resume_after_seq == 2
        send(again, batch_msg(range(3, 5)))
        assert reply(again).ack.durable_through_seq == 4
        assert again.close(5.0) is None
    finally:
        second.stop()
    assert result_seqs(store, "agent-1") == [1, 2, 3, 4]


def test_no_grpc_module_in_a_streaming_agent_process(collector, store, token, tmp_path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from tests.integration import agent_proc
        rc = agent_proc.main([
            "--spool", {str(tmp_path / "spool.db")!r}, "--collector", {collector.address!r},
            "--token", {token!r}, "--agent-id", "agent-1", "--count", "40", "--rate", "400",
            "--exit-when-drained",
        ])
        print("rc", rc, "grpc loaded:", "grpc" in sys.modules, "h2 loaded:", "h2" in sys.modules)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert "rc 0 grpc loaded: False h2 loaded: True" in out.stdout, out.stdout + out.stderr
    assert result_seqs(store, "agent-1") == list(range(1, 41))


# --- TLS and mTLS against the real collector ---------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_ca: Path
    rogue_cert: Path
    rogue_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _signed(d: Path, name: str, ca: str, ext: str) -> None:
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", f"/CN={name}", cwd=d)  # fmt: skip
    (d / f"{name}.ext").write_text(ext)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-out", f"{name}.pem", "-days", "2",
             "-extfile", f"{name}.ext", cwd=d)  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("h2-pki")
    for ca in ("ca", "rogue-ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key", "-out", f"{ca}.pem",
                 "-days", "2", "-subj", f"/CN=test {ca}", cwd=d)  # fmt: skip
    _signed(d, "server", "ca", "subjectAltName=IP:127.0.0.1,DNS:collector.test\n")
    _signed(d, "client", "ca", "extendedKeyUsage=clientAuth\n")
    _signed(d, "rogue", "rogue-ca", "extendedKeyUsage=clientAuth\n")
    return Pki(d / "ca.pem", d / "server.pem", d / "server.key", d / "client.pem", d / "client.key",
               d / "rogue-ca.pem", d / "rogue.pem", d / "rogue.key")  # fmt: skip


def tls_collector(store: Store, pki: Pki, mtls: bool) -> InProcessCollector:
    return InProcessCollector(
        store,
        grpc_settings(
            tls_cert_file=pki.server_cert,
            tls_key_file=pki.server_key,
            tls_client_ca_file=pki.ca if mtls else None,
        ),
    )


def round_trip(address: str, token: str, tls: TlsConfig, seq: int) -> tuple[StatusCode, str]:
    """Hello, one batch, half-close: the final status (OK when the batch was acknowledged)."""
    try:
        call = open_call(address, token, tls=tls)
    except RpcError as exc:
        return exc.code, exc.message
    try:
        send(call, hello_msg("agent-1"))
        send(call, batch_msg([seq]))
        call.half_close()
        return status_of(call)
    except RpcError as exc:  # ended before we were done sending (e.g. the TLS alert came first)
        return exc.code, exc.message
    finally:
        call.close(1.0)


def test_tls_with_the_ca_alpn_h2_and_a_server_name_override(store, token, pki) -> None:
    c = tls_collector(store, pki, mtls=False)
    try:
        call = open_call(c.address, token, tls=TlsConfig(ca_file=pki.ca))
        assert call.peer_alpn == "h2"
        send(call, hello_msg("agent-1"))
        assert reply(call).welcome.agent_id == "agent-1"
        assert call.close(5.0) is None
        override = TlsConfig(ca_file=pki.ca, server_name="collector.test")
        assert round_trip(c.address, token, override, 1) == (StatusCode.OK, "")
        code, message = round_trip(c.address, token, TlsConfig(ca_file=pki.rogue_ca), 2)
        assert code == StatusCode.UNAVAILABLE and "certificate verify failed" in message
        code, message = round_trip(c.address, token, TlsConfig(ca_file=pki.ca, server_name="other.test"), 3)
        assert code == StatusCode.UNAVAILABLE and "other.test" in message
        # a plaintext call to the TLS port fails cleanly too
        plain = StreamCall(c.address, PATH, connect_timeout_s=5)
        plain.open()
        assert status_of(plain)[0] in (StatusCode.UNAVAILABLE, StatusCode.INTERNAL)
    finally:
        c.stop()
    assert result_seqs(store, "agent-1") == [1]


def test_mtls_needs_a_client_certificate_from_the_ca(store, token, pki) -> None:
    c = tls_collector(store, pki, mtls=True)
    try:
        assert round_trip(c.address, token, TlsConfig(ca_file=pki.ca), 1)[0] == StatusCode.UNAVAILABLE
        rogue = TlsConfig(ca_file=pki.ca, cert_file=pki.rogue_cert, key_file=pki.rogue_key)
        assert round_trip(c.address, token, rogue, 1)[0] == StatusCode.UNAVAILABLE
        assert result_seqs(store, "agent-1") == []
        good = TlsConfig(ca_file=pki.ca, cert_file=pki.client_cert, key_file=pki.client_key)
        assert round_trip(c.address, token, good, 1) == (StatusCode.OK, "")
        missing = TlsConfig(ca_file=pki.ca, cert_file=pki.client_cert, key_file=Path("/nonexistent.key"))
        with pytest.raises(RpcError) as err:
            open_call(c.address, token, tls=missing)
        assert err.value.code == StatusCode.UNAVAILABLE
    finally:
        c.stop()
    assert result_seqs(store, "agent-1") == [1]


# --- a scripted fake HTTP/2 server ------------------------------------------------------------


class Peer:
    """The server end of one connection: an h2 server connection on a blocking socket."""

    def __init__(self, sock: socket.socket, settings: dict[h2.settings.SettingCodes, int]) -> None:
        self.sock = sock
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding=None)
        )
        self.conn.local_settings = h2.settings.Settings(client=False, initial_values=settings)
        self.conn.initiate_connection()
        self.flush()
        self.events: list[h2.events.Event] = []
        self.received = bytearray()
        request = self.wait_for(h2.events.RequestReceived)
        assert isinstance(request, h2.events.RequestReceived)
        self.stream_id = request.stream_id
        self.request_headers = {bytes(k).decode(): bytes(v).decode() for k, v in request.headers or ()}

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def pump(self, timeout: float = 5.0) -> list[h2.events.Event]:
        self.sock.settimeout(timeout)
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("client closed the connection")
        events = self.conn.receive_data(data)
        for event in events:
            if isinstance(event, h2.events.DataReceived):
                self.received += event.data or b""
                if event.flow_controlled_length:
                    self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        self.events.extend(events)
        self.flush()
        return events

    def wait_for(self, kind: type[h2.events.Event], timeout: float = 5.0) -> h2.events.Event:
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if isinstance(event, kind):
                    self.events.remove(event)
                    return event
            if time.monotonic() > deadline:
                raise AssertionError(f"no {kind.__name__}")
            self.pump(max(0.01, deadline - time.monotonic()))

    def wait_for_messages(self, n: int, timeout: float = 5.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while True:
            messages, rest = _split(bytes(self.received))
            if len(messages) >= n:
                return messages
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(messages)} messages, {len(rest)} bytes left over")
            self.pump(max(0.01, deadline - time.monotonic()))

    def headers(self, extra: list[tuple[str, str]] = (), end: bool = False, status: str = "200") -> None:  # type: ignore[assignment]
        base = [(":status", status), ("content-type", "application/grpc")]
        self.conn.send_headers(self.stream_id, base + list(extra), end_stream=end)
        self.flush()

    def data(self, payload: bytes, end: bool = False) -> None:
        self.conn.send_data(self.stream_id, payload, end_stream=end)
        self.flush()

    def trailers(self, status: str, message: str | None = None) -> None:
        items = [("grpc-status", status)] + ([("grpc-message", message)] if message is not None else [])
        self.conn.send_headers(self.stream_id, items, end_stream=True)
        self.flush()


def _split(buf: bytes) -> tuple[list[bytes], bytes]:
    out = []
    while len(buf) >= 5:
        length = int.from_bytes(buf[1:5], "big")
        if len(buf) < 5 + length:
            break
        out.append(buf[5 : 5 + length])
        buf = buf[5 + length :]
    return out, buf


class FakeServer:
    """Accepts one connection and runs ``script(peer)`` on it in a thread."""

    def __init__(
        self, script: Callable[[Peer], None], settings: dict[h2.settings.SettingCodes, int] | None = None
    ) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.errors: list[BaseException] = []
        self.peer: Peer | None = None
        self._script = script
        self._settings = settings or {}
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.listener.settimeout(10)
        try:
            sock, _ = self.listener.accept()
        except OSError as exc:  # the test never connected; it reports that itself
            self.errors.append(exc)
            return
        with sock:
            try:
                self.peer = Peer(sock, self._settings)
                self._script(self.peer)
            except (AssertionError, OSError, EOFError, h2.exceptions.H2Error) as exc:
                self.errors.append(exc)
            _drain(sock)

    def join(self) -> None:
        self._thread.join(10)
        self.listener.close()
        assert not self._thread.is_alive()
        assert not self.errors, self.errors


def _drain(sock: socket.socket) -> None:
    """Close gracefully: closing with unread bytes (a late WINDOW_UPDATE) would send a TCP RST
    and the client could lose frames it had not read yet."""
    with contextlib.suppress(OSError):  # the client may have closed first
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(0.2)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and sock.recv(65536):
            pass


@contextlib.contextmanager
def fake(
    script: Callable[[Peer], None], settings: dict[h2.settings.SettingCodes, int] | None = None, **kw: Any
) -> Iterator[StreamCall]:
    server = FakeServer(script, settings)
    call = StreamCall(server.address, PATH, (("authorization", "Bearer t0k"),), connect_timeout_s=5, **kw)
    call.open()
    try:
        yield call
    finally:
        call.close(1.0)
        server.join()


def test_request_headers_messages_and_trailers_per_the_spec() -> None:
    seen: dict[str, str] = {}

    def script(peer: Peer) -> None:
        seen.update(peer.request_headers)
        assert peer.wait_for_messages(2) == [b"one", b""]
        peer.headers()
        # two messages in one DATA frame, then one split over three frames
        peer.data(encode_message(b"a") + encode_message(b"bc"))
        third = encode_message(b"x" * 1000)
        for i in range(0, len(third), 400):
            peer.data(third[i : i + 400])
        peer.wait_for(h2.events.StreamEnded)  # the client half-closed
        peer.trailers("0")

    with fake(script, user_agent="diag-agent/9 grpc-h2-python") as call:
        call.send(b"one")
        call.send(b"")
        assert [call.recv(5), call.recv(5), call.recv(5)] == [b"a", b"bc", b"x" * 1000]
        assert call.close(5) is None
    assert seen == {
        ":method": "POST",
        ":scheme": "http",
        ":path": PATH,
        ":authority": seen[":authority"],
        "content-type": "application/grpc",
        "te": "trailers",
        "user-agent": "diag-agent/9 grpc-h2-python",
        "authorization": "Bearer t0k",
    }
    assert seen[":authority"].startswith("127.0.0.1:")


@pytest.mark.parametrize(
    ("respond", "code", "message"),
    [
        pytest.param(
            lambda p: p.headers(
                [("grpc-status", "16"), ("grpc-message", "bad%20token %C3%A9t%C3%A9")], end=True
            ),
            StatusCode.UNAUTHENTICATED,
            "bad token été",
            id="trailers-only, percent-encoded UTF-8 message",
        ),
        pytest.param(
            lambda p: (p.headers(), p.trailers("8", "slow%20down")),
            StatusCode.RESOURCE_EXHAUSTED,
            "slow down",
            id="headers then trailers",
        ),
        pytest.param(
            lambda p: (p.headers(), p.trailers("99")), StatusCode.UNKNOWN, "status 99", id="unknown code"
        ),
        pytest.param(
            lambda p: (p.headers(), p.trailers("abc")),
            StatusCode.UNKNOWN,
            "missing or invalid grpc-status 'abc'",
            id="non-numeric grpc-status",
        ),
        pytest.param(
            lambda p: (
                p.headers(),
                p.conn.send_headers(p.stream_id, [("x-other", "1")], end_stream=True),
                p.flush(),
            ),
            StatusCode.UNKNOWN,
            "missing or invalid grpc-status None",
            id="trailers without grpc-status",
        ),
        pytest.param(
            lambda p: p.headers(end=True),
            StatusCode.UNKNOWN,
            "the server ended the stream without a grpc-status",
            id="headers with END_STREAM and no status",
        ),
        pytest.param(
            lambda p: (p.headers(), p.data(b"", end=True)),
            StatusCode.UNKNOWN,
            "the server ended the stream without a grpc-status",
            id="END_STREAM on DATA, no trailers",
        ),
        pytest.param(
            lambda p: p.headers(status="503", end=True),
            StatusCode.UNAVAILABLE,
            "HTTP status 503",
            id="HTTP 503 without grpc-status",
        ),
        pytest.param(
            lambda p: p.headers(status="404", end=True),
            StatusCode.UNIMPLEMENTED,
            "HTTP status 404",
            id="HTTP 404 without grpc-status",
        ),
        pytest.param(
            lambda p: (
                p.conn.send_headers(p.stream_id, [(":status", "200"), ("content-type", "text/html")]),
                p.flush(),
            ),
            StatusCode.UNKNOWN,
            "not a gRPC response (content-type 'text/html')",
            id="not application/grpc",
        ),
        pytest.param(
            lambda p: (p.headers(), p.data(b"\x00\x00\x00\x00\x09abc"), p.trailers("0")),
            StatusCode.INTERNAL,
            "the stream ended inside a message",
            id="trailers inside a message",
        ),
        pytest.param(
            lambda p: (p.headers(), p.data(b"\x01\x00\x00\x00\x01z")),
            StatusCode.INTERNAL,
            "compressed message, but no encoding was offered",
            id="compressed flag",
        ),
        pytest.param(
            lambda p: (p.headers(), p.data(b"\x00\x00\x01\x00\x01")),
            StatusCode.RESOURCE_EXHAUSTED,
            "received message of 65537 bytes, larger than the limit of 65536",
            id="message over the receive limit",
        ),
        pytest.param(
            lambda p: (p.conn.reset_stream(p.stream_id, h2.errors.ErrorCodes.REFUSED_STREAM), p.flush()),
            StatusCode.UNAVAILABLE,
            "stream reset by the server (REFUSED_STREAM)",
            id="RST_STREAM REFUSED_STREAM",
        ),
        pytest.param(
            lambda p: (p.headers(), p.conn.reset_stream(p.stream_id, h2.errors.ErrorCodes.CANCEL), p.flush()),
            StatusCode.CANCELLED,
            "stream reset by the server (CANCEL)",
            id="RST_STREAM CANCEL",
        ),
        pytest.param(
            lambda p: (p.conn.reset_stream(p.stream_id, h2.errors.ErrorCodes.PROTOCOL_ERROR), p.flush()),
            StatusCode.INTERNAL,
            "stream reset by the server (PROTOCOL_ERROR)",
            id="RST_STREAM PROTOCOL_ERROR",
        ),
        pytest.param(
            lambda p: (
                p.conn.close_connection(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, b"too_many_pings", 0),
                p.flush(),
            ),
            StatusCode.UNAVAILABLE,
            "the server closed the connection (GOAWAY ENHANCE_YOUR_CALM: too_many_pings)",
            id="GOAWAY",
        ),
        pytest.param(
            lambda p: p.sock.shutdown(socket.SHUT_RDWR),
            StatusCode.UNAVAILABLE,
            "closed the connection",
            id="TCP close mid-stream",
        ),
    ],
)
def test_statuses_and_broken_responses_end_the_call_clearly(
    respond: Callable[[Peer], object], code: StatusCode, message: str
) -> None:
    def script(peer: Peer) -> None:
        peer.wait_for_messages(1)
        respond(peer)
        with contextlib.suppress(OSError, EOFError, h2.exceptions.H2Error):  # the client hangs up
            for _ in range(20):
                peer.pump(0.2)

    with fake(script, max_receive_message_bytes=65536) as call:
        call.send(b"hello")
        got_code, got_message = status_of(call, 5)
    assert got_code == code
    assert message in got_message


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", id="HTTP/1.1 answer"),
        pytest.param(b"\x00\x00\x05\x09\x00\x00\x00\x00\x01hello", id="CONTINUATION out of nowhere"),
        pytest.param(b"\x00\x00\x04\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00", id="zero window increment"),
    ],
)
def test_malformed_frames_are_an_internal_error_not_a_crash(garbage: bytes) -> None:
    def script(peer: Peer) -> None:
        peer.wait_for_messages(1)
        peer.sock.sendall(garbage)
        with contextlib.suppress(OSError, EOFError, h2.exceptions.H2Error):  # the client gives up on us
            for _ in range(20):
                peer.pump(0.2)

    with fake(script) as call:
        call.send(b"hello")
        code, message = status_of(call, 5)
    assert code == StatusCode.INTERNAL and "HTTP/2 protocol error" in message


def test_outgoing_data_respects_tiny_windows_and_frame_size() -> None:
    payload = bytes(range(256)) * 1200  # 300 KB through a 1,000-byte initial window
    frames: list[int] = []

    def script(peer: Peer) -> None:
        peer.wait_for(h2.events.SettingsAcknowledged)
        peer.headers()
        peer.data(encode_message(b"ready"))  # after our SETTINGS on the wire: the client knows the window
        deadline = time.monotonic() + 10
        while len(peer.received) < len(payload) + 5 and time.monotonic() < deadline:
            for event in peer.pump(1.0):
                if isinstance(event, h2.events.DataReceived):
                    frames.append(event.flow_controlled_length)
                    # grant a little more each time; h2 would raise FlowControlError on an overrun
                    peer.conn.increment_flow_control_window(4096)
                    peer.conn.increment_flow_control_window(4096, peer.stream_id)
                    peer.flush()
        assert peer.wait_for_messages(1) == [payload]
        peer.trailers("0")

    with fake(script, settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1000}) as call:
        # Before the server's SETTINGS arrive a client may use the default 65,535-byte
        # window (RFC 9113 6.9.2); h2 on the server side cannot take that, so wait.
        assert call.recv(5) == b"ready"
        call.send(payload)
        assert status_of(call) == (StatusCode.OK, "")
    assert frames and max(frames) <= 16384 and frames[0] <= 1000


def test_a_large_incoming_message_needs_and_gets_window_updates() -> None:
    big = bytes(range(256)) * 12_000  # 3 MB, several times the client's receive window

    def script(peer: Peer) -> None:
        peer.wait_for_messages(1)
        peer.headers()
        framed = memoryview(encode_message(big))
        deadline = time.monotonic() + 20
        while framed and time.monotonic() < deadline:
            room = min(peer.conn.local_flow_control_window(peer.stream_id), peer.conn.max_outbound_frame_size)
            if room == 0:
                peer.pump(1.0)  # waits for the client's WINDOW_UPDATE
                continue
            peer.data(framed[:room].tobytes())
            framed = framed[room:]
        assert not framed, "the client stopped granting window"
        peer.trailers("0")

    with fake(script, max_receive_message_bytes=8 * 1024 * 1024) as call:
        call.send(b"go")
        assert call.recv(20) == big
        assert status_of(call) == (StatusCode.OK, "")


def test_server_pings_are_answered_and_keepalive_pings_are_sent() -> None:
    pings: list[object] = []

    def script(peer: Peer) -> None:
        peer.wait_for_messages(1)
        peer.headers()
        peer.conn.ping(b"12345678")
        peer.flush()
        assert isinstance(peer.wait_for(h2.events.PingAckReceived), h2.events.PingAckReceived)
        pings.append(peer.wait_for(h2.events.PingReceived, 3))  # the client's keepalive (h2 ACKs it)
        pings.append(peer.wait_for(h2.events.PingReceived, 3))
        peer.trailers("0")

    with fake(script, keepalive_time_s=0.3, keepalive_timeout_s=1.0) as call:
        call.send(b"hi")
        assert status_of(call) == (StatusCode.OK, "")
    assert len(pings) == 2


def test_a_missing_ping_ack_is_unavailable() -> None:
    def script(peer: Peer) -> None:
        peer.wait_for_messages(1)
        peer.headers()
        time.sleep(1.5)  # reads nothing, so h2 never ACKs the client's PING

    with fake(script, keepalive_time_s=0.2, keepalive_timeout_s=0.4) as call:
        call.send(b"hi")
        code, message = status_of(call, 5)
    assert code == StatusCode.UNAVAILABLE and "keepalive" in message


def test_close_without_trailers_times_out_into_a_cancel() -> None:
    reset: list[h2.events.Event] = []

    def script(peer: Peer) -> None:
        peer.wait_for_messages(1)
        peer.headers()
        peer.wait_for(h2.events.StreamEnded)  # the half-close arrives, but we never answer
        reset.append(peer.wait_for(h2.events.StreamReset, 5))

    with fake(script) as call:
        call.send(b"hi")
        started = time.monotonic()
        error = call.close(0.5)
        assert error is not None and error.code == StatusCode.CANCELLED
        assert time.monotonic() - started < 3
    assert isinstance(reset[0], h2.events.StreamReset)
    assert reset[0].error_code == h2.errors.ErrorCodes.CANCEL


def test_addresses_and_metadata_are_validated() -> None:
    for bad in ("no-port", "host:", ":50051", "host:99999"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            StreamCall(bad, PATH)
    with pytest.raises(ValueError, match="metadata"):
        StreamCall("127.0.0.1:1", PATH, (("Authorization", "x"),))
    with pytest.raises(ValueError, match="metadata"):
        StreamCall("127.0.0.1:1", PATH, (("authorization", "line\nbreak"),))
    assert percent_decode("100%") == "100%" and percent_decode("%zz%41") == "%zzA"


# --- the streamer on this transport ------------------------------------------------------------


def _streamer(address: str, tmp_path: Path) -> tuple[Streamer, Spool]:
    spool = Spool(tmp_path / "spool.db")
    settings = StreamerSettings(address=address, token="t0k", backoff_base_s=0.05, backoff_cap_s=0.1)
    return Streamer(spool, settings, HostIdentity("agent-1", "web1")), spool


def test_streamer_stop_half_closes_and_waits_for_the_status(tmp_path) -> None:
    ended: list[str] = []

    def script(peer: Peer) -> None:
        hello = pb.AgentMessage.FromString(peer.wait_for_messages(1)[0])
        assert hello.hello.agent_id == "agent-1"
        peer.headers()
        peer.data(
            encode_message(pb.CollectorMessage(welcome=pb.Welcome(agent_id="agent-1")).SerializeToString())
        )
        ended.append(type(peer.wait_for(h2.events.StreamEnded, 10)).__name__)  # END_STREAM, not RST_STREAM
        peer.trailers("0")

    server = FakeServer(script)
    streamer, spool = _streamer(server.address, tmp_path)
    try:
        streamer.start()
        assert wait_for(lambda: streamer.connected, 5)
        streamer.stop(2)
        server.join()
    finally:
        spool.close()
    assert ended == ["StreamEnded"]
    assert streamer.last_error is None


def test_streamer_ends_a_session_on_an_undecodable_message(tmp_path, caplog) -> None:
    def script(peer: Peer) -> None:
        peer.wait_for_messages(1)
        peer.headers()
        peer.data(encode_message(b"\xff\xff\xff\xff"))  # not a CollectorMessage
        with contextlib.suppress(OSError, EOFError, h2.exceptions.H2Error):  # the streamer hangs up
            peer.wait_for(h2.events.StreamReset, 5)

    server = FakeServer(script)
    streamer, spool = _streamer(server.address, tmp_path)
    try:
        streamer.start()
        assert wait_for(lambda: streamer.last_error is not None, 5)
        server.join()
        # The session's own end, as logged: last_error may already hold the next attempt's
        # error (the fake server is gone), since the streamer retries after 0.1 s.
        assert "ended (INTERNAL: undecodable message from the collector)" in caplog.text
        assert wait_for(lambda: streamer.sessions >= 2, 5)  # and it keeps trying
    finally:
        streamer.stop(0.5)
        spool.close()
