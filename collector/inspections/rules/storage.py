"""Inspection rules of the storage layer: filesystems, inodes, read-only mounts, disk latency."""

from __future__ import annotations

from checks.api import Layer, render_bytes, render_seconds
from collector.inspections.facts import DAY_S, HostFacts
from collector.inspections.rules.base import (
    MIN_SPAN_S,
    Below,
    Hit,
    days,
    dedupe,
    from_results,
    pct,
    rule,
)

DAYS_FULL = Below(warn=30, crit=7)
"""Days until a filesystem is full at its growth rate."""


@rule(
    "FS_FILLING_UP",
    Layer.STORAGE,
    f"A filesystem is full within {DAYS_FULL.warn:.0f} days at its growth rate "
    f"(CRIT within {DAYS_FULL.crit:.0f}); from the forecast check, else from the free-space history.",
    checks=("storage.forecast", "storage.filesystem"),
    result_keys=("FS_FILLING_UP",),
    metrics=(
        "storage_fs_days_until_full_days",
        "storage_fs_growth_bytes_per_second",
        "storage_fs_free_bytes",
    ),
    thresholds=DAYS_FULL,
)
def fs_filling(host: HostFacts, limits: Below) -> list[Hit]:
    hits: dict[str, Hit] = {}
    growth = {m.label("mountpoint"): m for m in host.series("storage_fs_growth_bytes_per_second")}
    for metric in host.series("storage_fs_days_until_full_days"):
        mount = metric.label("mountpoint") or "?"
        severity = limits.level(metric.last)
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
        severity = limits.level(left)
        if severity is not None:
            hits[mount] = Hit(
                severity, mount, {"item": mount, "days": days(left), "growth": render_bytes(-slope)}
            )
    extra = [h for h in from_results(host, ("FS_FILLING_UP",)) if h.item not in hits]
    return [hits[k] for k in sorted(hits)] + extra


@rule(
    "FS_NEARLY_FULL",
    Layer.STORAGE,
    "A filesystem is nearly full now.",
    checks=("storage.filesystem",),
    result_keys=("FS_NEARLY_FULL",),
    metrics=("storage_fs_used_percent",),
)
def fs_full(host: HostFacts) -> list[Hit]:
    return _mount_results(host, ("FS_NEARLY_FULL",), "storage_fs_used_percent")


@rule(
    "INODE_EXHAUSTION",
    Layer.STORAGE,
    "A filesystem is running out of inodes.",
    checks=("storage.filesystem",),
    result_keys=("FS_INODES_NEARLY_FULL",),
    metrics=("storage_fs_inodes_used_percent",),
)
def inodes(host: HostFacts) -> list[Hit]:
    return _mount_results(host, ("FS_INODES_NEARLY_FULL",), "storage_fs_inodes_used_percent")


def _mount_results(host: HostFacts, keys: tuple[str, ...], metric: str) -> list[Hit]:
    found = []
    for hit in from_results(host, keys):
        used = host.one(metric, mountpoint=hit.item) if hit.item else None
        values = {"item": hit.item, "used_percent": pct(used.last)} if used is not None else {}
        found.append(Hit(hit.severity, hit.item, values, hit.result))
    return found


@rule(
    "FS_READ_ONLY",
    Layer.STORAGE,
    "A filesystem was remounted read-only after an error.",
    checks=("storage.readonly",),
    result_keys=("FS_REMOUNTED_RO",),
)
def fs_read_only(host: HostFacts) -> list[Hit]:
    return [
        Hit(h.severity, h.item, {"item": h.item} if h.item else {}, h.result)
        for h in from_results(host, ("FS_REMOUNTED_RO",))
    ]


@rule(
    "DISK_SLOW",
    Layer.STORAGE,
    "Disk latency high or disk saturated.",
    checks=("storage.disk_io",),
    result_keys=("DISK_LATENCY_HIGH", "DISK_SATURATED"),
    metrics=("storage_disk_write_await_seconds",),
)
def disk_slow(host: HostFacts) -> list[Hit]:
    found = []
    for hit in dedupe(from_results(host, ("DISK_LATENCY_HIGH", "DISK_SATURATED"))):
        wait = host.one("storage_disk_write_await_seconds", device=hit.item) if hit.item else None
        values = {"item": hit.item, "await_": render_seconds(wait.mean)} if wait is not None else {}
        found.append(Hit(hit.severity, hit.item, values, hit.result))
    return found
