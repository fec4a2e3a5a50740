from __future__ import annotations

import contextlib
import os
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pydantic import ValidationError

from checks.api import Metric, Result, Severity, SkipCheck, Unit
from checks.application.http import (
    Endpoint,
    HttpParams,
    HttpResponse,
    HttpSection,
    collect_http,
    der_not_after,
    evaluate_http,
)
from checks.probe import Probe


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(0.3)
        if self.path == "/hang":
            time.sleep(3)
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/fast")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        status = 500 if self.path == "/500" else 200
        body = b"A" * (3 << 20) if self.path == "/big" else b"service is healthy, version 4.2\n"
        if self.path == "/echo-header":
            body = self.headers.get("X-Probe", "none").encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        # The client stops reading /big after 1 MiB and closes: expected.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep pytest output clean


def serve(context: ssl.SSLContext | None = None) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    scheme = "https" if context else "http"
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def http_base() -> Iterator[str]:
    yield from serve()


@pytest.fixture(scope="module")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command line tool is not installed")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "10", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def https_base(tls_cert: tuple[Path, Path]) -> Iterator[str]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*tls_cert)
    yield from serve(context)


def check(*endpoints: Endpoint) -> list[Result | Metric]:
    params = HttpParams(endpoints=endpoints)
    return list(evaluate_http(params, collect_http(Probe(), params), {}))


def keyed(out: list[Result | Metric]) -> list[tuple[Severity, str]]:
    return [(r.severity, r.key) for r in out if isinstance(r, Result)]


def metric(out: list[Result | Metric], name: str) -> float:
    [value] = [m.value for m in out if isinstance(m, Metric) and m.name == name]
    return value


# --- against a real server ------------------------------------------------------------


def test_fast_ok_with_body_match(http_base):
    out = check(Endpoint(name="api", url=f"{http_base}/fast", body_regex=r"version \d+\.\d+"))
    assert keyed(out) == [(Severity.OK, "OK"), (Severity.OK, "OK")]
    assert Metric("app_http_status_info", 1, Unit.INFO, {"endpoint": "api", "status": "200"}) in out
    assert (
        0 < metric(out, "app_http_time_to_first_byte_seconds") <= metric(out, "app_http_latency_seconds") < 1
    )


def test_slow_response_warns(http_base):
    out = check(Endpoint(name="slow", url=f"{http_base}/slow", levels_latency_s=(0.2, 2.0)))
    assert keyed(out) == [(Severity.OK, "OK"), (Severity.WARN, "HTTP_SLOW")]
    assert metric(out, "app_http_latency_seconds") >= 0.3


def test_server_error_is_bad_status(http_base):
    out = check(Endpoint(name="err", url=f"{http_base}/500"))
    [first, _] = [r for r in out if isinstance(r, Result)]
    assert (first.severity, first.key) == (Severity.CRIT, "HTTP_BAD_STATUS")
    assert first.summary == "HTTP 500 Internal Server Error (expected 200-399)"


def test_body_mismatch(http_base):
    out = check(Endpoint(name="b", url=f"{http_base}/fast", body_regex="^maintenance"))
    assert keyed(out) == [(Severity.OK, "OK"), (Severity.CRIT, "HTTP_BODY_MISMATCH"), (Severity.OK, "OK")]


def test_redirect_not_followed(http_base):
    out = check(Endpoint(name="r", url=f"{http_base}/redirect", expect_status=(200,)))
    [first, _] = [r for r in out if isinstance(r, Result)]
    assert first.key == "HTTP_BAD_STATUS"
    assert first.summary == "HTTP 302 Found → /fast (expected 200)"


def test_body_read_is_capped_at_one_mib(http_base):
    out = check(Endpoint(name="big", url=f"{http_base}/big", body_regex="B"))
    [_, mismatch, _] = [r for r in out if isinstance(r, Result)]
    assert mismatch.summary.startswith("Body (1048576 bytes read)")


def test_head_and_headers(http_base):
    out = check(
        Endpoint(name="h", url=f"{http_base}/fast", method="HEAD", expect_status=(204,)),
        Endpoint(name="e", url=f"{http_base}/echo-header", headers={"X-Probe": "yes"}, body_regex="^yes$"),
    )
    assert keyed(out) == [(Severity.OK, "OK")] * 4


