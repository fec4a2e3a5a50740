"""One snapshot of the process table per cycle, shared by every check that needs it.

Reading ``/proc/<pid>/stat`` once per process is the cheapest complete view (one
``open``/``read`` each; psutil's ``process_iter`` with several attributes costs about
twice as much). Checks get it through :func:`process_table`, which memoises it on the
probe for the cycle, so ``host.processes``, ``host.top_consumers`` and
``application.process`` scan ``/proc`` once between them.

Sample line of ``/proc/<pid>/stat`` (fields after the command name)::

    1234 (postgres: writer) S 1 1234 1234 0 -1 4194560 310 0 0 0 12 34 0 0 20 0 1 0 5081 222085120 3254 ...

>>> info = parse_stat_line("42 (my (odd) name) R 1 42 42 0 -1 0 0 0 0 0 7 3 0 0 20 0 2 0 100 4096 10 0", 4096)
>>> info.name, info.state, info.cpu_ticks, info.rss_bytes, info.identity
('my (odd) name', 'R', 10, 40960, '42:100')
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from checks.probe import Probe, read_file_bytes

__all__ = ["ProcessInfo", "parse_stat_line", "process_table", "read_cmdline"]

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    pid: int
    name: str
    state: str
    ppid: int
    utime_ticks: int
    stime_ticks: int
    threads: int
    start_ticks: int
    rss_bytes: int

    @property
    def cpu_ticks(self) -> int:
        return self.utime_ticks + self.stime_ticks

    @property
    def identity(self) -> str:
        """``pid:start`` — survives pid reuse, for per-process state between runs."""
        return f"{self.pid}:{self.start_ticks}"


def parse_stat_line(line: str, page_size: int = PAGE_SIZE) -> ProcessInfo:
    """Parse one ``/proc/<pid>/stat`` line; the name may hold spaces and parentheses."""
    open_paren = line.index("(")
    close_paren = line.rindex(")")
    fields = line[close_paren + 2 :].split()
    if len(fields) < 22:
        raise ValueError(f"expected at least 24 fields in a /proc/<pid>/stat line, got {line[:80]!r}")
    return ProcessInfo(
        pid=int(line[:open_paren]),
        name=line[open_paren + 1 : close_paren],
        state=fields[0],
        ppid=int(fields[1]),
        utime_ticks=int(fields[11]),
        stime_ticks=int(fields[12]),
        threads=int(fields[17]),
        start_ticks=int(fields[19]),
        rss_bytes=int(fields[21]) * page_size,
    )


def _scan(probe: Probe) -> tuple[ProcessInfo, ...]:
    proc_dir = probe.path("/proc")
    table: list[ProcessInfo] = []
    for entry in os.listdir(proc_dir):
        if not entry.isdigit():
            continue
        try:
            line = read_file_bytes(f"{proc_dir}/{entry}/stat", 4096).decode("utf-8", errors="replace")
        except (FileNotFoundError, ProcessLookupError):
            continue  # the process exited between listdir and open: not an error
        try:
            table.append(parse_stat_line(line))
        except ValueError:
            continue  # a torn or odd stat line for one process must not hide all others
    return tuple(table)


def process_table(probe: Probe) -> tuple[ProcessInfo, ...]:
    """Every process, scanned at most once per cycle per probe."""
    return probe.memo("proctable", lambda: _scan(probe))


def read_cmdline(probe: Probe, pid: int) -> str:
    """The command line joined by spaces ('' for kernel threads and vanished processes)."""
    try:
        raw = probe.read_bytes(f"/proc/{pid}/cmdline", 8192)
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return ""  # gone or hidden (hidepid): treat as no command line
    return raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", errors="replace")
