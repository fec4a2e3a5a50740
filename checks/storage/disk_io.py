"""storage.disk_io: IOPS, throughput, latency, utilisation and queue depth per whole disk.

Read from ``/proc/diskstats`` (one read, every disk). Rates are deltas against the
previous run kept in the store, so the first run reports no rates. Partitions, loop,
ram and zram devices are skipped by the default ``devices_regex``; LVM/dm-crypt
volumes (``dm-*``) and md RAID arrays are kept.

Columns used (kernel Documentation/admin-guide/iostats.rst; sectors are always 512 B)::

    major minor name reads merged sectors_read ms_reading writes merged sectors_written
    ms_writing in_flight ms_doing_io weighted_ms [discards... flushes...]

Sample of what :func:`collect_disk_io` returns::

    DiskIoSection(ts=1700000000.0, disks=(
        DiskCounters(name='vda', reads=62802, read_sectors=2382442, read_ms=8148, writes=29195,
                     write_sectors=2049008, write_ms=11353, io_ms=6596, weighted_ms=20247),
    ))
"""

from __future__ import annotations

import re
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
    render_percent,
    render_seconds,
)
from checks.probe import Probe

DISKSTATS = "/proc/diskstats"
SECTOR_BYTES = 512
DEFAULT_DEVICES = r"(sd[a-z]+|vd[a-z]+|xvd[a-z]+|hd[a-z]+|nvme\d+n\d+|mmcblk\d+|md\d+|dm-\d+)"


@dataclass(frozen=True, slots=True)
class DiskCounters:
    name: str
    reads: int
    read_sectors: int
    read_ms: int
    writes: int
    write_sectors: int
    write_ms: int
    io_ms: int
    weighted_ms: int

    def counters(self) -> tuple[int, ...]:
        """The counters in store order (every field but the name)."""
        return (
            self.reads,
            self.read_sectors,
            self.read_ms,
            self.writes,
            self.write_sectors,
            self.write_ms,
            self.io_ms,
            self.weighted_ms,
        )


@dataclass(frozen=True, slots=True)
class DiskIoSection:
    ts: float
    disks: tuple[DiskCounters, ...]


