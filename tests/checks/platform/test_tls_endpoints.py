"""platform.tls_endpoints against real TLS servers on 127.0.0.1 with certificates made by openssl."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from checks.api import Metric, Result, Severity, SkipCheck, Unit
from checks.platform.tls_endpoints import (
    TLS_ENDPOINTS,
    EndpointProbe,
    TlsEndpoint,
    TlsEndpointsParams,
    TlsEndpointsSection,
    collect_tls_endpoints,
    evaluate_tls_endpoints,
)
from checks.probe import Probe
from tests.checks.platform._loopback import server

DAY = 86400.0


def make_cert(directory: Path, name: str, days: int) -> tuple[Path, Path, float]:
    """A self-signed cert for localhost/127.0.0.1 from the openssl command line: (cert, key, notAfter)."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", str(days), "-subj", f"/CN={name}",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        capture_output=True,
        check=True,
    )  # fmt: skip
    end = subprocess.run(
        ["openssl", "x509", "-noout", "-enddate", "-in", str(cert)],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    return cert, key, float(ssl.cert_time_to_seconds(end.strip().partition("=")[2]))


def tls_handler(cert: Path, key: Path) -> Callable[[socket.socket], None]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    def handle(conn: socket.socket) -> None:
        with context.wrap_socket(conn, server_side=True) as tls:
            tls.recv(1)  # until the client closes

    return handle


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path, float]]:
    directory = tmp_path_factory.mktemp("certs")
    return {"good": make_cert(directory, "good", 90), "soon": make_cert(directory, "soon", 3)}


def run(endpoint: TlsEndpoint) -> list[Result | Metric]:
    return list(TLS_ENDPOINTS.run(Probe(), TlsEndpointsParams(endpoints=[endpoint]), {}))


def results(out: list[Result | Metric]) -> list[tuple[Severity, str]]:
    return [(r.severity, r.key) for r in out if isinstance(r, Result)]


def test_trusted_endpoint(certs):
    cert, key, not_after = certs["good"]
    with server(tls_handler(cert, key)) as port:
        section = collect_tls_endpoints(
            Probe(),
            TlsEndpointsParams(
                endpoints=[TlsEndpoint(name="app", host="127.0.0.1", port=port, cafile=str(cert))]
            ),
        )
    (ep,) = section.endpoints
    assert (ep.name, ep.verify_error, ep.subject, ep.not_after, ep.error) == (
        "app",
        None,
        "good",
        not_after,
        None,
    )
    assert ep.tls_version == "TLSv1.3"
    assert ep.connect_s is not None and 0 <= ep.connect_s < 1
    assert ep.handshake_s is not None and 0 < ep.handshake_s < 1
    out = list(evaluate_tls_endpoints(TlsEndpointsParams(), section, {}))
    assert results(out) == [(Severity.OK, "OK")]
    days = next(m for m in out if isinstance(m, Metric) and m.name == "platform_tls_cert_expires_in_days")
    assert days.value == pytest.approx(90, abs=0.1)


def test_untrusted_certificate_still_gets_its_expiry(certs):
    cert, key, _ = certs["soon"]
    with server(tls_handler(cert, key)) as port:
        out = run(TlsEndpoint(name="app", host="127.0.0.1", port=port))
    assert results(out) == [(Severity.WARN, "CERT_UNTRUSTED"), (Severity.CRIT, "CERT_EXPIRING")]
    assert "self-signed certificate" in next(r.summary for r in out if isinstance(r, Result))


def test_hostname_mismatch_is_untrusted(certs):
    cert, key, _ = certs["good"]
    with server(tls_handler(cert, key)) as port:
        out = run(
            TlsEndpoint(
                name="app", host="127.0.0.1", port=port, server_name="wrong.example", cafile=str(cert)
            )
        )
    assert results(out) == [(Severity.WARN, "CERT_UNTRUSTED"), (Severity.OK, "OK")]
    assert "Hostname mismatch" in next(r.summary for r in out if isinstance(r, Result))


def test_refused_port_is_a_connect_failure():
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        port = placeholder.getsockname()[1]
    out = run(TlsEndpoint(name="app", host="127.0.0.1", port=port, timeout_s=2))
    assert out == [Result(Severity.CRIT, "TLS_CONNECT_FAILED", "connect failed: Connection refused", "app")]


