"""network.neighbours: ARP/NDP neighbour tables near their limit, unresolved neighbours, the gateway.

The kernel keeps one neighbour table per family (ARP for IPv4, NDP for IPv6) and
refuses new entries once it holds ``gc_thresh3`` of them and garbage collection
cannot free any: the kernel logs "neighbour table overflow" and the host can no
longer reach new peers, a classic collapse on large flat L2 networks and on
container hosts. So:

- table entries (the ``entries`` column of ``/proc/net/stat/arp_cache`` and
  ``ndisc_cache``, the whole table across network namespaces, which is what the
  limit applies to; ``/proc/net/arp`` line count when the stat file is absent) as
  a percent of ``/proc/sys/net/ipv{4,6}/neigh/default/gc_thresh3``:
  ``NEIGH_TABLE_NEARLY_FULL`` per family (item ``ipv4`` / ``ipv6``);
- ``table_fulls`` (summed over the per-CPU hex lines) increased since the last run:
  CRIT ``NEIGH_TABLE_OVERFLOW``, the overflow itself happened;
- IPv4 entries with flags ``0x0`` in ``/proc/net/arp`` (INCOMPLETE or FAILED: asked
  for, never answered): WARN ``NEIGH_INCOMPLETE`` from ``incomplete_warn`` on (a
  scan, a dead peer that traffic is still sent to, a broken VLAN);
- each IPv4 default gateway of ``/proc/net/route`` and its ARP entry: complete is
  OK, absent is OK (entries expire when unused), unresolved warns and is CRIT
  ``NEIGH_GATEWAY_UNRESOLVED`` when it was unresolved at the previous run too (a
  single sample may catch a resolution in flight).

IPv6 neighbours are counted from ``ndisc_cache`` only (no ``ip -6 neigh`` subprocess):
per-entry states of IPv6 neighbours are not examined. Where ``/proc/net/arp`` is not
exposed at all (some sandboxed kernels such as gVisor) the check says so in an OK
result and reports what the other files show.

Sample of what :func:`collect_neighbours` returns (this project's build machine)::

    NeighSection(tables=(NeighTable(family='ipv4', entries=2, limit=1024, table_fulls=0),
                         NeighTable(family='ipv6', entries=4, limit=1024, table_fulls=0)),
                 arp_entries=1, incomplete=(),
                 gateways=(Gateway(ip='192.0.2.1', device='eth0', state='complete'),))

>>> parse_route_gateways(
...     "Iface\\tDestination\\tGateway \\tFlags\\tRefCnt\\tUse\\tMetric\\tMask\\t\\tMTU\\tWindow\\tIRTT\\n"
...     "eth0\\t00000000\\t010200C0\\t0003\\t0\\t0\\t0\\t00000000\\t0\\t0\\t0\\n"
...     "eth0\\t000200C0\\t00000000\\t0001\\t0\\t0\\t0\\t00FFFFFF\\t0\\t0\\t0\\n")
[('192.0.2.1', 'eth0')]
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

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
    Unit,
    ValueStore,
    check_levels,
    get_delta,
    render_percent,
)
from checks.probe import Probe

__all__ = [
    "NEIGHBOURS",
    "Gateway",
    "NeighParams",
    "NeighSection",
    "NeighTable",
    "collect_neighbours",
    "evaluate_neighbours",
    "parse_arp",
    "parse_neigh_stat",
    "parse_route_gateways",
]

ARP = "/proc/net/arp"
ROUTE = "/proc/net/route"
FAMILIES = (
    ("ipv4", "/proc/net/stat/arp_cache", "/proc/sys/net/ipv4/neigh/default/gc_thresh3"),
    ("ipv6", "/proc/net/stat/ndisc_cache", "/proc/sys/net/ipv6/neigh/default/gc_thresh3"),
)
RTF_UP, RTF_GATEWAY = 0x1, 0x2
ATF_COM = 0x2
MAX_NAMED = 5
"""Unresolved neighbours named in a summary at most."""
LIMIT_TTL_S = 600.0
"""How long a ``gc_thresh3`` reading is reused: the sysctl rarely changes, and each
``/proc/sys`` read costs ~10 µs here, a fifth of this check."""

_limits: dict[str, tuple[float, int | None]] = {}
"""``gc_thresh3`` per path (None: absent) and when it was read (probe's monotonic clock)."""


@dataclass(frozen=True, slots=True)
class NeighTable:
    family: str
    entries: int
    limit: int
    """``gc_thresh3``: the hard limit of the table."""
    table_fulls: int | None
    """Times the table was full since boot (None without the stat file)."""


@dataclass(frozen=True, slots=True)
class Gateway:
    ip: str
    device: str
    state: str
    """``complete``, ``unresolved`` (INCOMPLETE/FAILED) or ``absent`` from the ARP table."""


@dataclass(frozen=True, slots=True)
class NeighSection:
    tables: tuple[NeighTable, ...]
    arp_entries: int | None
    """Lines of ``/proc/net/arp``: this network namespace's IPv4 neighbours (None: no such file)."""
    incomplete: tuple[str, ...]
    """``ip (device)`` of IPv4 neighbours with flags 0x0."""
    gateways: tuple[Gateway, ...]


class NeighParams(CheckParams):
    levels_used_percent: Levels = (75.0, 90.0)
    """(warn, crit) table entries as a percent of gc_thresh3."""
    incomplete_warn: int = Field(default=20, ge=1)
    """Unresolved (INCOMPLETE/FAILED) IPv4 neighbours from which NEIGH_INCOMPLETE warns."""


def parse_arp(text: str, path: str = ARP) -> list[tuple[str, int, str]]:
    """(ip, flags, device) per line of ``/proc/net/arp``.

    >>> parse_arp("IP address HW type Flags HW address Mask Device\\n"
    ...           "10.0.0.9 0x1 0x0 00:00:00:00:00:00 * eth1\\n")
    [('10.0.0.9', 0, 'eth1')]
    """
    lines = text.splitlines()
    if not lines or not lines[0].startswith("IP address"):
        raise ValueError(f"{path}: missing the 'IP address ... Device' header")
    entries: list[tuple[str, int, str]] = []
    for number, line in enumerate(lines[1:], 2):
        fields = line.split()
        if not fields:
            continue
        try:
            if len(fields) != 6:
                raise ValueError
            entries.append((fields[0], int(fields[2], 16), fields[5]))
        except ValueError:
            raise ValueError(
                f"{path}: line {number} is not 'ip type flags hwaddr mask device': {line[:80]!r}"
            ) from None
    return entries


def parse_neigh_stat(text: str, path: str) -> tuple[int, int]:
    """(entries, table_fulls summed over CPUs) of ``/proc/net/stat/{arp,ndisc}_cache``.

    >>> parse_neigh_stat("entries allocs table_fulls\\n"
    ...                  "0000000a 00000001 00000002\\n0000000a 00000000 00000001\\n", "x")
    (10, 3)
    """
    lines = text.splitlines()
    header = lines[0].split() if lines else []
    if len(header) < 2 or header[0] != "entries" or "table_fulls" not in header:
        raise ValueError(f"{path}: missing the 'entries ... table_fulls' header")
    column = header.index("table_fulls")
    entries: int | None = None
    fulls = 0
    for number, line in enumerate(lines[1:], 2):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != len(header):
            raise ValueError(f"{path}: line {number} has {len(fields)} fields, the header {len(header)}")
        try:
            if entries is None:
                entries = int(fields[0], 16)  # a global count, repeated on every CPU's line
            fulls += int(fields[column], 16)
        except ValueError:
            raise ValueError(f"{path}: line {number} has a non-hex counter: {line[:80]!r}") from None
    if entries is None:
        raise ValueError(f"{path}: no per-CPU lines")
    return entries, fulls


def parse_route_gateways(text: str, path: str = ROUTE) -> list[tuple[str, str]]:
    """(gateway ip, device) of every IPv4 default route that is up and goes through a gateway."""
    gateways: list[tuple[str, str]] = []
    lines = text.splitlines()
    if not lines or not lines[0].startswith("Iface"):
        raise ValueError(f"{path}: missing the 'Iface Destination Gateway ...' header")
    for number, line in enumerate(lines[1:], 2):
        fields = line.split()
        if not fields:
            continue
        try:
            if len(fields) < 8:
                raise ValueError
            destination, gateway, flags, mask = (int(fields[i], 16) for i in (1, 2, 3, 7))
        except ValueError:
            raise ValueError(f"{path}: line {number} is not a route line: {line[:80]!r}") from None
        if destination == 0 and mask == 0 and flags & RTF_UP and flags & RTF_GATEWAY:
            # The kernel prints the network-order address as a native integer.
            gateways.append((socket.inet_ntoa(struct.pack("=I", gateway)), fields[0]))
    return gateways


def _read_int(probe: Probe, path: str) -> int:
    text = probe.read_text(path).strip()
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{path}: expected an integer, got {text[:40]!r}") from None


def _read_limit(probe: Probe, path: str) -> int | None:
    """``gc_thresh3`` (None when the family is disabled), re-read every ``LIMIT_TTL_S``."""
    now = probe.monotonic()
    full_path = probe.fspath(path)
    cached = _limits.get(full_path)
    if cached is not None and now - cached[0] < LIMIT_TTL_S:
        return cached[1]
    try:
        limit: int | None = _read_int(probe, path)
    except FileNotFoundError:
        limit = None  # the family is disabled (ipv6.disable=1): no table
    _limits[full_path] = (now, limit)
    return limit


def collect_neighbours(probe: Probe, params: NeighParams) -> NeighSection:
    try:
        arp: list[tuple[str, int, str]] | None = parse_arp(probe.read_text(ARP))
    except FileNotFoundError:
        arp = None  # not exposed (sandboxed kernel): tables from the stat files only
    tables: list[NeighTable] = []
    for family, stat_path, limit_path in FAMILIES:
        limit = _read_limit(probe, limit_path)
        if limit is None:
            continue
        try:
            entries, fulls = parse_neigh_stat(probe.read_text(stat_path), stat_path)
            tables.append(NeighTable(family, entries, limit, fulls))
        except FileNotFoundError:
            if family == "ipv4" and arp is not None:  # no stat file: ARP lines are the best count
                tables.append(NeighTable(family, len(arp), limit, None))
    if arp is None:
        return NeighSection(tuple(tables), None, (), ())
    try:
        routes = parse_route_gateways(probe.read_text(ROUTE))
    except FileNotFoundError:
        routes = []  # no IPv4 routing table here: no gateway to look at
    by_address = {(ip, device): flags for ip, flags, device in arp}
    gateways = []
    for ip, device in routes:
        flags = by_address.get((ip, device))
        state = "absent" if flags is None else "complete" if flags & ATF_COM else "unresolved"
        gateways.append(Gateway(ip, device, state))
    incomplete = tuple(f"{ip} ({device})" for ip, flags, device in arp if not flags & ATF_COM)
    return NeighSection(tuple(tables), len(arp), incomplete, tuple(gateways))


def evaluate_neighbours(
    params: NeighParams, section: NeighSection, store: ValueStore
) -> Iterator[Result | Metric]:
    for table in section.tables:
        labels = {"family": table.family}
        yield Metric("network_neigh_entries_count", table.entries, Unit.COUNT, labels)
        yield Metric("network_neigh_limit_count", table.limit, Unit.COUNT, labels)
        if table.limit > 0:
            used = 100.0 * table.entries / table.limit
            yield Metric("network_neigh_used_percent", used, Unit.PERCENT, labels)
            yield check_levels(
                used,
                key="NEIGH_TABLE_NEARLY_FULL",
                label=f"Neighbour table {table.entries} of {table.limit} entries (gc_thresh3)",
                levels_upper=params.levels_used_percent,
                render=render_percent,
                item=table.family,
            )
        if table.table_fulls is not None:
            overflows = get_delta(store, f"table_fulls:{table.family}", table.table_fulls)
            if overflows is not None:
                yield Metric("network_neigh_table_overflows_count", overflows, Unit.COUNT, labels)
                if overflows:
                    yield Result(
                        Severity.CRIT,
                        "NEIGH_TABLE_OVERFLOW",
                        f"Neighbour table overflowed {overflows:.0f} time(s) since the last run: new peers "
                        f"could not be resolved; raise net.{table.family}.neigh.default.gc_thresh3",
                        item=table.family,
                    )

    if section.arp_entries is None:
        yield Result(Severity.OK, "OK", f"IPv4 neighbour entries are not exposed here ({ARP} is absent)")
        return
    count = len(section.incomplete)
    yield Metric("network_neigh_incomplete_count", count, Unit.COUNT)
    if count >= params.incomplete_warn:
        named = ", ".join(section.incomplete[:MAX_NAMED]) + (", ..." if count > MAX_NAMED else "")
        yield Result(
            Severity.WARN,
            "NEIGH_INCOMPLETE",
            f"{count} of {section.arp_entries} IPv4 neighbours unresolved "
            f"(warn at {params.incomplete_warn}): {named}",
        )
    else:
        yield Result(Severity.OK, "OK", f"{count} of {section.arp_entries} IPv4 neighbours unresolved")

    previous = store.get("unresolved_gateways")
    was_unresolved = set(previous) if isinstance(previous, list) else set()
    now_unresolved: list[str] = []
    for gateway in section.gateways:
        item = f"gateway {gateway.ip}"
        name = f"Default gateway {gateway.ip} on {gateway.device}"
        if gateway.state == "absent":
            yield Result(
                Severity.OK, "OK", f"{name}: not in the ARP table (no traffic through it lately)", item
            )
            continue
        resolved = gateway.state == "complete"
        yield Metric(
            "network_neigh_gateway_resolved_boolean",
            1 if resolved else 0,
            Unit.BOOLEAN,
            {"gateway": gateway.ip},
        )
        if resolved:
            yield Result(Severity.OK, "OK", f"{name}: resolved", item)
            continue
        now_unresolved.append(gateway.ip)
        repeated = gateway.ip in was_unresolved
        yield Result(
            Severity.CRIT if repeated else Severity.WARN,
            "NEIGH_GATEWAY_UNRESOLVED",
            f"{name}: ARP unresolved (INCOMPLETE or FAILED)"
            + (" at this and the previous run: off-subnet traffic cannot leave" if repeated else ""),
            item,
        )
    store["unresolved_gateways"] = now_unresolved


NEIGHBOURS = Check(
    name="network.neighbours",
    layer=Layer.NETWORK,
    summary="ARP/NDP tables near gc_thresh3, overflows, unresolved neighbours and the default gateway",
    collect=collect_neighbours,
    evaluate=evaluate_neighbours,
    params=NeighParams,
    keys=("NEIGH_TABLE_NEARLY_FULL", "NEIGH_TABLE_OVERFLOW", "NEIGH_INCOMPLETE", "NEIGH_GATEWAY_UNRESOLVED"),
    metrics=(
        MetricSpec(
            "network_neigh_entries_count",
            Unit.COUNT,
            "Entries in the neighbour table (all network namespaces)",
            Direction.UP_IS_BAD,
            labels=("family",),
        ),
        MetricSpec(
            "network_neigh_limit_count",
            Unit.COUNT,
            "Hard limit of the neighbour table (gc_thresh3)",
            labels=("family",),
        ),
        MetricSpec(
            "network_neigh_used_percent",
            Unit.PERCENT,
            "Neighbour table entries as a percent of gc_thresh3",
            Direction.UP_IS_BAD,
            labels=("family",),
        ),
        MetricSpec(
            "network_neigh_table_overflows_count",
            Unit.COUNT,
            "Times the neighbour table was full since the last run (table_fulls)",
            Direction.UP_IS_BAD,
            labels=("family",),
        ),
        MetricSpec(
            "network_neigh_incomplete_count",
            Unit.COUNT,
            "IPv4 neighbours asked for but not answering (INCOMPLETE or FAILED)",
            Direction.UP_IS_BAD,
        ),
        MetricSpec(
            "network_neigh_gateway_resolved_boolean",
            Unit.BOOLEAN,
            "Whether the default gateway's ARP entry is complete (1) or unresolved (0)",
            Direction.DOWN_IS_BAD,
            labels=("gateway",),
        ),
    ),
    interval_s=60,
    timeout_s=5,
)