class DiskIoParams(CheckParams):
    devices_regex: str = DEFAULT_DEVICES
    """Device names to watch (full match). The default keeps whole disks, md and dm devices."""
    exclude_regex: str | None = None
    """Device names to skip even when ``devices_regex`` matches (full match)."""
    levels_await_s: Levels = (0.1, 0.5)
    """(warn, crit) for the average read or write latency in seconds."""
    levels_utilization_percent: Levels = (90.0, 98.0)
    """(warn, crit) for the share of time the disk was busy (NVMe/RAID serve many I/Os in parallel)."""
    latency_min_ios: int = Field(default=10, ge=1)
    """Judge latency only when at least this many I/Os completed since the last run."""

    @field_validator("devices_regex", "exclude_regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:  # not a ValueError: pydantic would not report it on the field
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


def parse_diskstats(
    text: str, devices: re.Pattern[str], exclude: re.Pattern[str] | None
) -> list[DiskCounters]:
    """Parse ``/proc/diskstats``, keeping matching devices.

    >>> line = " 254 0 vda 62802 11536 2382442 8148 29195 16975 2049008 11353 0 6596 20247"
    >>> parse_diskstats(line + "\\n 254 1 vda1 1 0 2 0 0 0 0 0 0 0 0", re.compile(DEFAULT_DEVICES), None)
    [DiskCounters(name='vda', reads=62802, read_sectors=2382442, read_ms=8148, writes=29195, \
write_sectors=2049008, write_ms=11353, io_ms=6596, weighted_ms=20247)]
    """
    disks = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 14:
            raise ValueError(f"{DISKSTATS} line {number}: expected at least 14 fields, got {line.strip()!r}")
        name = fields[2]
        if not devices.fullmatch(name) or (exclude is not None and exclude.fullmatch(name)):
            continue
        try:
            f = [int(v) for v in fields[3:14]]
        except ValueError:
            raise ValueError(f"{DISKSTATS} line {number}: non-numeric counter in {line.strip()!r}") from None
        disks.append(DiskCounters(name, f[0], f[2], f[3], f[4], f[6], f[7], f[9], f[10]))
    return disks


def collect_disk_io(probe: Probe, params: DiskIoParams) -> DiskIoSection:
    text = probe.read_text(DISKSTATS)
    exclude = re.compile(params.exclude_regex) if params.exclude_regex else None
    disks = parse_diskstats(text, re.compile(params.devices_regex), exclude)
    return DiskIoSection(probe.now(), tuple(disks))


def _evaluate_disk(
    params: DiskIoParams, disk: DiskCounters, previous: list[float], elapsed: float
) -> Iterator[Result | Metric]:
    d_reads, d_rsec, d_rms, d_writes, d_wsec, d_wms, d_io, d_weighted = (
        now - then for now, then in zip(disk.counters(), previous[1:], strict=True)
    )
    labels = {"device": disk.name}
    read_await = d_rms / 1000 / d_reads if d_reads else 0.0
    write_await = d_wms / 1000 / d_writes if d_writes else 0.0
    utilization = min(100.0, d_io / 10 / elapsed)  # ms busy per s elapsed: / 1000 * 100
    yield Metric("storage_disk_reads_per_second", d_reads / elapsed, Unit.PER_SECOND, labels)
    yield Metric("storage_disk_writes_per_second", d_writes / elapsed, Unit.PER_SECOND, labels)
    yield Metric(
        "storage_disk_read_bytes_per_second", d_rsec * SECTOR_BYTES / elapsed, Unit.BYTES_PER_SECOND, labels
    )
    yield Metric(
        "storage_disk_write_bytes_per_second", d_wsec * SECTOR_BYTES / elapsed, Unit.BYTES_PER_SECOND, labels
    )
    yield Metric("storage_disk_read_await_seconds", read_await, Unit.SECONDS, labels)
    yield Metric("storage_disk_write_await_seconds", write_await, Unit.SECONDS, labels)
    yield Metric("storage_disk_utilization_percent", utilization, Unit.PERCENT, labels)
    yield Metric("storage_disk_queue_depth_ratio", d_weighted / 1000 / elapsed, Unit.RATIO, labels)

    judged = [
        (value, kind)
        for value, ios, kind in ((read_await, d_reads, "read"), (write_await, d_writes, "write"))
        if ios >= params.latency_min_ios
    ]
    if judged:
        worst_await, kind = max(judged)
        yield check_levels(
            worst_await,
            key="DISK_LATENCY_HIGH",
            label=f"Average {kind} latency",
            levels_upper=params.levels_await_s,
            render=render_seconds,
            item=disk.name,
        )
    yield check_levels(
        utilization,
        key="DISK_SATURATED",
        label="Utilisation",
        levels_upper=params.levels_utilization_percent,
        render=render_percent,
        item=disk.name,
    )


def evaluate_disk_io(
    params: DiskIoParams, section: DiskIoSection, store: ValueStore
) -> Iterator[Result | Metric]:
    current = {f"d:{disk.name}" for disk in section.disks}
    for key in [k for k in store if k.startswith("d:") and k not in current]:
        del store[key]  # disk gone: keep the store bounded
    if not section.disks:
        yield Result(Severity.OK, "OK", "No disks match devices_regex")
        return
    waiting = []
    for disk in section.disks:
        key = f"d:{disk.name}"
        previous = store.get(key)
        counters = disk.counters()
        store[key] = [section.ts, *counters]
        if not isinstance(previous, list) or len(previous) != 9:
            waiting.append(disk.name)
            continue
        elapsed = section.ts - previous[0]
        if elapsed <= 0 or any(now < then for now, then in zip(counters, previous[1:], strict=True)):
            waiting.append(disk.name)  # clock went back, or counters reset (reboot, wrap)
            continue
        yield from _evaluate_disk(params, disk, previous, elapsed)
    if waiting:
        yield Result(Severity.OK, "OK", f"Rates from the next run on: {', '.join(waiting)}")


DISK_IO = Check(
    name="storage.disk_io",
    layer=Layer.STORAGE,
    summary="Disk IOPS, throughput, latency, utilisation and queue depth",
    collect=collect_disk_io,
    evaluate=evaluate_disk_io,
    params=DiskIoParams,
    keys=("DISK_LATENCY_HIGH", "DISK_SATURATED"),
    metrics=(
        MetricSpec(
            "storage_disk_reads_per_second", Unit.PER_SECOND, "Completed reads per second", labels=("device",)
        ),
        MetricSpec(
            "storage_disk_writes_per_second",
            Unit.PER_SECOND,
            "Completed writes per second",
            labels=("device",),
        ),
        MetricSpec(
            "storage_disk_read_bytes_per_second",
            Unit.BYTES_PER_SECOND,
            "Bytes read per second",
            labels=("device",),
        ),
        MetricSpec(
            "storage_disk_write_bytes_per_second",
            Unit.BYTES_PER_SECOND,
            "Bytes written per second",
            labels=("device",),
        ),
        MetricSpec(
            "storage_disk_read_await_seconds",
            Unit.SECONDS,
            "Average time a read took, queueing included (0 without reads)",
            Direction.UP_IS_BAD,
            labels=("device",),
        ),
        MetricSpec(
            "storage_disk_write_await_seconds",
            Unit.SECONDS,
            "Average time a write took, queueing included (0 without writes)",
            Direction.UP_IS_BAD,
            labels=("device",),
        ),
        MetricSpec(
            "storage_disk_utilization_percent",
            Unit.PERCENT,
            "Share of time the disk had I/O in flight",
            Direction.UP_IS_BAD,
            labels=("device",),
        ),
        MetricSpec(
            "storage_disk_queue_depth_ratio",
            Unit.RATIO,
            "Average number of I/Os in flight (weighted I/O time per elapsed time)",
            Direction.UP_IS_BAD,
            labels=("device",),
        ),
    ),
    interval_s=60,
    rates=True,
    timeout_s=5,
)
