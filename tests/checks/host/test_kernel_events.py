from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from checks.api import Metric, Result, Severity, SkipCheck, Unit
from checks.host.kernel_events import (
    KERNEL_EVENTS,
    KernelEvent,
    KernelEventsParams,
    KernelLogSection,
    close_kernel_log_readers,
    collect_kernel_events,
    evaluate_kernel_events,
)
from checks.probe import Probe
from tests.conftest import FIXTURES

BOOT = (FIXTURES / "hosts" / "x5-kmsg" / "proc/sys/kernel/random/boot_id").read_text().strip()
OTHER_BOOT = "00000000-1111-2222-3333-444444444444"

FD0 = KernelEvent(
    4,
    5.0,
    "IO_ERROR",
    "blk_update_request: I/O error, dev fd0, sector 0 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 0",
)
HUNG = KernelEvent(7, 84211.5, "HUNG_TASK", "INFO: task jbd2/sda1-8:312 blocked for more than 120 seconds.")
SEGV = KernelEvent(
    8,
    84300.0,
    "SEGFAULT",
    "python3[4242]: segfault at 0 ip 00007f3c2a1b2c3d sp 00007ffd4e5f6a70 error 4 "
    "in libc.so.6[7f3c2a000000+195000]",
)
BUF = KernelEvent(9, 84400.0, "IO_ERROR", "Buffer I/O error on dev sdb1, logical block 0, async page read")
CT = KernelEvent(10, 84500.0, "CONNTRACK_FULL", "nf_conntrack: nf_conntrack: table full, dropping packet")
EXT4 = KernelEvent(
    11,
    84600.0,
    "FS_ERROR",
    "EXT4-fs error (device sdb1): ext4_find_entry:1455: inode #2: comm ls: reading directory lblock 0",
)
ALL_EVENTS = (FD0, HUNG, SEGV, BUF, CT, EXT4)


@pytest.fixture(autouse=True)
def fresh_readers() -> Iterator[None]:
    # collect keeps one descriptor per probe root open between runs: start and end clean.
    close_kernel_log_readers()
    yield
    close_kernel_log_readers()


def copy_host(tmp_path: Path) -> Path:
    shutil.copytree(FIXTURES / "hosts" / "x5-kmsg", tmp_path, dirs_exist_ok=True)
    return tmp_path


def append(root: Path, text: str) -> None:
    with open(root / "dev" / "kmsg", "a") as log:
        log.write(text)


def results(out: list[Any]) -> list[Result]:
    return [r for r in out if isinstance(r, Result)]


def test_collect_reads_everything_once_then_only_new_records(tmp_path):
    root = copy_host(tmp_path)
    probe = Probe(root=root)
    first = collect_kernel_events(probe, KernelEventsParams())
    # The user-space "EXT4-fs error" line (facility 1, seq 6) is a record but not an event.
    assert first == KernelLogSection(BOOT, 0, 11, 12, 0, False, ALL_EVENTS)
    assert collect_kernel_events(probe, KernelEventsParams()) == KernelLogSection(BOOT, None, 11, 0, 0, False)
    append(root, "4,12,90000000000,-;NETDEV WATCHDOG: eth0 (ixgbe): transmit queue 3 timed out\n")
    third = collect_kernel_events(probe, KernelEventsParams())
    nic = KernelEvent(12, 90000.0, "NIC_TIMEOUT", "NETDEV WATCHDOG: eth0 (ixgbe): transmit queue 3 timed out")
    assert third == KernelLogSection(BOOT, 12, 12, 1, 0, False, (nic,))


def test_collect_keeps_a_partial_record_for_the_next_run(tmp_path):
    root = copy_host(tmp_path)
    probe = Probe(root=root)
    collect_kernel_events(probe, KernelEventsParams())
    append(root, "3,12,1000,-;Buffer I/O error on dev")
    half = collect_kernel_events(probe, KernelEventsParams())
    assert (half.first_seq, half.last_seq, half.events) == (None, 11, ())
    append(root, " sdc\n")
    whole = collect_kernel_events(probe, KernelEventsParams())
    assert whole.events == (KernelEvent(12, 0.001, "IO_ERROR", "Buffer I/O error on dev sdc"),)


