"""host.file_descriptors: open files host-wide, and processes close to their own fd limit.

System: ``/proc/sys/fs/file-nr`` gives allocated file handles and ``fs.file-max``
(FD_SYSTEM_EXHAUSTION). Per process: the entries of ``/proc/<pid>/fd`` are counted
for every process in the shared process table, and only for processes holding at
least ``min_fds_to_check`` descriptors is the soft "Max open files" of
``/proc/<pid>/limits`` read (the kernel formats that file on every read, so reading
it for every process would triple the cost). A process at or above the level is
FD_PROCESS_NEAR_LIMIT with item ``name[pid]``: its next ``accept`` or ``open`` fails
with EMFILE.

This is the one check that reads ``/proc/<pid>/`` itself. Processes whose ``fd``
directory the agent may not read (other users' processes when not root) are skipped
and counted in ``host_fd_unreadable_processes_count``. Kernel threads have no
descriptors: a root agent on the live host counts them as scanned without a look.
Measured cost: about 3 µs per user process (``stat`` of its ``fd`` directory, Linux
6.2+ as root) on top of the shared process table; default interval 300 s.

Sample of what :func:`collect_file_descriptors` returns::

    FdSection(allocated=1082, maximum=2466170, scanned=94, unreadable=0,
              checked=(ProcessFds(name='postgres', pid=812, open=212, soft_limit=1024),))
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

from pydantic import Field

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
)
from checks.probe import Probe
from checks.proctable import process_table


@dataclass(frozen=True, slots=True)
class ProcessFds:
    name: str
    pid: int
    open: int
    soft_limit: int | None
    """None when the soft limit is ``unlimited``."""


@dataclass(frozen=True, slots=True)
class FdSection:
    allocated: int
    maximum: int
    scanned: int
    unreadable: int
    checked: tuple[ProcessFds, ...]
    """Processes with at least ``min_fds_to_check`` descriptors, with their soft limit."""


class FileDescriptorsParams(CheckParams):
    levels_system_percent: Levels = (80.0, 90.0)
    """(warn, crit) allocated file handles as percent of fs.file-max."""
    levels_process_percent: Levels = (80.0, 90.0)
    """(warn, crit) one process's open descriptors as percent of its soft 'Max open files'."""
    min_fds_to_check: int = Field(default=64, ge=0)
    """Read a process's limits only when it holds at least this many descriptors (keeps the scan cheap)."""


def parse_file_nr(text: str, path: str = "/proc/sys/fs/file-nr") -> tuple[int, int]:
    """``(allocated, maximum)`` from ``file-nr`` (allocated, free-but-allocated, max).

    >>> parse_file_nr("1082\\t0\\t2466170\\n")
    (1082, 2466170)
    """
    fields = text.split()
    if len(fields) != 3 or not all(f.isdigit() for f in fields):
        raise ValueError(f"{path}: expected 'allocated unused max', got {text.strip()[:80]!r}")
    return int(fields[0]), int(fields[2])


def parse_open_files_limit(text: str, path: str) -> int | None:
    """The soft 'Max open files' of a ``/proc/<pid>/limits`` file (None when unlimited).

    >>> parse_open_files_limit("Max open files     1024     524288     files\\n", "x")
    1024
    """
    for line in text.splitlines():
        if line.startswith("Max open files"):
            columns = line[len("Max open files") :].split()
            soft = columns[0] if columns else ""
            if soft == "unlimited":
                return None
            if soft.isdigit():
                return int(soft)
            raise ValueError(f"{path}: bad 'Max open files' line {line[:80]!r}")
    raise ValueError(f"{path}: no 'Max open files' line (truncated file?)")


def kernel_at_least(release: str, major: int, minor: int) -> bool:
    """Compare a kernel release string such as ``6.1.0-18-amd64`` with ``major.minor``.

    >>> kernel_at_least("6.1.0-18-amd64", 6, 2), kernel_at_least("6.18.44-fc", 6, 2)
    (False, True)
    """
    parts = release.split(".", 2)
    try:
        found = (int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0))
    except (IndexError, ValueError):
        return False
    return found >= (major, minor)


_FD_DIR_SIZE_IS_COUNT = kernel_at_least(os.uname().release, 6, 2)


