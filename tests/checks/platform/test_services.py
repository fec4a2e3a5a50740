"""platform.services against the real servers running on this machine, and scripted fake servers.

PostgreSQL 5432, MariaDB 3306, Redis 6379, RabbitMQ 5672, Mosquitto 1883 and NATS 4222
listen on 127.0.0.1 here; a test against one is skipped only when it is not listening.
"""

from __future__ import annotations

import re
import socket
import struct
import threading
from collections.abc import Callable

import pytest

from checks.api import Metric, Result, Severity, SkipCheck, Unit
from checks.platform.services import (
    AMQP_HEADER,
    SERVICES,
    SSL_REQUEST,
    Service,
    ServiceProbe,
    ServicesParams,
    ServicesSection,
    collect_services,
    evaluate_services,
    probe_service,
)
from checks.probe import Probe
from tests.checks.platform._loopback import listening, server

REAL = [
    pytest.param(
        "postgresql", 5432, r"accepts connections, TLS (available|not offered)", None, id="postgresql"
    ),
    pytest.param("mysql", 3306, "greeting", r"^\d+\.\d+\.\d+", id="mariadb"),
    pytest.param("redis", 6379, "PONG|alive, authentication required", None, id="redis"),
    pytest.param("rabbitmq", 5672, "RabbitMQ AMQP 0-9-1", r"^\d+\.\d+\.\d+", id="rabbitmq"),
    pytest.param(
        "mqtt", 1883, "CONNACK accepted|alive, broker requires authentication", None, id="mosquitto"
    ),
    pytest.param("nats", 4222, "INFO banner", r"^\d+\.\d+\.\d+", id="nats"),
    pytest.param("tcp", 5432, "connected", None, id="tcp connect only"),
]


@pytest.mark.parametrize(("kind", "port", "detail", "version"), REAL)
def test_real_local_servers(kind, port, detail, version):
    if not listening(port):
        pytest.skip(f"no {kind} server listening on 127.0.0.1:{port} on this machine")
    probe = probe_service(Probe(), Service(name=kind, kind=kind, port=port))
    assert probe.error is None, probe.error
    assert probe.detail is not None
    assert re.fullmatch(detail, probe.detail), probe.detail
    if version is None:
        assert probe.version is None
    else:
        assert probe.version is not None and re.match(version, probe.version), probe.version
    assert probe.connect_s is not None and probe.response_s is not None
    assert probe.connect_s + probe.response_s < 1.0


def test_all_real_servers_in_one_run_and_declaration():
    params = ServicesParams(
        services=[
            Service(name=f"{kind}-{port}", kind=kind, port=port)
            for kind, port in [("postgresql", 5432), ("mariadb", 3306), ("redis", 6379), ("nats", 4222)]
            if listening(port)
        ]
    )
    if not params.services:
        pytest.skip("none of PostgreSQL, MariaDB, Redis, NATS listens on 127.0.0.1 here")
    out = list(SERVICES.run(Probe(), params, {}))
    assert [r.key for r in out if isinstance(r, Result)] == ["OK"] * len(params.services)
    assert {m.name for m in out if isinstance(m, Metric)} == SERVICES.metric_names


# --- fake servers: wrong, refused, silent and slow answers ------------------------------


def replies(data: bytes, expect: int = 0, delay: float = 0.0) -> Callable[[socket.socket], None]:
    """A server reading ``expect`` bytes, waiting ``delay`` seconds, then sending ``data``."""

    def handle(conn: socket.socket) -> None:
        got = b""
        while len(got) < expect:
            chunk = conn.recv(expect - len(got))
            if not chunk:
                return
            got += chunk
        if delay:
            threading.Event().wait(delay)
        conn.sendall(data)
        conn.recv(64)  # let the client close first

    return handle


def mysql_packet(payload: bytes, seq: int = 0) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes([seq]) + payload


def amqp_start(props: bytes) -> bytes:
    payload = b"\x00\x0a\x00\x0a\x00\x09" + struct.pack("!I", len(props)) + props + b"\x00\x00\x00\x05PLAIN"
    return struct.pack("!BHI", 1, 0, len(payload)) + payload + b"\xce"


def amqp_str(name: str, value: str) -> bytes:
    return bytes([len(name)]) + name.encode() + b"S" + struct.pack("!I", len(value)) + value.encode()