def test_collect_counts_records_lost_to_wrap(tmp_path):
    root = copy_host(tmp_path)
    (root / "dev" / "kmsg").write_text("6,100,1,-;a\n6,101,1,-;b\n6,105,1,-;c\n")
    section = collect_kernel_events(Probe(root=root), KernelEventsParams())
    assert (section.first_seq, section.last_seq, section.records, section.lost) == (100, 105, 3, 3)


def test_collect_bounds_the_bytes_read_per_run(tmp_path):
    root = copy_host(tmp_path)
    line = "6,{},1000,-;" + "x" * 90 + "\n"
    (root / "dev" / "kmsg").write_text("".join(line.format(seq) for seq in range(300)))  # ~30 KB
    probe = Probe(root=root)
    params = KernelEventsParams(max_bytes_per_run=8192)
    sections = [collect_kernel_events(probe, params) for _ in range(5)]
    assert [s.more for s in sections] == [True, True, True, False, False]
    assert all(s.records < 90 for s in sections)
    assert sum(s.records for s in sections) == 300
    assert sections[-1].last_seq == 299


def test_collect_rejects_a_garbled_log(tmp_path):
    root = copy_host(tmp_path)
    (root / "dev" / "kmsg").write_text("this is not a kernel log\n")
    with pytest.raises(ValueError, match="/dev/kmsg: not a kernel log record"):
        collect_kernel_events(Probe(root=root), KernelEventsParams())
    close_kernel_log_readers()
    (root / "dev" / "kmsg").write_text("3,x,1,-;EXT4-fs error\n")
    with pytest.raises(ValueError, match="/dev/kmsg"):
        collect_kernel_events(Probe(root=root), KernelEventsParams())


def test_collect_skips_without_a_kernel_log(tmp_path):
    with pytest.raises(SkipCheck, match="no kernel log device"):
        collect_kernel_events(Probe(root=tmp_path), KernelEventsParams())


def test_unprivileged_agent_on_the_real_kernel_log():
    # A real process without capabilities opening the real /dev/kmsg. Imports happen first
    # (the interpreter may live under /root); then a root process drops to nobody, which
    # clears every capability, CAP_SYSLOG included, before collect runs.
    code = (
        "import os\n"
        "from checks.api import SkipCheck\n"
        "from checks.probe import Probe\n"
        "from checks.host.kernel_events import *\n"
        "KernelEventsParams()  # builds the deferred params validator while imports still work\n"
        "if os.geteuid() == 0:\n"
        "    os.setgroups([]); os.setgid(65534); os.setuid(65534)\n"
        "try:\n"
        "    s = collect_kernel_events(Probe(), KernelEventsParams())\n"
        "except SkipCheck as exc:\n"
        "    print('SKIP', exc.reason); raise SystemExit(0)\n"
        "r = list(evaluate_kernel_events(KernelEventsParams(), s, {}))\n"
        "print(r[0].severity.value, r[0].key, r[0].summary)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=Path(__file__).resolve().parents[3],
        check=True,
    )
    if not os.path.exists("/dev/kmsg"):
        assert proc.stdout.startswith("SKIP no kernel log device (/dev/kmsg)")
    elif Path("/proc/sys/kernel/dmesg_restrict").read_text().strip() == "1":
        assert proc.stdout.startswith("UNKNOWN KERNEL_LOG_UNREADABLE cannot open /dev/kmsg")
        assert "kernel.dmesg_restrict = 1 and the agent lacks CAP_SYSLOG" in proc.stdout
    else:  # unrestricted: anyone may read the log when the device's mode allows it
        assert proc.stdout.startswith(("OK OK Baseline stored", "UNKNOWN KERNEL_LOG_UNREADABLE")), proc.stdout


def test_real_kernel_log_baseline_then_quiet_run():
    store: dict[str, Any] = {}
    probe, params = Probe(), KernelEventsParams()
    try:
        first = list(KERNEL_EVENTS.run(probe, params, store))
    except SkipCheck:
        assert not os.path.exists("/dev/kmsg")  # skipping is right only without the device
        return
    if results(first)[0].key == "KERNEL_LOG_UNREADABLE":
        assert "CAP_SYSLOG" in results(first)[0].summary  # a capability-less container, say so
        return
    assert results(first)[0].summary.startswith("Baseline stored")
    assert isinstance(store["seq"], int)
    second = list(KERNEL_EVENTS.run(probe, params, store))
    assert results(second)[0].severity is not Severity.UNKNOWN
    assert sum(1 for m in second if isinstance(m, Metric)) == 10


