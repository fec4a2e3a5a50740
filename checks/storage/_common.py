"""What the storage checks share: the parsed mount list and one ``statvfs`` per mount per cycle.

``storage.filesystem``, ``storage.readonly`` and ``storage.forecast`` all need the mount
list, and two of them need ``statvfs``; both are memoised on the probe so a cycle reads
``/proc/self/mounts`` once and calls ``statvfs`` once per mount.

Sample line of ``/proc/self/mounts`` (spaces in names are octal escapes)::

    /dev/vda / ext4 rw,relatime,discard 0 0

>>> parse_mounts("/dev/vda / ext4 rw,relatime 0 0\\n/dev/sdb1 /mnt/my\\\\040disk xfs ro 0 0\\n")
(MountEntry(device='/dev/vda', mountpoint='/', fstype='ext4', options=('rw', 'relatime')), \
MountEntry(device='/dev/sdb1', mountpoint='/mnt/my disk', fstype='xfs', options=('ro',)))
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

from pydantic import Field

from checks.api import CheckParams
from checks.probe import Probe

__all__ = [
    "PSEUDO_FSTYPES",
    "FsUsage",
    "MountEntry",
    "MountSelection",
    "describe_error",
    "parse_mounts",
    "read_mounts",
    "real_mounts",
    "selected_mounts",
    "statvfs_cached",
]

MOUNTS_FILE = "/proc/self/mounts"

PSEUDO_FSTYPES = frozenset(
    {
        "autofs",
        "binfmt_misc",
        "bpf",
        "cgroup",
        "cgroup2",
        "configfs",
        "debugfs",
        "devpts",
        "devtmpfs",
        "efivarfs",
        "fuse.gvfsd-fuse",
        "fuse.lxcfs",
        "fuse.portal",
        "fusectl",
        "hugetlbfs",
        "mqueue",
        "nsfs",
        "proc",
        "pstore",
        "ramfs",
        "rpc_pipefs",
        "securityfs",
        "selinuxfs",
        "squashfs",
        "sysfs",
        "tracefs",
        "tmpfs",
    }
)
"""Filesystems that hold no user data (or, like squashfs, are read-only images by design).

