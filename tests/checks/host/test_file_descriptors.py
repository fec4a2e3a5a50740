from __future__ import annotations

import os
import shutil

import pytest

from checks.api import Metric, Result, Severity, Unit
from checks.host.file_descriptors import (
    FdSection,
    FileDescriptorsParams,
    ProcessFds,
    collect_file_descriptors,
    evaluate_file_descriptors,
)
from checks.probe import Probe
from tests.conftest import FIXTURES, fixture_probe


def only_results(out: list[Result | Metric]) -> list[Result]:
    return [r for r in out if isinstance(r, Result)]


def test_collect_busy_host_reads_limits_only_above_minimum():
    got = collect_file_descriptors(fixture_probe("host-busy"), FileDescriptorsParams(min_fds_to_check=9))
    assert got == FdSection(
        allocated=52224,
        maximum=65536,
        scanned=6,  # zombies and kernel threads in the fixture have no fd directory
        unreadable=0,
        checked=(
            ProcessFds("systemd", 1, 12, 524288),
            ProcessFds("postgres", 812, 9, 10),
            ProcessFds("java", 900, 20, None),
            ProcessFds("php-fpm", 950, 10, 1024),
        ),
    )


def test_collect_real_sample():
    got = collect_file_descriptors(fixture_probe("host-real"), FileDescriptorsParams(min_fds_to_check=1))
    assert (got.allocated, got.maximum) == (853, 2466170)
    assert {(p.pid, p.soft_limit) for p in got.checked} == {(1, 32768), (9068, 20000)}


def test_collect_garbled_file_nr_names_file():
    with pytest.raises(ValueError, match="/proc/sys/fs/file-nr: expected 'allocated unused max'"):
        collect_file_descriptors(fixture_probe("host-garbled"), FileDescriptorsParams())


def test_collect_garbled_limits_names_file(tmp_path):
    shutil.copytree(FIXTURES / "hosts" / "host-garbled", tmp_path, dirs_exist_ok=True)
    (tmp_path / "proc" / "sys" / "fs" / "file-nr").write_text("10\t0\t100\n")
    with pytest.raises(ValueError, match="/proc/5/limits: bad 'Max open files' line"):
        collect_file_descriptors(Probe(root=tmp_path), FileDescriptorsParams(min_fds_to_check=2))


def test_collect_live_host_counts_our_own_descriptors():
    # The real /proc: this test process holds at least stdin/out/err; as root every process is readable.
    probe = Probe()
    got = collect_file_descriptors(probe, FileDescriptorsParams(min_fds_to_check=0))
    mine = [p for p in got.checked if p.pid == os.getpid()]
    assert len(mine) == 1 and mine[0].open >= 3
    if os.geteuid() == 0:
        assert got.unreadable == 0


def test_unreadable_processes_are_skipped_and_counted(monkeypatch):
    # Mocked: the tests run as root, which reads every fd directory whatever its mode, and the
    # interpreter lives under /root, so an unprivileged subprocess cannot import the check.
    real_scandir = os.scandir

    def scandir(path):
        if "/proc/812/" in str(path) or "/proc/900/" in str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr("checks.host.file_descriptors.os.scandir", scandir)
    got = collect_file_descriptors(fixture_probe("host-busy"), FileDescriptorsParams(min_fds_to_check=9))
    assert (got.unreadable, got.scanned) == (2, 4)
    assert [p.pid for p in got.checked] == [1, 950]
    out = list(evaluate_file_descriptors(FileDescriptorsParams(), got, {}))
    assert Metric("host_fd_unreadable_processes_count", 2, Unit.COUNT) in out


def test_evaluate_busy_host():
    section = collect_file_descriptors(fixture_probe("host-busy"), FileDescriptorsParams(min_fds_to_check=9))
    out = list(evaluate_file_descriptors(FileDescriptorsParams(), section, {}))
    assert [r for r in out if isinstance(r, Result)] == [
        Result(Severity.OK, "OK", "File handles 52224 of fs.file-max 65536: 79.7%"),
        Result(
            Severity.OK,
            "OK",
            "6 processes scanned, 4 with at least 64 descriptors checked against their limit",
        ),
        Result(
            Severity.CRIT,
            "FD_PROCESS_NEAR_LIMIT",
            "9 open of soft limit 10: 90.0% (warn/crit at 80.0%/90.0%)",
            item="postgres[812]",
        ),
    ]
    assert Metric("host_fd_process_usage_max_percent", 90.0, Unit.PERCENT) in out
    assert Metric("host_fd_unreadable_processes_count", 0, Unit.COUNT) in out


@pytest.mark.parametrize(
    ("allocated", "expected"),
    [
        pytest.param(1000, Severity.OK, id="plenty"),
        pytest.param(85_000, Severity.WARN, id="85 percent"),
        pytest.param(99_000, Severity.CRIT, id="99 percent"),
    ],
)
def test_system_levels(allocated, expected):
    out = list(
        evaluate_file_descriptors(FileDescriptorsParams(), FdSection(allocated, 100_000, 1, 3, ()), {})
    )
    assert only_results(out)[0].severity is expected
    assert only_results(out)[0].key == ("OK" if expected is Severity.OK else "FD_SYSTEM_EXHAUSTION")
    assert Metric("host_fd_unreadable_processes_count", 3, Unit.COUNT) in out
