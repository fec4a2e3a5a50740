"""platform.services: reachability, response and latency of databases and middleware.

Each configured service gets a TCP connect and, per ``kind``, the smallest exchange that
proves the server speaks its protocol, without client libraries or credentials:

========== =========================================================== ==================
kind       exchange                                                    version from
========== =========================================================== ==================
redis      send ``PING``, expect ``+PONG`` (``-NOAUTH`` counts: alive)  -
nats       read the ``INFO {json}`` banner                             banner ``version``
mysql      read the server greeting (protocol 10)                      greeting
postgresql send an SSLRequest, expect ``S`` or ``N``                   -
rabbitmq   send the AMQP 0-9-1 header, expect Connection.Start         server properties
mqtt       send CONNECT (3.1.1, clean session), expect CONNACK         -
tcp        connect only                                                -
========== =========================================================== ==================

Side effects to know about: MySQL/MariaDB count a connection closed after the greeting
as an aborted connect, and block a remote host after ``max_connect_errors`` such
connects in a row without a successful login (loopback is exempt): raise that setting or
use ``kind: tcp`` for a remote server. PostgreSQL may log "could not accept SSL
connection: EOF detected" when it answered ``S``; RabbitMQ logs a closed handshake.

Sample of what :func:`collect_services` returns::

    ServicesSection(services=(
        ServiceProbe(name='cache', kind='redis', connect_s=0.00018, response_s=0.00021, version=None,
                     detail='PONG', error=None, error_kind=None),
        ServiceProbe(name='db', kind='mysql', connect_s=0.00016, response_s=0.0011,
                     version='10.11.6-MariaDB-0+deb12u1', detail='greeting', error=None, error_kind=None),
        ServiceProbe(name='queue', kind='rabbitmq', connect_s=None, response_s=None, version=None,
                     detail=None, error='connect failed: Connection refused', error_kind='unreachable'),
    ))
"""

from __future__ import annotations

import json
import os
import socket
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from checks.api import (
    Check,
    CheckParams,
    Direction,
    Layer,
    Metric,
    MetricSpec,
    Result,
    Severity,
    SkipCheck,
    Unit,
    ValueStore,
    render_seconds,
)
from checks.probe import Probe

Kind = Literal["postgresql", "mysql", "mariadb", "redis", "rabbitmq", "mqtt", "nats", "tcp"]
MAX_REPLY = 65536
"""Bytes read from a server at most: a banner or handshake frame is far smaller."""


class BadResponse(Exception):
    """The server answered, but not as its protocol says it should."""


class Service(CheckParams):
    name: str
    """Item name in results (``orders-db``)."""
    kind: Kind
    """Protocol: postgresql, mysql (or mariadb), redis, rabbitmq, mqtt, nats, or tcp (connect only)."""
    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535)
    timeout_s: float = Field(default=5.0, gt=0)
    """Timeout of the connect and of the exchange, each."""
    warn_s: float = Field(default=1.0, gt=0)
    """Connect plus exchange slower than this warns (SERVICE_SLOW)."""


class ServicesParams(CheckParams):
    services: list[Service] = Field(default_factory=list)
    """Services to probe."""


@dataclass(frozen=True, slots=True)
class ServiceProbe:
    name: str
    kind: str
    connect_s: float | None
    response_s: float | None
    version: str | None
    detail: str | None
    error: str | None = None
    error_kind: Literal["unreachable", "bad_response"] | None = None


@dataclass(frozen=True, slots=True)
class ServicesSection:
    services: tuple[ServiceProbe, ...]


# --- reading --------------------------------------------------------------------------


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    """Exactly ``size`` bytes (bounded by MAX_REPLY), or BadResponse when the server closes first."""
    if size > MAX_REPLY:
        raise BadResponse(f"reply announces {size} bytes, more than a handshake needs")
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise BadResponse(f"connection closed after {len(data)} of {size} bytes")
        data += chunk
    return bytes(data)


