"""Inspection rules: (results, metric history, inventory) of hosts -> findings with stable keys.

A rule is a declaration (:class:`Rule`) naming what it reads (checks, result keys,
metric names: a test checks each one against the check declarations) and a pure
function returning :class:`Hit` values. A host rule sees one answered host
(:class:`~collector.inspections.facts.HostFacts`); a fleet rule sees every selected host
of the customer (version drift, hosts that did not answer). Wording lives in
:mod:`collector.inspections.catalogue`; a hit carries only the values.

Most rules repeat a check's own non-OK verdict of the latest run and add evidence from
the metric history; several also fire from the history alone when the latest run
happened to be fine (the average over the period tells more than one sample). The
thresholds for history-only hits are the module constants below.

>>> from checks.api import Severity
>>> from collector.inspections.facts import HostFacts, ResultFact
>>> host = HostFacts("db1", results=(ResultFact("platform.reboot_required", "REBOOT_REQUIRED",
...                                             Severity.WARN, "Reboot required"),))
>>> [(h.severity.value, h.template) for h in RULES["REBOOT_REQUIRED"].host(host)]
[('WARN', 'result')]
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType

from checks.api import Layer, Severity, render_bytes, render_seconds
from collector.inspections.facts import DAY_S, HostFacts, ResultFact

__all__ = ["RULES", "Hit", "Rule", "RuleKind"]

# History-only thresholds (documented in the rule descriptions).
DAYS_FULL_WARN, DAYS_FULL_CRIT = 30.0, 7.0
MEMORY_DAYS_WARN, MEMORY_DAYS_CRIT = 30.0, 7.0
SWAP_IN_WARN, SWAP_IN_CRIT = 10.0, 100.0
CPU_BUSY_WARN, CPU_BUSY_CRIT = 85.0, 95.0
STEAL_WARN = 10.0
RETRANS_WARN, RETRANS_CRIT = 2.0, 5.0
CONNTRACK_WARN, CONNTRACK_CRIT = 80.0, 90.0
IFACE_ERRORS_WARN = 1.0
CERT_DAYS_WARN, CERT_DAYS_CRIT = 30.0, 7.0
LOG_PER_MIN_WARN, LOG_PER_MIN_CRIT = 1.0, 60.0
HTTP_UP_WARN = 0.99
MIN_SPAN_S = DAY_S / 4
"""History shorter than this is not used for growth rates."""
SERIOUS_KERNEL_KINDS = frozenset({"hardware_error", "lockup", "hung_task", "fs_error", "io_error"})


class RuleKind(enum.Enum):
    HOST = "host"
    FLEET = "fleet"


@dataclass(frozen=True, slots=True)
class Hit:
    """One place a rule fired. ``template`` "rule" fills the catalogue's evidence with
    ``values``; "result" repeats the check's verdict (``result``)."""

    severity: Severity
    item: str | None = None
    values: Mapping[str, object] = field(default_factory=dict)
    result: ResultFact | None = None
    host: str | None = None
    """Fleet rules name the host; host rules leave it None."""

    @property
    def template(self) -> str:
        return "result" if self.result is not None and not self.values else "rule"


HostFn = Callable[[HostFacts], Iterable[Hit]]
FleetFn = Callable[[Sequence[HostFacts]], Iterable[Hit]]


@dataclass(frozen=True, slots=True)
class Rule:
    key: str
    layer: Layer
    description: str
    checks: tuple[str, ...] = ()
    result_keys: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    inventory: bool = False
    host: HostFn | None = None
    fleet: FleetFn | None = None

    @property
    def kind(self) -> RuleKind:
        return RuleKind.FLEET if self.fleet is not None else RuleKind.HOST


# --------------------------------------------------------------------------- helpers


def pct(value: float) -> str:
    return f"{value:.1f}%"


