"""application.http: HTTP(S) endpoints: reachability, status, latency, body, certificate.

Uses only the standard library (``http.client`` and ``ssl``, imported lazily). One
request per endpoint, redirects are not followed (the status code says so), at most
1 MiB of the body is read. The certificate's expiry is decoded from the peer's DER
certificate, so it is known even with ``verify_tls: false`` (self-signed endpoints).

Sample of what :func:`collect_http` returns::

    HttpSection(responses=(HttpResponse(name='api', url='https://127.0.0.1:8443/health',
        status=200, reason='OK', latency_s=0.0042, ttfb_s=0.0039, body_bytes=15,
        body_matched=True, location=None, cert_days_left=364.2, error=None),))
"""

from __future__ import annotations

import functools
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from checks.api import (
    Check,
    CheckParams,
    Direction,
    Layer,
    Levels,
    Metric,
    MetricSpec,
    Result,
    Severity,
    SkipCheck,
    Unit,
    ValueStore,
    check_levels,
    render_seconds,
)
from checks.probe import Probe

if TYPE_CHECKING:
    import http.client
    import ssl

__all__ = [
    "HTTP",
    "Endpoint",
    "HttpParams",
    "HttpResponse",
    "HttpSection",
    "collect_http",
    "der_not_after",
    "evaluate_http",
]

MAX_BODY_BYTES = 1 << 20