def _recv_line(sock: socket.socket, limit: int = 4096) -> bytes:
    """One CRLF-terminated line, without the CRLF."""
    data = bytearray()
    while not data.endswith(b"\r\n"):
        if len(data) >= limit:
            raise BadResponse(f"no line end in the first {limit} bytes: {bytes(data[:60])!r}")
        chunk = sock.recv(1)
        if not chunk:
            raise BadResponse(f"connection closed mid-line: {bytes(data[:60])!r}")
        data += chunk
    return bytes(data[:-2])


# --- one exchange per protocol: return (version, detail) or raise BadResponse -----------

Exchange = Callable[[socket.socket], tuple[str | None, str | None]]


def exchange_redis(sock: socket.socket) -> tuple[str | None, str | None]:
    sock.sendall(b"PING\r\n")
    line = _recv_line(sock)
    if line == b"+PONG":
        return None, "PONG"
    if line.startswith(b"-NOAUTH"):
        return None, "alive, authentication required"
    raise BadResponse(f"expected +PONG, got {line[:120]!r}")


def exchange_nats(sock: socket.socket) -> tuple[str | None, str | None]:
    line = _recv_line(sock, MAX_REPLY)
    if not line.startswith(b"INFO "):
        raise BadResponse(f"expected an INFO banner, got {line[:120]!r}")
    try:
        info = json.loads(line[5:])
    except ValueError:
        raise BadResponse(f"INFO banner is not JSON: {line[:120]!r}") from None
    if not isinstance(info, dict):
        raise BadResponse(f"INFO banner is not a JSON object: {line[:120]!r}")
    version = info.get("version")
    return (str(version) if version is not None else None), "INFO banner"


def exchange_mysql(sock: socket.socket) -> tuple[str | None, str | None]:
    header = _recv_exact(sock, 4)
    size = int.from_bytes(header[:3], "little")
    if size > 4096:  # a greeting is about 100 bytes: this is another protocol's banner
        raise BadResponse(f"not a MySQL greeting: starts with {header!r}")
    payload = _recv_exact(sock, size)
    if not payload:
        raise BadResponse("empty greeting packet")
    if payload[0] == 0xFF:  # ERR packet: code, optional '#' + SQL state, message
        message = payload[3:]
        if message.startswith(b"#"):
            message = message[6:]
        code = int.from_bytes(payload[1:3], "little")
        raise BadResponse(f"server refused the connection: {code} {message.decode('utf-8', 'replace')[:200]}")
    if payload[0] != 10 or b"\x00" not in payload[1:]:
        raise BadResponse(f"not a MySQL protocol 10 greeting: {payload[:40]!r}")
    version = payload[1 : payload.index(b"\x00", 1)].decode("utf-8", "replace")
    # MariaDB prefixes "5.5.5-" so that old clients accept a version 10+ server.
    return version.removeprefix("5.5.5-"), "greeting"


SSL_REQUEST = struct.pack("!ii", 8, 80877103)


def exchange_postgresql(sock: socket.socket) -> tuple[str | None, str | None]:
    sock.sendall(SSL_REQUEST)
    reply = _recv_exact(sock, 1)
    if reply == b"S":
        return None, "accepts connections, TLS available"
    if reply == b"N":
        return None, "accepts connections, TLS not offered"
    raise BadResponse(f"expected S or N to an SSLRequest, got {reply!r}")


AMQP_HEADER = b"AMQP\x00\x00\x09\x01"


