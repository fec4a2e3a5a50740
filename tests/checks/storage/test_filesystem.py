from __future__ import annotations

import os

import pytest

from checks.api import Metric, Result, Severity, Unit
from checks.probe import Probe
from checks.storage._common import FsUsage, parse_mounts, read_mounts
from checks.storage.filesystem import (
    FILESYSTEM,
    FilesystemParams,
    FilesystemSection,
    FsEntry,
    collect_filesystem,
    evaluate_filesystem,
)
from tests.conftest import fixture_probe

GIB = 1024**3


def test_collect_skips_pseudo_and_bind_mounts_and_reports_unreadable():
    probe = fixture_probe("sp-mounts")
    section = collect_filesystem(probe, FilesystemParams())
    assert [(fs.mountpoint, fs.fstype) for fs in section.filesystems] == [
        ("/", "ext4"),
        ("/data", "xfs"),
        ("/mnt/my disk", "ext4"),
        ("/mnt/nfs", "nfs4"),
        ("/mnt/gone", "ext4"),
        ("/var/lib/docker/overlay2/x/merged", "overlay"),
    ]
    by_mount = {fs.mountpoint: fs for fs in section.filesystems}
    # /mnt/gone has no directory in the fixture tree: statvfs raises ENOENT for that mount only.
    assert by_mount["/mnt/gone"].usage is None
    assert by_mount["/mnt/gone"].error == "No such file or directory"
    assert all(
        fs.usage is not None and fs.usage.size_bytes > 0 for fs in section.filesystems if fs.error is None
    )
    assert "mounts" in probe.cache, "the mount list is shared with the other storage checks"


def test_collect_globs_and_tmpfs_option():
    params = FilesystemParams(
        include_tmpfs=True, exclude_mountpoints=["/mnt/*"], exclude_fstypes=["overlay"], include_fstypes=["*"]
    )
    section = collect_filesystem(fixture_probe("sp-mounts"), params)
    assert [fs.mountpoint for fs in section.filesystems] == ["/", "/run", "/data"]


def test_collect_reports_permission_error_per_mount(monkeypatch):
    # Tests run as root, for whom no directory is unreadable: fake statvfs for one mount only.
    real_statvfs = os.statvfs

    def statvfs(path):
        if str(path).endswith("/data"):
            raise PermissionError(13, "Permission denied")
        return real_statvfs(path)

    monkeypatch.setattr(os, "statvfs", statvfs)
    section = collect_filesystem(
        fixture_probe("sp-mounts"), FilesystemParams(include_mountpoints=["/", "/data"])
    )
    assert [(fs.mountpoint, fs.error) for fs in section.filesystems] == [
        ("/", None),
        ("/data", "Permission denied"),
    ]


def test_collect_on_this_host_matches_statvfs():
    section = collect_filesystem(Probe(), FilesystemParams(include_mountpoints=["/"]))
    st = os.statvfs("/")
    (root,) = section.filesystems
    assert root.usage is not None
    assert root.usage.size_bytes == st.f_blocks * st.f_frsize


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("/dev/vda / ext4\n", id="truncated line"),
        pytest.param("\x00\x01garbage\n", id="binary garbage"),
    ],
)
def test_bad_mounts_file_names_the_file(tmp_path, text):
    (tmp_path / "proc" / "self").mkdir(parents=True)
    (tmp_path / "proc" / "self" / "mounts").write_text(text)
    with pytest.raises(ValueError, match="/proc/self/mounts"):
        collect_filesystem(Probe(root=tmp_path), FilesystemParams())


def test_mount_list_is_parsed_once_per_cycle(tmp_path):
    (tmp_path / "proc" / "self").mkdir(parents=True)
    mounts = tmp_path / "proc" / "self" / "mounts"
    mounts.write_text("/dev/a / ext4 rw 0 0\n")
    probe = Probe(root=tmp_path)
    first = read_mounts(probe)
    mounts.write_text("/dev/b / xfs rw 0 0\n")
    assert read_mounts(probe) is first
    probe.new_cycle()
    assert read_mounts(probe) == parse_mounts("/dev/b / xfs rw 0 0\n")


def _fs(mountpoint, used_gib, free_gib, inodes_total=1000, inodes_free=900):
    usage = FsUsage(
        int((used_gib + free_gib) * GIB), int(used_gib * GIB), int(free_gib * GIB), inodes_total, inodes_free
    )
    return FsEntry(mountpoint, "/dev/vda1", "ext4", usage)