class Endpoint(BaseModel):
    """One URL to request."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    name: str = Field(min_length=1)
    """Item name of the results and ``endpoint`` label of the metrics."""
    url: str
    """``http://`` or ``https://`` URL."""
    method: Literal["GET", "HEAD"] = "GET"
    """HTTP method; HEAD skips the body."""
    timeout_s: float = Field(default=5.0, gt=0)
    """Connect and read timeout, each."""
    expect_status: tuple[int, ...] = ()
    """Acceptable status codes; empty means 200-399."""
    body_regex: str | None = None
    """Regular expression the body (first 1 MiB, decoded as UTF-8) must match (GET only)."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra request headers (``Host``, ``Authorization``...). Never reported."""
    verify_tls: bool = True
    """Verify the certificate chain and host name for https."""
    ca_file: str | None = None
    """PEM bundle of trusted CAs instead of the system store."""
    levels_latency_s: Levels = (1.0, 5.0)
    """(warn, crit) for the total request time."""
    levels_cert_days: Levels = (30.0, 7.0)
    """(warn, crit) for days until the certificate expires (lower levels)."""

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("url must be http:// or https:// with a host")
        try:
            _ = parts.port
        except ValueError:
            raise ValueError("url has an invalid port") from None
        return value

    @field_validator("body_regex")
    @classmethod
    def _valid_regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return value

    @field_validator("expect_status")
    @classmethod
    def _status_codes(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        for code in value:
            if not 100 <= code <= 599:
                raise ValueError(f"{code} is not an HTTP status code")
        return value

    @model_validator(mode="after")
    def _head_has_no_body(self) -> Endpoint:
        if self.method == "HEAD" and self.body_regex is not None:
            raise ValueError("body_regex needs method GET: a HEAD response has no body")
        return self


class HttpParams(CheckParams):
    endpoints: tuple[Endpoint, ...] = ()
    """Endpoints to request, in order."""


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """One request's outcome; ``error`` is set (and ``status`` None) when it failed."""

    name: str
    url: str
    status: int | None
    reason: str
    latency_s: float
    ttfb_s: float | None
    body_bytes: int
    body_matched: bool | None
    location: str | None
    cert_days_left: float | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class HttpSection:
    responses: tuple[HttpResponse, ...]


# --- DER decoding --------------------------------------------------------------------------


def _der_element(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the DER element at ``pos``."""
    if pos + 2 > len(data):
        raise ValueError("DER: truncated element")
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise ValueError("DER: bad length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise ValueError("DER: element runs past the end")
    return tag, pos, pos + length


def der_not_after(der: bytes) -> float:
    """The ``notAfter`` of an X.509 certificate in DER form, as a Unix timestamp.

    Walks Certificate → TBSCertificate → [version], serial, signature, issuer,
    validity; no third-party ASN.1 library needed.

    >>> der_not_after(b"\\x30\\x03\\x02\\x01\\x00")
    Traceback (most recent call last):
    ...
    ValueError: DER: not an X.509 certificate
    """
    tag, start, _ = _der_element(der, 0)
    if tag != 0x30:
        raise ValueError("DER: not an X.509 certificate")
    tag, pos, tbs_end = _der_element(der, start)
    if tag != 0x30:
        raise ValueError("DER: not an X.509 certificate")
    tag, _, end = _der_element(der, pos)
    if tag == 0xA0:  # explicit [0] version
        pos = end
    for _field in ("serial", "signature", "issuer"):
        _, _, pos = _der_element(der, pos)
    tag, pos, _ = _der_element(der, pos)
    if tag != 0x30 or pos >= tbs_end:
        raise ValueError("DER: validity not found")
    _, _, pos = _der_element(der, pos)  # notBefore
    tag, start, end = _der_element(der, pos)
    text = der[start:end].decode("ascii")
    if tag == 0x17:  # UTCTime YYMMDDHHMMSSZ; years 50-99 are 19xx (RFC 5280)
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    elif tag != 0x18:  # GeneralizedTime YYYYMMDDHHMMSSZ
        raise ValueError("DER: notAfter is not a time")
    return datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=UTC).timestamp()


# --- collect -----------------------------------------------------------------------------


def collect_http(probe: Probe, params: HttpParams) -> HttpSection:
    if not params.endpoints:
        raise SkipCheck("no HTTP endpoints configured")
    return HttpSection(tuple(_request(probe, endpoint) for endpoint in params.endpoints))


def _request(probe: Probe, endpoint: Endpoint) -> HttpResponse:
    import http.client  # lazily: only agents that watch HTTP endpoints pay for it
    import ssl

    parts = urlsplit(endpoint.url)
    host = parts.hostname or ""
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    conn: http.client.HTTPConnection | None = None
    started = time.monotonic()
    cert_days: float | None = None
    try:
        if parts.scheme == "https":
            context = _tls_context(
                endpoint.verify_tls, endpoint.ca_file, _trust_store_mtime(endpoint.ca_file)
            )
            conn = http.client.HTTPSConnection(host, parts.port, timeout=endpoint.timeout_s, context=context)
        else:
            conn = http.client.HTTPConnection(host, parts.port, timeout=endpoint.timeout_s)
        conn.connect()
        if isinstance(conn.sock, ssl.SSLSocket):
            der = conn.sock.getpeercert(binary_form=True)
            if der:
                cert_days = (der_not_after(der) - probe.now()) / 86400
        conn.request(endpoint.method, path, headers=endpoint.headers)
        response = conn.getresponse()
        ttfb = time.monotonic() - started
        body = b"" if endpoint.method == "HEAD" else response.read(MAX_BODY_BYTES)
        latency = time.monotonic() - started
    except (OSError, http.client.HTTPException, ValueError) as exc:
        # Refused, timed out, TLS failure, garbled response, bad certificate encoding: all
        # mean "this endpoint did not answer properly", reported per endpoint.
        return HttpResponse(
            endpoint.name,
            endpoint.url,
            None,
            "",
            time.monotonic() - started,
            None,
            0,
            None,
            None,
            cert_days,
            _describe(exc, endpoint.timeout_s),
        )
    finally:
        if conn is not None:
            conn.close()
    matched = None
    if endpoint.body_regex is not None:
        matched = re.search(endpoint.body_regex, body.decode("utf-8", errors="replace")) is not None
    return HttpResponse(
        endpoint.name,
        endpoint.url,
        response.status,
        response.reason,
        latency,
        ttfb,
        len(body),
        matched,
        response.getheader("Location"),
        cert_days,
    )


@functools.lru_cache(maxsize=16)
def _tls_context(verify: bool, ca_file: str | None, trust_store_mtime: float) -> ssl.SSLContext:
    """A client context, built once per trust store version.

    Loading the system CA bundle costs about 16 ms of CPU, more than the whole check
    cycle may spend, so contexts are cached; the trust store's mtime is part of the key,
    so an updated bundle is picked up on the next run. Without verification no CA is
    loaded at all.
    """
    import ssl

    if not verify:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=ca_file)


def _trust_store_mtime(ca_file: str | None) -> float:
    import ssl

    path = ca_file or ssl.get_default_verify_paths().openssl_cafile
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0  # no bundle file (a CA directory only): the context loader reports it


def _describe(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout_s:g} s"
    text = str(exc) or type(exc).__name__
    return text[:200]


# --- evaluate ----------------------------------------------------------------------------


def evaluate_http(params: HttpParams, section: HttpSection, store: ValueStore) -> Iterator[Result | Metric]:
    endpoints = {e.name: e for e in params.endpoints}
    for resp in section.responses:
        endpoint = endpoints.get(resp.name)
        if endpoint is None:
            continue
        yield from _evaluate_one(endpoint, resp)


def _evaluate_one(endpoint: Endpoint, resp: HttpResponse) -> Iterator[Result | Metric]:
    item = resp.name
    labels = {"endpoint": item}
    if resp.status is None:
        yield Result(Severity.CRIT, "HTTP_UNREACHABLE", f"{resp.url} unreachable: {resp.error}", item)
        yield Metric("app_http_up_boolean", 0, Unit.BOOLEAN, labels)
        if resp.cert_days_left is not None:
            yield from _cert(endpoint, resp.cert_days_left, item, labels)
        return
    yield Metric("app_http_up_boolean", 1, Unit.BOOLEAN, labels)
    status_text = f"HTTP {resp.status} {resp.reason}".rstrip()
    if resp.location and 300 <= resp.status < 400:
        status_text += f" → {resp.location}"
    expected = endpoint.expect_status
    good = resp.status in expected if expected else 200 <= resp.status <= 399
    if good:
        yield Result(Severity.OK, "OK", status_text, item)
    else:
        want = ", ".join(str(c) for c in expected) if expected else "200-399"
        yield Result(Severity.CRIT, "HTTP_BAD_STATUS", f"{status_text} (expected {want})", item)
    if resp.body_matched is False:
        yield Result(
            Severity.CRIT,
            "HTTP_BODY_MISMATCH",
            f"Body ({resp.body_bytes} bytes read) does not match {endpoint.body_regex!r}",
            item,
        )
    yield check_levels(
        resp.latency_s,
        key="HTTP_SLOW",
        label="Response time",
        levels_upper=endpoint.levels_latency_s,
        render=render_seconds,
        item=item,
    )
    yield Metric("app_http_status_info", 1, Unit.INFO, {**labels, "status": str(resp.status)})
    yield Metric("app_http_latency_seconds", resp.latency_s, Unit.SECONDS, labels)
    if resp.ttfb_s is not None:
        yield Metric("app_http_time_to_first_byte_seconds", resp.ttfb_s, Unit.SECONDS, labels)
    if resp.cert_days_left is not None:
        yield from _cert(endpoint, resp.cert_days_left, item, labels)


def _cert(endpoint: Endpoint, days: float, item: str, labels: dict[str, str]) -> Iterator[Result | Metric]:
    yield check_levels(
        days,
        key="CERT_EXPIRING",
        label="Certificate expires in",
        levels_lower=endpoint.levels_cert_days,
        render=lambda d: f"{d:.1f} days",
        item=item,
    )
    yield Metric("app_http_cert_expiry_days", days, Unit.DAYS, labels)


HTTP = Check(
    name="application.http",
    layer=Layer.APPLICATION,
    summary="HTTP(S) endpoints: status, latency, body and certificate expiry",
    collect=collect_http,
    evaluate=evaluate_http,
    params=HttpParams,
    keys=("HTTP_UNREACHABLE", "HTTP_BAD_STATUS", "HTTP_BODY_MISMATCH", "HTTP_SLOW", "CERT_EXPIRING"),
    metrics=(
        MetricSpec(
            "app_http_up_boolean",
            Unit.BOOLEAN,
            "Whether the endpoint answered (1) or not (0)",
            Direction.DOWN_IS_BAD,
            ("endpoint",),
        ),
        MetricSpec(
            "app_http_status_info", Unit.INFO, "Status code of the last answer", labels=("endpoint", "status")
        ),
        MetricSpec(
            "app_http_latency_seconds",
            Unit.SECONDS,
            "Total request time: connect, TLS, request, headers and body",
            Direction.UP_IS_BAD,
            ("endpoint",),
        ),
        MetricSpec(
            "app_http_time_to_first_byte_seconds",
            Unit.SECONDS,
            "Time from connecting until the response headers arrived",
            Direction.UP_IS_BAD,
            ("endpoint",),
        ),
        MetricSpec(
            "app_http_cert_expiry_days",
            Unit.DAYS,
            "Days until the server certificate expires",
            Direction.DOWN_IS_BAD,
            ("endpoint",),
        ),
    ),
    interval_s=60,
    timeout_s=30,
    blocking=True,
)
