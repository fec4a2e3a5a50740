"""A small gRPC client for one bidirectional streaming call, on ``h2`` and stdlib sockets.

grpcio costs the agent about 18 MB of RSS for the one call it makes
(``/diag.v1.AgentStream/Connect``). This module speaks the same wire protocol
("gRPC over HTTP2", grpc/grpc ``doc/PROTOCOL-HTTP2.md``) with the pure-Python ``h2``
state machine, :mod:`socket`, :mod:`selectors` and, only when TLS is configured,
:mod:`ssl`:

- one HTTP/2 connection per call, one stream on it: ``POST`` with ``:scheme``,
  ``:path``, ``:authority``, ``content-type: application/grpc``, ``te: trailers``,
  ``user-agent`` and the caller's metadata (e.g. ``authorization``);
- messages are length-prefixed (a 1-byte compressed flag, always 0 here, and a
  4-byte big-endian length); received messages larger than ``max_receive_message_bytes``
  end the call with ``RESOURCE_EXHAUSTED``;
- HTTP/2 flow control: outgoing DATA never exceeds the peer's stream and connection
  windows or its maximum frame size; received DATA is acknowledged as soon as it is
  buffered, so the peer can keep sending;
- the status comes from ``grpc-status`` / ``grpc-message`` (percent-decoded) in the
  trailers, or in the headers of a trailers-only response; a non-200 ``:status``,
  ``RST_STREAM``, ``GOAWAY``, an HTTP/2 protocol error or a broken connection map to
  the codes the gRPC spec gives them (connection failures: ``UNAVAILABLE``);
- keepalive: a PING every ``keepalive_time_s`` without traffic from the peer, and
  ``UNAVAILABLE`` when its ACK does not arrive within ``keepalive_timeout_s``; the
  peer's PINGs are answered (``h2`` does that as it parses them);
- TLS with ALPN ``h2``, a CA file, an optional client certificate (mTLS) and a
  server name override (used for the certificate check, SNI and ``:authority``).

Threading: :meth:`StreamCall.open` connects (blocking, bounded by ``connect_timeout_s``)
and starts one I/O thread that alone owns the socket and the ``h2`` connection. It
waits in a selector on the socket and a wake-up socket pair; :meth:`StreamCall.send`,
:meth:`StreamCall.half_close` and :meth:`StreamCall.cancel` only queue work and wake
it, and received messages reach :meth:`StreamCall.recv` through a queue. So any
thread may send while another receives.

A graceful ``GOAWAY`` ends the call with ``UNAVAILABLE`` right away instead of
letting the stream drain (``h2`` refuses every frame after a GOAWAY); for the agent
that only means a reconnect and a replay the collector deduplicates.

>>> encode_message(b"hi")
b'\\x00\\x00\\x00\\x00\\x02hi'
>>> percent_decode("bad%20token%3A%2")
'bad token:%2'
>>> status_from_http(503)
<StatusCode.UNAVAILABLE: 14>
"""

from __future__ import annotations

import contextlib
import enum
import logging
import queue
import selectors
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

__all__ = [
    "RpcError",
    "StatusCode",
    "StreamCall",
    "TlsConfig",
    "encode_message",
    "parse_address",
    "percent_decode",
    "status_from_http",
]

log = logging.getLogger("agent.grpc_h2")

_PREFIX: Final = struct.Struct(">BI")
_FRAME_HEADER: Final = 9
_READ_CHUNK: Final = 256 * 1024
_WRITE_CHUNK: Final = 256 * 1024
_RECV_WINDOW: Final = 4 * 1024 * 1024
"""Our stream and connection receive windows (data is acknowledged as soon as it is buffered)."""
_MAX_HEADER_LIST: Final = 64 * 1024
_VERSION: Final = "0.1"