def test_closed_port_is_unreachable():
    with __import__("socket").socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Bound then closed without listening: connections to it are refused.
    out = check(Endpoint(name="down", url=f"http://127.0.0.1:{port}/"))
    [result] = [r for r in out if isinstance(r, Result)]
    assert (result.severity, result.key, result.item) == (Severity.CRIT, "HTTP_UNREACHABLE", "down")
    assert "refused" in result.summary.lower()
    assert Metric("app_http_up_boolean", 0, Unit.BOOLEAN, {"endpoint": "down"}) in out


def test_timeout_is_unreachable(http_base):
    out = check(Endpoint(name="t", url=f"{http_base}/hang", timeout_s=0.3))
    [result] = [r for r in out if isinstance(r, Result)]
    assert result.key == "HTTP_UNREACHABLE"
    assert "no answer within 0.3 s" in result.summary


def test_https_self_signed_without_verification(https_base):
    out = check(Endpoint(name="tls", url=f"{https_base}/fast", verify_tls=False, levels_cert_days=(30, 7)))
    assert keyed(out) == [(Severity.OK, "OK"), (Severity.OK, "OK"), (Severity.WARN, "CERT_EXPIRING")]
    assert 9.9 < metric(out, "app_http_cert_expiry_days") <= 10.0


def test_https_verified_with_ca_file(https_base, tls_cert):
    out = check(
        Endpoint(name="tls", url=f"{https_base}/fast", ca_file=str(tls_cert[0]), levels_cert_days=(5, 2))
    )
    assert keyed(out) == [(Severity.OK, "OK")] * 3


def test_https_untrusted_certificate_is_unreachable(https_base):
    out = check(Endpoint(name="tls", url=f"{https_base}/fast"))
    [result] = [r for r in out if isinstance(r, Result)]
    assert result.key == "HTTP_UNREACHABLE"
    assert "CERTIFICATE_VERIFY_FAILED" in result.summary


def test_der_not_after_matches_openssl(tls_cert):
    der = ssl.PEM_cert_to_DER_cert(tls_cert[0].read_text())
    out = subprocess.run(
        ["openssl", "x509", "-noout", "-enddate", "-in", str(tls_cert[0])],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    expected = datetime.strptime(out.strip().split("=", 1)[1], "%b %d %H:%M:%S %Y %Z").replace(tzinfo=UTC)
    assert der_not_after(der) == expected.timestamp()


@pytest.mark.parametrize(
    "der",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x30\x82\xff\xff", id="length past the end"),
        pytest.param(b"\x04\x01\x00", id="not a sequence"),
        pytest.param(b"\x30\x05\x30\x03\x02\x01\x00", id="no validity"),
    ],
)
def test_der_not_after_rejects_garbage(der):
    with pytest.raises(ValueError, match="DER"):
        der_not_after(der)


# --- evaluate (pure) ---------------------------------------------------------------------

EP = Endpoint(name="api", url="http://x/", body_regex="ok", levels_latency_s=(1, 5), levels_cert_days=(30, 7))
FAST = Result(Severity.OK, "OK", "Response time: 100.0 ms", "api")


def cert_result(days: float) -> Result:
    summary = f"Certificate expires in: {days:.1f} days (warn/crit below 30.0 days/7.0 days)"
    return Result(Severity.CRIT, "CERT_EXPIRING", summary, "api")


LBL = {"endpoint": "api"}


def resp(
    status: int | None = 200, latency: float = 0.1, matched: bool | None = None, cert: float | None = None
):
    ok = status is not None
    error = None if ok else "Connection refused"
    return HttpResponse(
        "api",
        "http://x/",
        status,
        "OK" if ok else "",
        latency,
        0.05 if ok else None,
        10,
        matched,
        None,
        cert,
        error,
    )


def base_metrics(status: int = 200, latency: float = 0.1) -> list[Metric]:
    return [
        Metric("app_http_status_info", 1, Unit.INFO, {**LBL, "status": str(status)}),
        Metric("app_http_latency_seconds", latency, Unit.SECONDS, LBL),
        Metric("app_http_time_to_first_byte_seconds", 0.05, Unit.SECONDS, LBL),
    ]


