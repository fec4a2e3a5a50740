"""platform.tls_endpoints: TLS handshake time, trust and certificate expiry of configured endpoints.

Each endpoint gets a TCP connect and a verified handshake (``ssl.create_default_context``,
the system trust store or ``cafile``). When verification fails, a second handshake
without verification fetches the certificate anyway, so an untrusted certificate still
gets its expiry checked. The server certificate's expiry comes from its DER bytes
(``checks.platform._common.der_cert_info``). Skipped when no endpoints are configured.

Sample of what :func:`collect_tls_endpoints` returns::

    TlsEndpointsSection(ts=1764093600.0, endpoints=(
        EndpointProbe(name='portal', connect_s=0.0021, handshake_s=0.0143, tls_version='TLSv1.3',
                      verify_error=None, subject='portal.example.com', not_after=1769990400.0, error=None),
        EndpointProbe(name='legacy-api', connect_s=0.0019, handshake_s=0.0098, tls_version='TLSv1.2',
                      verify_error='self-signed certificate', subject='legacy', not_after=1780000000.0,
                      error=None),
    ))
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import Field

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
from checks.platform._common import der_cert_info, expiry_result
from checks.probe import Probe

if TYPE_CHECKING:
    import ssl


class TlsEndpoint(CheckParams):
    name: str
    """Item name of the endpoint in results (``portal``)."""
    host: str
    """Host name or address to connect to."""
    port: int = Field(default=443, ge=1, le=65535)
    server_name: str | None = None
    """Name sent as SNI and verified against the certificate (default: ``host``)."""
    timeout_s: float = Field(default=5.0, gt=0)
    """Timeout of the connect and of each handshake."""
    cafile: str | None = None
    """PEM bundle of the CAs to trust instead of the system store (a private CA)."""


class TlsEndpointsParams(CheckParams):
    endpoints: list[TlsEndpoint] = Field(default_factory=list)
    """Endpoints to probe."""
    levels_days_left: Levels = (30.0, 7.0)
    """(warn, crit) lower levels on the days until the server certificate expires."""
    levels_handshake_s: Levels = (1.0, 3.0)
    """(warn, crit) for the TLS handshake time in seconds (TCP connect excluded)."""


@dataclass(frozen=True, slots=True)
class EndpointProbe:
    name: str
    connect_s: float | None
    handshake_s: float | None
    tls_version: str | None
    verify_error: str | None
    """Why verification failed (the certificate was fetched unverified then)."""
    subject: str
    not_after: float | None
    error: str | None = None
    """Why the connect or handshake failed; ``connect_s`` is None when the connect did."""


@dataclass(frozen=True, slots=True)
class TlsEndpointsSection:
    ts: float
    endpoints: tuple[EndpointProbe, ...]


def _tls(
    probe: Probe, ep: TlsEndpoint, context: ssl.SSLContext, raw: socket.socket | None = None
) -> tuple[float, str | None, bytes | None]:
    """One handshake on ``raw`` (or a fresh connection): (handshake seconds, TLS version, peer DER).

    Raises ``OSError``: ``ssl.SSLError`` for a failed handshake, a timeout, or a refused
    reconnect. The socket is closed either way.
    """
    if raw is None:
        raw = socket.create_connection((ep.host, ep.port), timeout=ep.timeout_s)
    with raw:
        started = probe.monotonic()
        with context.wrap_socket(raw, server_hostname=ep.server_name or ep.host) as tls:
            return probe.monotonic() - started, tls.version(), tls.getpeercert(binary_form=True)


def _failed(
    ep: TlsEndpoint, connect_s: float | None, error: str, verify_error: str | None = None
) -> EndpointProbe:
    return EndpointProbe(ep.name, connect_s, None, None, verify_error, "", None, error)


def probe_endpoint(probe: Probe, ep: TlsEndpoint) -> EndpointProbe:
    import ssl  # lazily: only hosts that watch endpoints pay for it

    try:
        verified = ssl.create_default_context(cafile=ep.cafile)
    except OSError as exc:  # a configuration error: loud, for the whole check
        raise ValueError(
            f"endpoint {ep.name}: cannot load cafile {ep.cafile}: {exc.strerror or exc}"
        ) from None
    started = probe.monotonic()
    try:  # connect apart from the handshake: a refused port and a failed handshake differ
        raw = socket.create_connection((ep.host, ep.port), timeout=ep.timeout_s)
    except OSError as exc:  # refused, unreachable, timeout, DNS failure
        return _failed(ep, None, f"connect failed: {exc.strerror or exc or type(exc).__name__}")
    connect_s = probe.monotonic() - started
    verify_error = None
    try:  # verified first; only an untrusted certificate costs a second, unverified handshake
        handshake_s, version, der = _tls(probe, ep, verified, raw)
    except ssl.SSLCertVerificationError as exc:
        verify_error = exc.verify_message or str(exc)
        unverified = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        unverified.check_hostname = False
        unverified.verify_mode = ssl.CERT_NONE
        try:
            handshake_s, version, der = _tls(probe, ep, unverified)
        except OSError as again:  # SSLError is an OSError: it failed differently the second time
            return _failed(ep, connect_s, f"handshake failed: {again}", verify_error)
    except OSError as exc:  # SSLError (protocol, alert) or a timeout during the handshake
        reason = (
            exc.reason if isinstance(exc, ssl.SSLError) and exc.reason else str(exc) or type(exc).__name__
        )
        return _failed(ep, connect_s, f"handshake failed: {reason}")
    if not der:
        return EndpointProbe(
            ep.name, connect_s, handshake_s, version, verify_error, "", None, "no certificate"
        )
    try:
        info = der_cert_info(der)
    except ValueError as exc:
        return EndpointProbe(ep.name, connect_s, handshake_s, version, verify_error, "", None, str(exc))
    return EndpointProbe(ep.name, connect_s, handshake_s, version, verify_error, info.subject, info.not_after)


def collect_tls_endpoints(probe: Probe, params: TlsEndpointsParams) -> TlsEndpointsSection:
    if not params.endpoints:
        raise SkipCheck("no TLS endpoints configured (params.endpoints)")
    return TlsEndpointsSection(probe.now(), tuple(probe_endpoint(probe, ep) for ep in params.endpoints))


def evaluate_tls_endpoints(
    params: TlsEndpointsParams, section: TlsEndpointsSection, store: ValueStore
) -> Iterator[Result | Metric]:
    for ep in section.endpoints:
        labels = {"endpoint": ep.name}
        if ep.connect_s is not None:
            yield Metric("platform_tls_connect_seconds", ep.connect_s, Unit.SECONDS, labels)
        if ep.handshake_s is None:
            key = "TLS_CONNECT_FAILED" if ep.connect_s is None else "TLS_HANDSHAKE_FAILED"
            yield Result(Severity.CRIT, key, ep.error or "failed", ep.name)
            continue
        yield Metric("platform_tls_handshake_seconds", ep.handshake_s, Unit.SECONDS, labels)
        if ep.verify_error is not None:
            yield Result(
                Severity.WARN,
                "CERT_UNTRUSTED",
                f"Certificate verification failed: {ep.verify_error}",
                ep.name,
            )
        if ep.not_after is None:
            yield Result(
                Severity.UNKNOWN,
                "CERT_UNREADABLE",
                f"Cannot read the server certificate: {ep.error}",
                ep.name,
            )
        else:
            days, result = expiry_result(
                ep.not_after, section.ts, params.levels_days_left, ep.name, ep.subject
            )
            yield Metric("platform_tls_cert_expires_in_days", days, Unit.DAYS, labels)
            yield Result(result.severity, result.key, f"{result.summary} ({ep.tls_version})", ep.name)
        slow = check_levels(
            ep.handshake_s,
            key="TLS_HANDSHAKE_SLOW",
            label="TLS handshake",
            levels_upper=params.levels_handshake_s,
            render=render_seconds,
            item=ep.name,
        )
        if slow.severity is not Severity.OK:
            yield slow


TLS_ENDPOINTS = Check(
    name="platform.tls_endpoints",
    layer=Layer.PLATFORM,
    summary="TLS endpoints: handshake time, certificate trust and expiry",
    collect=collect_tls_endpoints,
    evaluate=evaluate_tls_endpoints,
    params=TlsEndpointsParams,
    keys=(
        "CERT_EXPIRING",
        "CERT_EXPIRED",
        "CERT_UNTRUSTED",
        "CERT_UNREADABLE",
        "TLS_CONNECT_FAILED",
        "TLS_HANDSHAKE_FAILED",
        "TLS_HANDSHAKE_SLOW",
    ),
    metrics=(
        MetricSpec(
            "platform_tls_connect_seconds",
            Unit.SECONDS,
            "TCP connect time to the endpoint",
            Direction.UP_IS_BAD,
            labels=("endpoint",),
        ),
        MetricSpec(
            "platform_tls_handshake_seconds",
            Unit.SECONDS,
            "TLS handshake time after the TCP connect",
            Direction.UP_IS_BAD,
            labels=("endpoint",),
        ),
        MetricSpec(
            "platform_tls_cert_expires_in_days",
            Unit.DAYS,
            "Days until the endpoint's certificate expires (negative once expired)",
            Direction.DOWN_IS_BAD,
            labels=("endpoint",),
        ),
    ),
    interval_s=300,
    timeout_s=60,
    blocking=True,
)
