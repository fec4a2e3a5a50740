"""network.tcp_connect: TCP connect latency to configured endpoints.

Every endpoint is resolved, then all connects run in parallel (non-blocking sockets
and one selector), so the check takes as long as the slowest endpoint, not the sum.
The connection is closed as soon as it is established; nothing is sent. Sample of
what :func:`collect_tcp_connect` returns::

    TcpConnectSection(outcomes=(
        ConnectOutcome(name='db', host='127.0.0.1', port=5432, address='127.0.0.1',
                       seconds=0.000143, error=None),
        ConnectOutcome(name='cache', host='127.0.0.1', port=6380, address='127.0.0.1',
                       seconds=None, error='connection refused')))
"""

from __future__ import annotations

import errno
import os
import selectors
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, field_validator

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


class Endpoint(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    """Label of the endpoint in results and metrics (``db``, ``license-server``)."""
    host: str = Field(min_length=1)
    """Host name or IP address."""
    port: int = Field(ge=1, le=65535)
    timeout_s: float = Field(default=3.0, gt=0, le=30)
    """Seconds to wait for the handshake before calling it failed."""


class TcpConnectParams(CheckParams):
    endpoints: tuple[Endpoint, ...] = ()
    """Endpoints to connect to; none configured: the check is skipped."""
    levels_seconds: Levels = (0.5, 2.0)
    """(warn, crit) for the connect time (TCP_CONNECT_SLOW)."""

    @field_validator("endpoints")
    @classmethod
    def _unique_names(cls, value: tuple[Endpoint, ...]) -> tuple[Endpoint, ...]:
        names = [endpoint.name for endpoint in value]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"endpoint names must be unique, repeated: {', '.join(duplicates)}")
        return value


@dataclass(frozen=True, slots=True)
class ConnectOutcome:
    name: str
    host: str
    port: int
    address: str | None
    seconds: float | None
    """Handshake time; None when the connect failed."""
    error: str | None


@dataclass(frozen=True, slots=True)
class TcpConnectSection:
    outcomes: tuple[ConnectOutcome, ...]


@dataclass
class _Pending:
    endpoint: Endpoint
    address: str
    started: float
    deadline: float


def _describe(code: int) -> str:
    return {
        errno.ECONNREFUSED: "connection refused",
        errno.ETIMEDOUT: "timed out",
        errno.EHOSTUNREACH: "host unreachable",
        errno.ENETUNREACH: "network unreachable",
    }.get(code, os.strerror(code).lower())


def collect_tcp_connect(probe: Probe, params: TcpConnectParams) -> TcpConnectSection:
    if not params.endpoints:
        raise SkipCheck("no endpoints configured")
    outcomes: dict[str, ConnectOutcome] = {}
    selector = selectors.DefaultSelector()
    try:
        for endpoint in params.endpoints:
            try:
                family, kind, proto, _, sockaddr = socket.getaddrinfo(
                    endpoint.host, endpoint.port, type=socket.SOCK_STREAM
                )[0]
            except (socket.gaierror, UnicodeError) as exc:  # a name that does not resolve is a failure
                outcomes[endpoint.name] = ConnectOutcome(
                    endpoint.name, endpoint.host, endpoint.port, None, None, f"cannot resolve: {exc}"
                )
                continue
            sock = socket.socket(family, kind, proto)
            sock.setblocking(False)
            started = time.perf_counter()
            code = sock.connect_ex(sockaddr)
            address = str(sockaddr[0])
            if code in (errno.EINPROGRESS, errno.EAGAIN):
                pending = _Pending(endpoint, address, started, started + endpoint.timeout_s)
                selector.register(sock, selectors.EVENT_WRITE, pending)
                continue
            elapsed = time.perf_counter() - started
            sock.close()
            outcomes[endpoint.name] = ConnectOutcome(
                endpoint.name,
                endpoint.host,
                endpoint.port,
                address,
                elapsed if code == 0 else None,
                None if code == 0 else _describe(code),
            )
        _wait(selector, outcomes)
    finally:
        for key in list(selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        selector.close()
    return TcpConnectSection(tuple(outcomes[endpoint.name] for endpoint in params.endpoints))


def _wait(selector: selectors.BaseSelector, outcomes: dict[str, ConnectOutcome]) -> None:
    """Collect handshakes until every socket finished or passed its deadline."""
    while selector.get_map():
        pendings: list[_Pending] = [key.data for key in selector.get_map().values()]
        now = time.perf_counter()
        for key in list(selector.get_map().values()):
            pending: _Pending = key.data
            if now >= pending.deadline:
                selector.unregister(key.fileobj)
                key.fileobj.close()  # type: ignore[union-attr]
                outcomes[pending.endpoint.name] = _outcome(
                    pending, None, f"timed out after {render_seconds(pending.endpoint.timeout_s)}"
                )
        if not selector.get_map():
            return
        timeout = max(0.0, min(p.deadline for p in pendings) - now)
        for key, _events in selector.select(timeout):
            pending = key.data
            elapsed = time.perf_counter() - pending.started
            sock: socket.socket = key.fileobj  # type: ignore[assignment]
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            selector.unregister(sock)
            sock.close()
            outcomes[pending.endpoint.name] = _outcome(pending, elapsed if code == 0 else None, _error(code))


def _error(code: int) -> str | None:
    return None if code == 0 else _describe(code)


def _outcome(pending: _Pending, seconds: float | None, error: str | None) -> ConnectOutcome:
    endpoint = pending.endpoint
    return ConnectOutcome(endpoint.name, endpoint.host, endpoint.port, pending.address, seconds, error)


def evaluate_tcp_connect(
    params: TcpConnectParams, section: TcpConnectSection, store: ValueStore
) -> Iterator[Result | Metric]:
    for outcome in section.outcomes:
        labels = {"endpoint": outcome.name}
        target = f"{outcome.host}:{outcome.port}"
        yield Metric(
            "net_tcp_connect_success_boolean", 0.0 if outcome.seconds is None else 1.0, Unit.BOOLEAN, labels
        )
        if outcome.seconds is None:
            yield Result(
                Severity.CRIT,
                "TCP_CONNECT_FAILED",
                f"Connect to {target} failed: {outcome.error}",
                outcome.name,
            )
            continue
        yield Metric("net_tcp_connect_seconds", outcome.seconds, Unit.SECONDS, labels)
        yield check_levels(
            outcome.seconds,
            key="TCP_CONNECT_SLOW",
            label=f"Connect to {target}",
            levels_upper=params.levels_seconds,
            render=render_seconds,
            item=outcome.name,
        )


TCP_CONNECT = Check(
    name="network.tcp_connect",
    layer=Layer.NETWORK,
    summary="TCP connect time to configured endpoints (all in parallel)",
    collect=collect_tcp_connect,
    evaluate=evaluate_tcp_connect,
    params=TcpConnectParams,
    keys=("TCP_CONNECT_FAILED", "TCP_CONNECT_SLOW"),
    metrics=(
        MetricSpec(
            "net_tcp_connect_seconds",
            Unit.SECONDS,
            "Time to complete a TCP handshake with the endpoint",
            Direction.UP_IS_BAD,
            ("endpoint",),
        ),
        MetricSpec(
            "net_tcp_connect_success_boolean",
            Unit.BOOLEAN,
            "1 when the last connect to the endpoint succeeded",
            Direction.DOWN_IS_BAD,
            ("endpoint",),
        ),
    ),
    interval_s=60,
    timeout_s=35,
    blocking=True,
)
