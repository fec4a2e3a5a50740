"""storage.readonly: filesystems the kernel switched to read-only, and required-writable mounts that are not.

ext4 with ``errors=remount-ro`` (the Debian/Ubuntu default), XFS after a metadata error
and a failing disk all end up as a mount whose options say ``ro``. A mount that was
``rw`` at an earlier run and is ``ro`` now is critical, and stays critical (the store
remembers it) until it is writable again or unmounted. Mounts that were read-only from
the start (images, bind mounts of read-only trees) are ignored, except those listed in
``expected_rw``. Pseudo filesystems and squashfs images are never looked at.

Sample of what :func:`collect_readonly` returns (from ``/proc/self/mounts``)::

    ReadonlySection(mounts=(('/', False), ('/boot', False), ('/srv/data', True)))
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pydantic import Field

from checks.api import (
    Check,
    CheckParams,
    Direction,
    Layer,
    Metric,
    MetricSpec,
    Result,
    Severity,
    Unit,
    ValueStore,
)
from checks.probe import Probe
from checks.storage._common import read_mounts, real_mounts


@dataclass(frozen=True, slots=True)
class ReadonlySection:
    mounts: tuple[tuple[str, bool], ...]
    """(mount point, read-only now) for every real mount."""


class ReadonlyParams(CheckParams):
    expected_rw: list[str] = Field(default_factory=lambda: ["/"])
    """Mount points that must be writable: read-only is critical even if never seen writable."""


def collect_readonly(probe: Probe, params: ReadonlyParams) -> ReadonlySection:
    mounts = real_mounts(read_mounts(probe), dedupe_devices=False)  # a bind mount can be remounted ro alone
    return ReadonlySection(tuple((m.mountpoint, m.readonly) for m in mounts))


def evaluate_readonly(
    params: ReadonlyParams, section: ReadonlySection, store: ValueStore
) -> Iterator[Result | Metric]:
    readonly_now = {mp for mp, ro in section.mounts if ro}
    writable_now = [mp for mp, ro in section.mounts if not ro]
    was_writable = set(store.get("rw", ()))
    remounted = (set(store.get("remounted", ())) | (was_writable & readonly_now)) & readonly_now
    store["rw"] = writable_now
    store["remounted"] = sorted(remounted)

    problems = 0
    for mountpoint in sorted(remounted):
        problems += 1
        yield Result(
            Severity.CRIT,
            "FS_REMOUNTED_RO",
            "Filesystem became read-only (it was writable before): check the kernel log for I/O errors",
            mountpoint,
        )
    for mountpoint in params.expected_rw:
        if mountpoint in readonly_now and mountpoint not in remounted:
            problems += 1
            yield Result(
                Severity.CRIT,
                "FS_READ_ONLY",
                "Filesystem is read-only but must be writable (listed in expected_rw)",
                mountpoint,
            )
    if not problems:
        yield Result(
            Severity.OK,
            "OK",
            f"{len(writable_now)} writable, {len(readonly_now)} read-only (never seen writable)",
        )
    yield Metric("storage_fs_readonly_mounts_count", len(readonly_now), Unit.COUNT)
    yield Metric("storage_fs_remounted_ro_count", len(remounted), Unit.COUNT)


READONLY = Check(
    name="storage.readonly",
    layer=Layer.STORAGE,
    summary="Filesystems remounted read-only",
    collect=collect_readonly,
    evaluate=evaluate_readonly,
    params=ReadonlyParams,
    keys=("FS_REMOUNTED_RO", "FS_READ_ONLY"),
    metrics=(
        MetricSpec("storage_fs_readonly_mounts_count", Unit.COUNT, "Real filesystems mounted read-only"),
        MetricSpec(
            "storage_fs_remounted_ro_count",
            Unit.COUNT,
            "Filesystems that were writable and are read-only now",
            Direction.UP_IS_BAD,
        ),
    ),
    interval_s=60,
    timeout_s=5,
)
