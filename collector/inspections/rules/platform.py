"""Inspection rules of the platform layer: services, reboots, kernel taint, certificates, OS versions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from checks.api import Layer, Severity
from collector.inspections.facts import HostFacts
from collector.inspections.rules.base import (
    Below,
    Hit,
    days,
    dedupe,
    drift,
    from_results,
    rule,
    worst_one,
)

CERT_DAYS = Below(warn=30, crit=7)
"""Days until a certificate expires."""


@rule(
    "SYSTEMD_FAILED_UNITS",
    Layer.PLATFORM,
    "Failed systemd units, or configured units not active or not found.",
    checks=("platform.failed_units", "platform.systemd_units"),
    result_keys=("SYSTEMD_FAILED_UNITS", "UNIT_NOT_ACTIVE", "UNIT_NOT_FOUND"),
    metrics=("platform_systemd_failed_units_count",),
)
def failed_units(host: HostFacts) -> list[Hit]:
    hits = from_results(host, ("SYSTEMD_FAILED_UNITS", "UNIT_NOT_ACTIVE", "UNIT_NOT_FOUND"))
    if not hits:
        return []
    failed = host.one("platform_systemd_failed_units_count")
    count = (int(failed.last) if failed else 0) + sum(
        1 for h in hits if h.result and h.result.key != "SYSTEMD_FAILED_UNITS"
    )
    return worst_one(hits, {"count": max(count, 1)})


@rule(
    "UNIT_RESTARTING",
    Layer.PLATFORM,
    "A configured unit was restarted by systemd.",
    checks=("platform.systemd_units",),
    result_keys=("UNIT_RESTARTED",),
)
def unit_restarting(host: HostFacts) -> list[Hit]:
    return [
        Hit(h.severity, h.item, {"item": h.item} if h.item else {}, h.result)
        for h in from_results(host, ("UNIT_RESTARTED",))
    ]


@rule(
    "REBOOT_REQUIRED",
    Layer.PLATFORM,
    "Installed updates wait for a reboot.",
    checks=("platform.reboot_required",),
    result_keys=("REBOOT_REQUIRED",),
)
def reboot_required(host: HostFacts) -> list[Hit]:
    return worst_one(from_results(host, ("REBOOT_REQUIRED",)))


KERNEL_TAINT_KEYS = (
    "KERNEL_OOPSED",
    "KERNEL_MACHINE_CHECK",
    "KERNEL_BAD_PAGE",
    "KERNEL_WARNED",
    "KERNEL_SOFT_LOCKUP",
    "KERNEL_TAINTED",
)


@rule(
    "KERNEL_TAINTED",
    Layer.PLATFORM,
    "Kernel taint flags set (oops, machine check, bad page, warning, lockup, modules).",
    checks=("platform.kernel",),
    result_keys=KERNEL_TAINT_KEYS,
)
def kernel_tainted(host: HostFacts) -> list[Hit]:
    return worst_one(from_results(host, KERNEL_TAINT_KEYS))


_CERT_METRICS = (
    ("platform_tls_cert_expires_in_days", "endpoint"),
    ("platform_cert_file_expires_in_days", "path"),
    ("app_http_cert_expiry_days", "endpoint"),
)


def _cert_days(host: HostFacts) -> dict[str, float]:
    """Days until expiry per certificate (endpoint or path), the soonest when several checks see it."""
    soonest: dict[str, float] = {}
    for name, label in _CERT_METRICS:
        for metric in host.series(name):
            item = metric.label(label) or "?"
            soonest[item] = min(metric.last, soonest.get(item, metric.last))
    return soonest


@rule(
    "CERT_EXPIRING",
    Layer.PLATFORM,
    f"A certificate expires within {CERT_DAYS.warn:.0f} days (CRIT within {CERT_DAYS.crit:.0f}).",
    checks=("platform.tls_endpoints", "platform.tls_files", "application.http"),
    result_keys=("CERT_EXPIRING",),
    metrics=tuple(name for name, _ in _CERT_METRICS),
    thresholds=CERT_DAYS,
)
def certificates_expiring(host: HostFacts, limits: Below) -> list[Hit]:
    soonest = _cert_days(host)
    hits = []
    for item in sorted(soonest):
        left = soonest[item]
        severity = None if left <= 0 else limits.level(left)
        if severity is not None:
            hits.append(Hit(severity, item, {"item": item, "days": days(left)}))
    extra = [h for h in from_results(host, ("CERT_EXPIRING",)) if h.item not in soonest]
    return hits + dedupe(extra)


@rule(
    "CERT_EXPIRED",
    Layer.PLATFORM,
    "A certificate has expired (CRIT).",
    checks=("platform.tls_endpoints", "platform.tls_files", "application.http"),
    result_keys=("CERT_EXPIRED",),
    metrics=tuple(name for name, _ in _CERT_METRICS),
)
def certificates_expired(host: HostFacts) -> list[Hit]:
    soonest = _cert_days(host)
    hits = [
        Hit(Severity.CRIT, item, {"item": item, "days": days(-soonest[item])})
        for item in sorted(soonest)
        if soonest[item] <= 0
    ]
    extra = [h for h in from_results(host, ("CERT_EXPIRED",)) if h.item not in soonest]
    return hits + dedupe(extra)


@rule(
    "SERVICE_UNREACHABLE",
    Layer.PLATFORM,
    "A database, middleware or TLS service does not answer, or an expected port has no listener.",
    checks=("platform.services", "platform.tls_endpoints", "network.listening_ports"),
    result_keys=(
        "SERVICE_UNREACHABLE",
        "SERVICE_BAD_RESPONSE",
        "TLS_CONNECT_FAILED",
        "TLS_HANDSHAKE_FAILED",
        "PORT_NOT_LISTENING",
    ),
)
def service_unreachable(host: HostFacts) -> list[Hit]:
    keys = (
        "SERVICE_UNREACHABLE",
        "SERVICE_BAD_RESPONSE",
        "TLS_CONNECT_FAILED",
        "TLS_HANDSHAKE_FAILED",
        "PORT_NOT_LISTENING",
    )
    return dedupe(
        [
            Hit(h.severity, h.item, {"item": h.item} if h.item else {}, h.result)
            for h in from_results(host, keys)
        ]
    )


@rule(
    "SERVICE_SLOW",
    Layer.PLATFORM,
    "A service or TLS handshake answered slowly.",
    checks=("platform.services", "platform.tls_endpoints"),
    result_keys=("SERVICE_SLOW", "TLS_HANDSHAKE_SLOW"),
)
def service_slow(host: HostFacts) -> list[Hit]:
    keys = ("SERVICE_SLOW", "TLS_HANDSHAKE_SLOW")
    return dedupe(
        [
            Hit(h.severity, h.item, {"item": h.item} if h.item else {}, h.result)
            for h in from_results(host, keys)
        ]
    )


@rule(
    "OS_END_OF_LIFE",
    Layer.PLATFORM,
    "The OS release is past its end of support.",
    checks=("platform.os",),
    result_keys=("OS_EOL",),
)
def os_eol(host: HostFacts) -> list[Hit]:
    return worst_one(from_results(host, ("OS_EOL",)))


def _os_components(host: HostFacts) -> dict[str, str]:
    os_doc = (host.inventory or {}).get("os")
    if not isinstance(os_doc, Mapping):
        return {}
    os_id, version = os_doc.get("id"), os_doc.get("version_id")
    return {str(os_id): str(version)} if os_id and version else {}


@rule(
    "OS_VERSION_DRIFT",
    Layer.PLATFORM,
    "Hosts of the customer run different releases of one distribution "
    "(hosts off the most common release; read from the inventory, applied with platform.os).",
    checks=("platform.os",),
    inventory=True,
    fleet=True,
)
def os_drift(hosts: Sequence[HostFacts]) -> list[Hit]:
    return drift([h for h in hosts if h.answered], _os_components)
