"""Comparison with the customer's previous inspection, and capacity trends.

Findings are compared by identity ``(key, host, item)``:

- **new**: in this run, not in the previous one;
- **resolved**: in the previous run, not in this one, *and the host answered this run*
  *and this run applied the rule* (a host that is offline now may still have the
  problem: its findings are neither resolved nor persisting, and HOST_NOT_ANSWERING says
  why; a rule the plan no longer applies has not verified anything);
- **persisting**: in both (``previous_severity`` tells whether it got better or worse).

Inventory changes compare each answered host's components (``os``, ``kernel``,
``product:<name>``, ``cpu_count``, ``memory_bytes``) with the previous run's snapshot;
hosts selected now but not then are ``hosts_added``, the reverse ``hosts_removed``.

Capacity trends come from the metric history of this run's period, for every answered
host: each filesystem (used bytes, growth per day, days until full), memory (used bytes,
growth per day, days until all memory is used) and TCP connections in use (count,
growth per day). ``previous`` is the value the previous run recorded.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from checks.api import Unit
from collector.inspections.facts import DAY_S, HostFacts, MetricSummary
from collector.inspections.model import (
    CapacityTrend,
    Comparison,
    Finding,
    FindingRef,
    HostOutcome,
    InspectionResult,
    InventoryChange,
)

__all__ = ["capacity_trends", "compare", "components", "gauges"]

MIN_SPAN_S = DAY_S / 4
"""Shortest history a growth rate is computed from."""


def _refs(findings: Sequence[Finding]) -> dict[tuple[str, str, str | None], FindingRef]:
    refs = {}
    for finding in findings:
        for i in finding.instances:
            refs[(finding.key, i.host, i.item)] = FindingRef(
                finding.key, i.host, i.item, i.severity, finding.layer
            )
    return refs


def _order(ref: FindingRef) -> tuple[int, str, str, str]:
    return (-ref.severity.rank, ref.key, ref.host, ref.item or "")


def compare(
    findings: Sequence[Finding],
    hosts: Sequence[HostOutcome],
    capacity: Sequence[CapacityTrend],
    previous: InspectionResult | None,
    applied: Collection[str] | None = None,
) -> Comparison:
    """This run's findings, hosts and capacity against ``previous`` (None: first run).

    ``applied`` holds the keys of the rules this run applied (None: all).
    """
    if previous is None:
        return Comparison(
            None,
            None,
            None,
            new=tuple(sorted(_refs(findings).values(), key=_order)),
            capacity=tuple(capacity),
        )
    now, before = _refs(findings), _refs(previous.findings)
    answered = {h.name for h in hosts if h.answered}
    new = [ref for ident, ref in now.items() if ident not in before]
    resolved = [
        ref
        for ident, ref in before.items()
        if ident not in now and ident[1] in answered and (applied is None or ref.key in applied)
    ]
    persisting = [
        FindingRef(ref.key, ref.host, ref.item, ref.severity, ref.layer, before[ident].severity)
        for ident, ref in now.items()
        if ident in before
    ]
    old_hosts = {h.name: h for h in previous.hosts}
    changes = []
    for host in hosts:
        old = old_hosts.get(host.name)
        if not host.answered or old is None or not old.components or not host.components:
            continue
        for component in sorted(set(old.components) | set(host.components)):
            was, now_value = old.components.get(component), host.components.get(component)
            if was != now_value:
                changes.append(InventoryChange(host.name, component, was, now_value))
    trends = [_with_previous(t, old_hosts.get(t.host)) for t in capacity]
    current_names = {h.name for h in hosts}
    return Comparison(
        previous.run_id,
        previous.period_end,
        previous.overall_score,
        tuple(sorted(new, key=_order)),
        tuple(sorted(resolved, key=_order)),
        tuple(sorted(persisting, key=_order)),
        tuple(changes),
        tuple(sorted(current_names - set(old_hosts))),
        tuple(sorted(set(old_hosts) - current_names)),
        tuple(trends),
    )


def _gauge_name(trend: CapacityTrend) -> str:
    return f"{trend.resource}:{trend.item}" if trend.item else trend.resource


def _with_previous(trend: CapacityTrend, old: HostOutcome | None) -> CapacityTrend:
    if old is None:
        return trend
    value = old.gauges.get(_gauge_name(trend))
    return CapacityTrend(
        trend.host,
        trend.resource,
        trend.unit,
        trend.current,
        trend.growth_per_day,
        trend.item,
        trend.limit,
        trend.days_until_full,
        value,
    )


def gauges(trends: Sequence[CapacityTrend], host: str) -> dict[str, float]:
    """The values the next run compares with (``filesystem:/``, ``memory``, ``tcp_connections``)."""
    return {_gauge_name(t): t.current for t in trends if t.host == host}


def components(inventory: Mapping[str, Any] | None) -> dict[str, str]:
    """Flatten an inventory document into comparable components.

    >>> sorted(components({"os": {"name": "Debian 12", "kernel": "6.1.0-26-amd64"},
    ...                    "hardware": {"cpu": {"count": 4}, "memory_bytes": 16},
    ...                    "products": [{"name": "billing", "version": "7.4.2"}]}).items())
    ... # doctest: +NORMALIZE_WHITESPACE
    [('cpu_count', '4'), ('kernel', '6.1.0-26-amd64'), ('memory_bytes', '16'), ('os', 'Debian 12'),
     ('product:billing', '7.4.2')]
    """
    if not inventory:
        return {}
    from collector.store.inventory import extract_products

    found: dict[str, str] = {}
    os_doc = inventory.get("os")
    if isinstance(os_doc, Mapping):
        for key, name in (("name", "os"), ("kernel", "kernel")):
            if os_doc.get(key):
                found[name] = str(os_doc[key])
    hardware = inventory.get("hardware")
    if isinstance(hardware, Mapping):
        cpu = hardware.get("cpu")
        if isinstance(cpu, Mapping) and cpu.get("count") is not None:
            found["cpu_count"] = str(cpu["count"])
        if hardware.get("memory_bytes") is not None:
            found["memory_bytes"] = str(hardware["memory_bytes"])
    for product, version in extract_products(inventory).items():
        found[f"product:{product}"] = version
    return dict(sorted(found.items()))


def _growth(metric: MetricSummary) -> float | None:
    if metric.slope_per_day is None or metric.last_ts - metric.first_ts < MIN_SPAN_S:
        return None
    return metric.slope_per_day


def capacity_trends(host: HostFacts) -> list[CapacityTrend]:
    """Filesystems, memory and TCP connections of one host over the period."""
    trends = []
    forecast = {m.label("mountpoint"): m for m in host.series("storage_fs_days_until_full_days")}
    sizes = {m.label("mountpoint"): m for m in host.series("storage_fs_size_bytes")}
    for free in host.series("storage_fs_free_bytes"):
        mount = free.label("mountpoint")
        size = sizes.get(mount)
        if mount is None or size is None:
            continue
        slope = _growth(free)
        growth = -slope if slope is not None else 0.0
        days_left: float | None = None
        if mount in forecast:
            days_left = forecast[mount].last
        elif growth > 0:
            days_left = free.last / growth
        trends.append(
            CapacityTrend(
                host.name,
                "filesystem",
                Unit.BYTES,
                size.last - free.last,
                growth,
                mount,
                size.last,
                days_left,
            )
        )
    used, total = host.one("host_memory_used_bytes"), host.one("host_memory_total_bytes")
    if used is not None:
        growth = _growth(used) or 0.0
        limit = total.last if total is not None else None
        days_left = (limit - used.last) / growth if limit is not None and growth > 0 else None
        trends.append(
            CapacityTrend(host.name, "memory", Unit.BYTES, used.last, growth, None, limit, days_left)
        )
    conns = host.one("net_tcp_sockets_in_use_count")
    if conns is not None:
        trends.append(
            CapacityTrend(host.name, "tcp_connections", Unit.COUNT, conns.last, _growth(conns) or 0.0)
        )
    return trends