# -- evaluate -------------------------------------------------------------------------


def section(*events: KernelEvent, first: int | None = 0, last: int = 11, boot: str = BOOT, **kw: Any):
    records = kw.pop("records", 0 if first is None else last - first + 1)
    return KernelLogSection(
        boot, first, last, records, kw.pop("lost", 0), kw.pop("more", False), events, **kw
    )


@pytest.mark.parametrize(
    ("store", "sect", "expected"),
    [
        pytest.param(
            {},
            section(*ALL_EVENTS),
            [
                Result(
                    Severity.OK,
                    "OK",
                    "Baseline stored at kernel log record 11; new kernel errors from now on",
                )
            ],
            id="first run is a baseline even with old errors",
        ),
        pytest.param(
            {"seq": 11, "boot_id": BOOT},
            section(first=None),
            [Result(Severity.OK, "OK", "No kernel errors in 0 new log record(s)")],
            id="nothing new",
        ),
        pytest.param(
            {"seq": 8, "boot_id": BOOT},
            section(*ALL_EVENTS),  # agent restarted: the whole buffer was read again
            [
                Result(
                    Severity.CRIT,
                    "KERNEL_FS_ERROR",
                    "1 filesystem error(s) in the kernel log since the last run",
                    details=f"[84600.0 s after boot] {EXT4.line}",
                ),
                Result(
                    Severity.CRIT,
                    "KERNEL_IO_ERROR",
                    "1 block I/O error(s) in the kernel log since the last run",
                    details=f"[84400.0 s after boot] {BUF.line}",
                ),
                Result(
                    Severity.CRIT,
                    "KERNEL_CONNTRACK_FULL",
                    "1 conntrack table full (packets dropped) in the kernel log since the last run",
                    details="[84500.0 s after boot] nf_conntrack: nf_conntrack: table full, dropping packet",
                ),
            ],
            id="records up to the stored position are skipped",
        ),
        pytest.param(
            {"seq": 6, "boot_id": BOOT},
            section(HUNG, SEGV, first=7),
            [
                Result(
                    Severity.CRIT,
                    "KERNEL_HUNG_TASK",
                    "1 hung task(s) blocked for minutes in the kernel log since the last run",
                    details=f"[84211.5 s after boot] {HUNG.line}",
                ),
                Result(
                    Severity.WARN,
                    "KERNEL_SEGFAULT",
                    "1 segfault(s) in the kernel log since the last run",
                    details=f"[84300.0 s after boot] {SEGV.line}",
                ),
            ],
            id="hung task is critical, segfault warns",
        ),
        pytest.param(
            {"seq": 2, "boot_id": BOOT},
            section(FD0, BUF, first=4, last=9, lost=0),
            [
                Result(
                    Severity.CRIT,
                    "KERNEL_IO_ERROR",
                    "2 block I/O error(s) in the kernel log since the last run "
                    "(1 record(s) overwritten before they were read)",
                    details=f"[84400.0 s after boot] {BUF.line}",
                )
            ],
            id="count per kind, latest line, records lost between runs",
        ),
        pytest.param(
            {"seq": 900, "boot_id": OTHER_BOOT},
            section(FD0),
            [
                Result(
                    Severity.CRIT,
                    "KERNEL_IO_ERROR",
                    "1 block I/O error(s) in the kernel log since the last run "
                    "(host rebooted since the last run: the whole new boot's log was read)",
                    details=f"[5.0 s after boot] {FD0.line}",
                )
            ],
            id="after a reboot the whole new log is new",
        ),
        pytest.param(
            {"seq": 900, "boot_id": ""},
            section(FD0, boot=""),
            [
                Result(
                    Severity.CRIT,
                    "KERNEL_IO_ERROR",
                    "1 block I/O error(s) in the kernel log since the last run "
                    "(host rebooted since the last run: the whole new boot's log was read)",
                    details=f"[5.0 s after boot] {FD0.line}",
                )
            ],
            id="no boot id: a sequence restart means a reboot",
        ),
        pytest.param(
            {"seq": 3, "boot_id": BOOT},
            section(FD0, first=4, last=4, more=True),
            [
                Result(
                    Severity.CRIT,
                    "KERNEL_IO_ERROR",
                    "1 block I/O error(s) in the kernel log since the last run "
                    "(read limit reached, the rest follows next run)",
                    details=f"[5.0 s after boot] {FD0.line}",
                )
            ],
            id="byte bound noted",
        ),
        pytest.param(
            {},
            KernelLogSection(BOOT, None, -1, 0, 0, False, (), "cannot open /dev/kmsg: ... CAP_SYSLOG"),
            [Result(Severity.UNKNOWN, "KERNEL_LOG_UNREADABLE", "cannot open /dev/kmsg: ... CAP_SYSLOG")],
            id="no permission",
        ),
    ],
)
def test_evaluate(store, sect, expected):
    assert results(list(evaluate_kernel_events(KernelEventsParams(), sect, store))) == expected