def _metrics(mountpoint, used_percent, free_gib, size_gib, inodes_percent):
    labels = {"mountpoint": mountpoint}
    out = [
        Metric("storage_fs_used_percent", used_percent, Unit.PERCENT, labels),
        Metric("storage_fs_free_bytes", free_gib * GIB, Unit.BYTES, labels),
        Metric("storage_fs_size_bytes", size_gib * GIB, Unit.BYTES, labels),
    ]
    if inodes_percent is not None:
        out.append(Metric("storage_fs_inodes_used_percent", inodes_percent, Unit.PERCENT, labels))
    return out


DETAILS = "/dev/vda1 (ext4)"


@pytest.mark.parametrize(
    ("filesystems", "expected"),
    [
        pytest.param(
            [_fs("/", 50, 50)],
            [
                Result(Severity.OK, "OK", "Used: 50.0%, 50.0 GiB free of 100.0 GiB", "/", DETAILS),
                *_metrics("/", 50.0, 50, 100, 10.0),
            ],
            id="half full is fine",
        ),
        pytest.param(
            [_fs("/", 85, 15)],
            [
                Result(
                    Severity.WARN,
                    "FS_NEARLY_FULL",
                    "Used: 85.0% (warn/crit at 80.0%/90.0%), 15.0 GiB free of 100.0 GiB",
                    "/",
                    DETAILS,
                ),
                *_metrics("/", 85.0, 15, 100, 10.0),
            ],
            id="85 percent warns",
        ),
        pytest.param(
            [_fs("/var", 95, 5, inodes_total=1000, inodes_free=20)],
            [
                Result(
                    Severity.CRIT,
                    "FS_NEARLY_FULL",
                    "Used: 95.0% (warn/crit at 80.0%/90.0%), 5.0 GiB free of 100.0 GiB",
                    "/var",
                    DETAILS,
                ),
                *_metrics("/var", 95.0, 5, 100, 98.0),
                Result(
                    Severity.CRIT,
                    "FS_INODES_NEARLY_FULL",
                    "Inodes used: 98.0% (warn/crit at 80.0%/90.0%)",
                    "/var",
                ),
            ],
            id="space and inodes critical",
        ),
        pytest.param(
            [_fs("/srv", 10, 90, inodes_total=0, inodes_free=0)],
            [
                Result(Severity.OK, "OK", "Used: 10.0%, 90.0 GiB free of 100.0 GiB", "/srv", DETAILS),
                *_metrics("/srv", 10.0, 90, 100, None),
            ],
            id="btrfs without inode table has no inode metric",
        ),
        pytest.param(
            [FsEntry("/mnt/secret", "/dev/sdb1", "xfs", None, "Permission denied"), _fs("/", 50, 50)],
            [
                Result(
                    Severity.UNKNOWN,
                    "FS_UNREADABLE",
                    "statvfs failed: Permission denied",
                    "/mnt/secret",
                    "/dev/sdb1 (xfs)",
                ),
                Result(Severity.OK, "OK", "Used: 50.0%, 50.0 GiB free of 100.0 GiB", "/", DETAILS),
                *_metrics("/", 50.0, 50, 100, 10.0),
            ],
            id="unreadable mount is unknown and the others go on",
        ),
        pytest.param([], [Result(Severity.OK, "OK", "No filesystems selected")], id="nothing selected"),
    ],
)
def test_evaluate(filesystems, expected):
    out = list(evaluate_filesystem(FilesystemParams(), FilesystemSection(tuple(filesystems)), {}))
    assert out == expected


def test_declaration_lists_every_emitted_metric_and_key():
    section = FilesystemSection(
        (_fs("/", 95, 5, inodes_free=1), FsEntry("/x", "/dev/x", "xfs", None, "Permission denied"))
    )
    out = list(FILESYSTEM.evaluate(FilesystemParams(), section, {}))
    assert {m.name for m in out if isinstance(m, Metric)} == FILESYSTEM.metric_names
    assert {r.key for r in out if isinstance(r, Result)} == set(FILESYSTEM.keys)


def test_params_reject_unknown_keys():
    with pytest.raises(ValueError, match="levels"):
        FilesystemParams.model_validate({"levels": [1, 2]})