def num(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 10 or value == int(value) else f"{value:.1f}"


def days(value: float) -> str:
    return f"{max(value, 0.0):.0f}" if value >= 10 else f"{max(value, 0.0):.1f}"


def _from_results(host: HostFacts, keys: Iterable[str]) -> list[Hit]:
    return [Hit(r.severity, r.item, {}, r) for r in host.results_with(keys)]


def _by_item(hits: Iterable[Hit], extra: Iterable[Hit]) -> list[Hit]:
    """``hits`` plus those of ``extra`` whose item no hit of ``hits`` covers."""
    found = list(hits)
    seen = {h.item for h in found}
    found.extend(h for h in extra if h.item not in seen)
    return found


def _level(value: float, warn: float, crit: float, *, lower: bool = False) -> Severity | None:
    if lower:
        return Severity.CRIT if value <= crit else Severity.WARN if value <= warn else None
    return Severity.CRIT if value >= crit else Severity.WARN if value >= warn else None


def _worst_one(hits: list[Hit], values: Mapping[str, object] | None = None) -> list[Hit]:
    """Fold hits into one per host (item None) with the worst severity."""
    if not hits:
        return []
    worst = max(hits, key=lambda h: h.severity.rank)
    return [Hit(worst.severity, None, values or {}, worst.result)]


# --------------------------------------------------------------------------- host layer


def memory_pressure(host: HostFacts) -> list[Hit]:
    hits = _from_results(host, ("MEM_LOW", "MEM_PRESSURE", "PRESSURE_MEMORY"))
    avail = host.one("host_memory_available_bytes")
    percent = host.one("host_memory_available_percent")
    values = (
        {"available": render_bytes(avail.last), "available_percent": pct(percent.last)}
        if avail is not None and percent is not None
        else None
    )
    return _worst_one(hits, values)


def memory_growing(host: HostFacts) -> list[Hit]:
    used = host.one("host_memory_used_bytes")
    total = host.one("host_memory_total_bytes")
    if used is None or total is None or not used.slope_per_day or used.slope_per_day <= 0:
        return []
    if used.last_ts - used.first_ts < MIN_SPAN_S:
        return []
    left = (total.last - used.last) / used.slope_per_day
    severity = _level(left, MEMORY_DAYS_WARN, MEMORY_DAYS_CRIT, lower=True)
    if severity is None:
        return []
    values = {
        "growth": render_bytes(used.slope_per_day),
        "used": render_bytes(used.last),
        "total": render_bytes(total.last),
        "days": days(left),
    }
    return [Hit(severity, None, values)]


def swap_in(host: HostFacts) -> list[Hit]:
    hits = _from_results(host, ("SWAP_IN_HIGH",))
    rate = host.one("host_swap_in_pages_per_second")
    if rate is None:
        return _worst_one(hits)
    values = {"rate": num(rate.mean), "peak": num(rate.max)}
    if hits:
        return _worst_one(hits, values)
    severity = _level(rate.mean, SWAP_IN_WARN, SWAP_IN_CRIT)
    return [Hit(severity, None, values)] if severity else []


def swap_full(host: HostFacts) -> list[Hit]:
    hits = _from_results(host, ("SWAP_USAGE_HIGH",))
    used = host.one("host_swap_used_percent")
    return _worst_one(hits, {"used_percent": pct(used.last)} if used else None)


def oom_kills(host: HostFacts) -> list[Hit]:
    hits = _from_results(host, ("OOM_KILLS",))
    kills = host.one("host_oom_kills_count")
    count = int(kills.total) if kills is not None else 0
    if not hits and count <= 0:
        return []
    return [Hit(Severity.CRIT, None, {"count": max(count, 1)}, hits[0].result if hits else None)]


def zombies(host: HostFacts) -> list[Hit]:
    hits = _from_results(host, ("ZOMBIES",))
    count = host.one("host_zombie_processes_count")
    return _worst_one(hits, {"count": num(count.last)} if count else None)


def fd_exhaustion(host: HostFacts) -> list[Hit]:
    system = _from_results(host, ("FD_SYSTEM_EXHAUSTION",))
    usage = host.one("host_fd_system_usage_percent")
    found = _worst_one(system, {"used_percent": pct(usage.max)} if usage else None)
    proc = _from_results(host, ("FD_PROCESS_NEAR_LIMIT",))
    top = host.one("host_fd_process_usage_max_percent")
    found += [
        Hit(h.severity, h.item or "process", {"used_percent": pct(top.max)} if top else {}, h.result)
        for h in proc
    ]
    return found


def pid_exhaustion(host: HostFacts) -> list[Hit]:
    hits = _from_results(host, ("PID_EXHAUSTION",))
    usage = host.one("host_pid_usage_percent")
    return _worst_one(hits, {"used_percent": pct(usage.max)} if usage else None)


def clock(host: HostFacts) -> list[Hit]:
    hits = _from_results(host, ("CLOCK_UNSYNCHRONIZED", "CLOCK_OFFSET_HIGH"))
    offset = host.one("host_clock_offset_seconds")
    values = {"offset": render_seconds(abs(offset.last))} if offset else None
    if hits:
        return _worst_one(hits, values)
    synced = host.one("host_clock_synchronized_boolean")
    if synced is not None and synced.last < 1:
        return [Hit(Severity.WARN, None, values or {"offset": "—"})]
    return []


def cpu_saturated(host: HostFacts) -> list[Hit]:
    hits = _from_results(host, ("CPU_BUSY", "LOAD_HIGH", "CPU_CORE_SATURATED"))
    busy = host.one("host_cpu_busy_percent")
    if busy is None:
        return _worst_one(hits)
    values = {"busy": pct(busy.mean), "peak": pct(busy.max)}
    if hits:
        return _worst_one(hits, values)
    severity = _level(busy.mean, CPU_BUSY_WARN, CPU_BUSY_CRIT)
    return [Hit(severity, None, values)] if severity else []


def cpu_steal(host: HostFacts) -> list[Hit]:
    hits = _from_results(host, ("CPU_STEAL_HIGH",))
    steal = host.one("host_cpu_mode_percent", mode="steal")
    if steal is None:
        return _worst_one(hits)
    values = {"steal": pct(steal.mean)}
    if hits:
        return _worst_one(hits, values)
    return [Hit(Severity.WARN, None, values)] if steal.mean >= STEAL_WARN else []


def unexpected_reboot(host: HostFacts) -> list[Hit]:
    return _worst_one(_from_results(host, ("HOST_REBOOTED_UNEXPECTEDLY",)))


KERNEL_EVENT_KEYS = (
    "KERNEL_HARDWARE_ERROR",
    "KERNEL_LOCKUP",
    "KERNEL_HUNG_TASK",
    "KERNEL_FS_ERROR",
    "KERNEL_IO_ERROR",
    "KERNEL_NIC_TIMEOUT",
    "KERNEL_SEGFAULT",
)


def kernel_errors(host: HostFacts) -> list[Hit]:
    by_kind: dict[str, Hit] = {}
    for metric in host.series("host_kernel_events_count"):
        kind = metric.label("kind") or "unknown"
        if metric.total > 0:
            severity = Severity.CRIT if kind in SERIOUS_KERNEL_KINDS else Severity.WARN
            by_kind[kind] = Hit(severity, kind, {"count": num(metric.total), "kind": kind})
    for result in host.results_with(KERNEL_EVENT_KEYS):
        kind = result.key.removeprefix("KERNEL_").lower()
        if kind not in by_kind:
            by_kind[kind] = Hit(result.severity, kind, {}, result)
    return [by_kind[k] for k in sorted(by_kind)]


# --------------------------------------------------------------------------- network layer


def iface_down(host: HostFacts) -> list[Hit]:
    return [
        Hit(h.severity, h.item, {"item": h.item} if h.item else {}, h.result)
        for h in _from_results(host, ("IFACE_DOWN", "IFACE_MISSING"))
    ]


_IFACE_ERROR_METRICS = (
    "net_rx_errors_per_second",
    "net_tx_errors_per_second",
    "net_rx_drops_per_second",
    "net_tx_drops_per_second",
)


def iface_errors(host: HostFacts) -> list[Hit]:
    worst: dict[str, float] = {}
    for name in _IFACE_ERROR_METRICS:
        for metric in host.series(name):
            iface = metric.label("interface") or "?"
            worst[iface] = max(worst.get(iface, 0.0), metric.mean)
    results = _from_results(host, ("IFACE_ERRORS", "IFACE_DROPS"))
    hits = [
        Hit(h.severity, h.item, {"item": h.item, "rate": num(worst[h.item])}, h.result)
        if h.item in worst
        else h
        for h in results
    ]
    extra = [
        Hit(Severity.WARN, iface, {"item": iface, "rate": num(rate)})
        for iface, rate in sorted(worst.items())
        if rate >= IFACE_ERRORS_WARN
    ]
    return _by_item(_dedupe(hits), extra)


def _dedupe(hits: list[Hit]) -> list[Hit]:
    """One hit per item, the worst."""
    best: dict[str | None, Hit] = {}
    for hit in hits:
        if hit.item not in best or hit.severity.rank > best[hit.item].severity.rank:
            best[hit.item] = hit
    return list(best.values())


def tcp_retransmissions(host: HostFacts) -> list[Hit]:
    hits = _from_results(host, ("TCP_RETRANS_HIGH",))
    metric = host.one("net_tcp_retransmit_percent")
    if metric is None:
        return _worst_one(hits)
    values = {"percent": pct(metric.mean)}
    if hits:
        return _worst_one(hits, values)
    severity = _level(metric.mean, RETRANS_WARN, RETRANS_CRIT)
    return [Hit(severity, None, values)] if severity else []


def close_wait(host: HostFacts) -> list[Hit]:
    hits = _from_results(host, ("TCP_CLOSE_WAIT_HIGH",))
    series = list(host.series("net_tcp_connections_count", state="CLOSE_WAIT"))
    values = {"count": num(sum(m.last for m in series))} if series else None
    return _worst_one(hits, values)


def conntrack(host: HostFacts) -> list[Hit]:
    hits = _from_results(host, ("CONNTRACK_NEARLY_FULL", "CONNTRACK_DROPS", "KERNEL_CONNTRACK_FULL"))
    used = host.one("network_conntrack_used_percent")
    if used is None:
        return _worst_one(hits)
    values = {"percent": pct(used.max)}
    if hits:
        return _worst_one(hits, values)
    severity = _level(used.max, CONNTRACK_WARN, CONNTRACK_CRIT)
    return [Hit(severity, None, values)] if severity else []


def dns(host: HostFacts) -> list[Hit]:
    return _dedupe(
        [
            Hit(h.severity, h.item, {"item": h.item} if h.item else {}, h.result)
            for h in _from_results(host, ("DNS_FAILED", "DNS_SLOW", "DNS_NO_NAMESERVER"))
        ]
    )


def listen_overflow(host: HostFacts) -> list[Hit]:
    hits = _from_results(host, ("LISTEN_OVERFLOW", "LISTEN_QUEUE_FULL"))
    rate = host.one("net_tcp_listen_overflows_per_second")
    if rate is None:
        return _worst_one(hits)
    values = {"rate": num(rate.max)}
    if hits:
        return _worst_one(hits, values)
    return [Hit(Severity.WARN, None, values)] if rate.mean > 0 else []


def endpoint_unreachable(host: HostFacts) -> list[Hit]:
    return [
        Hit(h.severity, h.item, {"item": h.item} if h.item else {}, h.result)
        for h in _from_results(host, ("TCP_CONNECT_FAILED",))
    ]


# --------------------------------------------------------------------------- storage layer


def fs_filling(host: HostFacts) -> list[Hit]:
    hits: dict[str, Hit] = {}
    growth = {m.label("mountpoint"): m for m in host.series("storage_fs_growth_bytes_per_second")}
    for metric in host.series("storage_fs_days_until_full_days"):
        mount = metric.label("mountpoint") or "?"
        severity = _level(metric.last, DAYS_FULL_WARN, DAYS_FULL_CRIT, lower=True)
        rate = growth.get(mount)
        if severity is not None:
            per_day = rate.last * DAY_S if rate is not None else 0.0
            hits[mount] = Hit(
                severity, mount, {"item": mount, "days": days(metric.last), "growth": render_bytes(per_day)}
            )
    for metric in host.series("storage_fs_free_bytes"):
        mount = metric.label("mountpoint") or "?"
        slope = metric.slope_per_day
        if mount in hits or slope is None or slope >= 0 or metric.last_ts - metric.first_ts < MIN_SPAN_S:
            continue
        left = metric.last / -slope
        severity = _level(left, DAYS_FULL_WARN, DAYS_FULL_CRIT, lower=True)
        if severity is not None:
            hits[mount] = Hit(
                severity, mount, {"item": mount, "days": days(left), "growth": render_bytes(-slope)}
            )
    extra = [h for h in _from_results(host, ("FS_FILLING_UP",)) if h.item not in hits]
    return [hits[k] for k in sorted(hits)] + extra


def fs_full(host: HostFacts) -> list[Hit]:
    return _mount_results(host, ("FS_NEARLY_FULL",), "storage_fs_used_percent")


def inodes(host: HostFacts) -> list[Hit]:
    return _mount_results(host, ("FS_INODES_NEARLY_FULL",), "storage_fs_inodes_used_percent")


def _mount_results(host: HostFacts, keys: tuple[str, ...], metric: str) -> list[Hit]:
    found = []
    for hit in _from_results(host, keys):
        used = host.one(metric, mountpoint=hit.item) if hit.item else None
        values = {"item": hit.item, "used_percent": pct(used.last)} if used is not None else {}
        found.append(Hit(hit.severity, hit.item, values, hit.result))
    return found


def fs_read_only(host: HostFacts) -> list[Hit]:
    return [
        Hit(h.severity, h.item, {"item": h.item} if h.item else {}, h.result)
        for h in _from_results(host, ("FS_REMOUNTED_RO",))
    ]


def disk_slow(host: HostFacts) -> list[Hit]:
    found = []
    for hit in _dedupe(_from_results(host, ("DISK_LATENCY_HIGH", "DISK_SATURATED"))):
        wait = host.one("storage_disk_write_await_seconds", device=hit.item) if hit.item else None
        values = {"item": hit.item, "await_": render_seconds(wait.mean)} if wait is not None else {}
        found.append(Hit(hit.severity, hit.item, values, hit.result))
    return found


# --------------------------------------------------------------------------- platform layer


def failed_units(host: HostFacts) -> list[Hit]:
    hits = _from_results(host, ("SYSTEMD_FAILED_UNITS", "UNIT_NOT_ACTIVE", "UNIT_NOT_FOUND"))
    if not hits:
        return []
    failed = host.one("platform_systemd_failed_units_count")
    count = (int(failed.last) if failed else 0) + sum(
        1 for h in hits if h.result and h.result.key != "SYSTEMD_FAILED_UNITS"
    )
    return _worst_one(hits, {"count": max(count, 1)})


def unit_restarting(host: HostFacts) -> list[Hit]:
    return [
        Hit(h.severity, h.item, {"item": h.item} if h.item else {}, h.result)
        for h in _from_results(host, ("UNIT_RESTARTED",))
    ]


def reboot_required(host: HostFacts) -> list[Hit]:
    return _worst_one(_from_results(host, ("REBOOT_REQUIRED",)))


KERNEL_TAINT_KEYS = (
    "KERNEL_OOPSED",
    "KERNEL_MACHINE_CHECK",
    "KERNEL_BAD_PAGE",
    "KERNEL_WARNED",
    "KERNEL_SOFT_LOCKUP",
    "KERNEL_TAINTED",
)


def kernel_tainted(host: HostFacts) -> list[Hit]:
    return _worst_one(_from_results(host, KERNEL_TAINT_KEYS))


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


def certificates_expiring(host: HostFacts) -> list[Hit]:
    soonest = _cert_days(host)
    hits = []
    for item in sorted(soonest):
        left = soonest[item]
        severity = None if left <= 0 else _level(left, CERT_DAYS_WARN, CERT_DAYS_CRIT, lower=True)
        if severity is not None:
            hits.append(Hit(severity, item, {"item": item, "days": days(left)}))
    extra = [h for h in _from_results(host, ("CERT_EXPIRING",)) if h.item not in soonest]
    return hits + _dedupe(extra)


def certificates_expired(host: HostFacts) -> list[Hit]:
    soonest = _cert_days(host)
    hits = [
        Hit(Severity.CRIT, item, {"item": item, "days": days(-soonest[item])})
        for item in sorted(soonest)
        if soonest[item] <= 0
    ]
    extra = [h for h in _from_results(host, ("CERT_EXPIRED",)) if h.item not in soonest]
    return hits + _dedupe(extra)


def service_unreachable(host: HostFacts) -> list[Hit]:
    keys = (
        "SERVICE_UNREACHABLE",
        "SERVICE_BAD_RESPONSE",
        "TLS_CONNECT_FAILED",
        "TLS_HANDSHAKE_FAILED",
        "PORT_NOT_LISTENING",
    )
    return _dedupe(
        [
            Hit(h.severity, h.item, {"item": h.item} if h.item else {}, h.result)
            for h in _from_results(host, keys)
        ]
    )


def service_slow(host: HostFacts) -> list[Hit]:
    keys = ("SERVICE_SLOW", "TLS_HANDSHAKE_SLOW")
    return _dedupe(
        [
            Hit(h.severity, h.item, {"item": h.item} if h.item else {}, h.result)
            for h in _from_results(host, keys)
        ]
    )


def os_eol(host: HostFacts) -> list[Hit]:
    return _worst_one(_from_results(host, ("OS_EOL",)))


def _drift(hosts: Sequence[HostFacts], components: Callable[[HostFacts], Mapping[str, str]]) -> list[Hit]:
    """A WARN for every host whose component version differs from the most common one."""
    by_component: dict[str, dict[str, str]] = {}
    for host in hosts:
        for name, version in components(host).items():
            by_component.setdefault(name, {})[host.name] = version
    found = []
    for name in sorted(by_component):
        versions = by_component[name]
        counts = Counter(versions.values())
        if len(counts) < 2:
            continue
        # Most common first; ties broken by the highest version string, so the result is stable.
        common = sorted(counts.items(), key=lambda kv: (-kv[1], _version_key(kv[0])))[0][0]
        for host_name in sorted(versions):
            if versions[host_name] != common:
                values = {"component": name, "version": versions[host_name], "common": common}
                found.append(Hit(Severity.WARN, name, values, host=host_name))
    return found


def _version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key placing higher versions first."""
    parts = version.replace("-", ".").split(".")
    return tuple((0, -int(p)) if p.isdigit() else (1, p) for p in parts)


def _os_components(host: HostFacts) -> dict[str, str]:
    os_doc = (host.inventory or {}).get("os")
    if not isinstance(os_doc, Mapping):
        return {}
    os_id, version = os_doc.get("id"), os_doc.get("version_id")
    return {str(os_id): str(version)} if os_id and version else {}


def os_drift(hosts: Sequence[HostFacts]) -> list[Hit]:
    return _drift([h for h in hosts if h.answered], _os_components)


# --------------------------------------------------------------------------- application layer


def http_failing(host: HostFacts) -> list[Hit]:
    keys = ("HTTP_UNREACHABLE", "HTTP_BAD_STATUS", "HTTP_BODY_MISMATCH")
    hits = _dedupe(
        [
            Hit(h.severity, h.item, {"item": h.item} if h.item else {}, h.result)
            for h in _from_results(host, keys)
        ]
    )
    extra = [
        Hit(Severity.WARN, m.label("endpoint"), {"item": m.label("endpoint") or "?"})
        for m in host.series("app_http_up_boolean")
        if m.mean < HTTP_UP_WARN
    ]
    return _by_item(hits, extra)


def http_slow(host: HostFacts) -> list[Hit]:
    found = []
    for hit in _dedupe(_from_results(host, ("HTTP_SLOW",))):
        latency = host.one("app_http_latency_seconds", endpoint=hit.item) if hit.item else None
        values = (
            {"item": hit.item, "latency": render_seconds(latency.mean), "peak": render_seconds(latency.max)}
            if latency is not None
            else {}
        )
        found.append(Hit(hit.severity, hit.item, values, hit.result))
    return found


def process_missing(host: HostFacts) -> list[Hit]:
    return [
        Hit(h.severity, h.item, {"item": h.item} if h.item else {}, h.result)
        for h in _from_results(host, ("PROCESS_MISSING",))
    ]


def process_resources(host: HostFacts) -> list[Hit]:
    keys = ("PROCESS_CPU_HIGH", "PROCESS_RSS_HIGH", "PROCESS_TOO_MANY")
    return _dedupe(
        [
            Hit(h.severity, h.item, {"item": h.item} if h.item else {}, h.result)
            for h in _from_results(host, keys)
        ]
    )


def log_errors(host: HostFacts) -> list[Hit]:
    found = []
    for metric in host.series("app_log_matches_per_second"):
        per_min = metric.mean * 60
        severity = _level(per_min, LOG_PER_MIN_WARN, LOG_PER_MIN_CRIT)
        if severity is not None:
            file, pattern = metric.label("file") or "?", metric.label("pattern") or "?"
            found.append(
                Hit(severity, f"{file} {pattern}", {"item": file, "pattern": pattern, "rate": num(per_min)})
            )
    return found + _from_results(host, ("LOG_FILE_MISSING", "LOG_FILE_UNREADABLE"))


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


def version_drift(hosts: Sequence[HostFacts]) -> list[Hit]:
    return _drift([h for h in hosts if h.answered], _product_components)


def version_unknown(host: HostFacts) -> list[Hit]:
    return [
        Hit(h.severity, h.item, {"item": h.item} if h.item else {}, h.result)
        for h in _from_results(host, ("VERSION_UNKNOWN",))
    ]


def agent_gaps(host: HostFacts) -> list[Hit]:
    hits = _from_results(host, ("AGENT_DROPPED_RESULTS",))
    dropped = host.one("app_agent_dropped_results_count")
    count = max(host.lost_results, int(dropped.total) if dropped else 0)
    if count <= 0 and not hits:
        return []
    severity = Severity.worst(Severity.WARN, *(h.severity for h in hits))
    return [Hit(severity, None, {"count": max(count, 1)}, hits[0].result if hits else None)]


def agent_unhealthy(host: HostFacts) -> list[Hit]:
    hits = _from_results(host, ("AGENT_MEMORY_HIGH", "AGENT_CPU_HIGH", "AGENT_CHECKS_HUNG"))
    return [
        Hit(
            h.severity,
            h.result.key if h.result else None,
            {"result": h.result.key if h.result else "?"},
            h.result,
        )
        for h in hits
    ]


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


# --------------------------------------------------------------------------- the rule table


def _rules() -> tuple[Rule, ...]:
    H, N, S, P, A = Layer.HOST, Layer.NETWORK, Layer.STORAGE, Layer.PLATFORM, Layer.APPLICATION
    return (
        # host
        Rule(
            "MEMORY_PRESSURE",
            H,
            "Low available memory or memory stalls in the latest run.",
            ("host.memory", "host.pressure"),
            ("MEM_LOW", "MEM_PRESSURE", "PRESSURE_MEMORY"),
            ("host_memory_available_bytes", "host_memory_available_percent"),
            host=memory_pressure,
        ),
        Rule(
            "MEMORY_GROWING",
            H,
            "Used memory grows (least squares over the period) so it would run out within "
            f"{MEMORY_DAYS_WARN:.0f} days "
            f"(CRIT within {MEMORY_DAYS_CRIT:.0f}).",
            ("host.memory",),
            (),
            ("host_memory_used_bytes", "host_memory_total_bytes"),
            host=memory_growing,
        ),
        Rule(
            "SWAP_IN_ACTIVE",
            H,
            f"Swap-in reported, or averaging >= {SWAP_IN_WARN:.0f} pages/s over the period.",
            ("host.swap",),
            ("SWAP_IN_HIGH",),
            ("host_swap_in_pages_per_second",),
            host=swap_in,
        ),
        Rule(
            "SWAP_NEARLY_FULL",
            H,
            "Swap space nearly used up.",
            ("host.swap",),
            ("SWAP_USAGE_HIGH",),
            ("host_swap_used_percent",),
            host=swap_full,
        ),
        Rule(
            "OOM_KILLS",
            H,
            "Any OOM kill during the period (CRIT).",
            ("host.oom_kills",),
            ("OOM_KILLS",),
            ("host_oom_kills_count",),
            host=oom_kills,
        ),
        Rule(
            "ZOMBIE_PROCESSES",
            H,
            "Zombie processes reported.",
            ("host.processes",),
            ("ZOMBIES",),
            ("host_zombie_processes_count",),
            host=zombies,
        ),
        Rule(
            "FD_EXHAUSTION",
            H,
            "Host-wide or per-process file descriptors near their limit.",
            ("host.file_descriptors",),
            ("FD_SYSTEM_EXHAUSTION", "FD_PROCESS_NEAR_LIMIT"),
            ("host_fd_system_usage_percent", "host_fd_process_usage_max_percent"),
            host=fd_exhaustion,
        ),
        Rule(
            "PID_EXHAUSTION",
            H,
            "Threads near kernel.pid_max.",
            ("host.processes",),
            ("PID_EXHAUSTION",),
            ("host_pid_usage_percent",),
            host=pid_exhaustion,
        ),
        Rule(
            "CLOCK_UNSYNCHRONISED",
            H,
            "Clock unsynchronised or off by too much.",
            ("host.clock",),
            ("CLOCK_UNSYNCHRONIZED", "CLOCK_OFFSET_HIGH"),
            ("host_clock_offset_seconds", "host_clock_synchronized_boolean"),
            host=clock,
        ),
        Rule(
            "CPU_SATURATED",
            H,
            f"CPU busy, load or a saturated core reported, or CPU busy averaging >= {CPU_BUSY_WARN:.0f}%.",
            ("host.cpu", "host.load", "host.cpu_cores"),
            ("CPU_BUSY", "LOAD_HIGH", "CPU_CORE_SATURATED"),
            ("host_cpu_busy_percent",),
            host=cpu_saturated,
        ),
        Rule(
            "CPU_STEAL",
            H,
            f"Hypervisor steal reported or averaging >= {STEAL_WARN:.0f}%.",
            ("host.cpu",),
            ("CPU_STEAL_HIGH",),
            ("host_cpu_mode_percent",),
            host=cpu_steal,
        ),
        Rule(
            "UNEXPECTED_REBOOT",
            H,
            "The host rebooted without a planned shutdown.",
            ("host.uptime",),
            ("HOST_REBOOTED_UNEXPECTEDLY",),
            host=unexpected_reboot,
        ),
        Rule(
            "KERNEL_ERRORS",
            H,
            "Kernel log errors during the period, per kind (hardware, lockup, hung task, "
            "filesystem and I/O errors CRIT).",
            ("host.kernel_events",),
            KERNEL_EVENT_KEYS,
            ("host_kernel_events_count",),
            host=kernel_errors,
        ),
        # network
        Rule(
            "IFACE_DOWN",
            N,
            "An expected interface is down or missing.",
            ("network.interfaces",),
            ("IFACE_DOWN", "IFACE_MISSING"),
            host=iface_down,
        ),
        Rule(
            "IFACE_ERRORS",
            N,
            f"Interface errors or drops reported, or averaging >= {IFACE_ERRORS_WARN:.0f}/s.",
            ("network.interfaces",),
            ("IFACE_ERRORS", "IFACE_DROPS"),
            _IFACE_ERROR_METRICS,
            host=iface_errors,
        ),
        Rule(
            "TCP_RETRANSMISSIONS",
            N,
            f"TCP retransmissions reported, or averaging >= {RETRANS_WARN:.0f}% "
            f"(CRIT >= {RETRANS_CRIT:.0f}%).",
            ("network.tcp_retransmits",),
            ("TCP_RETRANS_HIGH",),
            ("net_tcp_retransmit_percent",),
            host=tcp_retransmissions,
        ),
        Rule(
            "CLOSE_WAIT_LEAK",
            N,
            "Many sockets in CLOSE_WAIT: the application leaks connections.",
            ("network.tcp_states",),
            ("TCP_CLOSE_WAIT_HIGH",),
            ("net_tcp_connections_count",),
            host=close_wait,
        ),
        Rule(
            "CONNTRACK_NEARLY_FULL",
            N,
            f"Conntrack table full or dropping, or peaking >= {CONNTRACK_WARN:.0f}%.",
            ("network.conntrack", "host.kernel_events"),
            ("CONNTRACK_NEARLY_FULL", "CONNTRACK_DROPS", "KERNEL_CONNTRACK_FULL"),
            ("network_conntrack_used_percent",),
            host=conntrack,
        ),
        Rule(
            "DNS_PROBLEMS",
            N,
            "Name resolution failing or slow, or no nameserver.",
            ("network.dns",),
            ("DNS_FAILED", "DNS_SLOW", "DNS_NO_NAMESERVER"),
            host=dns,
        ),
        Rule(
            "LISTEN_QUEUE_OVERFLOW",
            N,
            "Connections dropped at a full accept queue during the period.",
            ("network.listen_overflows", "network.listening_ports"),
            ("LISTEN_OVERFLOW", "LISTEN_QUEUE_FULL"),
            ("net_tcp_listen_overflows_per_second",),
            host=listen_overflow,
        ),
        Rule(
            "ENDPOINT_UNREACHABLE",
            N,
            "A configured TCP endpoint cannot be connected to.",
            ("network.tcp_connect",),
            ("TCP_CONNECT_FAILED",),
            host=endpoint_unreachable,
        ),
        # storage
        Rule(
            "FS_FILLING_UP",
            S,
            f"A filesystem is full within {DAYS_FULL_WARN:.0f} days at its growth rate "
            f"(CRIT within {DAYS_FULL_CRIT:.0f}); from the forecast check, else from the free-space history.",
            ("storage.forecast", "storage.filesystem"),
            ("FS_FILLING_UP",),
            (
                "storage_fs_days_until_full_days",
                "storage_fs_growth_bytes_per_second",
                "storage_fs_free_bytes",
            ),
            host=fs_filling,
        ),
        Rule(
            "FS_NEARLY_FULL",
            S,
            "A filesystem is nearly full now.",
            ("storage.filesystem",),
            ("FS_NEARLY_FULL",),
            ("storage_fs_used_percent",),
            host=fs_full,
        ),
        Rule(
            "INODE_EXHAUSTION",
            S,
            "A filesystem is running out of inodes.",
            ("storage.filesystem",),
            ("FS_INODES_NEARLY_FULL",),
            ("storage_fs_inodes_used_percent",),
            host=inodes,
        ),
        Rule(
            "FS_READ_ONLY",
            S,
            "A filesystem was remounted read-only after an error.",
            ("storage.readonly",),
            ("FS_REMOUNTED_RO",),
            host=fs_read_only,
        ),
        Rule(
            "DISK_SLOW",
            S,
            "Disk latency high or disk saturated.",
            ("storage.disk_io",),
            ("DISK_LATENCY_HIGH", "DISK_SATURATED"),
            ("storage_disk_write_await_seconds",),
            host=disk_slow,
        ),
        # platform
        Rule(
            "SYSTEMD_FAILED_UNITS",
            P,
            "Failed systemd units, or configured units not active or not found.",
            ("platform.failed_units", "platform.systemd_units"),
            ("SYSTEMD_FAILED_UNITS", "UNIT_NOT_ACTIVE", "UNIT_NOT_FOUND"),
            ("platform_systemd_failed_units_count",),
            host=failed_units,
        ),
        Rule(
            "UNIT_RESTARTING",
            P,
            "A configured unit was restarted by systemd.",
            ("platform.systemd_units",),
            ("UNIT_RESTARTED",),
            host=unit_restarting,
        ),
        Rule(
            "REBOOT_REQUIRED",
            P,
            "Installed updates wait for a reboot.",
            ("platform.reboot_required",),
            ("REBOOT_REQUIRED",),
            host=reboot_required,
        ),
        Rule(
            "KERNEL_TAINTED",
            P,
            "Kernel taint flags set (oops, machine check, bad page, warning, lockup, modules).",
            ("platform.kernel",),
            KERNEL_TAINT_KEYS,
            host=kernel_tainted,
        ),
        Rule(
            "CERT_EXPIRING",
            P,
            f"A certificate expires within {CERT_DAYS_WARN:.0f} days (CRIT within {CERT_DAYS_CRIT:.0f}).",
            ("platform.tls_endpoints", "platform.tls_files", "application.http"),
            ("CERT_EXPIRING",),
            tuple(name for name, _ in _CERT_METRICS),
            host=certificates_expiring,
        ),
        Rule(
            "CERT_EXPIRED",
            P,
            "A certificate has expired (CRIT).",
            ("platform.tls_endpoints", "platform.tls_files", "application.http"),
            ("CERT_EXPIRED",),
            tuple(name for name, _ in _CERT_METRICS),
            host=certificates_expired,
        ),
        Rule(
            "SERVICE_UNREACHABLE",
            P,
            "A database, middleware or TLS service does not answer, or an expected port has no listener.",
            ("platform.services", "platform.tls_endpoints", "network.listening_ports"),
            (
                "SERVICE_UNREACHABLE",
                "SERVICE_BAD_RESPONSE",
                "TLS_CONNECT_FAILED",
                "TLS_HANDSHAKE_FAILED",
                "PORT_NOT_LISTENING",
            ),
            host=service_unreachable,
        ),
        Rule(
            "SERVICE_SLOW",
            P,
            "A service or TLS handshake answered slowly.",
            ("platform.services", "platform.tls_endpoints"),
            ("SERVICE_SLOW", "TLS_HANDSHAKE_SLOW"),
            host=service_slow,
        ),
        Rule(
            "OS_END_OF_LIFE",
            P,
            "The OS release is past its end of support.",
            ("platform.os",),
            ("OS_EOL",),
            host=os_eol,
        ),
        Rule(
            "OS_VERSION_DRIFT",
            P,
            "Hosts of the customer run different releases of one distribution "
            "(hosts off the most common release; read from the inventory, applied with platform.os).",
            ("platform.os",),
            inventory=True,
            fleet=os_drift,
        ),
        # application
        Rule(
            "HTTP_FAILING",
            A,
            f"An HTTP endpoint fails, or answered less than {HTTP_UP_WARN:.0%} of the period.",
            ("application.http",),
            ("HTTP_UNREACHABLE", "HTTP_BAD_STATUS", "HTTP_BODY_MISMATCH"),
            ("app_http_up_boolean",),
            host=http_failing,
        ),
        Rule(
            "HTTP_SLOW",
            A,
            "An HTTP endpoint is slow.",
            ("application.http",),
            ("HTTP_SLOW",),
            ("app_http_latency_seconds",),
            host=http_slow,
        ),
        Rule(
            "PROCESS_MISSING",
            A,
            "A product process group is not running.",
            ("application.process",),
            ("PROCESS_MISSING",),
            host=process_missing,
        ),
        Rule(
            "PROCESS_RESOURCES_HIGH",
            A,
            "A product process group over its CPU, memory or count limits.",
            ("application.process",),
            ("PROCESS_CPU_HIGH", "PROCESS_RSS_HIGH", "PROCESS_TOO_MANY"),
            host=process_resources,
        ),
        Rule(
            "LOG_ERROR_RATE",
            A,
            f"Log pattern matches averaging >= {LOG_PER_MIN_WARN:.0f}/min (CRIT >= "
            f"{LOG_PER_MIN_CRIT:.0f}/min), or a watched log missing.",
            ("application.log_patterns",),
            ("LOG_FILE_MISSING", "LOG_FILE_UNREADABLE"),
            ("app_log_matches_per_second",),
            host=log_errors,
        ),
        Rule(
            "VERSION_DRIFT",
            A,
            "Hosts of the customer run different versions of one product "
            "(hosts off the most common version).",
            ("application.version",),
            (),
            ("app_version_info",),
            inventory=True,
            fleet=version_drift,
        ),
        Rule(
            "PRODUCT_VERSION_UNKNOWN",
            A,
            "A product's version cannot be read.",
            ("application.version",),
            ("VERSION_UNKNOWN",),
            host=version_unknown,
        ),
        Rule(
            "AGENT_GAPS",
            A,
            "The agent lost results during the period (gaps, dropped results).",
            ("application.agent",),
            ("AGENT_DROPPED_RESULTS",),
            ("app_agent_dropped_results_count",),
            host=agent_gaps,
        ),
        Rule(
            "AGENT_UNHEALTHY",
            A,
            "The agent's own memory, CPU or hung checks.",
            ("application.agent",),
            ("AGENT_MEMORY_HIGH", "AGENT_CPU_HIGH", "AGENT_CHECKS_HUNG"),
            host=agent_unhealthy,
        ),
        Rule(
            "HOST_NOT_ANSWERING",
            A,
            "A selected host did not answer the inspection before the deadline.",
            fleet=not_answering,
        ),
    )


RULES: Mapping[str, Rule] = MappingProxyType({rule.key: rule for rule in _rules()})
"""Every rule by key, lowest layer first."""