def test_evaluate_metrics_count_new_events_per_kind():
    store = {"seq": 3, "boot_id": BOOT}
    out = list(evaluate_kernel_events(KernelEventsParams(), section(*ALL_EVENTS), store))
    metrics = {(m.name, m.labels): m.value for m in out if isinstance(m, Metric)}
    assert metrics[("host_kernel_log_records_count", ())] == 8
    assert metrics[("host_kernel_log_lost_records_count", ())] == 0
    assert metrics[("host_kernel_events_count", (("kind", "io_error"),))] == 2
    assert metrics[("host_kernel_events_count", (("kind", "lockup"),))] == 0
    assert len(metrics) == 10
    assert store == {"seq": 11, "boot_id": BOOT}


def test_params_ignore_and_severity_overrides():
    params = KernelEventsParams(ignore=(r"dev fd0",), severity={"IO_ERROR": "WARN"})
    out = results(list(evaluate_kernel_events(params, section(FD0, BUF), {"seq": 0, "boot_id": BOOT})))
    assert [(r.severity, r.key, r.summary[:2]) for r in out] == [(Severity.WARN, "KERNEL_IO_ERROR", "1 ")]
    with pytest.raises(ValidationError, match="unknown event kind"):
        KernelEventsParams(severity={"OOPS": "CRIT"})
    with pytest.raises(ValidationError, match="bad regular expression"):
        KernelEventsParams(ignore=("(",))


def test_baseline_continues_while_the_old_log_is_read_in_pieces():
    store: dict[str, Any] = {}
    list(evaluate_kernel_events(KernelEventsParams(), section(FD0, first=0, last=5, more=True), store))
    assert store == {"seq": 5, "boot_id": BOOT, "baseline_pending": True}
    out = results(list(evaluate_kernel_events(KernelEventsParams(), section(BUF, first=6, last=9), store)))
    assert out[0].summary.startswith("Baseline stored at kernel log record 9")
    assert store == {"seq": 9, "boot_id": BOOT}


def test_two_runs_on_a_changing_tree(tmp_path):
    root = copy_host(tmp_path)
    store: dict[str, Any] = {}
    probe, params = Probe(root=root), KernelEventsParams()
    assert results(list(KERNEL_EVENTS.run(probe, params, store)))[0].summary.startswith("Baseline")
    append(
        root,
        "4,12,90000000000,-;watchdog: BUG: soft lockup - CPU#3 stuck for 23s! [kworker/3:1:99]\n"
        " SUBSYSTEM=cpu\n"
        "0,13,90001000000,-;mce: [Hardware Error]: Machine check events logged\n"
        "3,14,90002000000,-;XFS (dm-0): Metadata corruption detected at xfs_buf_ioend+0x5a/0x1e0 [xfs]\n",
    )
    out = list(KERNEL_EVENTS.run(probe, params, store))
    assert [(r.severity, r.key) for r in results(out)] == [
        (Severity.CRIT, "KERNEL_HARDWARE_ERROR"),
        (Severity.CRIT, "KERNEL_LOCKUP"),
        (Severity.CRIT, "KERNEL_FS_ERROR"),
    ]
    assert Metric("host_kernel_log_records_count", 3, Unit.COUNT) in out
    assert store["seq"] == 14
    # An agent restart (fresh descriptor reading the whole file again) reports nothing old.
    close_kernel_log_readers()
    again = results(list(KERNEL_EVENTS.run(probe, params, store)))
    assert again == [Result(Severity.OK, "OK", "No kernel errors in 0 new log record(s)")]