def mqtt_replies(code: int) -> Callable[[socket.socket], None]:
    def handle(conn: socket.socket) -> None:
        header = conn.recv(2)
        assert header[0] == 0x10
        rest = b""
        while len(rest) < header[1]:
            rest += conn.recv(header[1] - len(rest))
        assert rest[:7] == b"\x00\x04MQTT\x04"
        conn.sendall(bytes([0x20, 2, 0, code]))
        conn.recv(64)

    return handle


FAKES = [
    pytest.param("redis", replies(b"+PONG\r\n", 6), ("OK", "PONG", None), id="redis pong"),
    pytest.param(
        "redis",
        replies(b"-NOAUTH Authentication required.\r\n", 6),
        ("OK", "alive, authentication required", None),
        id="redis requiring auth is alive",
    ),
    pytest.param(
        "redis",
        replies(b"-DENIED Redis is running in protected mode\r\n", 6),
        ("SERVICE_BAD_RESPONSE", "expected +PONG, got b'-DENIED Redis is running in protected mode'", None),
        id="redis protected mode",
    ),
    pytest.param(
        "nats",
        replies(b'INFO {"server_id":"X","version":"2.10.7","proto":1}\r\n'),
        ("OK", "INFO banner", "2.10.7"),
        id="nats banner",
    ),
    pytest.param(
        "nats",
        replies(b"INFO {not json\r\n"),
        ("SERVICE_BAD_RESPONSE", "INFO banner is not JSON", None),
        id="nats bad json",
    ),
    pytest.param(
        "nats",
        replies(b"-ERR 'x'\r\n"),
        ("SERVICE_BAD_RESPONSE", "expected an INFO banner", None),
        id="nats no banner",
    ),
    pytest.param(
        "mysql",
        replies(mysql_packet(b"\x0a8.0.36\x00" + b"\x01" * 40)),
        ("OK", "greeting", "8.0.36"),
        id="mysql greeting",
    ),
    pytest.param(
        "mysql",
        replies(mysql_packet(b"\xff\x69\x04Host '10.1.2.3' is blocked because of many connection errors")),
        ("SERVICE_BAD_RESPONSE", "server refused the connection: 1129 Host '10.1.2.3' is blocked", None),
        id="mysql blocked host",
    ),
    pytest.param(
        "mysql",
        replies(b"SSH-2.0-OpenSSH_9.2\r\n"),
        ("SERVICE_BAD_RESPONSE", "not a MySQL greeting: starts with b'SSH-'", None),
        id="ssh on the mysql port",
    ),
    pytest.param(
        "postgresql", replies(b"S", 8), ("OK", "accepts connections, TLS available", None), id="pg ssl"
    ),
    pytest.param(
        "postgresql",
        replies(b"E", 8),
        ("SERVICE_BAD_RESPONSE", "expected S or N to an SSLRequest, got b'E'", None),
        id="pg error",
    ),
    pytest.param(
        "rabbitmq",
        replies(
            amqp_start(amqp_str("product", "RabbitMQ") + b"\x05flagst\x01" + amqp_str("version", "3.12.1")), 8
        ),
        ("OK", "RabbitMQ AMQP 0-9-1", "3.12.1"),
        id="amqp start",
    ),
    pytest.param(
        "rabbitmq",
        replies(b"AMQP\x00\x01\x00\x00", 8),
        ("SERVICE_BAD_RESPONSE", "server speaks another AMQP version: 1.0.0", None),
        id="amqp 1.0 broker",
    ),
    pytest.param(
        "rabbitmq",
        replies(b"\x08\x00\x00\x00\x00\x00\x00\xce", 8),
        ("SERVICE_BAD_RESPONSE", "expected an AMQP Connection.Start frame", None),
        id="amqp heartbeat instead of start",
    ),
    pytest.param("mqtt", mqtt_replies(0), ("OK", "CONNACK accepted", None), id="mqtt accepted"),
    pytest.param(
        "mqtt",
        mqtt_replies(5),
        ("OK", "alive, broker requires authentication (not authorized)", None),
        id="mqtt needs credentials",
    ),
    pytest.param(
        "mqtt",
        mqtt_replies(3),
        ("SERVICE_BAD_RESPONSE", "CONNACK refused: server unavailable", None),
        id="mqtt unavailable",
    ),
    pytest.param(
        "redis",
        replies(b""),
        ("SERVICE_BAD_RESPONSE", "connection closed mid-line", None),
        id="closed at once",
    ),
    pytest.param(
        "mysql",
        replies(b"\xff\xff\xff\x00"),
        ("SERVICE_BAD_RESPONSE", "not a MySQL greeting", None),
        id="absurd mysql length",
    ),
    pytest.param(
        "mysql",
        replies(mysql_packet(b"\x09old\x00")),
        ("SERVICE_BAD_RESPONSE", "not a MySQL protocol 10 greeting", None),
        id="mysql protocol 9",
    ),
    pytest.param(
        "rabbitmq",
        replies(b"\x01\x00\x00\x7f\xff\xff\xff", 8),
        ("SERVICE_BAD_RESPONSE", "AMQP frame announces 2147483647 bytes", None),
        id="absurd amqp frame size",
    ),
]


