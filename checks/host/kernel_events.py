"""host.kernel_events: kernel log errors since the last run, counted by kind.

New records of the kernel log (``/dev/kmsg``) are read without blocking and matched
against the messages that mark a failing host: hung tasks, soft/hard lockups and RCU
stalls, block-device I/O errors, filesystem errors, segfaults, NIC transmit
timeouts, machine checks and other hardware errors, and a full conntrack table.
Each kind with new lines gives one result (key ``KERNEL_<KIND>``) whose details hold
the latest matching line, truncated and with control characters escaped; every run
after the first emits ``host_kernel_events_count`` per kind.

Cost. Reading the whole ring buffer costs about 1 µs per record, so it is read once:
the ``/dev/kmsg`` descriptor stays open in this process between runs (one per probe
root, see :func:`close_kernel_log_readers`), positioned after the last record read,
and a run with nothing new is a single ``read`` answered ``EAGAIN``. The bytes read
in one run are bounded (``max_bytes_per_run``); the rest waits in the kernel for the
next run (a quiet run costs about 16 µs of CPU on the build machine, metrics
included). Only records of the kernel facility count: a daemon writing "I/O error"
into ``/dev/kmsg`` is not a kernel event. Known noise (I/O errors of a VM's
phantom floppy ``fd0``) is silenced with the ``ignore`` param.

Since the last run. The store keeps the kmsg sequence number of the last record
seen and the boot id. The first run stores that position only (a baseline, like
``host.oom_kills``), so old boot noise is never reported; after an agent restart
records up to the stored sequence number are skipped. After a reboot (new boot id)
everything in the new boot's log is new: errors at boot (a filesystem remounted
read-only, machine checks found while the host was down) are the ones a fault
analysis needs. Records overwritten before they were read are counted as lost.

Permission. With ``kernel.dmesg_restrict = 1`` only a process with CAP_SYSLOG may
open ``/dev/kmsg``. An agent without it gets an UNKNOWN ``KERNEL_LOG_UNREADABLE``
result naming the missing capability, not a skip: a silent OK would hide that the
kernel is unwatched. Without ``/dev/kmsg`` at all (some containers) the check skips.

Sample of what :func:`collect_kernel_events` returns: the first run on this project's
build machine (the whole buffer, no errors), then a later run with new errors (lines
as in the ``x5-kmsg`` test fixture)::

    KernelLogSection(boot_id='84d5cd65-dd0a-4123-ae3e-f8303ab231ba', first_seq=0, last_seq=344,
                     records=345, lost=0, more=False, events=(), unreadable=None)
    KernelLogSection(boot_id='84d5cd65-dd0a-4123-ae3e-f8303ab231ba', first_seq=345, last_seq=347,
                     records=3, lost=0, more=False, events=(
                         KernelEvent(seq=346, uptime_s=84211.5, kind='HUNG_TASK',
                                     line='INFO: task jbd2/sda1-8:312 blocked for more than 120 seconds.'),
                         KernelEvent(seq=347, uptime_s=84400.0, kind='IO_ERROR',
                                     line='Buffer I/O error on dev sdb1, logical block 0, async page read')),
                     unreadable=None)

>>> parse_kmsg_records(b"3,812,9000000,-;Buffer I/O error on dev sdb1, logical block 0\\n", "/dev/kmsg")[:4]
(812, 812, 1, 0)
>>> parse_kmsg_records(b"3,9,5000,-;blk_update_request: I/O error, dev sdb\\n", "/dev/kmsg")[4]
[KernelEvent(seq=9, uptime_s=0.005, kind='IO_ERROR', line='blk_update_request: I/O error, dev sdb')]
"""

from __future__ import annotations

import errno
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from pydantic import Field, field_validator

from checks.api import (
    Check,
    CheckParams,
    Direction,
    Layer,
    Metric,
    MetricSpec,
    Result,
    Severity,
    SkipCheck,
    Unit,
    ValueStore,
)
from checks.probe import Probe