def _amqp_table(data: bytes) -> dict[str, object]:
    """Top-level string and scalar fields of an AMQP 0-9-1 field table (nested values skipped)."""
    out: dict[str, object] = {}
    pos = 0
    sizes = {
        "t": 1,
        "b": 1,
        "B": 1,
        "s": 2,
        "u": 2,
        "I": 4,
        "i": 4,
        "f": 4,
        "l": 8,
        "L": 8,
        "d": 8,
        "T": 8,
        "D": 5,
    }
    while pos < len(data):
        name_len = data[pos]
        name = data[pos + 1 : pos + 1 + name_len].decode("utf-8", "replace")
        pos += 1 + name_len
        kind = chr(data[pos])
        pos += 1
        if kind in ("S", "F", "A", "x"):  # long string, table, array, byte array: 4-byte length
            length = int.from_bytes(data[pos : pos + 4], "big")
            if kind == "S":
                out[name] = data[pos + 4 : pos + 4 + length].decode("utf-8", "replace")
            pos += 4 + length
        elif kind in sizes:
            pos += sizes[kind]
        elif kind == "V":
            pass  # void: no value bytes
        else:
            break  # unknown type: its size is unknown, stop here (product/version come first)
    return out


def exchange_rabbitmq(sock: socket.socket) -> tuple[str | None, str | None]:
    sock.sendall(AMQP_HEADER)
    head = _recv_exact(sock, 7)
    if head.startswith(b"AMQP"):
        wanted = head[4:] + _recv_exact(sock, 1)
        raise BadResponse(f"server speaks another AMQP version: {'.'.join(str(b) for b in wanted[1:])}")
    frame_type, _channel, size = struct.unpack("!BHI", head)
    if size > MAX_REPLY:
        raise BadResponse(f"AMQP frame announces {size} bytes, more than Connection.Start needs")
    payload = _recv_exact(sock, size + 1)
    if frame_type != 1 or payload[-1] != 0xCE or payload[:4] != b"\x00\x0a\x00\x0a":
        raise BadResponse(f"expected an AMQP Connection.Start frame, got {(head + payload)[:40]!r}")
    table_len = int.from_bytes(payload[6:10], "big")
    props = _amqp_table(payload[10 : 10 + table_len])
    version = props.get("version")
    return (str(version) if version is not None else None), f"{props.get('product', 'AMQP')} AMQP 0-9-1"


CONNACK_CODES = {
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}


def mqtt_connect_packet(client_id: str) -> bytes:
    """An MQTT 3.1.1 CONNECT with a clean session, no credentials, 60 s keep-alive.

    >>> mqtt_connect_packet("x")
    b'\\x10\\r\\x00\\x04MQTT\\x04\\x02\\x00<\\x00\\x01x'
    """
    cid = client_id.encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + struct.pack("!H", len(cid)) + cid
    if len(body) > 127:
        raise ValueError("client id too long for a one-byte remaining length")
    return bytes((0x10, len(body))) + body


def exchange_mqtt(sock: socket.socket) -> tuple[str | None, str | None]:
    # A unique client id: a broker drops an existing session that uses the same id.
    sock.sendall(mqtt_connect_packet(f"remote-diag-{os.getpid()}-{os.urandom(3).hex()}"))
    reply = _recv_exact(sock, 4)
    if reply[0] != 0x20 or reply[1] != 2:
        raise BadResponse(f"expected CONNACK, got {reply!r}")
    code = reply[3]
    if code == 0:
        sock.sendall(b"\xe0\x00")  # DISCONNECT: a clean goodbye keeps the broker log quiet
        return None, "CONNACK accepted"
    if code in (4, 5):
        return None, f"alive, broker requires authentication ({CONNACK_CODES[code]})"
    raise BadResponse(f"CONNACK refused: {CONNACK_CODES.get(code, f'code {code}')}")


def exchange_tcp(sock: socket.socket) -> tuple[str | None, str | None]:
    return None, "connected"


EXCHANGES: dict[str, Exchange] = {
    "redis": exchange_redis,
    "nats": exchange_nats,
    "mysql": exchange_mysql,
    "mariadb": exchange_mysql,
    "postgresql": exchange_postgresql,
    "rabbitmq": exchange_rabbitmq,
    "mqtt": exchange_mqtt,
    "tcp": exchange_tcp,
}


