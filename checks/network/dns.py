"""network.dns: name resolution works and is fast; nameservers are configured.

Resolves each configured name with ``socket.getaddrinfo`` (the host's own resolver:
``/etc/hosts``, nsswitch, ``/etc/resolv.conf``), timing each, and counts the
``nameserver`` lines of ``/etc/resolv.conf``. Sample of what :func:`collect_dns`
returns::

    DnsSection(lookups=(Lookup(name='localhost', seconds=1.5e-05, addresses=1, error=None),),
               nameservers=1, resolv_conf_present=True)
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

from pydantic import Field, field_validator

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
    render_seconds,
)
from checks.probe import Probe

_RESOLV_CONF = "/etc/resolv.conf"


@dataclass(frozen=True, slots=True)
class Lookup:
    name: str
    seconds: float
    """Time the lookup took, successful or not."""
    addresses: int
    """Distinct addresses returned (0 on failure)."""
    error: str | None


@dataclass(frozen=True, slots=True)
class DnsSection:
    lookups: tuple[Lookup, ...]
    nameservers: int
    resolv_conf_present: bool


class DnsParams(CheckParams):
    names: tuple[str, ...] = Field(default=("localhost",), min_length=1)
    """Names to resolve each run. ``localhost`` proves only the local resolver path;
    add a name the product depends on to test DNS itself."""
    levels_seconds: Levels = (0.5, 2.0)
    """(warn, crit) for one lookup's duration (DNS_SLOW)."""

    @field_validator("names")
    @classmethod
    def _valid_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            try:
                name.encode("idna")
            except UnicodeError:
                raise ValueError(f"{name!r} is not a valid host name") from None
        return value


def count_nameservers(text: str) -> int:
    """Count ``nameserver`` lines of a resolv.conf (comments ignored).

    >>> count_nameservers("# x\\nnameserver 10.0.0.2\\nsearch x\\n nameserver ::1\\n;nameserver 9.9.9.9\\n")
    2
    """
    count = 0
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            count += 1
    return count


def _lookup(name: str) -> Lookup:
    started = time.perf_counter()
    try:
        infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:  # resolution failed: that is the finding
        return Lookup(name, time.perf_counter() - started, 0, str(exc))
    return Lookup(name, time.perf_counter() - started, len({info[4][0] for info in infos}), None)


def collect_dns(probe: Probe, params: DnsParams) -> DnsSection:
    try:
        nameservers, present = count_nameservers(probe.read_text(_RESOLV_CONF)), True
    except FileNotFoundError:  # no resolv.conf: glibc then asks 127.0.0.1; reported, not an error
        nameservers, present = 0, False
    return DnsSection(tuple(_lookup(name) for name in params.names), nameservers, present)


def evaluate_dns(params: DnsParams, section: DnsSection, store: ValueStore) -> Iterator[Result | Metric]:
    yield Metric("net_dns_nameservers_count", section.nameservers, Unit.COUNT)
    resolved = 0
    for lookup in section.lookups:
        labels = {"name": lookup.name}
        yield Metric("net_dns_resolve_seconds", lookup.seconds, Unit.SECONDS, labels)
        yield Metric("net_dns_resolve_success_boolean", 0.0 if lookup.error else 1.0, Unit.BOOLEAN, labels)
        if lookup.error is not None:
            yield Result(
                Severity.CRIT,
                "DNS_FAILED",
                f"Cannot resolve after {render_seconds(lookup.seconds)}: {lookup.error}",
                lookup.name,
            )
            continue
        resolved += 1
        result = check_levels(
            lookup.seconds,
            key="DNS_SLOW",
            label="Resolved",
            levels_upper=params.levels_seconds,
            render=render_seconds,
            item=lookup.name,
        )
        plural = "es" if lookup.addresses != 1 else ""
        yield Result(
            result.severity, result.key, f"{result.summary} ({lookup.addresses} address{plural})", lookup.name
        )
    if section.nameservers == 0 and resolved == 0:
        where = _RESOLV_CONF if section.resolv_conf_present else f"{_RESOLV_CONF} (absent)"
        yield Result(Severity.WARN, "DNS_NO_NAMESERVER", f"No nameserver in {where} and no name resolves")


DNS = Check(
    name="network.dns",
    layer=Layer.NETWORK,
    summary="Name resolution works and is fast; nameservers configured",
    collect=collect_dns,
    evaluate=evaluate_dns,
    params=DnsParams,
    keys=("DNS_FAILED", "DNS_SLOW", "DNS_NO_NAMESERVER"),
    metrics=(
        MetricSpec(
            "net_dns_resolve_seconds",
            Unit.SECONDS,
            "Time getaddrinfo took for the name",
            Direction.UP_IS_BAD,
            ("name",),
        ),
        MetricSpec(
            "net_dns_resolve_success_boolean",
            Unit.BOOLEAN,
            "1 when the name resolved",
            Direction.DOWN_IS_BAD,
            ("name",),
        ),
        MetricSpec(
            "net_dns_nameservers_count",
            Unit.COUNT,
            "Nameserver lines in /etc/resolv.conf",
            Direction.DOWN_IS_BAD,
        ),
    ),
    interval_s=60,
    timeout_s=30,
    blocking=True,
)