__all__ = [
    "KERNEL_EVENTS",
    "KIND_PATTERNS",
    "KernelEvent",
    "KernelEventsParams",
    "KernelLogSection",
    "classify",
    "close_kernel_log_readers",
    "collect_kernel_events",
    "evaluate_kernel_events",
    "parse_kmsg_records",
]

KMSG = "/dev/kmsg"
BOOT_ID = "/proc/sys/kernel/random/boot_id"
DMESG_RESTRICT = "/proc/sys/kernel/dmesg_restrict"
MAX_LINE_CHARS = 300
"""Longest line kept in a result's details (kernel lines are at most ~1000 bytes)."""

KIND_PATTERNS: dict[str, str] = {
    "HARDWARE_ERROR": (
        r"\[Hardware Error\]|Machine check events logged|EDAC MC\d+: \d+ [CU]E "
        r"|PCIe Bus Error: severity=Uncorrected|Memory failure: |Uncorrected hardware memory error"
    ),
    "LOCKUP": r"soft lockup|hard LOCKUP|\brcu\w*:? (?:INFO: \w+ )?(?:self-)?detected stalls?",
    "HUNG_TASK": r"blocked for more than \d+ seconds",
    "FS_ERROR": r"EXT[234]-fs error|XFS \([^)]*\):.*[Cc]orruption|BTRFS (?:error|critical)",
    "IO_ERROR": r"I/O error|blk_update_request|critical medium error",
    "NIC_TIMEOUT": r"NETDEV WATCHDOG|transmit queue \d+ timed out|Detected Tx Unit Hang",
    "CONNTRACK_FULL": r"nf_conntrack: table full",
    "SEGFAULT": r"segfault at |traps: .* general protection",
}
"""Kinds of kernel events, first match wins (``EXT4-fs error ... I/O error`` is a filesystem error)."""

KIND_LABELS = {
    "HARDWARE_ERROR": "hardware error(s) (machine check, EDAC, PCIe)",
    "LOCKUP": "CPU lockup(s) or RCU stall(s)",
    "HUNG_TASK": "hung task(s) blocked for minutes",
    "FS_ERROR": "filesystem error(s)",
    "IO_ERROR": "block I/O error(s)",
    "NIC_TIMEOUT": "NIC transmit timeout(s)",
    "CONNTRACK_FULL": "conntrack table full (packets dropped)",
    "SEGFAULT": "segfault(s)",
}

DEFAULT_SEVERITY: dict[str, Literal["WARN", "CRIT"]] = {
    "HARDWARE_ERROR": "CRIT",
    "LOCKUP": "CRIT",
    "HUNG_TASK": "CRIT",
    "FS_ERROR": "CRIT",
    "IO_ERROR": "CRIT",
    "NIC_TIMEOUT": "CRIT",
    "CONNTRACK_FULL": "CRIT",
    "SEGFAULT": "WARN",
}