UP = Metric("app_http_up_boolean", 1, Unit.BOOLEAN, LBL)


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        pytest.param(
            resp(),
            [UP, Result(Severity.OK, "OK", "HTTP 200 OK", "api"), FAST, *base_metrics()],
            id="healthy",
        ),
        pytest.param(
            resp(status=None),
            [
                Result(Severity.CRIT, "HTTP_UNREACHABLE", "http://x/ unreachable: Connection refused", "api"),
                Metric("app_http_up_boolean", 0, Unit.BOOLEAN, LBL),
            ],
            id="unreachable",
        ),
        pytest.param(
            resp(latency=6.0, matched=False),
            [
                UP,
                Result(Severity.OK, "OK", "HTTP 200 OK", "api"),
                Result(
                    Severity.CRIT, "HTTP_BODY_MISMATCH", "Body (10 bytes read) does not match 'ok'", "api"
                ),
                Result(Severity.CRIT, "HTTP_SLOW", "Response time: 6.0 s (warn/crit at 1.0 s/5.0 s)", "api"),
                *base_metrics(latency=6.0),
            ],
            id="slow and mismatching",
        ),
        pytest.param(
            resp(cert=3.0),
            [
                UP,
                Result(Severity.OK, "OK", "HTTP 200 OK", "api"),
                FAST,
                *base_metrics(),
                cert_result(3.0),
                Metric("app_http_cert_expiry_days", 3.0, Unit.DAYS, LBL),
            ],
            id="certificate nearly expired",
        ),
        pytest.param(
            resp(cert=-2.0),
            [
                UP,
                Result(Severity.OK, "OK", "HTTP 200 OK", "api"),
                FAST,
                *base_metrics(),
                cert_result(-2.0),
                Metric("app_http_cert_expiry_days", -2.0, Unit.DAYS, LBL),
            ],
            id="certificate expired",
        ),
    ],
)
def test_evaluate(response, expected):
    assert list(evaluate_http(HttpParams(endpoints=(EP,)), HttpSection((response,)), {})) == expected


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"url": "ftp://x/"}, id="scheme"),
        pytest.param({"url": "http:///path"}, id="no host"),
        pytest.param({"url": "http://x:99999/"}, id="port"),
        pytest.param({"url": "http://x/", "body_regex": "(oops"}, id="regex"),
        pytest.param({"url": "http://x/", "method": "POST"}, id="method"),
        pytest.param({"url": "http://x/", "method": "HEAD", "body_regex": "a"}, id="HEAD with body regex"),
        pytest.param({"url": "http://x/", "expect_status": [99]}, id="status code"),
        pytest.param({"url": "http://x/", "timeout_s": 0}, id="timeout"),
    ],
)
def test_endpoint_rejects_bad_config(bad):
    with pytest.raises(ValidationError):
        Endpoint.model_validate({"name": "x", **bad})


def test_skip_without_endpoints():
    with pytest.raises(SkipCheck):
        collect_http(Probe(), HttpParams())


def test_missing_ca_file_is_reported_per_endpoint(https_base, tmp_path):
    out = check(Endpoint(name="tls", url=f"{https_base}/fast", ca_file=str(tmp_path / "absent.pem")))
    [result] = [r for r in out if isinstance(r, Result)]
    assert (result.severity, result.key) == (Severity.CRIT, "HTTP_UNREACHABLE")
    assert "No such file" in result.summary


def test_tls_context_is_cached_until_the_ca_file_changes(https_base, tls_cert, tmp_path):
    from checks.application.http import _tls_context, _trust_store_mtime

    ca = tmp_path / "ca.pem"
    ca.write_bytes(tls_cert[0].read_bytes())
    first = _tls_context(True, str(ca), _trust_store_mtime(str(ca)))
    assert _tls_context(True, str(ca), _trust_store_mtime(str(ca))) is first
    os.utime(ca, (1, 1))
    assert _tls_context(True, str(ca), _trust_store_mtime(str(ca))) is not first
    out = check(Endpoint(name="tls", url=f"{https_base}/fast", ca_file=str(ca), levels_cert_days=(5, 2)))
    assert keyed(out) == [(Severity.OK, "OK")] * 3
