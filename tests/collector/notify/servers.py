"""Real loopback servers for the notification tests: an HTTP receiver and a minimal SMTP server.

Both listen on 127.0.0.1 with an OS-chosen port, run in a background thread, record what
they receive, and stop within a bounded time. The SMTP server is a small asyncio
implementation of what smtplib uses (EHLO, STARTTLS, AUTH PLAIN, MAIL, RCPT, DATA, RSET,
NOOP, QUIT), so no extra dependency (aiosmtpd) is needed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

STOP_TIMEOUT_S = 5.0


# -- HTTP -------------------------------------------------------------------------------------


@dataclass
class HttpRequest:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpReceiver:
    """Answers POSTs with the scripted statuses (then 200), or hangs while ``hang`` is set."""

    statuses: list[int] = field(default_factory=list)
    extra_headers: dict[str, str] = field(default_factory=dict)
    hang: threading.Event = field(default_factory=threading.Event)
    requests: list[HttpRequest] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    port: int = 0

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@contextmanager
def http_receiver(statuses: list[int] | None = None, **kwargs: object) -> Iterator[HttpReceiver]:
    state = HttpReceiver(statuses=list(statuses or []), **kwargs)  # type: ignore[arg-type]
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            with lock:
                state.requests.append(HttpRequest(self.path, dict(self.headers.items()), body))
                status = state.statuses.pop(0) if state.statuses else 200
            if state.hang.is_set():
                # Hold the request open (bounded) so the client's timeout fires first.
                state.release.wait(STOP_TIMEOUT_S)
                return
            self.send_response(status)
            for name, value in state.extra_headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            # Keep pytest output clean; requests are recorded in state.requests.
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(STOP_TIMEOUT_S)


# -- TLS material -------------------------------------------------------------------------------


def make_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 / localhost; returns (cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "notify-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


# -- SMTP ---------------------------------------------------------------------------------------


@dataclass
class SmtpMessage:
    mail_from: str
    rcpt_to: list[str]
    data: bytes
    tls: bool
    user: str | None


@dataclass
class SmtpServer:
    """State and script of the SMTP server (see :func:`smtp_server`)."""

    tls: ssl.SSLContext | None = None
    credentials: tuple[str, str] | None = None
    data_replies: list[str] = field(default_factory=list)
    reject_rcpt: set[str] = field(default_factory=set)
    greet: bool = True
    messages: list[SmtpMessage] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    port: int = 0


async def _session(
    state: SmtpServer, stop: asyncio.Event, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    async def reply(line: str) -> None:
        writer.write(line.encode() + b"\r\n")
        await writer.drain()

    if not state.greet:
        # Say nothing until the test ends (bounded), so the client's timeout fires.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), STOP_TIMEOUT_S)
        writer.close()
        return
    await reply("220 notify-test ESMTP")
    tls = False
    user: str | None = None
    mail_from: str | None = None
    rcpts: list[str] = []
    while True:
        raw = await asyncio.wait_for(reader.readline(), STOP_TIMEOUT_S)
        if not raw:
            break
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        verb, _, arg = line.partition(" ")
        verb = verb.upper()
        state.commands.append(verb)
        if verb in ("EHLO", "HELO"):
            caps = ["notify-test", "8BITMIME", "SMTPUTF8"]
            if state.tls is not None and not tls:
                caps.append("STARTTLS")
            if state.credentials is not None and (tls or state.tls is None):
                caps.append("AUTH PLAIN")
            for cap in caps[:-1]:
                await reply(f"250-{cap}")
            await reply(f"250 {caps[-1]}")
        elif verb == "STARTTLS" and state.tls is not None and not tls:
            await reply("220 2.0.0 ready to start TLS")
            await writer.start_tls(state.tls)
            tls = True
        elif verb == "AUTH" and state.credentials is not None:
            mech, _, initial = arg.partition(" ")
            try:
                _, name, password = base64.b64decode(initial).decode().split("\0")
            except ValueError:
                await reply("501 5.5.2 bad AUTH PLAIN response")
                continue
            if mech.upper() == "PLAIN" and (name, password) == state.credentials:
                user = name
                await reply("235 2.7.0 authentication successful")
            else:
                await reply("535 5.7.8 authentication credentials invalid")
        elif verb == "MAIL":
            if state.credentials is not None and user is None:
                await reply("530 5.7.0 authentication required")
                continue
            mail_from, rcpts = arg.partition(":")[2].split(" ")[0].strip("<>"), []
            await reply("250 2.1.0 ok")
        elif verb == "RCPT":
            addr = arg.partition(":")[2].split(" ")[0].strip("<>")
            if addr in state.reject_rcpt:
                await reply("550 5.1.1 no such user")
            else:
                rcpts.append(addr)
                await reply("250 2.1.5 ok")
        elif verb == "DATA":
            if mail_from is None or not rcpts:
                await reply("503 5.5.1 need MAIL and RCPT first")
                continue
            await reply("354 end data with <CR><LF>.<CR><LF>")
            lines: list[bytes] = []
            while True:
                chunk = await asyncio.wait_for(reader.readline(), STOP_TIMEOUT_S)
                if chunk in (b".\r\n", b""):
                    break
                lines.append(chunk[1:] if chunk.startswith(b"..") else chunk)
            answer = state.data_replies.pop(0) if state.data_replies else "250 2.0.0 queued"
            if answer.startswith("250"):
                state.messages.append(SmtpMessage(mail_from, rcpts, b"".join(lines), tls, user))
            await reply(answer)
            mail_from, rcpts = None, []
        elif verb == "RSET":
            mail_from, rcpts = None, []
            await reply("250 2.0.0 ok")
        elif verb == "NOOP":
            await reply("250 2.0.0 ok")
        elif verb == "QUIT":
            await reply("221 2.0.0 bye")
            break
        else:
            await reply("502 5.5.2 command not implemented")
    writer.close()


@contextmanager
def smtp_server(**kwargs: object) -> Iterator[SmtpServer]:
    """Run an SMTP server on 127.0.0.1 in a thread; kwargs set the :class:`SmtpServer` script."""
    state = SmtpServer(**kwargs)  # type: ignore[arg-type]
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, asyncio.Server] = {}
    sessions: set[asyncio.Task[None]] = set()
    writers: set[asyncio.StreamWriter] = set()
    stop_holder: dict[str, asyncio.Event] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        sessions.add(task)
        writers.add(writer)
        try:
            await _session(state, stop_holder["stop"], reader, writer)
        except (TimeoutError, ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            # The client went away or timed out: end this session only.
            writer.close()
        finally:
            sessions.discard(task)
            writers.discard(writer)

    async def main() -> None:
        stop_holder["stop"] = asyncio.Event()
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        holder["server"] = server
        state.port = server.sockets[0].getsockname()[1]
        ready.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(main())
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    if not ready.wait(STOP_TIMEOUT_S):
        raise RuntimeError("SMTP test server did not start")
    try:
        yield state
    finally:

        async def shutdown() -> None:
            holder["server"].close()
            stop_holder["stop"].set()
            for writer in list(writers):
                writer.close()
            if sessions:
                await asyncio.wait(list(sessions), timeout=STOP_TIMEOUT_S / 2)

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(STOP_TIMEOUT_S)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(STOP_TIMEOUT_S)
        loop.close()


def server_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx
