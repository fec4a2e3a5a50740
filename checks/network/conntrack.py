"""network.conntrack: connection-tracking table fill level and packets dropped for want of room.

When the netfilter conntrack table (``nf_conntrack_count`` of ``nf_conntrack_max``
entries) is full, the kernel drops the first packet of every new connection and
logs ``nf_conntrack: table full, dropping packet``: existing connections carry on,
new ones time out, and the host looks half dead from outside. Used percent above
``levels_used_percent`` is ``CONNTRACK_NEARLY_FULL``; an ``early_drop`` since the last
run (the kernel evicted an unconfirmed entry to make room) means the table touched
its limit between two runs and warns under the same key.

``/proc/net/stat/nf_conntrack`` holds per-CPU counters in hex; ``drop`` (a packet
dropped because no entry could be created) and ``insert_failed`` (a race lost while
inserting, the cause of the five-second DNS delays behind NAT) are summed over CPUs
and their increase since the last run (store) gives ``CONNTRACK_DROPS``. The first
``entries`` column is the global count repeated on every line and is not summed.

When conntrack is not loaded (no ``nf_conntrack_count``: no stateful firewall, NAT
or container networking) nothing can fill up: the check says so in an OK result
rather than skipping, so an inspection shows the fact, and it starts measuring on
the first run after the module is loaded. A ``nf_conntrack_max`` of 0 means no
limit. Without the stat file (kernels built without ``CONFIG_NF_CONNTRACK_PROCFS``)
drops are not reported.

Sample of what :func:`collect_conntrack` returns (this project's build machine)::

    ConntrackSection(count=0, max=262144, drop=0, insert_failed=0, early_drop=0, cpus=2)

>>> parse_conntrack_stat(
...     "entries  clashres found insert insert_failed drop early_drop\\n"
...     "0000001f  00000000 00000000 00000000 00000002 0000000a 00000001\\n"
...     "0000001f  00000000 00000000 00000000 00000001 00000000 00000000\\n"
... )
{'drop': 10, 'insert_failed': 3, 'early_drop': 1, 'cpus': 2}
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

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

__all__ = ["CONNTRACK", "ConntrackParams", "ConntrackSection", "collect_conntrack", "evaluate_conntrack"]

COUNT = "/proc/sys/net/netfilter/nf_conntrack_count"
MAX = "/proc/sys/net/netfilter/nf_conntrack_max"
LEGACY_MAX = "/proc/sys/net/nf_conntrack_max"
STAT = "/proc/net/stat/nf_conntrack"
COUNTERS = ("drop", "insert_failed", "early_drop")


@dataclass(frozen=True, slots=True)
class ConntrackSection:
    count: int | None
    """None: connection tracking is not loaded."""
    max: int
    """0: no limit."""
    drop: int | None
    """Counters summed over CPUs; None without ``/proc/net/stat/nf_conntrack``."""
    insert_failed: int | None
    early_drop: int | None
    cpus: int


class ConntrackParams(CheckParams):
    levels_used_percent: Levels = (80.0, 90.0)
    """(warn, crit) percent of nf_conntrack_max in use."""
    levels_drops: Levels = (1.0, 100.0)
    """(warn, crit) packets dropped (drop + insert_failed) since the last run."""


def _read_int(probe: Probe, path: str) -> int:
    text = probe.read_text(path).strip()
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{path}: expected an integer, got {text[:40]!r}") from None
    if value < 0:
        raise ValueError(f"{path}: negative value {value}")
    return value


def parse_conntrack_stat(text: str, path: str = STAT) -> dict[str, int]:
    """Sum ``drop``, ``insert_failed`` and ``early_drop`` over the per-CPU hex lines."""
    lines = text.splitlines()
    if len(lines) < 2:
        raise ValueError(f"{path}: expected a header and one line per CPU, got {len(lines)} line(s)")
    header = lines[0].split()
    try:
        columns = [header.index(name) for name in COUNTERS]
    except ValueError:
        raise ValueError(f"{path}: header lacks one of {', '.join(COUNTERS)}: {lines[0][:80]!r}") from None
    sums = [0, 0, 0]
    cpus = 0
    for number, line in enumerate(lines[1:], 2):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != len(header):
            raise ValueError(f"{path}: line {number} has {len(fields)} fields, the header {len(header)}")
        try:
            for slot, column in enumerate(columns):
                sums[slot] += int(fields[column], 16)
        except ValueError:
            raise ValueError(f"{path}: line {number} has a non-hex counter: {line[:80]!r}") from None
        cpus += 1
    if not cpus:
        raise ValueError(f"{path}: no per-CPU lines")
    return {"drop": sums[0], "insert_failed": sums[1], "early_drop": sums[2], "cpus": cpus}


def collect_conntrack(probe: Probe, params: ConntrackParams) -> ConntrackSection:
    try:
        count = _read_int(probe, COUNT)
    except FileNotFoundError:
        return ConntrackSection(None, 0, None, None, None, 0)  # not loaded: nothing to fill
    try:
        limit = _read_int(probe, MAX)
    except FileNotFoundError:
        limit = _read_int(probe, LEGACY_MAX)  # very old kernels kept it outside netfilter/
    try:
        stats: dict[str, int] | None = parse_conntrack_stat(probe.read_text(STAT))
    except FileNotFoundError:
        stats = None  # CONFIG_NF_CONNTRACK_PROCFS off: fill level only
    if stats is None:
        return ConntrackSection(count, limit, None, None, None, 0)
    return ConntrackSection(
        count, limit, stats["drop"], stats["insert_failed"], stats["early_drop"], stats["cpus"]
    )


def evaluate_conntrack(
    params: ConntrackParams, section: ConntrackSection, store: ValueStore
) -> Iterator[Result | Metric]:
    if section.count is None:
        yield Result(Severity.OK, "OK", "Connection tracking is not loaded: no table to fill")
        return
    yield Metric("network_conntrack_entries_count", section.count, Unit.COUNT)
    deltas: dict[str, float | None] = {}
    for name in COUNTERS:
        value = getattr(section, name)
        if value is not None:
            deltas[name] = get_delta(store, name, value)
    for name, delta in deltas.items():
        if delta is not None:
            yield Metric("network_conntrack_drops_count", delta, Unit.COUNT, {"reason": name})

    if section.max > 0:
        used = 100.0 * section.count / section.max
        yield Metric("network_conntrack_max_count", section.max, Unit.COUNT)
        yield Metric("network_conntrack_used_percent", used, Unit.PERCENT)
        result = check_levels(
            used,
            key="CONNTRACK_NEARLY_FULL",
            label=f"Conntrack table {section.count} of {section.max} entries",
            levels_upper=params.levels_used_percent,
            render=render_percent,
        )
    else:
        result = Result(Severity.OK, "OK", f"Conntrack table {section.count} entries (no limit)")
    early = deltas.get("early_drop")
    if early and result.severity is Severity.OK:
        result = Result(
            Severity.WARN,
            "CONNTRACK_NEARLY_FULL",
            f"{result.summary}; the table reached its limit since the last run "
            f"({early:.0f} entries evicted early to make room)",
        )
    yield result

    drop, failed = deltas.get("drop"), deltas.get("insert_failed")
    if drop is None and failed is None:
        return  # first run (baseline) or no stat file: nothing to compare
    lost = (drop or 0.0) + (failed or 0.0)
    drops = check_levels(
        lost,
        key="CONNTRACK_DROPS",
        label="Packets dropped by conntrack since the last run",
        levels_upper=params.levels_drops,
        render=lambda v: f"{v:.0f}",
    )
    if drops.severity is not Severity.OK:
        drops = Result(
            drops.severity,
            drops.key,
            f"{drops.summary}: {drop or 0:.0f} for want of an entry, {failed or 0:.0f} insert races",
        )
    yield drops


CONNTRACK = Check(
    name="network.conntrack",
    layer=Layer.NETWORK,
    summary="Connection-tracking table fill level and packets dropped for want of room",
    collect=collect_conntrack,
    evaluate=evaluate_conntrack,
    params=ConntrackParams,
    keys=("CONNTRACK_NEARLY_FULL", "CONNTRACK_DROPS"),
    metrics=(
        MetricSpec(
            "network_conntrack_entries_count", Unit.COUNT, "Connections tracked now", Direction.UP_IS_BAD
        ),
        MetricSpec(
            "network_conntrack_max_count", Unit.COUNT, "Size limit of the conntrack table (nf_conntrack_max)"
        ),
        MetricSpec(
            "network_conntrack_used_percent",
            Unit.PERCENT,
            "Conntrack entries as a percent of nf_conntrack_max",
            Direction.UP_IS_BAD,
        ),
        MetricSpec(
            "network_conntrack_drops_count",
            Unit.COUNT,
            "Conntrack failures since the last run, by reason (drop, insert_failed, early_drop)",
            Direction.UP_IS_BAD,
            labels=("reason",),
        ),
    ),
    interval_s=60,
    timeout_s=5,
)
