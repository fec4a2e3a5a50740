"""The shared process table: the live host's scan keeps stat files open between cycles."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from checks import proctable
from checks.probe import Probe
from checks.proctable import ProcessInfo, parse_stat_line, process_table
from tests.conftest import fixture_probe


def _by_pid(table: tuple[ProcessInfo, ...]) -> dict[int, ProcessInfo]:
    return {p.pid: p for p in table}


def test_kept_scan_sees_new_and_exited_processes_and_closes_their_descriptors():
    # A real child process: seen by one scan, then reaped before the next.
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        seen = _by_pid(process_table(Probe()))
        assert child.pid in seen and seen[child.pid].name.startswith("python")
        assert str(child.pid) in proctable._kept
        kept_fd = proctable._kept[str(child.pid)]
    finally:
        child.kill()
        child.wait()
    after = _by_pid(process_table(Probe()))
    assert child.pid not in after
    assert str(child.pid) not in proctable._kept
    # Its descriptor was closed, not leaked (the number may have been reused since).
    try:
        target = os.readlink(f"/proc/self/fd/{kept_fd}")
    except FileNotFoundError:
        target = None
    assert target != f"/proc/{child.pid}/stat"


def test_kept_scan_reads_fresh_values():
    me = os.getpid()
    before = _by_pid(process_table(Probe()))[me].cpu_ticks
    deadline = before + 3
    spins = 0
    while spins < 50_000_000 and _by_pid(process_table(Probe()))[me].cpu_ticks < deadline:
        spins += sum(range(100_000)) and 100_000  # burn CPU until our ticks move on
    assert _by_pid(process_table(Probe()))[me].cpu_ticks >= deadline


def test_kept_scan_matches_a_fresh_scan():
    kept = _by_pid(process_table(Probe()))
    fresh: dict[int, ProcessInfo] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as fh:
                    info = parse_stat_line(fh.read())
            except (FileNotFoundError, ProcessLookupError):
                continue
            fresh[info.pid] = info
    common = kept.keys() & fresh.keys()
    assert len(common) >= 0.9 * len(fresh)
    for pid in common:
        assert (kept[pid].name, kept[pid].start_ticks, kept[pid].kernel_thread) == (
            fresh[pid].name,
            fresh[pid].start_ticks,
            fresh[pid].kernel_thread,
        )


def test_kept_descriptors_stay_bounded():
    process_table(Probe())
    assert 0 < len(proctable._kept) <= proctable.MAX_KEPT_STAT_FDS


def test_fixture_root_is_scanned_without_keeping_descriptors():
    before = dict(proctable._kept)
    table = process_table(fixture_probe("host-busy"))
    assert table and all(isinstance(p, ProcessInfo) for p in table)
    assert proctable._kept == before


def test_unchanged_stat_lines_are_not_parsed_again_and_changed_ones_are(tmp_path):
    # A real sleeping child: its stat line stays the same until it renames itself.
    flag = tmp_path / "rename"
    script = (
        "import os, pathlib, time\n"
        f"flag = pathlib.Path({str(flag)!r})\n"
        "while not flag.exists(): time.sleep(0.02)\n"
        "pathlib.Path(f'/proc/self/comm').write_text('renamed-child')\n"
        "time.sleep(30)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script])
    parses: list[str] = []
    real_parse = proctable.parse_stat_line

    def counting(line: str, page_size: int = proctable.PAGE_SIZE) -> ProcessInfo:
        parses.append(line)
        return real_parse(line, page_size)

    try:
        first = _by_pid(process_table(Probe()))[child.pid]
        proctable.parse_stat_line = counting
        for _ in range(100):  # once settled, a sleeping process's line comes back byte for byte
            time.sleep(0.05)
            parses.clear()
            again = _by_pid(process_table(Probe()))[child.pid]
            if again is first:
                break
            first = again
        assert again is first
        assert not [line for line in parses if line.startswith(f"{child.pid} (")]
        assert str(child.pid) in proctable._parsed
        flag.write_text("go")
        for _ in range(100):
            renamed = _by_pid(process_table(Probe()))[child.pid]
            if renamed.name == "renamed-child":
                break
            time.sleep(0.02)
        assert renamed.name == "renamed-child"  # the changed line was parsed afresh
        assert any(line.startswith(f"{child.pid} (renamed-child)") for line in parses)
        assert (renamed.pid, renamed.start_ticks) == (first.pid, first.start_ticks)
    finally:
        proctable.parse_stat_line = real_parse
        child.kill()
        child.wait()
    process_table(Probe())
    assert str(child.pid) not in proctable._parsed  # gone from /proc: forgotten
    assert set(proctable._parsed) <= {e for e in os.listdir("/proc") if e.isdigit()}
