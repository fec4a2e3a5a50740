"""application.process: are the product's processes running, how many, and what do they use.

Each configured process group matches a regex against the process name (the 15-byte
``comm`` from ``/proc/<pid>/stat``) or, when the name does not match, against the
command line. Data comes from the shared per-cycle process table
(:mod:`checks.proctable`); no extra ``/proc`` scan.

Reading ``/proc/<pid>/cmdline`` costs one open/read/close per process (about 9 µs
each here, 0.85 ms for 95 processes), more than the rest of this check. So:

- a process whose name already matches is never asked for its command line;
- kernel threads (children of ``kthreadd``) have no command line and are matched by
  name only;
- the cmdline verdicts of a process are remembered between cycles, keyed by
  ``pid:start`` and its name (an ``exec`` changes the name, so it forces a re-read),
  and re-read after ``cmdline_recheck_s`` for programs that rewrite their title
  (PostgreSQL's ``postgres: walwriter``). The memory is bounded by the live
  processes and holds bitmasks, not command lines.

CPU percent is the summed tick delta of the group's processes per elapsed second
(100 % = one core), keyed by process identity in the store; a process that started
after the previous run counts with all its ticks, one that existed but was not
tracked counts from the next run.

Sample of what :func:`collect_process` returns::

    ProcessSection(uptime_s=5081.3, groups=(ProcessGroup(name='billing', members=(
        Member(identity='812:4410', start_ticks=4410, cpu_ticks=1553, rss_bytes=412348416),
        Member(identity='813:4412', start_ticks=4412, cpu_ticks=22, rss_bytes=81203200))),))
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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
    SkipCheck,
    Unit,
    ValueStore,
    check_levels,
    render_bytes,
    render_percent,
)
from checks.probe import Probe
from checks.proctable import CLOCK_TICKS, ProcessInfo, process_table, read_cmdline

__all__ = [
    "PROCESS",
    "Member",
    "ProcessGroup",
    "ProcessParams",
    "ProcessSection",
    "ProcessSpec",
    "clear_cmdline_cache",
    "collect_process",
    "evaluate_process",
]

KTHREADD_PID = 2


class ProcessSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    name: str = Field(min_length=1)
    """Group name: result item and ``name`` label."""
    match: str
    """Regex searched in the process name, then (if that fails) in the command line."""
    user: str | None = None
    """Only processes of this user (name or numeric uid)."""
    min_count: int = Field(default=1, ge=0)
    """Fewer matching processes is CRIT PROCESS_MISSING."""
    max_count: int | None = Field(default=None, ge=0)
    """More matching processes is WARN PROCESS_TOO_MANY."""
    levels_cpu_percent: Levels | None = None
    """(warn, crit) summed CPU percent of the group (100 = one core)."""
    levels_rss_bytes: Levels | None = None
    """(warn, crit) summed resident memory of the group."""

    @field_validator("match")
    @classmethod
    def _valid_regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _counts(self) -> ProcessSpec:
        if self.max_count is not None and self.max_count < self.min_count:
            raise ValueError("max_count is below min_count")
        return self


class ProcessParams(CheckParams):
    processes: tuple[ProcessSpec, ...] = ()
    """Process groups to watch."""
    cmdline_recheck_s: float = Field(default=300.0, ge=0)
    """Seconds a remembered command-line verdict is trusted; 0 reads every cycle."""

    @field_validator("processes")
    @classmethod
    def _unique_names(cls, value: tuple[ProcessSpec, ...]) -> tuple[ProcessSpec, ...]:
        names = [p.name for p in value]
        if len(set(names)) != len(names):
            raise ValueError("process group names must be unique")
        return value


@dataclass(frozen=True, slots=True)
class Member:
    identity: str
    start_ticks: int
    cpu_ticks: int
    rss_bytes: int


@dataclass(frozen=True, slots=True)
class ProcessGroup:
    name: str
    members: tuple[Member, ...]


@dataclass(frozen=True, slots=True)
class ProcessSection:
    uptime_s: float
    """Seconds since boot when the table was read: a clock that wall-time jumps do not move."""
    groups: tuple[ProcessGroup, ...]
    clock_ticks: int = CLOCK_TICKS


# --- the cmdline verdict memory -----------------------------------------------------------


@dataclass
class _Verdicts:
    patterns: tuple[str, ...]
    entries: dict[str, tuple[str, float, int]] = field(default_factory=dict)
    """identity -> (name when read, monotonic read time, bitmask of specs matching the cmdline)."""


_VERDICTS: dict[str, _Verdicts] = {}
"""Per probe root. Lives as long as the agent process: across cycles, not in the store,
because ``collect`` cannot see the store and this is a cache, not state."""


def clear_cmdline_cache() -> None:
    """Forget every remembered cmdline verdict (tests; config reloads)."""
    _VERDICTS.clear()


def _is_kernel_thread(proc: ProcessInfo) -> bool:
    return proc.pid == KTHREADD_PID or proc.ppid == KTHREADD_PID


def _uid_of(probe: Probe, user: str) -> int | None:
    if user.isdigit():
        return int(user)

    def load() -> dict[str, int]:
        users: dict[str, int] = {}
        for line in probe.read_text("/etc/passwd").splitlines():
            fields = line.split(":")
            if len(fields) >= 3 and fields[2].isdigit():
                users[fields[0]] = int(fields[2])
        return users

    return probe.memo("passwd_uids", load).get(user)


def collect_process(probe: Probe, params: ProcessParams) -> ProcessSection:
    if not params.processes:
        raise SkipCheck("no processes configured")
    uptime_text = probe.memo("proc_uptime", lambda: probe.read_text("/proc/uptime"))
    try:
        uptime = float(uptime_text.split()[0])
    except (IndexError, ValueError):
        raise ValueError(f"/proc/uptime: expected 'seconds idle', got {uptime_text[:40]!r}") from None
    specs = params.processes
    regexes = [re.compile(spec.match) for spec in specs]
    patterns = tuple(spec.match for spec in specs)
    root = str(probe.root)
    verdicts = _VERDICTS.get(root)
    if verdicts is None or verdicts.patterns != patterns:
        verdicts = _VERDICTS[root] = _Verdicts(patterns)
    now = probe.monotonic()
    all_bits = (1 << len(specs)) - 1
    seen: dict[str, tuple[str, float, int]] = {}
    members: list[list[Member]] = [[] for _ in specs]
    for proc in process_table(probe):
        matched = 0
        for index, regex in enumerate(regexes):
            if regex.search(proc.name):
                matched |= 1 << index
        if matched != all_bits and not _is_kernel_thread(proc):
            identity = proc.identity
            entry = verdicts.entries.get(identity)
            if entry is None or entry[0] != proc.name or now - entry[1] >= params.cmdline_recheck_s:
                cmdline = read_cmdline(probe, proc.pid)
                bits = 0
                for index, regex in enumerate(regexes):
                    if cmdline and regex.search(cmdline):
                        bits |= 1 << index
                entry = (proc.name, now, bits)
            seen[identity] = entry
            matched |= entry[2]
        if not matched:
            continue
        member = Member(proc.identity, proc.start_ticks, proc.cpu_ticks, proc.rss_bytes)
        for index in range(len(specs)):
            if matched >> index & 1:
                members[index].append(member)
    verdicts.entries = seen  # drop exited processes: bounded by the live process count
    groups: list[ProcessGroup] = []
    for spec, found in zip(specs, members, strict=True):
        if spec.user is not None:
            found = _filter_user(probe, spec.user, found)
        groups.append(ProcessGroup(spec.name, tuple(found)))
    return ProcessSection(uptime, tuple(groups))


def _filter_user(probe: Probe, user: str, found: list[Member]) -> list[Member]:
    uid = _uid_of(probe, user)
    if uid is None:
        return []
    kept: list[Member] = []
    for member in found:
        pid = member.identity.split(":", 1)[0]
        try:
            owner = os.stat(probe.path(f"/proc/{pid}")).st_uid
        except FileNotFoundError:
            continue  # exited since the table was read
        if owner == uid:
            kept.append(member)
    return kept


# --- evaluate ----------------------------------------------------------------------------


def evaluate_process(
    params: ProcessParams, section: ProcessSection, store: ValueStore
) -> Iterator[Result | Metric]:
    groups = {g.name: g for g in section.groups}
    for spec in params.processes:
        group = groups.get(spec.name)
        if group is not None:
            yield from _evaluate_group(spec, group, section, store)


def _count_text(count: int) -> str:
    return f"{count} process" + ("" if count == 1 else "es")


def _evaluate_group(
    spec: ProcessSpec, group: ProcessGroup, section: ProcessSection, store: ValueStore
) -> Iterator[Result | Metric]:
    item = spec.name
    labels = {"name": item}
    count = len(group.members)
    who = f" of user {spec.user}" if spec.user else ""
    if count < spec.min_count:
        summary = (
            f"No process{who} matches {spec.match!r}"
            if count == 0
            else f"{_count_text(count)}{who}, expected at least {spec.min_count}"
        )
        yield Result(Severity.CRIT, "PROCESS_MISSING", summary, item)
    elif spec.max_count is not None and count > spec.max_count:
        yield Result(
            Severity.WARN,
            "PROCESS_TOO_MANY",
            f"{_count_text(count)}{who}, expected at most {spec.max_count}",
            item,
        )
    else:
        yield Result(Severity.OK, "OK", f"{_count_text(count)}{who}", item)
    yield Metric("app_process_count", count, Unit.COUNT, labels)
    rss = sum(m.rss_bytes for m in group.members)
    yield Metric("app_process_rss_bytes", rss, Unit.BYTES, labels)
    if spec.levels_rss_bytes is not None:
        yield check_levels(
            rss,
            key="PROCESS_RSS_HIGH",
            label="Resident memory",
            levels_upper=spec.levels_rss_bytes,
            render=render_bytes,
            item=item,
        )
    cpu = _cpu_percent(group, section, store, f"cpu:{spec.name}")
    if cpu is not None:
        yield Metric("app_process_cpu_percent", cpu, Unit.PERCENT, labels)
        if spec.levels_cpu_percent is not None:
            yield check_levels(
                cpu,
                key="PROCESS_CPU_HIGH",
                label="CPU (100% = one core)",
                levels_upper=spec.levels_cpu_percent,
                render=render_percent,
                item=item,
            )


def _cpu_percent(group: ProcessGroup, section: ProcessSection, store: ValueStore, key: str) -> float | None:
    previous = store.get(key)
    store[key] = {"uptime": section.uptime_s, "ticks": {m.identity: m.cpu_ticks for m in group.members}}
    if not previous:
        return None
    elapsed = section.uptime_s - float(previous["uptime"])
    if elapsed <= 0:
        return None  # rebooted (uptime went back) or read twice in one tick
    old_ticks: dict[str, int] = previous["ticks"]
    since_ticks = float(previous["uptime"]) * section.clock_ticks
    delta = 0
    for member in group.members:
        before = old_ticks.get(member.identity)
        if before is not None:
            delta += max(member.cpu_ticks - before, 0)
        elif member.start_ticks >= since_ticks:
            delta += member.cpu_ticks  # born since the last run: all its ticks are new
    return delta / section.clock_ticks / elapsed * 100


PROCESS = Check(
    name="application.process",
    layer=Layer.APPLICATION,
    summary="Product processes: count, CPU and memory per configured group",
    collect=collect_process,
    evaluate=evaluate_process,
    params=ProcessParams,
    keys=("PROCESS_MISSING", "PROCESS_TOO_MANY", "PROCESS_CPU_HIGH", "PROCESS_RSS_HIGH"),
    metrics=(
        MetricSpec(
            "app_process_count", Unit.COUNT, "Processes matching the group", Direction.DOWN_IS_BAD, ("name",)
        ),
        MetricSpec(
            "app_process_cpu_percent",
            Unit.PERCENT,
            "Summed CPU use of the group's processes (100 = one core)",
            Direction.UP_IS_BAD,
            ("name",),
        ),
        MetricSpec(
            "app_process_rss_bytes",
            Unit.BYTES,
            "Summed resident memory of the group's processes",
            Direction.UP_IS_BAD,
            ("name",),
        ),
    ),
    interval_s=60,
    timeout_s=10,
)
