"""Inspection rules of the network layer: interfaces, TCP, conntrack, DNS, endpoints."""

from __future__ import annotations

from checks.api import Layer, Severity
from collector.inspections.facts import HostFacts
from collector.inspections.rules.base import (
    Above,
    AboveWarn,
    Hit,
    by_item,
    dedupe,
    from_results,
    num,
    pct,
    results_else_level,
    rule,
    worst_one,
)

IFACE_ERRORS = AboveWarn(warn=1)
"""Errors or drops per second on an interface, mean over the period."""
RETRANS = Above(warn=2, crit=5)
"""TCP retransmitted segments, percent, mean over the period."""
CONNTRACK = Above(warn=80, crit=90)
"""Conntrack table used, percent, peak over the period."""


@rule(
    "IFACE_DOWN",
    Layer.NETWORK,
    "An expected interface is down or missing.",
    checks=("network.interfaces",),
    result_keys=("IFACE_DOWN", "IFACE_MISSING"),
)
def iface_down(host: HostFacts) -> list[Hit]:
    return [
        Hit(h.severity, h.item, {"item": h.item} if h.item else {}, h.result)
        for h in from_results(host, ("IFACE_DOWN", "IFACE_MISSING"))
    ]


_IFACE_ERROR_METRICS = (
    "net_rx_errors_per_second",
    "net_tx_errors_per_second",
    "net_rx_drops_per_second",
    "net_tx_drops_per_second",
)


@rule(
    "IFACE_ERRORS",
    Layer.NETWORK,
    f"Interface errors or drops reported, or averaging >= {IFACE_ERRORS.warn:.0f}/s.",
    checks=("network.interfaces",),
    result_keys=("IFACE_ERRORS", "IFACE_DROPS"),
    metrics=_IFACE_ERROR_METRICS,
    thresholds=IFACE_ERRORS,
)
def iface_errors(host: HostFacts, limits: AboveWarn) -> list[Hit]:
    worst: dict[str, float] = {}
    for name in _IFACE_ERROR_METRICS:
        for metric in host.series(name):
            iface = metric.label("interface") or "?"
            worst[iface] = max(worst.get(iface, 0.0), metric.mean)
    results = from_results(host, ("IFACE_ERRORS", "IFACE_DROPS"))
    hits = [
        Hit(h.severity, h.item, {"item": h.item, "rate": num(worst[h.item])}, h.result)
        if h.item in worst
        else h
        for h in results
    ]
    extra = [
        Hit(Severity.WARN, iface, {"item": iface, "rate": num(rate)})
        for iface, rate in sorted(worst.items())
        if limits.level(rate) is not None
    ]
    return by_item(dedupe(hits), extra)


@rule(
    "TCP_RETRANSMISSIONS",
    Layer.NETWORK,
    f"TCP retransmissions reported, or averaging >= {RETRANS.warn:.0f}% (CRIT >= {RETRANS.crit:.0f}%).",
    checks=("network.tcp_retransmits",),
    result_keys=("TCP_RETRANS_HIGH",),
    metrics=("net_tcp_retransmit_percent",),
    thresholds=RETRANS,
)
def tcp_retransmissions(host: HostFacts, limits: Above) -> list[Hit]:
    metric = host.one("net_tcp_retransmit_percent")
    values = {"percent": pct(metric.mean)} if metric else None
    return results_else_level(host, ("TCP_RETRANS_HIGH",), metric.mean if metric else None, values, limits)


@rule(
    "CLOSE_WAIT_LEAK",
    Layer.NETWORK,
    "Many sockets in CLOSE_WAIT: the application leaks connections.",
    checks=("network.tcp_states",),
    result_keys=("TCP_CLOSE_WAIT_HIGH",),
    metrics=("net_tcp_connections_count",),
)
def close_wait(host: HostFacts) -> list[Hit]:
    hits = from_results(host, ("TCP_CLOSE_WAIT_HIGH",))
    series = list(host.series("net_tcp_connections_count", state="CLOSE_WAIT"))
    values = {"count": num(sum(m.last for m in series))} if series else None
    return worst_one(hits, values)


@rule(
    "CONNTRACK_NEARLY_FULL",
    Layer.NETWORK,
    f"Conntrack table full or dropping, or peaking >= {CONNTRACK.warn:.0f}%.",
    checks=("network.conntrack", "host.kernel_events"),
    result_keys=("CONNTRACK_NEARLY_FULL", "CONNTRACK_DROPS", "KERNEL_CONNTRACK_FULL"),
    metrics=("network_conntrack_used_percent",),
    thresholds=CONNTRACK,
)
def conntrack(host: HostFacts, limits: Above) -> list[Hit]:
    used = host.one("network_conntrack_used_percent")
    values = {"percent": pct(used.max)} if used else None
    keys = ("CONNTRACK_NEARLY_FULL", "CONNTRACK_DROPS", "KERNEL_CONNTRACK_FULL")
    return results_else_level(host, keys, used.max if used else None, values, limits)


@rule(
    "DNS_PROBLEMS",
    Layer.NETWORK,
    "Name resolution failing or slow, or no nameserver.",
    checks=("network.dns",),
    result_keys=("DNS_FAILED", "DNS_SLOW", "DNS_NO_NAMESERVER"),
)
def dns(host: HostFacts) -> list[Hit]:
    return dedupe(
        [
            Hit(h.severity, h.item, {"item": h.item} if h.item else {}, h.result)
            for h in from_results(host, ("DNS_FAILED", "DNS_SLOW", "DNS_NO_NAMESERVER"))
        ]
    )


@rule(
    "LISTEN_QUEUE_OVERFLOW",
    Layer.NETWORK,
    "Connections dropped at a full accept queue during the period.",
    checks=("network.listen_overflows", "network.listening_ports"),
    result_keys=("LISTEN_OVERFLOW", "LISTEN_QUEUE_FULL"),
    metrics=("net_tcp_listen_overflows_per_second",),
)
def listen_overflow(host: HostFacts) -> list[Hit]:
    hits = from_results(host, ("LISTEN_OVERFLOW", "LISTEN_QUEUE_FULL"))
    rate = host.one("net_tcp_listen_overflows_per_second")
    if rate is None:
        return worst_one(hits)
    values = {"rate": num(rate.max)}
    if hits:
        return worst_one(hits, values)
    return [Hit(Severity.WARN, None, values)] if rate.mean > 0 else []


@rule(
    "ENDPOINT_UNREACHABLE",
    Layer.NETWORK,
    "A configured TCP endpoint cannot be connected to.",
    checks=("network.tcp_connect",),
    result_keys=("TCP_CONNECT_FAILED",),
)
def endpoint_unreachable(host: HostFacts) -> list[Hit]:
    return [
        Hit(h.severity, h.item, {"item": h.item} if h.item else {}, h.result)
        for h in from_results(host, ("TCP_CONNECT_FAILED",))
    ]
