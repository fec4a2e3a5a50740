"""host.oom_kills: processes killed by the kernel's OOM killer since the last run.

The ``oom_kill`` counter of ``/proc/vmstat`` (kernel 4.13+) counts every OOM kill,
host-wide and inside memory cgroups. Its increase since the previous run is CRIT
OOM_KILLS; the first run only stores a baseline.

To name the victims the kernel log (``/dev/kmsg``) is read, non-blocking, but only
when the counter changed since this agent process last looked: reading the whole
ring buffer costs about 1 µs per record (0.4 ms for 350 records, up to ~10 ms for a
full 1 MiB buffer), far too much to pay every minute for an event that almost never
happens. Records newer than the last one reported (by kmsg sequence number, kept in
the store) are matched against ``Killed process <pid> (<name>)``. Without
permission (``kernel.dmesg_restrict = 1`` and no CAP_SYSLOG) or without
``/dev/kmsg`` (some containers) the victims are simply not named.

Sample of what :func:`collect_oom_kills` returns after a kill::

    OomSection(kills_total=3, victims=(OomVictim(seq=5012, uptime_s=84211.5, pid=4242,
               name='java', cgroup=True),), log_note=None)
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

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
from checks.host._common import read_vmstat
from checks.probe import Probe

KMSG = "/dev/kmsg"
MAX_KMSG_RECORDS = 20000
"""Bound on records read from the kernel log in one run (a 1 MiB buffer holds about 10,000)."""

_KILLED = re.compile(r"Killed process (\d+) \(([^)]*)\)")

_counter_seen: dict[str, int] = {}
"""``oom_kill`` value at this process's previous collect, per probe root: the kernel log
is read only when it changed (an optimisation only; alerting uses the store)."""


@dataclass(frozen=True, slots=True)
class OomVictim:
    seq: int
    uptime_s: float
    pid: int
    name: str
    cgroup: bool
    """Killed by a memory cgroup's limit rather than for the whole host."""


@dataclass(frozen=True, slots=True)
class OomSection:
    kills_total: int
    victims: tuple[OomVictim, ...] | None
    """Victims found in the kernel log; None when the log was not read this run."""
    log_note: str | None = None
    """Why the victims cannot be named (log unreadable), if so."""


class OomKillsParams(CheckParams):
    name_victims: bool = True
    """Read the kernel log (only when the counter moved) to name the killed processes."""


def parse_kmsg(data: bytes) -> tuple[OomVictim, ...]:
    """OOM victims in raw ``/dev/kmsg`` records (``prio,seq,usec,flags;message``).

    >>> parse_kmsg(b"3,812,9000000,-;Memory cgroup out of memory: Killed process 77 (java) total-vm:1kB\\n")
    (OomVictim(seq=812, uptime_s=9.0, pid=77, name='java', cgroup=True),)
    """
    victims: list[OomVictim] = []
    for line in data.decode("utf-8", errors="replace").splitlines():
        header, sep, message = line.partition(";")
        if not sep or line.startswith(" "):
            continue  # continuation lines (" SUBSYSTEM=...") carry no message
        match = _KILLED.search(message)
        if match is None:
            continue
        fields = header.split(",")
        try:
            seq, usec = int(fields[1]), int(fields[2])
        except (IndexError, ValueError):
            continue  # not a kmsg record header: ignore the line rather than the whole log
        victims.append(
            OomVictim(seq, usec / 1e6, int(match[1]), match[2], message.startswith("Memory cgroup"))
        )
    return tuple(victims)


def _read_kmsg(path: str) -> bytes:
    """All records currently in the ring buffer (each ``read`` returns one record)."""
    chunks: list[bytes] = []
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        for _ in range(MAX_KMSG_RECORDS):
            try:
                chunk = os.read(fd, 8192)
            except BlockingIOError:
                break  # EAGAIN: no more records
            except BrokenPipeError:
                continue  # EPIPE: the record we were at was overwritten; the next read resumes
            if not chunk:
                break  # a regular file (fixture) ends
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


def collect_oom_kills(probe: Probe, params: OomKillsParams) -> OomSection:
    vmstat = read_vmstat(probe)
    if "oom_kill" not in vmstat:
        raise ValueError("/proc/vmstat: no oom_kill counter (kernel older than 4.13?)")
    total = vmstat["oom_kill"]
    root = str(probe.root)
    changed = _counter_seen.get(root) != total
    _counter_seen[root] = total
    if not params.name_victims or total == 0 or not changed:
        return OomSection(total, None)
    try:
        data = _read_kmsg(str(probe.path(KMSG)))
    except FileNotFoundError:
        return OomSection(total, None, "no kernel log device here")
    except PermissionError:
        return OomSection(total, None, "kernel log not readable (kernel.dmesg_restrict)")
    return OomSection(total, parse_kmsg(data))


def evaluate_oom_kills(
    params: OomKillsParams, section: OomSection, store: ValueStore
) -> Iterator[Result | Metric]:
    delta = _delta(store, section.kills_total)
    # After a reboot (counter reset) the kmsg sequence numbers restart too: forget the old position.
    last_seq = store.get("kmsg_seq") if delta is not None else None
    victims = section.victims
    if victims:
        store["kmsg_seq"] = max(v.seq for v in victims)
    elif delta is None:
        store.pop("kmsg_seq", None)
    yield Metric("host_oom_kills_total_count", section.kills_total, Unit.COUNT)
    if delta is None:
        yield Result(
            Severity.OK,
            "OK",
            f"Baseline stored: {section.kills_total} OOM kills since boot; new ones from now on",
        )
        return
    yield Metric("host_oom_kills_count", delta, Unit.COUNT)
    if delta == 0:
        yield Result(Severity.OK, "OK", "No OOM kills since the last run")
        return
    summary = f"{delta:.0f} process(es) killed by the OOM killer since the last run"
    if victims is not None:
        if isinstance(last_seq, int):
            new = [v for v in victims if v.seq > last_seq]
        else:
            new = list(victims[-int(delta) :])  # no log position stored yet: the latest ones are ours
        if new:
            summary += ": " + ", ".join(
                f"{v.name}[{v.pid}]" + (" (cgroup limit)" if v.cgroup else "") for v in new[-10:]
            )
        else:
            summary += " (not found in the kernel log; it may have wrapped)"
    elif section.log_note:
        summary += f" ({section.log_note})"
    yield Result(Severity.CRIT, "OOM_KILLS", summary)


def _delta(store: ValueStore, total: int) -> float | None:
    previous = store.get("oom_kill")
    store["oom_kill"] = total
    if not isinstance(previous, int) or total < previous:
        return None  # first run, or the counter restarted with a reboot: a new baseline
    return float(total - previous)


OOM_KILLS = Check(
    name="host.oom_kills",
    layer=Layer.HOST,
    summary="Processes killed by the OOM killer since the last run",
    collect=collect_oom_kills,
    evaluate=evaluate_oom_kills,
    params=OomKillsParams,
    keys=("OOM_KILLS",),
    metrics=(
        MetricSpec("host_oom_kills_count", Unit.COUNT, "OOM kills since the last run", Direction.UP_IS_BAD),
        MetricSpec(
            "host_oom_kills_total_count",
            Unit.COUNT,
            "OOM kills since boot (vmstat oom_kill)",
            Direction.UP_IS_BAD,
        ),
    ),
    interval_s=60,
    timeout_s=10,
)