_CLASSIFIER = re.compile(
    "|".join(f"(?P<{kind}>{pattern})" for kind, pattern in KIND_PATTERNS.items()).encode()
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class KernelEvent:
    seq: int
    uptime_s: float
    kind: str
    line: str


@dataclass(frozen=True, slots=True)
class KernelLogSection:
    boot_id: str
    first_seq: int | None
    """Sequence number of the first record read this run (None: nothing new)."""
    last_seq: int
    """Highest sequence number this process has read from this log (-1: none yet)."""
    records: int
    lost: int
    """Records overwritten in the ring buffer between two records read this run."""
    more: bool
    """The byte bound stopped the read: more records wait for the next run."""
    events: tuple[KernelEvent, ...] = ()
    unreadable: str | None = None
    """Why the log cannot be read (missing permission), if so."""


class KernelEventsParams(CheckParams):
    max_bytes_per_run: int = Field(default=256 * 1024, ge=8192, le=16 * 1024 * 1024)
    """Bytes of kernel log read in one run at most; the rest is read by the next runs."""
    severity: dict[str, Literal["WARN", "CRIT"]] = Field(default_factory=lambda: dict(DEFAULT_SEVERITY))
    """Severity per event kind (HARDWARE_ERROR, LOCKUP, HUNG_TASK, FS_ERROR, IO_ERROR,
    NIC_TIMEOUT, CONNTRACK_FULL, SEGFAULT); kinds not named keep their default."""
    ignore: tuple[str, ...] = ()
    """Regular expressions: matching kernel lines are not counted (a known flaky USB stick)."""

    @field_validator("severity")
    @classmethod
    def _known_kinds(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(KIND_PATTERNS))
        if unknown:
            raise ValueError(f"unknown event kind(s) {unknown}; known: {sorted(KIND_PATTERNS)}")
        return value

    @field_validator("ignore")
    @classmethod
    def _valid_regexes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"bad regular expression {pattern!r}: {exc}") from None
        return value


def classify(message: bytes) -> str | None:
    """The event kind of one kernel message, or None.

    >>> classify(b"INFO: task jbd2/sda1-8:312 blocked for more than 120 seconds.")
    'HUNG_TASK'
    >>> classify(b"EXT4-fs error (device sda1): ext4_find_entry:1455: inode #2: comm ls: reading lblock 0")
    'FS_ERROR'
    >>> classify(b"e1000e 0000:00:19.0 eth0: Link is Up 1000 Mbps Full Duplex") is None
    True
    """
    match = _CLASSIFIER.search(message)
    return match.lastgroup if match is not None else None


def sanitise(message: bytes) -> str:
    """One kernel line fit for a result: decoded, control characters escaped, truncated.

    >>> sanitise(b"bad\\x1b[31m name " + b"x" * 400)[:20], len(sanitise(b"y" * 400))
    ('bad\\\\x1b[31m name xxx', 300)
    """
    text = _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}", message.decode("utf-8", errors="replace"))
    return text if len(text) <= MAX_LINE_CHARS else text[: MAX_LINE_CHARS - 1] + "…"


def parse_kmsg_records(data: bytes, path: str) -> tuple[int | None, int, int, int, list[KernelEvent]]:
    """(first seq, last seq, records, lost, events) of complete ``/dev/kmsg`` lines.

    A record is ``prio,seq,usec,flags[,...];message``; continuation lines (`` KEY=value``)
    are skipped. Events are kept for kernel-facility records only. A garbled header
    raises ValueError naming ``path``.
    """
    first: int | None = None
    last = -1
    records = lost = 0
    events: list[KernelEvent] = []
    for line in data.split(b"\n"):
        if not line or line[:1] == b" ":
            continue  # continuation lines carry dictionary properties, not messages
        header, sep, message = line.partition(b";")
        fields = header.split(b",", 3)
        try:
            if not sep or len(fields) < 4:
                raise ValueError("no 'prio,seq,usec,flags;' header")
            prio, seq, usec = int(fields[0]), int(fields[1]), int(fields[2])
        except ValueError:
            raise ValueError(f"{path}: not a kernel log record: {sanitise(line[:80])!r}") from None
        if first is None:
            first = seq
        elif seq > last + 1:
            lost += seq - last - 1
        last = seq
        records += 1
        if prio >> 3 == 0:  # facility 0 = kernel; user space may write to /dev/kmsg too
            match = _CLASSIFIER.search(message)
            if match is not None and match.lastgroup is not None:
                events.append(KernelEvent(seq, usec / 1e6, match.lastgroup, sanitise(message)))
    return first, last, records, lost, events


# -- the held-open reader ------------------------------------------------------------


@dataclass
class _Reader:
    fd: int
    boot_id: str
    last_seq: int = -1
    pending: bytes = b""
    """A partial line at the end of a read (regular files only: kmsg returns whole records)."""
    lock: threading.Lock = field(default_factory=threading.Lock)