def test_plain_tcp_server_is_a_handshake_failure():
    def not_tls(conn: socket.socket) -> None:
        conn.recv(1024)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    with server(not_tls) as port:
        out = run(TlsEndpoint(name="app", host="127.0.0.1", port=port, timeout_s=2))
    assert results(out) == [(Severity.CRIT, "TLS_HANDSHAKE_FAILED")]
    assert out[0].name == "platform_tls_connect_seconds"  # type: ignore[union-attr]


def test_silent_server_times_out_in_the_handshake():
    def silent(conn: socket.socket) -> None:
        conn.recv(1024)
        threading.Event().wait(1.0)

    with server(silent) as port:
        out = run(TlsEndpoint(name="app", host="127.0.0.1", port=port, timeout_s=0.3))
    assert results(out) == [(Severity.CRIT, "TLS_HANDSHAKE_FAILED")]
    assert "timed out" in out[-1].summary  # type: ignore[union-attr]


def test_skip_without_endpoints_and_bad_cafile(tmp_path):
    with pytest.raises(SkipCheck, match="no TLS endpoints"):
        collect_tls_endpoints(Probe(), TlsEndpointsParams())
    params = TlsEndpointsParams(
        endpoints=[TlsEndpoint(name="x", host="127.0.0.1", cafile=str(tmp_path / "none.pem"))]
    )
    with pytest.raises(ValueError, match="endpoint x: cannot load cafile"):
        collect_tls_endpoints(Probe(), params)


NOT_AFTER = 2_000_000_000.0


def _ep(**kw):
    base: dict[str, Any] = {
        "name": "api",
        "connect_s": 0.001,
        "handshake_s": 0.01,
        "tls_version": "TLSv1.3",
        "verify_error": None,
        "subject": "api",
        "not_after": NOT_AFTER,
        "error": None,
    }
    base.update(kw)
    return EndpointProbe(**base)


def _metrics(connect=0.001, handshake=0.01, days=None):
    labels = {"endpoint": "api"}
    out = [Metric("platform_tls_connect_seconds", connect, Unit.SECONDS, labels)]
    if handshake is not None:
        out.append(Metric("platform_tls_handshake_seconds", handshake, Unit.SECONDS, labels))
    if days is not None:
        out.append(Metric("platform_tls_cert_expires_in_days", days, Unit.DAYS, labels))
    return out


OK_100 = Result(
    Severity.OK, "OK", "Certificate 'api' expires 2033-05-18 03:33 UTC, in: 100.0 days (TLSv1.3)", "api"
)


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        pytest.param(_ep(), [*_metrics(days=100), OK_100], id="healthy"),
        pytest.param(
            _ep(handshake_s=4.0),
            [
                *_metrics(handshake=4.0, days=100),
                OK_100,
                Result(
                    Severity.CRIT,
                    "TLS_HANDSHAKE_SLOW",
                    "TLS handshake: 4.0 s (warn/crit at 1.0 s/3.0 s)",
                    "api",
                ),
            ],
            id="slow handshake",
        ),
        pytest.param(
            _ep(not_after=NOT_AFTER - 101 * DAY),
            [
                *_metrics(days=-1),
                Result(
                    Severity.CRIT,
                    "CERT_EXPIRED",
                    "Certificate 'api' expired 1.0 days ago (2033-02-06 03:33 UTC) (TLSv1.3)",
                    "api",
                ),
            ],
            id="expired",
        ),
        pytest.param(
            _ep(not_after=None, error="malformed certificate: x"),
            [
                *_metrics(),
                Result(
                    Severity.UNKNOWN,
                    "CERT_UNREADABLE",
                    "Cannot read the server certificate: malformed certificate: x",
                    "api",
                ),
            ],
            id="undecodable certificate",
        ),
        pytest.param(
            _ep(connect_s=None, handshake_s=None, not_after=None, error="connect failed: No route to host"),
            [Result(Severity.CRIT, "TLS_CONNECT_FAILED", "connect failed: No route to host", "api")],
            id="no route",
        ),
    ],
)
def test_evaluate(endpoint, expected):
    section = TlsEndpointsSection(NOT_AFTER - 100 * DAY, (endpoint,))
    assert list(evaluate_tls_endpoints(TlsEndpointsParams(), section, {})) == expected