@pytest.mark.parametrize(("kind", "handler", "expected"), FAKES)
def test_fake_servers(kind, handler, expected):
    key, text, version = expected
    with server(handler) as port:
        out = list(
            evaluate_services(
                ServicesParams(),
                ServicesSection(
                    (probe_service(Probe(), Service(name="s", kind=kind, port=port, timeout_s=2)),)
                ),
                {},
            )
        )
    (result,) = [r for r in out if isinstance(r, Result)]
    assert result.key == key
    assert text in result.summary
    assert result.details == (f"version {version}" if version else None)


def test_silent_server_is_a_bad_response_after_the_timeout():
    def silent(conn: socket.socket) -> None:
        threading.Event().wait(1.0)

    with server(silent) as port:
        probe = probe_service(Probe(), Service(name="s", kind="nats", port=port, timeout_s=0.3))
    assert (probe.error_kind, probe.error) == ("bad_response", "no reply in time")


def test_slow_server_warns():
    with server(replies(b"+PONG\r\n", 6, delay=0.3)) as port:
        params = ServicesParams(services=[Service(name="cache", kind="redis", port=port, warn_s=0.2)])
        out = list(SERVICES.run(Probe(), params, {}))
    (result,) = [r for r in out if isinstance(r, Result)]
    assert (result.severity, result.key, result.item) == (Severity.WARN, "SERVICE_SLOW", "cache")


def test_refused_port_is_unreachable():
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        port = placeholder.getsockname()[1]
    params = ServicesParams(services=[Service(name="db", kind="postgresql", port=port)])
    assert list(SERVICES.run(Probe(), params, {})) == [
        Metric("platform_service_up_boolean", 0, Unit.BOOLEAN, {"service": "db", "kind": "postgresql"}),
        Result(Severity.CRIT, "SERVICE_UNREACHABLE", "postgresql: connect failed: Connection refused", "db"),
    ]


def test_wire_constants():
    assert SSL_REQUEST == b"\x00\x00\x00\x08\x04\xd2\x16\x2f"
    assert AMQP_HEADER == b"AMQP\x00\x00\x09\x01"


def test_skip_and_params_validation():
    with pytest.raises(SkipCheck, match="no services configured"):
        collect_services(Probe(), ServicesParams())
    with pytest.raises(ValueError, match="kind"):
        ServicesParams.model_validate({"services": [{"name": "x", "kind": "oracle", "port": 1521}]})
    with pytest.raises(ValueError, match="port"):
        ServicesParams.model_validate({"services": [{"name": "x", "kind": "tcp", "port": 70000}]})


@pytest.mark.parametrize(
    ("svc", "expected"),
    [
        pytest.param(
            ServiceProbe("db", "mysql", 0.001, 0.002, "10.11.6-MariaDB", "greeting"),
            [Result(Severity.OK, "OK", "mysql: greeting in 3.0 ms", "db", "version 10.11.6-MariaDB")],
            id="ok with version",
        ),
        pytest.param(
            ServiceProbe("db", "mysql", 0.5, 0.7, None, "greeting"),
            [Result(Severity.WARN, "SERVICE_SLOW", "mysql: greeting in 1.2 s (warn at 1.0 s)", "db")],
            id="slow by default level",
        ),
        pytest.param(
            ServiceProbe("db", "mysql", 0.001, None, None, None, "not a greeting", "bad_response"),
            [Result(Severity.CRIT, "SERVICE_BAD_RESPONSE", "mysql: not a greeting", "db")],
            id="bad response",
        ),
    ],
)
def test_evaluate(svc, expected):
    out = list(evaluate_services(ServicesParams(), ServicesSection((svc,)), {}))
    assert [r for r in out if isinstance(r, Result)] == expected
    assert (
        Metric(
            "platform_service_up_boolean",
            svc.response_s is not None,
            Unit.BOOLEAN,
            {"service": "db", "kind": "mysql"},
        )
        in out
    )