_readers: dict[str, _Reader] = {}
_readers_lock = threading.Lock()


def close_kernel_log_readers() -> None:
    """Close every held ``/dev/kmsg`` descriptor (agent reload, tests); the next run reopens."""
    with _readers_lock:
        for reader in _readers.values():
            os.close(reader.fd)
        _readers.clear()


def _read_boot_id(probe: Probe) -> str:
    try:
        return probe.read_text(BOOT_ID).strip()
    except FileNotFoundError:
        return ""  # no boot id (old kernel, fixture): reboots are found by the sequence restart


def _unreadable_reason(probe: Probe, exc: OSError) -> str:
    try:
        restrict = probe.read_text(DMESG_RESTRICT).strip()
    except OSError:
        restrict = "?"  # the reason stays useful without the sysctl's value
    if restrict == "1":
        return (
            f"cannot open {KMSG}: kernel.dmesg_restrict = 1 and the agent lacks CAP_SYSLOG "
            "(run it as root or grant CAP_SYSLOG to read kernel errors)"
        )
    return (
        f"cannot open {KMSG}: {os.strerror(exc.errno or errno.EACCES)} (kernel.dmesg_restrict = {restrict}; "
        "the device's file mode or a security module denies reading; CAP_SYSLOG or root is needed)"
    )


def _open_reader(probe: Probe, path: str) -> _Reader:
    boot_id = _read_boot_id(probe)  # first: nothing may fail between open and keeping the fd
    return _Reader(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), boot_id)


def _read_chunks(fd: int, max_bytes: int) -> tuple[bytes, bool]:
    """Records until EAGAIN or ``max_bytes``; True when the bound stopped the read."""
    chunks: list[bytes] = []
    total = 0
    for _ in range(max_bytes):  # bound: a pass reads bytes, stops, or skips an overwritten record
        if total >= max_bytes:
            return b"".join(chunks), True
        try:
            chunk = os.read(fd, 8192)
        except BlockingIOError:
            break  # EAGAIN: nothing newer in the ring buffer
        except BrokenPipeError:
            continue  # EPIPE: our next record was overwritten; the next read resumes at the oldest
        if not chunk:
            break  # end of a regular file (fixture tree)
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks), False


def collect_kernel_events(probe: Probe, params: KernelEventsParams) -> KernelLogSection:
    path = probe.fspath(KMSG)
    with _readers_lock:
        reader = _readers.get(path)
        if reader is None:
            try:
                reader = _readers[path] = _open_reader(probe, path)
            except FileNotFoundError:
                raise SkipCheck(f"no kernel log device ({KMSG}) on this host") from None
            except PermissionError as exc:
                return KernelLogSection(
                    _read_boot_id(probe), None, -1, 0, 0, False, (), _unreadable_reason(probe, exc)
                )
    with reader.lock:
        data, more = _read_chunks(reader.fd, params.max_bytes_per_run)
        if not data:
            return KernelLogSection(reader.boot_id, None, reader.last_seq, 0, 0, False)
        data = reader.pending + data
        cut = data.rfind(b"\n") + 1
        reader.pending = data[cut:]
        first, last, records, lost, events = parse_kmsg_records(data[:cut], KMSG)
        if first is not None:
            reader.last_seq = last
        return KernelLogSection(reader.boot_id, first, reader.last_seq, records, lost, more, tuple(events))


