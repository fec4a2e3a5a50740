"""storage.filesystem: space and inode usage of every mounted filesystem.

Mounts come from ``/proc/self/mounts`` (shared with the other storage checks through
``probe.memo("mounts")``), without pseudo filesystems and bind-mount duplicates. Each
one gets one ``os.statvfs``. ``statvfs`` on a hung NFS mount blocks in the kernel: the
agent's per-check timeout bounds it, and ``exclude_fstypes: ["nfs*"]`` keeps shares out.

Sample of what :func:`collect_filesystem` returns::

    FilesystemSection(filesystems=(
        FsEntry(mountpoint='/', device='/dev/vda', fstype='ext4',
                usage=FsUsage(size_bytes=52710469632, used_bytes=30817538048, free_bytes=19723161600,
                              inodes_total=3276800, inodes_free=2904715),
                error=None),
        FsEntry(mountpoint='/mnt/secret', device='/dev/sdb1', fstype='xfs', usage=None,
                error='Permission denied'),
    ))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

from checks.api import (
    Check,
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
    render_bytes,
    render_percent,
)
from checks.probe import Probe
from checks.storage._common import FsUsage, MountSelection, describe_error, selected_mounts, statvfs_cached


@dataclass(frozen=True, slots=True)
class FsEntry:
    mountpoint: str
    device: str
    fstype: str
    usage: FsUsage | None
    error: str | None = None
    """Why ``statvfs`` failed (``usage`` is None then)."""


@dataclass(frozen=True, slots=True)
class FilesystemSection:
    filesystems: tuple[FsEntry, ...]


class FilesystemParams(MountSelection):
    levels_used_percent: Levels = (80.0, 90.0)
    """(warn, crit) for used space in percent of the space usable by non-root users."""
    levels_inodes_used_percent: Levels = (80.0, 90.0)
    """(warn, crit) for used inodes in percent."""


def collect_filesystem(probe: Probe, params: FilesystemParams) -> FilesystemSection:
    entries = []
    for mount in selected_mounts(probe, params):
        usage = statvfs_cached(probe, mount.mountpoint)
        if isinstance(usage, OSError):
            entries.append(FsEntry(mount.mountpoint, mount.device, mount.fstype, None, describe_error(usage)))
        else:
            entries.append(FsEntry(mount.mountpoint, mount.device, mount.fstype, usage))
    return FilesystemSection(tuple(entries))


def evaluate_filesystem(
    params: FilesystemParams, section: FilesystemSection, store: ValueStore
) -> Iterator[Result | Metric]:
    if not section.filesystems:
        yield Result(Severity.OK, "OK", "No filesystems selected")
        return
    for fs in section.filesystems:
        item = fs.mountpoint
        if fs.usage is None:
            yield Result(
                Severity.UNKNOWN,
                "FS_UNREADABLE",
                f"statvfs failed: {fs.error}",
                item,
                details=f"{fs.device} ({fs.fstype})",
            )
            continue
        usage = fs.usage
        labels = {"mountpoint": item}
        space = check_levels(
            usage.used_percent,
            key="FS_NEARLY_FULL",
            label="Used",
            levels_upper=params.levels_used_percent,
            render=render_percent,
            item=item,
        )
        free = f"{render_bytes(usage.free_bytes)} free of {render_bytes(usage.size_bytes)}"
        yield dataclasses.replace(
            space,
            summary=f"{space.summary}, {free}",
            details=f"{fs.device} ({fs.fstype})",
        )
        yield Metric("storage_fs_used_percent", usage.used_percent, Unit.PERCENT, labels)
        yield Metric("storage_fs_free_bytes", usage.free_bytes, Unit.BYTES, labels)
        yield Metric("storage_fs_size_bytes", usage.size_bytes, Unit.BYTES, labels)
        inodes = usage.inodes_used_percent
        if inodes is not None:
            yield Metric("storage_fs_inodes_used_percent", inodes, Unit.PERCENT, labels)
            inode_result = check_levels(
                inodes,
                key="FS_INODES_NEARLY_FULL",
                label="Inodes used",
                levels_upper=params.levels_inodes_used_percent,
                render=render_percent,
                item=item,
            )
            if inode_result.severity is not Severity.OK:  # the space result already speaks for the mount
                yield inode_result


FILESYSTEM = Check(
    name="storage.filesystem",
    layer=Layer.STORAGE,
    summary="Space and inode usage per mounted filesystem",
    collect=collect_filesystem,
    evaluate=evaluate_filesystem,
    params=FilesystemParams,
    keys=("FS_NEARLY_FULL", "FS_INODES_NEARLY_FULL", "FS_UNREADABLE"),
    metrics=(
        MetricSpec(
            "storage_fs_used_percent",
            Unit.PERCENT,
            "Used space in percent of the space usable by non-root users (as df shows)",
            Direction.UP_IS_BAD,
            labels=("mountpoint",),
        ),
        MetricSpec(
            "storage_fs_free_bytes",
            Unit.BYTES,
            "Space still writable by non-root users",
            Direction.DOWN_IS_BAD,
            labels=("mountpoint",),
        ),
        MetricSpec("storage_fs_size_bytes", Unit.BYTES, "Filesystem size", labels=("mountpoint",)),
        MetricSpec(
            "storage_fs_inodes_used_percent",
            Unit.PERCENT,
            "Used inodes in percent (absent for filesystems without a fixed inode table)",
            Direction.UP_IS_BAD,
            labels=("mountpoint",),
        ),
    ),
    interval_s=60,
    timeout_s=10,
)