class StatusCode(enum.IntEnum):
    """gRPC status codes (``grpc/status.h``)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class RpcError(Exception):
    """A call ended with a status other than OK: ``code`` and the server's (or our) ``message``."""

    def __init__(self, code: StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """TLS for the call: the CA to trust (None: the system's), a client certificate for mTLS."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    server_name: str | None = None
    """Name to check in the server's certificate (and send as SNI and ``:authority``)."""


# HTTP/2 error codes of RST_STREAM -> gRPC status (PROTOCOL-HTTP2.md, "Errors").
_RST_STATUS: Final[dict[int, StatusCode]] = {
    h2.errors.ErrorCodes.REFUSED_STREAM: StatusCode.UNAVAILABLE,
    h2.errors.ErrorCodes.CANCEL: StatusCode.CANCELLED,
    h2.errors.ErrorCodes.ENHANCE_YOUR_CALM: StatusCode.RESOURCE_EXHAUSTED,
    h2.errors.ErrorCodes.INADEQUATE_SECURITY: StatusCode.PERMISSION_DENIED,
}

# HTTP status without grpc-status -> gRPC status (doc/http-grpc-status-mapping.md).
_HTTP_STATUS: Final = {
    400: StatusCode.INTERNAL,
    401: StatusCode.UNAUTHENTICATED,
    403: StatusCode.PERMISSION_DENIED,
    404: StatusCode.UNIMPLEMENTED,
    429: StatusCode.UNAVAILABLE,
    502: StatusCode.UNAVAILABLE,
    503: StatusCode.UNAVAILABLE,
    504: StatusCode.UNAVAILABLE,
}


def status_from_http(status: int) -> StatusCode:
    """The gRPC status for an HTTP response status that carries no ``grpc-status``."""
    return _HTTP_STATUS.get(status, StatusCode.UNKNOWN)


def percent_decode(value: str) -> str:
    """Decode ``grpc-message``: ``%XX`` escapes of UTF-8 bytes; malformed escapes stay as they are."""
    if "%" not in value:
        return value
    out = bytearray()
    raw = value.encode("utf-8", "replace")
    i = 0
    while i < len(raw):
        if raw[i] == 0x25 and i + 2 < len(raw) and _is_hex(raw[i + 1 : i + 3]):
            out.append(int(raw[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return out.decode("utf-8", "replace")


def _is_hex(pair: bytes) -> bool:
    return len(pair) == 2 and all(c in b"0123456789abcdefABCDEF" for c in pair)


def encode_message(payload: bytes) -> bytes:
    """One gRPC length-prefixed message (uncompressed)."""
    return _PREFIX.pack(0, len(payload)) + payload


def parse_address(address: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` -> (host, port).

    >>> parse_address("[::1]:443"), parse_address("collector.example:50051")
    (('::1', 443), ('collector.example', 50051))
    """
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"address {address!r} is not HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


class _End:
    __slots__ = ("error",)

    def __init__(self, error: RpcError | None) -> None:
        self.error = error


class StreamCall:
    """One bidirectional streaming call on its own HTTP/2 connection.

    >>> call = StreamCall("127.0.0.1:1", "/diag.v1.AgentStream/Connect", connect_timeout_s=2)
    >>> try:
    ...     call.open()
    ... except RpcError as exc:
    ...     print(exc.code.name)
    UNAVAILABLE
    """

    def __init__(
        self,
        address: str,
        path: str,
        metadata: Sequence[tuple[str, str]] = (),
        *,
        tls: TlsConfig | None = None,
        user_agent: str = f"grpc-h2-python/{_VERSION}",
        connect_timeout_s: float = 20.0,
        keepalive_time_s: float = 60.0,
        keepalive_timeout_s: float = 20.0,
        max_receive_message_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        self.address = address
        self._host, self._port = parse_address(address)
        self._path = path
        self._metadata = tuple(metadata)
        for key, value in self._metadata:
            if key != key.lower() or key.startswith(":") or not value.isprintable() or not value.isascii():
                raise ValueError(f"invalid metadata key or value for {key!r}")
        self._tls = tls
        self._user_agent = user_agent
        self._connect_timeout_s = connect_timeout_s
        self._keepalive_time_s = keepalive_time_s
        self._keepalive_timeout_s = keepalive_timeout_s
        self._max_receive = max_receive_message_bytes
        self._conn: h2.connection.H2Connection | None = None
        self._sock: socket.socket | None = None
        self._stream_id = 0
        self._lock = threading.Lock()
        self._outbox: deque[memoryview] = deque()
        self._half_close_requested = False
        self._cancel_requested = False
        self._half_closed = False
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._inbox: queue.SimpleQueue[bytes | _End] = queue.SimpleQueue()
        self._final: _End | None = None
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._rbuf = bytearray()
        self._inbuf = bytearray()
        self._wbuf = bytearray()
        self._last_peer_activity = 0.0
        self._ping_sent_at: float | None = None
        self._retry_errors: tuple[type[Exception], ...] = (BlockingIOError,)
        self.peer_alpn: str | None = None

    # -- public API ---------------------------------------------------------------------------

    def open(self) -> None:
        """Connect, negotiate HTTP/2 and send the request headers; raises :class:`RpcError`."""
        if self._thread is not None:
            raise RuntimeError("call already opened")
        try:
            sock = self._connect()
        except (OSError, ValueError) as exc:  # refused, unreachable, TLS failure, unreadable cert files
            self._finish(RpcError(StatusCode.UNAVAILABLE, f"cannot connect to {self.address}: {exc}"))
            raise RpcError(StatusCode.UNAVAILABLE, f"cannot connect to {self.address}: {exc}") from None
        self._sock = sock
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        conn = h2.connection.H2Connection(config=config)
        conn.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _RECV_WINDOW,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: _MAX_HEADER_LIST,
            },
        )
        conn.initiate_connection()
        conn.increment_flow_control_window(_RECV_WINDOW - 65_535)
        self._stream_id = conn.get_next_available_stream_id()
        conn.send_headers(self._stream_id, self._request_headers())
        self._conn = conn
        self._wbuf += conn.data_to_send()
        self._last_peer_activity = time.monotonic()
        sock.setblocking(False)
        self._thread = threading.Thread(target=self._io_loop, name="grpc-h2", daemon=True)
        self._thread.start()

    def send(self, payload: bytes) -> None:
        """Queue one message; it goes out as the peer's flow-control windows allow.

        Raises :class:`RpcError` when the call already ended, ValueError after :meth:`half_close`.
        """
        final = self._final
        if final is not None:
            raise final.error or RpcError(StatusCode.INTERNAL, "the call already ended")
        with self._lock:
            if self._half_close_requested:
                raise ValueError("send after half_close")
            self._outbox.append(memoryview(encode_message(payload)))
        self._wake()

    def half_close(self) -> None:
        """No more messages from us: END_STREAM once everything queued has been sent."""
        with self._lock:
            self._half_close_requested = True
        self._wake()

    def cancel(self) -> None:
        """Abort the call (RST_STREAM CANCEL) and close the connection; recv then raises CANCELLED."""
        with self._lock:
            self._cancel_requested = True
        self._wake()
        if self._thread is None:
            self._finish(RpcError(StatusCode.CANCELLED, "cancelled before it was opened"))

    def recv(self, timeout: float | None = None) -> bytes | None:
        """The next message; None once the call ended with OK.

        Raises :class:`RpcError` when it ended otherwise, :class:`TimeoutError` when
        nothing arrived within ``timeout``.
        """
        if self._final is not None and self._inbox.empty():
            self._raise_if_error(self._final)
            return None
        try:
            item = self._inbox.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError("no message within the timeout") from None
        if isinstance(item, _End):
            self._inbox.put(item)  # later recv calls see the end again
            self._raise_if_error(item)
            return None
        return item

    def close(self, timeout_s: float = 5.0) -> RpcError | None:
        """Half-close, wait up to ``timeout_s`` for the server's status, then cancel.

        Returns the call's error (None: it ended with OK). Safe to call more than once.
        """
        if self._thread is not None and not self._done.is_set():
            self.half_close()
            if not self._done.wait(timeout_s):
                self.cancel()
        else:
            self.cancel()
        if self._thread is not None:
            self._thread.join(timeout_s + 1.0)
        final = self._final
        return final.error if final is not None else None

    @property
    def done(self) -> bool:
        return self._done.is_set()

    # -- connecting ---------------------------------------------------------------------------

    def _request_headers(self) -> list[tuple[bytes, bytes]]:
        tls = self._tls
        host = tls.server_name if tls is not None and tls.server_name else self._host
        authority = f"[{host}]:{self._port}" if ":" in host else f"{host}:{self._port}"
        headers = [
            (b":method", b"POST"),
            (b":scheme", b"https" if tls is not None else b"http"),
            (b":path", self._path.encode()),
            (b":authority", authority.encode("idna" if not host.isascii() else "ascii")),
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
            (b"user-agent", self._user_agent.encode()),
        ]
        headers.extend((k.encode(), v.encode()) for k, v in self._metadata)
        return headers

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self._host, self._port), timeout=self._connect_timeout_s)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                sock = self._wrap_tls(sock, self._tls)
        except BaseException:
            sock.close()
            raise
        return sock

    def _wrap_tls(self, sock: socket.socket, tls: TlsConfig) -> socket.socket:
        import ssl  # only TLS users pay for it (about 4.6 MB RSS)

        ctx = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_alpn_protocols(["h2"])
        if tls.cert_file is not None:
            ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file) if tls.key_file else None)
        wrapped = ctx.wrap_socket(sock, server_hostname=tls.server_name or self._host)
        # Non-blocking TLS reads and writes may need the other direction first.
        self._retry_errors = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
        self.peer_alpn = wrapped.selected_alpn_protocol()
        if self.peer_alpn not in (None, "h2"):
            wrapped.close()
            raise OSError(f"the server negotiated {self.peer_alpn!r} instead of h2")
        return wrapped

    # -- the I/O thread -----------------------------------------------------------------------

    def _wake(self) -> None:
        with self._lock:  # never races the I/O thread closing the pair
            if self._wake_w is not None:
                with contextlib.suppress(BlockingIOError):  # full: a wake-up is pending anyway
                    self._wake_w.send(b"\0")

    @staticmethod
    def _raise_if_error(end: _End) -> None:
        if end.error is not None:
            raise end.error

    def _finish(self, error: RpcError | None) -> None:
        with self._lock:
            if self._final is not None:
                return
            self._final = _End(error)
        self._inbox.put(self._final)
        self._done.set()

    def _io_loop(self) -> None:
        sock = self._sock
        conn = self._conn
        wake_r = self._wake_r
        assert sock is not None and conn is not None and wake_r is not None
        sel = selectors.DefaultSelector()
        sel.register(sock, selectors.EVENT_READ)
        sel.register(wake_r, selectors.EVENT_READ)
        want_write = False
        try:
            while self._final is None:
                self._pump_outbound(conn)
                timeout = self._keepalive(conn)
                self._wbuf += conn.data_to_send()
                if self._final is not None:
                    break
                if self._wbuf:
                    self._flush(sock)
                if bool(self._wbuf) != want_write:
                    want_write = bool(self._wbuf)
                    events = selectors.EVENT_READ | (selectors.EVENT_WRITE if want_write else 0)
                    sel.modify(sock, events)
                for key, _ in sel.select(timeout):
                    if key.fileobj is wake_r:
                        with contextlib.suppress(BlockingIOError):  # drained by an earlier wake-up
                            wake_r.recv(4096)
                    elif self._read(sock, conn):
                        return
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError: the connection broke
            self._finish(RpcError(StatusCode.UNAVAILABLE, f"connection to {self.address} failed: {exc}"))
        except h2.exceptions.H2Error as exc:  # the peer broke HTTP/2 (h2 refused a frame)
            self._finish(RpcError(StatusCode.INTERNAL, f"HTTP/2 protocol error from {self.address}: {exc}"))
        except Exception as exc:
            # A bug here must end the call with a clear status, never leave recv() hanging.
            log.exception("gRPC transport to %s failed", self.address)
            self._finish(RpcError(StatusCode.INTERNAL, f"transport error: {exc!r}"))
        finally:
            self._shutdown(sel, sock, conn)

    def _shutdown(
        self, sel: selectors.BaseSelector, sock: socket.socket, conn: h2.connection.H2Connection
    ) -> None:
        self._finish(RpcError(StatusCode.UNAVAILABLE, "connection closed"))  # no-op if already ended
        # Best effort from here on: tell the peer we are gone (it may be gone itself).
        with contextlib.suppress(h2.exceptions.ProtocolError):  # the stream is closed already
            conn.reset_stream(self._stream_id, h2.errors.ErrorCodes.CANCEL)
        with contextlib.suppress(h2.exceptions.ProtocolError):  # the connection is closed already
            conn.close_connection()
        self._wbuf += conn.data_to_send()
        with contextlib.suppress(OSError):  # the peer closed the connection or the send timed out
            sock.settimeout(1.0)
            sock.sendall(bytes(self._wbuf[:65536]))
        sel.close()
        sock.close()
        with self._lock:
            if self._wake_r is not None and self._wake_w is not None:
                self._wake_r.close()
                self._wake_w.close()
                self._wake_w = None

    def _pump_outbound(self, conn: h2.connection.H2Connection) -> None:
        """Move queued messages into DATA frames as far as the peer's windows allow."""
        with self._lock:
            cancel = self._cancel_requested
            half_close = self._half_close_requested
        sid = self._stream_id
        if cancel:
            with contextlib.suppress(h2.exceptions.ProtocolError):  # the stream is already closed
                conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
            self._wbuf += conn.data_to_send()
            self._finish(RpcError(StatusCode.CANCELLED, "cancelled by the client"))
            return
        if self._half_closed or len(self._wbuf) >= _WRITE_CHUNK:
            return
        while True:
            with self._lock:
                head = self._outbox[0] if self._outbox else None
            if head is None:
                break
            size = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size, len(head))
            if size <= 0:
                break
            conn.send_data(sid, head[:size].tobytes())
            with self._lock:
                if size == len(head):
                    self._outbox.popleft()
                else:
                    self._outbox[0] = head[size:]
            self._wbuf += conn.data_to_send()
            if len(self._wbuf) >= _WRITE_CHUNK:
                return
        if half_close and not self._outbox:
            conn.end_stream(sid)
            self._half_closed = True
        self._wbuf += conn.data_to_send()

    def _flush(self, sock: socket.socket) -> None:
        while self._wbuf:
            try:
                sent = sock.send(self._wbuf[:_WRITE_CHUNK])
            except self._retry_errors:
                return  # the socket buffer is full: the selector says when to go on
            del self._wbuf[:sent]

    def _keepalive(self, conn: h2.connection.H2Connection) -> float:
        """Send a PING when the peer was quiet too long; fail when its ACK is late. Returns the wait."""
        now = time.monotonic()
        if self._ping_sent_at is not None:
            overdue = self._ping_sent_at + self._keepalive_timeout_s - now
            if overdue <= 0:
                self._finish(
                    RpcError(
                        StatusCode.UNAVAILABLE,
                        f"keepalive: no PING ACK from {self.address} within {self._keepalive_timeout_s:g} s",
                    )
                )
                return 0.0
            return overdue
        idle = now - self._last_peer_activity
        if idle >= self._keepalive_time_s:
            conn.ping(struct.pack(">Q", int(now * 1e6) & 0xFFFF_FFFF_FFFF_FFFF))
            self._ping_sent_at = now
            return self._keepalive_timeout_s
        return self._keepalive_time_s - idle

    def _read(self, sock: socket.socket, conn: h2.connection.H2Connection) -> bool:
        """Read what is there and handle it; True when the peer closed the connection."""
        while True:
            try:
                data = sock.recv(_READ_CHUNK)
            except self._retry_errors:
                return False
            if not data:
                self._finish(RpcError(StatusCode.UNAVAILABLE, f"{self.address} closed the connection"))
                return True
            self._last_peer_activity = time.monotonic()
            self._inbuf += data
            if self._feed(conn):
                return True

    def _feed(self, conn: h2.connection.H2Connection) -> bool:
        """Hand complete frames to h2 one at a time; True once the call has its outcome.

        One frame at a time, because h2 raises on the first frame after a GOAWAY and
        would drop the events of the frames before it (the GOAWAY's among them). The
        length check comes before the body arrives, so a peer that is not speaking
        HTTP/2 fails at once instead of after megabytes.
        """
        buf = self._inbuf
        while len(buf) >= _FRAME_HEADER:
            length = int.from_bytes(buf[:3], "big")
            if length > conn.max_inbound_frame_size:
                if buf.startswith(b"HTTP/"):
                    raise h2.exceptions.ProtocolError("the server answered in HTTP/1.x, not HTTP/2")
                raise h2.exceptions.FrameTooLargeError(
                    f"frame of {length} bytes, over the limit of {conn.max_inbound_frame_size}"
                )
            end = _FRAME_HEADER + length
            if len(buf) < end:
                break
            frame = bytes(buf[:end])
            del buf[:end]
            for event in conn.receive_data(frame):
                self._handle(conn, event)
            self._wbuf += conn.data_to_send()
            if self._final is not None:
                return True
        return False

    def _handle(self, conn: h2.connection.H2Connection, event: h2.events.Event) -> None:
        if self._final is not None:  # the rest of a frame that already decided the outcome
            return
        sid = self._stream_id
        if isinstance(event, h2.events.ResponseReceived) and event.stream_id == sid:
            self._on_headers(event.headers, event.stream_ended is not None)
        elif isinstance(event, h2.events.DataReceived) and event.stream_id == sid:
            if event.flow_controlled_length:
                conn.acknowledge_received_data(event.flow_controlled_length, sid)
            self._rbuf += event.data or b""
            self._parse_messages()
        elif isinstance(event, h2.events.TrailersReceived) and event.stream_id == sid:
            self._on_trailers(event.headers)
        elif isinstance(event, h2.events.StreamEnded) and event.stream_id == sid:
            self._finish(RpcError(StatusCode.UNKNOWN, "the server ended the stream without a grpc-status"))
        elif isinstance(event, h2.events.StreamReset) and event.stream_id == sid:
            code = _RST_STATUS.get(int(event.error_code or 0), StatusCode.INTERNAL)
            self._finish(RpcError(code, f"stream reset by the server ({_error_name(event.error_code)})"))
        elif isinstance(event, h2.events.ConnectionTerminated):
            extra = event.additional_data.decode("utf-8", "replace") if event.additional_data else ""
            detail = _error_name(event.error_code) + (f": {extra}" if extra else "")
            self._finish(
                RpcError(StatusCode.UNAVAILABLE, f"the server closed the connection (GOAWAY {detail})")
            )
        elif isinstance(event, h2.events.PingAckReceived):
            self._ping_sent_at = None
        # Settings, window updates, pings (answered by h2) need nothing more from us.

    def _on_headers(self, raw: list[tuple[bytes, bytes]] | None, ended: bool) -> None:
        headers = _header_dict(raw)
        status = headers.get(":status", "")
        if "grpc-status" in headers:  # trailers-only response (any :status)
            self._on_trailers(raw)
            return
        if status != "200":
            code = status_from_http(int(status)) if status.isdigit() else StatusCode.UNKNOWN
            self._finish(RpcError(code, f"HTTP status {status or '(none)'} from {self.address}"))
            return
        content_type = headers.get("content-type", "")
        if not content_type.startswith("application/grpc"):
            self._finish(RpcError(StatusCode.UNKNOWN, f"not a gRPC response (content-type {content_type!r})"))
            return
        if ended:
            self._finish(RpcError(StatusCode.UNKNOWN, "the server ended the stream without a grpc-status"))

    def _on_trailers(self, raw: list[tuple[bytes, bytes]] | None) -> None:
        headers = _header_dict(raw)
        value = headers.get("grpc-status")
        if value is None or not value.isdigit():
            self._finish(RpcError(StatusCode.UNKNOWN, f"missing or invalid grpc-status {value!r}"))
            return
        try:
            code = StatusCode(int(value))
        except ValueError:  # a code from a newer spec: UNKNOWN, as the spec says
            code = StatusCode.UNKNOWN
        message = percent_decode(headers.get("grpc-message", ""))
        if code == StatusCode.OK:
            if self._rbuf:
                self._finish(RpcError(StatusCode.INTERNAL, "the stream ended inside a message"))
            else:
                self._finish(None)
            return
        self._finish(RpcError(code, message or f"status {value}"))

    def _parse_messages(self) -> None:
        buf = self._rbuf
        while len(buf) >= _PREFIX.size:
            compressed, length = _PREFIX.unpack_from(buf)
            if compressed:
                self._finish(RpcError(StatusCode.INTERNAL, "compressed message, but no encoding was offered"))
                return
            if length > self._max_receive:
                self._finish(
                    RpcError(
                        StatusCode.RESOURCE_EXHAUSTED,
                        f"received message of {length} bytes, larger than the limit of {self._max_receive}",
                    )
                )
                return  # _shutdown resets the stream
            end = _PREFIX.size + length
            if len(buf) < end:
                return
            self._inbox.put(bytes(buf[_PREFIX.size : end]))
            del buf[:end]


def _header_dict(raw: list[tuple[bytes, bytes]] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in raw or ():
        out[bytes(key).decode("latin-1").lower()] = bytes(value).decode("latin-1")
    return out


def _error_name(code: object) -> str:
    return getattr(code, "name", str(code))
