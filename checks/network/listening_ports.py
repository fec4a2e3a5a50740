"""network.listening_ports: expected TCP ports are listening; inventory of listeners.

Asks NETLINK_SOCK_DIAG for LISTEN sockets only (the kernel then walks just its
listening hash, ~40 µs here), or reuses the full dump ``network.tcp_states`` made
this cycle. Sample of what :func:`collect_listening_ports` returns::

    ListeningSection(listeners=(
        ListenSocket(family='ipv4', address='0.0.0.0', port=22, accept_queue=0, backlog=128),
        ListenSocket(family='ipv6', address='::', port=22, accept_queue=0, backlog=128),
        ListenSocket(family='ipv4', address='127.0.0.1', port=5432, accept_queue=0, backlog=244)),
        error=None)
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

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
    Unit,
    ValueStore,
    check_levels,
)
from checks.network._sockdiag import ListenSocket, tcp_sockets
from checks.probe import Probe


@dataclass(frozen=True, slots=True)
class ListeningSection:
    listeners: tuple[ListenSocket, ...]
    error: str | None = None
    """Why netlink could not list listeners (then ``listeners`` is empty)."""


class ExpectedPort(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    port: int = Field(ge=1, le=65535)
    """TCP port that must have a listener."""
    proto: Literal["tcp"] = "tcp"
    """Only TCP is checked (sock_diag of LISTEN sockets)."""
    address: str | None = None
    """Local address it must listen on; a wildcard listener (0.0.0.0, ::) counts. None: any."""

    @field_validator("address")
    @classmethod
    def _valid_address(cls, value: str | None) -> str | None:
        if value is not None:
            return str(ipaddress.ip_address(value))  # normalised: '::0001' -> '::1'
        return value

    @property
    def item(self) -> str:
        if self.address is None:
            return f"{self.proto}/{self.port}"
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.proto}/{host}:{self.port}"


class ListeningPortsParams(CheckParams):
    expected: tuple[ExpectedPort, ...] = ()
    """Ports that must be listening; a missing one is critical (PORT_NOT_LISTENING)."""
    levels_accept_queue_percent: Levels = (80.0, 100.0)
    """(warn, crit) for an expected port's accept queue as a share of its backlog: a full
    queue means the application is not accepting fast enough and new clients are dropped."""


def collect_listening_ports(probe: Probe, params: ListeningPortsParams) -> ListeningSection:
    outcome = tcp_sockets(probe, listen_only=True)
    if outcome.summary is None:
        return ListeningSection((), outcome.error)
    return ListeningSection(outcome.summary.listeners)


_WILDCARDS = frozenset({"0.0.0.0", "::"})


def _serves(listener: ListenSocket, expected: ExpectedPort) -> bool:
    if listener.port != expected.port:
        return False
    if expected.address is None or listener.address == expected.address:
        return True
    if listener.address == "0.0.0.0":
        return ":" not in expected.address
    # "::" also accepts IPv4 unless the socket is IPV6_V6ONLY, which sock_diag does not
    # report without an extra attribute: count it, as most dual-stack servers work so.
    return listener.address == "::"


def evaluate_listening_ports(
    params: ListeningPortsParams, section: ListeningSection, store: ValueStore
) -> Iterator[Result | Metric]:
    if section.error is not None:
        yield Result(
            Severity.UNKNOWN, "SOCK_DIAG_UNAVAILABLE", f"Cannot list listening sockets: {section.error}"
        )
        return
    yield Metric("net_listening_sockets_count", len(section.listeners), Unit.COUNT)
    ports = sorted({listener.port for listener in section.listeners})
    if not params.expected:
        shown = ", ".join(map(str, ports[:20])) + (f" and {len(ports) - 20} more" if len(ports) > 20 else "")
        yield Result(
            Severity.OK,
            "OK",
            f"{len(section.listeners)} listening TCP sockets on {len(ports)} ports"
            + (f": {shown}" if ports else ""),
        )
        return
    for expected in params.expected:
        matching = [listener for listener in section.listeners if _serves(listener, expected)]
        if not matching:
            yield Result(Severity.CRIT, "PORT_NOT_LISTENING", "Nothing is listening", expected.item)
            continue
        where = ", ".join(sorted({_endpoint(listener) for listener in matching}))
        yield Result(Severity.OK, "OK", f"Listening on {where}", expected.item)
        fullest = max(matching, key=lambda s: s.accept_queue / s.backlog if s.backlog else 0.0)
        if fullest.backlog:
            percent = fullest.accept_queue / fullest.backlog * 100
            yield Metric(
                "net_listen_accept_queue_percent", percent, Unit.PERCENT, {"port": str(expected.port)}
            )
            result = check_levels(
                percent,
                key="LISTEN_QUEUE_FULL",
                label="Accept queue",
                levels_upper=params.levels_accept_queue_percent,
                render=lambda v: f"{v:.0f}%",
                item=expected.item,
            )
            if result.severity is not Severity.OK:
                yield Result(
                    result.severity,
                    result.key,
                    f"{result.summary}: {fullest.accept_queue} of {fullest.backlog} "
                    "connections wait for accept()",
                    expected.item,
                )


def _endpoint(listener: ListenSocket) -> str:
    host = f"[{listener.address}]" if listener.family == "ipv6" else listener.address
    return f"{host}:{listener.port}"


LISTENING_PORTS = Check(
    name="network.listening_ports",
    layer=Layer.NETWORK,
    summary="Expected TCP ports have a listener; count of listening sockets; accept-queue fill",
    collect=collect_listening_ports,
    evaluate=evaluate_listening_ports,
    params=ListeningPortsParams,
    keys=("PORT_NOT_LISTENING", "LISTEN_QUEUE_FULL", "SOCK_DIAG_UNAVAILABLE"),
    metrics=(
        MetricSpec(
            "net_listening_sockets_count", Unit.COUNT, "TCP sockets in LISTEN state", Direction.NEUTRAL
        ),
        MetricSpec(
            "net_listen_accept_queue_percent",
            Unit.PERCENT,
            "Connections waiting for accept() as a share of the listen backlog "
            "(fullest listener of an expected port)",
            Direction.UP_IS_BAD,
            ("port",),
        ),
    ),
    interval_s=60,
    timeout_s=5,
)