tmpfs is here too; :func:`real_mounts` keeps it when asked. overlay is real (a
container's root) and is not listed.
"""

_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True, slots=True)
class MountEntry:
    device: str
    mountpoint: str
    fstype: str
    options: tuple[str, ...]

    @property
    def readonly(self) -> bool:
        return "ro" in self.options


@dataclass(frozen=True, slots=True)
class FsUsage:
    """Space and inodes of one mounted filesystem, as ``df`` computes them.

    ``free_bytes`` is what unprivileged users can still write (``f_bavail``); the used
    percent is ``used / (used + available)``, so root's reserve counts as used, like df.
    """

    size_bytes: int
    used_bytes: int
    free_bytes: int
    inodes_total: int
    inodes_free: int

    @property
    def used_percent(self) -> float:
        usable = self.used_bytes + self.free_bytes
        return 100.0 * self.used_bytes / usable if usable > 0 else 0.0

    @property
    def inodes_used_percent(self) -> float | None:
        """None when the filesystem has no fixed inode table (btrfs, vfat report 0)."""
        if self.inodes_total <= 0:
            return None
        return 100.0 * (self.inodes_total - self.inodes_free) / self.inodes_total


def _unescape(field: str) -> str:
    if "\\" not in field:
        return field
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mounts(text: str, source: str = MOUNTS_FILE) -> tuple[MountEntry, ...]:
    """Parse the mounts table; a line with fewer than four fields is a ``ValueError``."""
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) < 4 or not fields[1].startswith("/"):
            raise ValueError(
                f"{source} line {number}: expected 'device mountpoint fstype options', got {line!r}"
            )
        entries.append(
            MountEntry(_unescape(fields[0]), _unescape(fields[1]), fields[2], tuple(fields[3].split(",")))
        )
    if not entries:
        raise ValueError(f"{source} is empty")
    return tuple(entries)


def read_mounts(probe: Probe) -> tuple[MountEntry, ...]:
    """The mount list, read once per cycle (memoised as ``mounts``) and parsed again only
    when the mount table changed (:meth:`~checks.probe.Probe.parsed_while_unchanged`)."""
    return probe.memo("mounts", lambda: probe.parsed_while_unchanged("mounts", MOUNTS_FILE, parse_mounts))


def real_mounts(
    mounts: Iterable[MountEntry], *, include_tmpfs: bool = False, dedupe_devices: bool = True
) -> list[MountEntry]:
    """Mounts holding data: no pseudo filesystems, and each device once (bind mounts keep the first).

    A device without a path (``tmpfs``, ``none``) is not a shared block device, so those
    are told apart by mount point instead; a mount point listed twice keeps the first.
    Space is per device, so btrfs subvolumes of one device count once too. Options are
    per mount: ``dedupe_devices=False`` keeps every bind mount (for ``storage.readonly``).

    >>> ms = parse_mounts("/dev/a / ext4 rw 0 0\\nproc /proc proc rw 0 0\\n/dev/a /srv ext4 rw 0 0\\n"
    ...                   "tmpfs /run tmpfs rw 0 0\\ntmpfs /tmp tmpfs rw 0 0\\ntmpfs /tmp tmpfs rw 0 0\\n")
    >>> [m.mountpoint for m in real_mounts(ms)], [m.mountpoint for m in real_mounts(ms, include_tmpfs=True)]
    (['/'], ['/', '/run', '/tmp'])
    """
    seen_devices: set[str] = set()
    seen_mountpoints: set[str] = set()
    kept = []
    for mount in mounts:
        if mount.fstype in PSEUDO_FSTYPES and not (include_tmpfs and mount.fstype == "tmpfs"):
            continue
        if mount.mountpoint in seen_mountpoints:
            continue
        if dedupe_devices and "/" in mount.device:  # a block device or an export: bind mounts share it
            if mount.device in seen_devices:
                continue
            seen_devices.add(mount.device)
        seen_mountpoints.add(mount.mountpoint)
        kept.append(mount)
    return kept


class MountSelection(CheckParams):
    """Which mounts a storage check looks at (shell globs, matched case-sensitively)."""

    include_mountpoints: list[str] = Field(default_factory=lambda: ["*"])
    """Mount points to check, e.g. ``["/", "/var/*"]``."""
    exclude_mountpoints: list[str] = Field(default_factory=list)
    """Mount points to skip even when included (e.g. ``["/mnt/backup*"]``)."""
    include_fstypes: list[str] = Field(default_factory=lambda: ["*"])
    """Filesystem types to check, e.g. ``["ext4", "xfs"]``."""
    exclude_fstypes: list[str] = Field(default_factory=list)
    """Filesystem types to skip (e.g. ``["nfs*"]`` to keep network shares out)."""
    include_tmpfs: bool = False
    """Check tmpfs mounts too (skipped by default: they live in RAM and come back empty)."""


def _matches(value: str, patterns: list[str]) -> bool:
    return any(fnmatchcase(value, pattern) for pattern in patterns)


def selected_mounts(probe: Probe, params: MountSelection) -> list[MountEntry]:
    """Real mounts that ``params`` includes and does not exclude."""
    return [
        m
        for m in real_mounts(read_mounts(probe), include_tmpfs=params.include_tmpfs)
        if _matches(m.mountpoint, params.include_mountpoints)
        and not _matches(m.mountpoint, params.exclude_mountpoints)
        and _matches(m.fstype, params.include_fstypes)
        and not _matches(m.fstype, params.exclude_fstypes)
    ]


def statvfs_cached(probe: Probe, mountpoint: str) -> FsUsage | OSError:
    """``statvfs`` of one mount, once per cycle; the error is returned (and cached), not raised.

    ``statvfs`` on a hung NFS server blocks in the kernel; the agent's per-check timeout
    is what bounds it (a Python thread cannot interrupt the call).
    """
    cache: dict[str, FsUsage | OSError] = probe.memo("statvfs", dict)
    try:
        return cache[mountpoint]
    except KeyError:
        pass  # first look at this mount in this cycle
    result: FsUsage | OSError
    try:
        st = os.statvfs(probe.fspath(mountpoint))
    except OSError as exc:  # EACCES, ENOENT, ESTALE, EIO: reported per mount, the others go on
        result = exc
    else:
        frsize = st.f_frsize or st.f_bsize
        result = FsUsage(
            size_bytes=st.f_blocks * frsize,
            used_bytes=(st.f_blocks - st.f_bfree) * frsize,
            free_bytes=st.f_bavail * frsize,
            inodes_total=st.f_files,
            inodes_free=st.f_ffree,
        )
    cache[mountpoint] = result
    return result


def describe_error(exc: OSError) -> str:
    """A short reason for an ``OSError`` (``Permission denied``, ``Stale file handle``)."""
    return exc.strerror or type(exc).__name__