def evaluate_kernel_events(
    params: KernelEventsParams, section: KernelLogSection, store: ValueStore
) -> Iterator[Result | Metric]:
    if section.unreadable is not None:
        yield Result(Severity.UNKNOWN, "KERNEL_LOG_UNREADABLE", section.unreadable)
        return
    stored_seq = store.get("seq")
    stored_boot = store.get("boot_id")
    baseline = not isinstance(stored_seq, int) or bool(store.get("baseline_pending"))
    store["seq"] = section.last_seq
    store["boot_id"] = section.boot_id
    if baseline:
        if section.more:
            store["baseline_pending"] = True  # the old log is not read through yet: keep skipping
        else:
            store.pop("baseline_pending", None)
        yield Result(
            Severity.OK,
            "OK",
            f"Baseline stored at kernel log record {section.last_seq}; new kernel errors from now on",
        )
        return
    assert isinstance(stored_seq, int)  # for mypy: `baseline` covers the other case
    new_boot = bool(stored_boot and section.boot_id and stored_boot != section.boot_id) or (
        not section.boot_id and not section.more and section.last_seq < stored_seq
    )
    since = -1 if new_boot else stored_seq
    records = lost = 0
    if section.first_seq is not None and section.last_seq > since:
        records = min(section.records, section.last_seq - since)
        lost = section.lost + max(0, section.first_seq - since - 1)
    ignore = [re.compile(p) for p in params.ignore]
    counts = dict.fromkeys(KIND_PATTERNS, 0)
    latest: dict[str, KernelEvent] = {}
    for event in section.events:
        if event.seq > since and not any(p.search(event.line) for p in ignore):
            counts[event.kind] += 1
            latest[event.kind] = event
    yield Metric("host_kernel_log_records_count", records, Unit.COUNT)
    yield Metric("host_kernel_log_lost_records_count", lost, Unit.COUNT)
    for kind, count in counts.items():
        yield Metric("host_kernel_events_count", count, Unit.COUNT, {"kind": kind.lower()})
    notes = []
    if new_boot:
        notes.append("host rebooted since the last run: the whole new boot's log was read")
    if lost:
        notes.append(f"{lost} record(s) overwritten before they were read")
    if section.more:
        notes.append("read limit reached, the rest follows next run")
    suffix = f" ({'; '.join(notes)})" if notes else ""
    if not latest:
        yield Result(Severity.OK, "OK", f"No kernel errors in {records} new log record(s){suffix}")
        return
    for kind in KIND_PATTERNS:  # fixed order: the most fundamental failure first
        if kind not in latest:
            continue
        event = latest[kind]
        severity = Severity(params.severity.get(kind, DEFAULT_SEVERITY[kind]))
        yield Result(
            severity,
            f"KERNEL_{kind}",
            f"{counts[kind]} {KIND_LABELS[kind]} in the kernel log since the last run{suffix}",
            details=f"[{event.uptime_s:.1f} s after boot] {event.line}",
        )


KERNEL_EVENTS = Check(
    name="host.kernel_events",
    layer=Layer.HOST,
    summary="Kernel log errors since the last run: hung tasks, lockups, I/O, filesystem and hardware errors",
    collect=collect_kernel_events,
    evaluate=evaluate_kernel_events,
    params=KernelEventsParams,
    keys=(
        "KERNEL_HARDWARE_ERROR",
        "KERNEL_LOCKUP",
        "KERNEL_HUNG_TASK",
        "KERNEL_FS_ERROR",
        "KERNEL_IO_ERROR",
        "KERNEL_NIC_TIMEOUT",
        "KERNEL_CONNTRACK_FULL",
        "KERNEL_SEGFAULT",
        "KERNEL_LOG_UNREADABLE",
    ),
    metrics=(
        MetricSpec(
            "host_kernel_events_count",
            Unit.COUNT,
            "Kernel log lines of one kind of failure since the last run",
            Direction.UP_IS_BAD,
            labels=("kind",),
        ),
        MetricSpec(
            "host_kernel_log_records_count", Unit.COUNT, "Kernel log records written since the last run"
        ),
        MetricSpec(
            "host_kernel_log_lost_records_count",
            Unit.COUNT,
            "Kernel log records overwritten in the ring buffer before the agent read them",
            Direction.UP_IS_BAD,
        ),
    ),
    interval_s=60,
    timeout_s=10,
)
