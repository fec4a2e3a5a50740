"""Parsers for the kernel's network statistics files, shared by the network checks.

Every parser takes the file's text and its path, and raises a :class:`ValueError`
naming the file when the text is not what the kernel writes (the agent turns that
into an UNKNOWN result). The ``read_*`` helpers memoise on the probe, so the checks
of one cycle read ``/proc/net/snmp`` and friends once between them.

>>> CounterTable("Tcp: InSegs OutSegs\\nTcp: 10 20\\n", "/proc/net/snmp").counter("Tcp", "OutSegs")
20
>>> parse_sockstat("sockets: used 29\\nTCP: inuse 11 orphan 0\\n", "/proc/net/sockstat")
{'sockets': {'used': 29}, 'TCP': {'inuse': 11, 'orphan': 0}}
>>> matches_any("eth0", ("eth*",)), matches_any("lo", ("eth*", "wl*"))
(True, False)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

from checks.probe import Probe

__all__ = [
    "NET_DEV_FIELDS",
    "CounterTable",
    "NetDevCounters",
    "matches_any",
    "parse_net_dev",
    "parse_snmp6",
    "parse_sockstat",
    "read_net_dev",
    "read_netstat",
    "read_snmp",
    "read_sockstat",
    "read_udp6",
    "require_counter",
]

NET_DEV_FIELDS = (
    "rx_bytes",
    "rx_packets",
    "rx_errors",
    "rx_drops",
    "rx_fifo",
    "rx_frame",
    "rx_compressed",
    "rx_multicast",
    "tx_bytes",
    "tx_packets",
    "tx_errors",
    "tx_drops",
    "tx_fifo",
    "tx_collisions",
    "tx_carrier",
    "tx_compressed",
)
"""The 16 counters of a ``/proc/net/dev`` line, in kernel order."""


@dataclass(frozen=True, slots=True)
class NetDevCounters:
    """The counters of one interface that the checks use (bytes, packets, errors, drops)."""

    rx_bytes: int
    rx_packets: int
    rx_errors: int
    rx_drops: int
    tx_bytes: int
    tx_packets: int
    tx_errors: int
    tx_drops: int


def matches_any(name: str, patterns: Iterable[str]) -> bool:
    """True when ``name`` matches one of the shell-style ``patterns`` (case-sensitive)."""
    return any(fnmatchcase(name, pattern) for pattern in patterns)


def parse_net_dev(text: str, path: str = "/proc/net/dev") -> dict[str, NetDevCounters]:
    """Parse ``/proc/net/dev`` into counters per interface.

    >>> text = '''Inter-|   Receive |  Transmit
    ...  face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop ...
    ...   eth0: 1190 29 1 2 0 0 0 0   1707 17 3 4 0 0 0 0
    ... '''
    >>> c = parse_net_dev(text)["eth0"]
    >>> c.rx_bytes, c.rx_errors, c.rx_drops, c.tx_bytes, c.tx_errors, c.tx_drops
    (1190, 1, 2, 1707, 3, 4)
    """
    lines = text.splitlines()
    if len(lines) < 2 or "|" not in lines[0] or "|" not in lines[1]:
        raise ValueError(f"{path}: missing the two header lines")
    interfaces: dict[str, NetDevCounters] = {}
    for number, line in enumerate(lines[2:], start=3):
        if not line.strip():
            continue
        name, sep, rest = line.partition(":")
        fields = rest.split()
        name = name.strip()
        if not sep or not name or len(fields) != 16:
            raise ValueError(f"{path}: line {number} is not '<iface>: <16 counters>': {line.strip()[:80]!r}")
        try:
            values = [int(field) for field in fields]
        except ValueError:
            raise ValueError(
                f"{path}: line {number} has a non-numeric counter: {line.strip()[:80]!r}"
            ) from None
        interfaces[name] = NetDevCounters(
            values[0], values[1], values[2], values[3], values[8], values[9], values[10], values[11]
        )
    return interfaces


class CounterTable:
    """The ``Section: names...`` / ``Section: values...`` line pairs of ``/proc/net/snmp``
    and ``/proc/net/netstat``, checked for shape up front and converted to numbers
    only for the counters asked for (``TcpExt`` alone has ~130; checks want a few).

    >>> table = CounterTable("Ip: Forwarding\\nIp: 1\\nTcp: MaxConn InSegs\\nTcp: -1 7\\n", "/proc/net/snmp")
    >>> table.counter("Tcp", "MaxConn"), table.optional("Tcp", "Nope"), table.sections()
    (-1, None, ['Ip', 'Tcp'])
    >>> table.counter("Udp", "InErrors")
    Traceback (most recent call last):
    ...
    ValueError: /proc/net/snmp: no Udp InErrors counter
    """

    __slots__ = ("_parsed", "_raw", "path")

    def __init__(self, text: str, path: str) -> None:
        self.path = path
        self._raw: dict[str, tuple[list[str], list[str]]] = {}
        self._parsed: dict[str, dict[str, str]] = {}
        lines = [line for line in text.splitlines() if line.strip()]
        if not lines:
            raise ValueError(f"{path}: empty file")
        if len(lines) % 2:
            raise ValueError(f"{path}: {len(lines)} lines, expected header/value pairs")
        for index in range(0, len(lines), 2):
            name, sep, names = lines[index].partition(":")
            value_name, value_sep, values = lines[index + 1].partition(":")
            keys, raw_values = names.split(), values.split()
            if not sep or not value_sep or name != value_name or len(keys) != len(raw_values):
                raise ValueError(
                    f"{path}: lines {index + 1}-{index + 2} are not a header/value pair ({name[:20]!r})"
                )
            self._raw[name] = (keys, raw_values)

    def sections(self) -> list[str]:
        return list(self._raw)

    def optional(self, section: str, name: str) -> int | None:
        """One counter, or None when this kernel does not have it."""
        parsed = self._parsed.get(section)
        if parsed is None:
            raw = self._raw.get(section)
            if raw is None:
                return None
            parsed = self._parsed[section] = dict(zip(*raw, strict=True))
        value = parsed.get(name)
        if value is None:
            return None
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"{self.path}: {section} {name} is not a number: {value[:20]!r}") from None

    def counter(self, section: str, name: str) -> int:
        """One counter, or a ValueError naming the file when it is missing."""
        value = self.optional(section, name)
        if value is None:
            raise ValueError(f"{self.path}: no {section} {name} counter")
        return value


def parse_snmp6(text: str, path: str = "/proc/net/snmp6", prefix: str = "") -> dict[str, int]:
    """Parse the ``Name value`` lines of ``/proc/net/snmp6`` whose name starts with ``prefix``.

    >>> parse_snmp6("Ip6InReceives 9\\nUdp6InDatagrams   12\\nUdp6NoPorts 0\\n", prefix="Udp6")
    {'Udp6InDatagrams': 12, 'Udp6NoPorts': 0}
    """
    counters: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.startswith(prefix):
            continue
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise ValueError(f"{path}: line {number} is not 'Name value': {line[:80]!r}")
        try:
            counters[fields[0]] = int(fields[1])
        except ValueError:
            raise ValueError(f"{path}: line {number} has a non-numeric value: {line[:80]!r}") from None
    if not counters:
        raise ValueError(f"{path}: no {prefix or 'counter'} lines")
    return counters


def parse_sockstat(text: str, path: str) -> dict[str, dict[str, int]]:
    """Parse ``/proc/net/sockstat`` or ``sockstat6``: ``PROTO: key value key value ...``.

    >>> parse_sockstat("TCP6: inuse 2\\nFRAG6: inuse 0 memory 0\\n", "/proc/net/sockstat6")["FRAG6"]
    {'inuse': 0, 'memory': 0}
    """
    sections: dict[str, dict[str, int]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, rest = line.partition(":")
        fields = rest.split()
        if not sep or not fields or len(fields) % 2:
            raise ValueError(f"{path}: line {number} is not 'PROTO: key value ...': {line[:80]!r}")
        try:
            sections[name.strip()] = {fields[i]: int(fields[i + 1]) for i in range(0, len(fields), 2)}
        except ValueError:
            raise ValueError(f"{path}: line {number} has a non-numeric value: {line[:80]!r}") from None
    if not sections:
        raise ValueError(f"{path}: empty file")
    return sections


def require_counter(sections: dict[str, dict[str, int]], section: str, name: str, path: str) -> int:
    """One counter of a parsed sockstat file, or a ValueError naming the file.

    >>> require_counter({"Tcp": {"InSegs": 3}}, "Tcp", "OutSegs", "/proc/net/snmp")
    Traceback (most recent call last):
    ...
    ValueError: /proc/net/snmp: no Tcp OutSegs counter
    """
    try:
        return sections[section][name]
    except KeyError:
        raise ValueError(f"{path}: no {section} {name} counter") from None


# -- memoised readers: one read per cycle, whichever check comes first -------------


def read_net_dev(probe: Probe) -> dict[str, NetDevCounters]:
    return probe.memo("network:/proc/net/dev", lambda: parse_net_dev(probe.read_text("/proc/net/dev")))


def read_snmp(probe: Probe) -> CounterTable:
    path = "/proc/net/snmp"
    return probe.memo(f"network:{path}", lambda: CounterTable(probe.read_text(path), path))


def read_udp6(probe: Probe) -> dict[str, int] | None:
    """The ``Udp6*`` counters of ``/proc/net/snmp6``, or None when the host has no IPv6."""
    path = "/proc/net/snmp6"

    def load() -> dict[str, int] | None:
        try:
            text = probe.read_text(path)
        except FileNotFoundError:  # IPv6 disabled (ipv6.disable=1): nothing to count
            return None
        return parse_snmp6(text, path, prefix="Udp6")

    return probe.memo(f"network:{path}:Udp6", load)


def read_netstat(probe: Probe) -> CounterTable:
    path = "/proc/net/netstat"
    return probe.memo(f"network:{path}", lambda: CounterTable(probe.read_text(path), path))


def read_sockstat(probe: Probe, path: str) -> dict[str, dict[str, int]] | None:
    """``/proc/net/sockstat`` or ``sockstat6``; None when the file is absent (no IPv6)."""

    def load() -> dict[str, dict[str, int]] | None:
        try:
            text = probe.read_text(path)
        except FileNotFoundError:  # sockstat6 is absent when IPv6 is disabled
            return None
        return parse_sockstat(text, path)

    return probe.memo(f"network:{path}", load)
