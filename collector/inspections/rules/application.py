"""Inspection rules of the application layer: HTTP, processes, logs, product versions, the
agent, hosts that did not answer."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from checks.api import Layer, Severity, render_seconds
from collector.inspections.facts import HostFacts
from collector.inspections.rules.base import (
    Above,
    BelowWarn,
    Hit,
    by_item,
    dedupe,
    drift,
    from_results,
    num,
    rule,
)

HTTP_UP = BelowWarn(warn=0.99)
"""Share of the period an HTTP endpoint answered (0..1)."""
LOG_PER_MIN = Above(warn=1, crit=60)
"""Log pattern matches per minute, mean over the period."""


@rule(
    "HTTP_FAILING",
    Layer.APPLICATION,
    f"An HTTP endpoint fails, or answered less than {HTTP_UP.warn:.0%} of the period.",
    checks=("application.http",),
    result_keys=("HTTP_UNREACHABLE", "HTTP_BAD_STATUS", "HTTP_BODY_MISMATCH"),
    metrics=("app_http_up_boolean",),
    thresholds=HTTP_UP,
)
def http_failing(host: HostFacts, limits: BelowWarn) -> list[Hit]:
    keys = ("HTTP_UNREACHABLE", "HTTP_BAD_STATUS", "HTTP_BODY_MISMATCH")
    hits = dedupe(
        [
            Hit(h.severity, h.item, {"item": h.item} if h.item else {}, h.result)
            for h in from_results(host, keys)
        ]
    )
    extra = [
        Hit(Severity.WARN, m.label("endpoint"), {"item": m.label("endpoint") or "?"})
        for m in host.series("app_http_up_boolean")
        if limits.level(m.mean) is not None
    ]
    return by_item(hits, extra)


@rule(
    "HTTP_SLOW",
    Layer.APPLICATION,
    "An HTTP endpoint is slow.",
    checks=("application.http",),
    result_keys=("HTTP_SLOW",),
    metrics=("app_http_latency_seconds",),
)
def http_slow(host: HostFacts) -> list[Hit]:
    found = []
    for hit in dedupe(from_results(host, ("HTTP_SLOW",))):
        latency = host.one("app_http_latency_seconds", endpoint=hit.item) if hit.item else None
        values = (
            {"item": hit.item, "latency": render_seconds(latency.mean), "peak": render_seconds(latency.max)}
            if latency is not None
            else {}
        )
        found.append(Hit(hit.severity, hit.item, values, hit.result))
    return found


@rule(
    "PROCESS_MISSING",
    Layer.APPLICATION,
    "A product process group is not running.",
    checks=("application.process",),
    result_keys=("PROCESS_MISSING",),
)
def process_missing(host: HostFacts) -> list[Hit]:
    return [
        Hit(h.severity, h.item, {"item": h.item} if h.item else {}, h.result)
        for h in from_results(host, ("PROCESS_MISSING",))
    ]


@rule(
    "PROCESS_RESOURCES_HIGH",
    Layer.APPLICATION,
    "A product process group over its CPU, memory or count limits.",
    checks=("application.process",),
    result_keys=("PROCESS_CPU_HIGH", "PROCESS_RSS_HIGH", "PROCESS_TOO_MANY"),
)
def process_resources(host: HostFacts) -> list[Hit]:
    keys = ("PROCESS_CPU_HIGH", "PROCESS_RSS_HIGH", "PROCESS_TOO_MANY")
    return dedupe(
        [
            Hit(h.severity, h.item, {"item": h.item} if h.item else {}, h.result)
            for h in from_results(host, keys)
        ]
    )


@rule(
    "LOG_ERROR_RATE",
    Layer.APPLICATION,
    f"Log pattern matches averaging >= {LOG_PER_MIN.warn:.0f}/min (CRIT >= "
    f"{LOG_PER_MIN.crit:.0f}/min), or a watched log missing.",
    checks=("application.log_patterns",),
    result_keys=("LOG_FILE_MISSING", "LOG_FILE_UNREADABLE"),
    metrics=("app_log_matches_per_second",),
    thresholds=LOG_PER_MIN,
)
def log_errors(host: HostFacts, limits: Above) -> list[Hit]:
    found = []
    for metric in host.series("app_log_matches_per_second"):
        per_min = metric.mean * 60
        severity = limits.level(per_min)
        if severity is not None:
            file, pattern = metric.label("file") or "?", metric.label("pattern") or "?"
            found.append(
                Hit(severity, f"{file} {pattern}", {"item": file, "pattern": pattern, "rate": num(per_min)})
            )
    return found + from_results(host, ("LOG_FILE_MISSING", "LOG_FILE_UNREADABLE"))


def _product_components(host: HostFacts) -> dict[str, str]:
    if host.inventory is not None:
        from collector.store.inventory import extract_products

        found = extract_products(host.inventory)
        if found:
            return found
    return {
        m.label("product") or "?": m.label("version") or "?"
        for m in host.series("app_version_info")
        if m.label("product")
    }


@rule(
    "VERSION_DRIFT",
    Layer.APPLICATION,
    "Hosts of the customer run different versions of one product (hosts off the most common version).",
    checks=("application.version",),
    metrics=("app_version_info",),
    inventory=True,
    fleet=True,
)
def version_drift(hosts: Sequence[HostFacts]) -> list[Hit]:
    return drift([h for h in hosts if h.answered], _product_components)


@rule(
    "PRODUCT_VERSION_UNKNOWN",
    Layer.APPLICATION,
    "A product's version cannot be read.",
    checks=("application.version",),
    result_keys=("VERSION_UNKNOWN",),
)
def version_unknown(host: HostFacts) -> list[Hit]:
    return [
        Hit(h.severity, h.item, {"item": h.item} if h.item else {}, h.result)
        for h in from_results(host, ("VERSION_UNKNOWN",))
    ]


@rule(
    "AGENT_GAPS",
    Layer.APPLICATION,
    "The agent lost results during the period (gaps, dropped results).",
    checks=("application.agent",),
    result_keys=("AGENT_DROPPED_RESULTS",),
    metrics=("app_agent_dropped_results_count",),
)
def agent_gaps(host: HostFacts) -> list[Hit]:
    hits = from_results(host, ("AGENT_DROPPED_RESULTS",))
    dropped = host.one("app_agent_dropped_results_count")
    count = max(host.lost_results, int(dropped.total) if dropped else 0)
    if count <= 0 and not hits:
        return []
    severity = Severity.worst(Severity.WARN, *(h.severity for h in hits))
    return [Hit(severity, None, {"count": max(count, 1)}, hits[0].result if hits else None)]


@rule(
    "AGENT_UNHEALTHY",
    Layer.APPLICATION,
    "The agent's own memory, CPU or hung checks.",
    checks=("application.agent",),
    result_keys=("AGENT_MEMORY_HIGH", "AGENT_CPU_HIGH", "AGENT_CHECKS_HUNG"),
)
def agent_unhealthy(host: HostFacts) -> list[Hit]:
    hits = from_results(host, ("AGENT_MEMORY_HIGH", "AGENT_CPU_HIGH", "AGENT_CHECKS_HUNG"))
    return [
        Hit(
            h.severity,
            h.result.key if h.result else None,
            {"result": h.result.key if h.result else "?"},
            h.result,
        )
        for h in hits
    ]


@rule(
    "HOST_NOT_ANSWERING",
    Layer.APPLICATION,
    "A selected host did not answer the inspection before the deadline.",
    fleet=True,
)
def not_answering(hosts: Sequence[HostFacts]) -> list[Hit]:
    found = []
    for host in hosts:
        if not host.answered:
            seen = (
                datetime.fromtimestamp(host.last_seen, UTC).strftime("%Y-%m-%d %H:%M UTC")
                if host.last_seen is not None
                else "-"
            )
            found.append(Hit(Severity.WARN, None, {"last_seen": seen}, host=host.name))
    return found