def collect_file_descriptors(probe: Probe, params: FileDescriptorsParams) -> FdSection:
    allocated, maximum = parse_file_nr(probe.read_text("/proc/sys/fs/file-nr"))
    proc_dir = probe.fspath("/proc")
    scanned = unreadable = 0
    checked: list[ProcessFds] = []
    # Since Linux 6.2 the size of /proc/<pid>/fd is its number of entries: one stat()
    # instead of reading the directory (about 4x cheaper). Only for a root agent on the
    # live host: stat() needs no read permission, so an unprivileged agent would learn
    # counts it may not see, and fixture trees are ordinary directories.
    fast_count = probe.is_host_root and os.geteuid() == 0 and _FD_DIR_SIZE_IS_COUNT
    # A kernel thread has no open files (its fd directory is empty), and on most hosts
    # kernel threads are most of the table: count them as scanned without the stat().
    # Only where stat() would have told the same (root, live host): an unprivileged
    # agent must still find their fd directories unreadable.
    skip_kernel_threads = fast_count and params.min_fds_to_check > 0
    for proc in process_table(probe):
        if skip_kernel_threads and proc.kernel_thread:
            scanned += 1
            continue
        try:
            fd_dir = f"{proc_dir}/{proc.pid}/fd"
            if fast_count:
                count = os.stat(fd_dir).st_size
            else:
                with os.scandir(fd_dir) as entries:
                    count = sum(1 for _ in entries)
        except PermissionError:
            unreadable += 1  # another user's process and we are not root: skip, but count it
            continue
        except (FileNotFoundError, ProcessLookupError):
            continue  # exited since the process table was read
        scanned += 1
        if count < params.min_fds_to_check:
            continue
        limits_path = f"/proc/{proc.pid}/limits"
        try:
            limits = probe.read_text(limits_path)
        except (FileNotFoundError, ProcessLookupError):
            continue  # exited between the two reads
        checked.append(ProcessFds(proc.name, proc.pid, count, parse_open_files_limit(limits, limits_path)))
    checked.sort(key=lambda p: p.pid)
    return FdSection(allocated, maximum, scanned, unreadable, tuple(checked))


def evaluate_file_descriptors(
    params: FileDescriptorsParams, section: FdSection, store: ValueStore
) -> Iterator[Result | Metric]:
    system_pct = 100.0 * section.allocated / section.maximum if section.maximum else 0.0
    yield check_levels(
        system_pct,
        key="FD_SYSTEM_EXHAUSTION",
        label=f"File handles {section.allocated} of fs.file-max {section.maximum}",
        levels_upper=params.levels_system_percent,
        render=render_percent,
    )
    yield Result(
        Severity.OK,
        "OK",
        f"{section.scanned} processes scanned, {len(section.checked)} with at least "
        f"{params.min_fds_to_check} descriptors checked against their limit",
    )
    worst_pct = 0.0
    for proc in section.checked:
        if proc.soft_limit is None or proc.soft_limit <= 0:
            continue
        pct = 100.0 * proc.open / proc.soft_limit
        worst_pct = max(worst_pct, pct)
        result = check_levels(
            pct,
            key="FD_PROCESS_NEAR_LIMIT",
            label=f"{proc.open} open of soft limit {proc.soft_limit}",
            levels_upper=params.levels_process_percent,
            render=render_percent,
            item=f"{proc.name}[{proc.pid}]",
        )
        if result.key != "OK":
            yield result
    yield Metric("host_fd_allocated_count", section.allocated, Unit.COUNT)
    yield Metric("host_fd_max_count", section.maximum, Unit.COUNT)
    yield Metric("host_fd_system_usage_percent", system_pct, Unit.PERCENT)
    yield Metric("host_fd_process_usage_max_percent", worst_pct, Unit.PERCENT)
    yield Metric("host_fd_unreadable_processes_count", section.unreadable, Unit.COUNT)


FILE_DESCRIPTORS = Check(
    name="host.file_descriptors",
    layer=Layer.HOST,
    summary="Open file handles host-wide and processes near their own open-files limit",
    collect=collect_file_descriptors,
    evaluate=evaluate_file_descriptors,
    params=FileDescriptorsParams,
    keys=("FD_SYSTEM_EXHAUSTION", "FD_PROCESS_NEAR_LIMIT"),
    metrics=(
        MetricSpec(
            "host_fd_allocated_count", Unit.COUNT, "Allocated file handles host-wide", Direction.UP_IS_BAD
        ),
        MetricSpec("host_fd_max_count", Unit.COUNT, "Maximum file handles (fs.file-max)"),
        MetricSpec(
            "host_fd_system_usage_percent",
            Unit.PERCENT,
            "Allocated file handles as percent of fs.file-max",
            Direction.UP_IS_BAD,
        ),
        MetricSpec(
            "host_fd_process_usage_max_percent",
            Unit.PERCENT,
            "Highest open descriptors as percent of the soft limit among processes checked",
            Direction.UP_IS_BAD,
        ),
        MetricSpec(
            "host_fd_unreadable_processes_count",
            Unit.COUNT,
            "Processes whose descriptors the agent may not read (skipped)",
        ),
    ),
    interval_s=300,
    timeout_s=20,
)