def probe_service(probe: Probe, svc: Service) -> ServiceProbe:
    started = probe.monotonic()
    try:
        sock = socket.create_connection((svc.host, svc.port), timeout=svc.timeout_s)
    except OSError as exc:  # refused, unreachable, timeout, DNS failure
        reason = exc.strerror or str(exc) or type(exc).__name__
        return ServiceProbe(
            svc.name, svc.kind, None, None, None, None, f"connect failed: {reason}", "unreachable"
        )
    connected = probe.monotonic()
    with sock:
        try:
            version, detail = EXCHANGES[svc.kind](sock)
        except BadResponse as exc:
            return ServiceProbe(
                svc.name, svc.kind, connected - started, None, None, None, str(exc), "bad_response"
            )
        except OSError as exc:  # reset or timeout mid-exchange: it answered, but not properly
            reason = "no reply in time" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
            return ServiceProbe(
                svc.name, svc.kind, connected - started, None, None, None, reason, "bad_response"
            )
    return ServiceProbe(
        svc.name, svc.kind, connected - started, probe.monotonic() - connected, version, detail
    )


def collect_services(probe: Probe, params: ServicesParams) -> ServicesSection:
    if not params.services:
        raise SkipCheck("no services configured (params.services)")
    return ServicesSection(tuple(probe_service(probe, svc) for svc in params.services))


def evaluate_services(
    params: ServicesParams, section: ServicesSection, store: ValueStore
) -> Iterator[Result | Metric]:
    warn_s = {svc.name: svc.warn_s for svc in params.services}
    for svc in section.services:
        labels = {"service": svc.name, "kind": svc.kind}
        up = svc.response_s is not None
        yield Metric("platform_service_up_boolean", 1 if up else 0, Unit.BOOLEAN, labels)
        if svc.connect_s is not None:
            yield Metric("platform_service_connect_seconds", svc.connect_s, Unit.SECONDS, labels)
        if svc.response_s is None or svc.connect_s is None:
            key = "SERVICE_UNREACHABLE" if svc.error_kind == "unreachable" else "SERVICE_BAD_RESPONSE"
            yield Result(Severity.CRIT, key, f"{svc.kind}: {svc.error}", svc.name)
            continue
        yield Metric("platform_service_response_seconds", svc.response_s, Unit.SECONDS, labels)
        total = svc.connect_s + svc.response_s
        details = f"version {svc.version}" if svc.version else None
        text = f"{svc.kind}: {svc.detail} in {render_seconds(total)}"
        limit = warn_s.get(svc.name, 1.0)
        if total >= limit:
            yield Result(
                Severity.WARN, "SERVICE_SLOW", f"{text} (warn at {render_seconds(limit)})", svc.name, details
            )
        else:
            yield Result(Severity.OK, "OK", text, svc.name, details)


SERVICES = Check(
    name="platform.services",
    layer=Layer.PLATFORM,
    summary="Databases and middleware answer their protocol, and how fast",
    collect=collect_services,
    evaluate=evaluate_services,
    params=ServicesParams,
    keys=("SERVICE_UNREACHABLE", "SERVICE_BAD_RESPONSE", "SERVICE_SLOW"),
    metrics=(
        MetricSpec(
            "platform_service_up_boolean",
            Unit.BOOLEAN,
            "1 when the service answered its protocol correctly",
            Direction.DOWN_IS_BAD,
            labels=("service", "kind"),
        ),
        MetricSpec(
            "platform_service_connect_seconds",
            Unit.SECONDS,
            "TCP connect time",
            Direction.UP_IS_BAD,
            labels=("service", "kind"),
        ),
        MetricSpec(
            "platform_service_response_seconds",
            Unit.SECONDS,
            "Time from connected to a valid protocol reply (banner, PONG, CONNACK...)",
            Direction.UP_IS_BAD,
            labels=("service", "kind"),
        ),
    ),
    interval_s=60,
    timeout_s=60,
    blocking=True,
)
