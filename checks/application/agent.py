"""application.agent: the diagnostic agent's own health, as the host sees it.

The agent is vendor software running on the customer's host too, and it must never
become the problem it is there to find. From the process itself (through the probe,
so a fixture tree stands in for it in tests):

- ``/proc/self/stat``: CPU seconds (user + system), threads, resident memory (the
  ``rss`` field, the same counter as ``VmRSS`` of ``/proc/self/status``: one read
  instead of two) and the process identity (pid and start time);
- ``/proc/self/fd``: open descriptors (the listing itself holds one of them).

From the agent's own bookkeeping, ``probe.agent_status`` (filled by the agent before
each cycle; any key may be missing, as in a one-shot ``diag-agent checks``):
``spool_depth``, ``spool_bytes``, ``dropped_total`` (results the spool had to discard),
``abandoned_threads`` (checks stuck past their timeout whose threads have not
returned; a count or their names), ``last_cycle_cpu_ms`` and ``last_cycle_s``.

Results: resident memory over ``levels_rss_mib`` is ``AGENT_MEMORY_HIGH``; CPU over
``levels_cpu_percent`` of one core since the last run is ``AGENT_CPU_HIGH``; results
dropped since the last run are CRIT ``AGENT_DROPPED_RESULTS`` (the vendor lost data);
abandoned check threads warn as ``AGENT_CHECKS_HUNG``. CPU and drops are deltas in
the store; the CPU baseline restarts with the agent process (new pid or start time),
the drop counter lives in the spool on disk and keeps its baseline.

Sample of what :func:`collect_agent` returns (``/proc/self`` of a Python process with
four threads on this project's build machine, with an agent status as the agent's
cycle shares it; the ``x5-agent`` test fixture)::

    AgentSection(now=1700000000.0, identity='28972:294197', cpu_seconds=0.65, rss_bytes=45424640,
                 threads=4, open_fds=7, spool_depth=12, spool_bytes=18432, dropped_total=0,
                 abandoned=0, abandoned_checks=(), last_cycle_cpu_s=0.0052, last_cycle_s=0.41)
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

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
    get_delta,
    get_rate,
    render_bytes,
    render_percent,
)
from checks.host.file_descriptors import kernel_at_least
from checks.probe import Probe
from checks.proctable import CLOCK_TICKS, parse_stat_line

__all__ = ["AGENT", "AgentParams", "AgentSection", "collect_agent", "evaluate_agent", "parse_agent_status"]

STAT = "/proc/self/stat"
FD_DIR = "/proc/self/fd"
MIB = 1024 * 1024
_FD_DIR_SIZE_IS_COUNT = kernel_at_least(os.uname().release, 6, 2)


@dataclass(frozen=True, slots=True)
class AgentSection:
    now: float
    identity: str
    """``pid:start_ticks`` of the agent process: changes when the agent restarts."""
    cpu_seconds: float
    rss_bytes: int
    threads: int
    open_fds: int
    spool_depth: int | None = None
    spool_bytes: int | None = None
    dropped_total: int | None = None
    abandoned: int | None = None
    abandoned_checks: tuple[str, ...] = ()
    last_cycle_cpu_s: float | None = None
    last_cycle_s: float | None = None


class AgentParams(CheckParams):
    levels_rss_mib: Levels = (60.0, 120.0)
    """(warn, crit) resident memory of the agent in MiB."""
    levels_cpu_percent: Levels = (5.0, 20.0)
    """(warn, crit) CPU used by the agent since the last run, percent of one core."""


def _number(status: Mapping[str, Any], key: str) -> float | None:
    value = status.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"agent status: {key} must be a non-negative number, got {value!r}")
    return float(value)


def parse_agent_status(status: Mapping[str, Any]) -> dict[str, Any]:
    """Validate what the agent shares about itself; missing keys stay None.

    >>> parse_agent_status({"spool_depth": 3, "abandoned_threads": ["storage.nfs"], "last_cycle_cpu_ms": 6.5})
    ... # doctest: +NORMALIZE_WHITESPACE
    {'spool_depth': 3, 'spool_bytes': None, 'dropped_total': None, 'abandoned': 1,
     'abandoned_checks': ('storage.nfs',), 'last_cycle_cpu_s': 0.0065, 'last_cycle_s': None}
    """
    abandoned_raw = status.get("abandoned_threads")
    names: tuple[str, ...] = ()
    if isinstance(abandoned_raw, list | tuple):
        names = tuple(str(name) for name in abandoned_raw)
        abandoned: float | None = float(len(names))
    else:
        abandoned = _number(status, "abandoned_threads")
    cpu_ms = _number(status, "last_cycle_cpu_ms")
    depth, size, dropped = (_number(status, k) for k in ("spool_depth", "spool_bytes", "dropped_total"))
    return {
        "spool_depth": None if depth is None else int(depth),
        "spool_bytes": None if size is None else int(size),
        "dropped_total": None if dropped is None else int(dropped),
        "abandoned": None if abandoned is None else int(abandoned),
        "abandoned_checks": names,
        "last_cycle_cpu_s": None if cpu_ms is None else cpu_ms / 1000.0,
        "last_cycle_s": _number(status, "last_cycle_s"),
    }


def _count_open_fds(probe: Probe) -> int:
    """Entries of ``/proc/self/fd``, the listing's own descriptor included.

    Since Linux 6.2 the directory's size is its number of entries: one ``stat``
    instead of listing the agent's descriptors (it keeps ~150 kernel files open between
    cycles). The listing would hold one more descriptor, counted here as it always was.
    """
    if probe.is_host_root and _FD_DIR_SIZE_IS_COUNT:
        size = os.stat(FD_DIR).st_size
        if size > 0:  # 0: a kernel that does not count after all; list below
            return size + 1
    return len(probe.listdir(FD_DIR))


def collect_agent(probe: Probe, params: AgentParams) -> AgentSection:
    line = probe.read_text(STAT)
    try:
        info = parse_stat_line(line)
    except ValueError as exc:
        raise ValueError(f"{STAT}: cannot parse {line[:80]!r}: {exc}") from None
    return AgentSection(
        now=probe.now(),
        identity=info.identity,
        cpu_seconds=info.cpu_ticks / CLOCK_TICKS,
        rss_bytes=info.rss_bytes,
        threads=info.threads,
        open_fds=_count_open_fds(probe),
        **parse_agent_status(probe.agent_status),
    )


def evaluate_agent(
    params: AgentParams, section: AgentSection, store: ValueStore
) -> Iterator[Result | Metric]:
    if store.get("identity") != section.identity:
        # A new agent process: its CPU counter starts again. The spool's drop counter is
        # kept on disk across restarts, so its baseline stays (a reset is caught by get_delta).
        store.pop("cpu", None)
        store["identity"] = section.identity

    yield Metric("app_agent_rss_bytes", section.rss_bytes, Unit.BYTES)
    yield Metric("app_agent_threads_count", section.threads, Unit.COUNT)
    yield Metric("app_agent_open_fds_count", section.open_fds, Unit.COUNT)
    yield Metric("app_agent_cpu_seconds", section.cpu_seconds, Unit.SECONDS)
    warn, crit = params.levels_rss_mib
    yield check_levels(
        section.rss_bytes,
        key="AGENT_MEMORY_HIGH",
        label=f"Agent resident memory ({section.threads} threads, {section.open_fds} open files)",
        levels_upper=(warn * MIB, crit * MIB),
        render=render_bytes,
    )

    rate = get_rate(store, "cpu", section.now, section.cpu_seconds)
    if rate is not None:
        percent = 100.0 * rate
        yield Metric("app_agent_cpu_percent", percent, Unit.PERCENT)
        yield check_levels(
            percent,
            key="AGENT_CPU_HIGH",
            label="Agent CPU since the last run (one core = 100%)",
            levels_upper=params.levels_cpu_percent,
            render=render_percent,
        )

    if section.spool_depth is not None:
        yield Metric("app_agent_spool_depth_count", section.spool_depth, Unit.COUNT)
    if section.spool_bytes is not None:
        yield Metric("app_agent_spool_bytes", section.spool_bytes, Unit.BYTES)
    if section.last_cycle_cpu_s is not None:
        yield Metric("app_agent_cycle_cpu_seconds", section.last_cycle_cpu_s, Unit.SECONDS)
    if section.last_cycle_s is not None:
        yield Metric("app_agent_cycle_duration_seconds", section.last_cycle_s, Unit.SECONDS)

    if section.dropped_total is not None:
        dropped = get_delta(store, "dropped_total", section.dropped_total)
        if dropped is not None:
            yield Metric("app_agent_dropped_results_count", dropped, Unit.COUNT)
            if dropped:
                spool = [] if section.spool_depth is None else [f"{section.spool_depth} results"]
                if section.spool_bytes is not None:
                    spool.append(render_bytes(section.spool_bytes))
                held = f" (spool holds {', '.join(spool)})" if spool else ""
                yield Result(
                    Severity.CRIT,
                    "AGENT_DROPPED_RESULTS",
                    f"The agent dropped {dropped:.0f} result(s) since the last run: they are lost "
                    f"to the vendor{held}",
                )

    if section.abandoned is not None:
        yield Metric("app_agent_abandoned_threads_count", section.abandoned, Unit.COUNT)
        if section.abandoned:
            names = f": {', '.join(section.abandoned_checks[:10])}" if section.abandoned_checks else ""
            yield Result(
                Severity.WARN,
                "AGENT_CHECKS_HUNG",
                f"{section.abandoned} check thread(s) stuck past their timeout{names} "
                "(a hung NFS mount or a blocked command; those checks do not run until they return)",
            )


AGENT = Check(
    name="application.agent",
    layer=Layer.APPLICATION,
    summary="The diagnostic agent's own CPU, memory, threads, files, spool, drops and hung checks",
    collect=collect_agent,
    evaluate=evaluate_agent,
    params=AgentParams,
    keys=("AGENT_MEMORY_HIGH", "AGENT_CPU_HIGH", "AGENT_DROPPED_RESULTS", "AGENT_CHECKS_HUNG"),
    metrics=(
        MetricSpec(
            "app_agent_rss_bytes", Unit.BYTES, "Resident memory of the agent process", Direction.UP_IS_BAD
        ),
        MetricSpec(
            "app_agent_threads_count", Unit.COUNT, "Threads of the agent process", Direction.UP_IS_BAD
        ),
        MetricSpec(
            "app_agent_open_fds_count",
            Unit.COUNT,
            "Open file descriptors of the agent process",
            Direction.UP_IS_BAD,
        ),
        MetricSpec(
            "app_agent_cpu_seconds", Unit.SECONDS, "CPU time used by the agent process since it started"
        ),
        MetricSpec(
            "app_agent_cpu_percent",
            Unit.PERCENT,
            "CPU used by the agent since the last run (one core = 100)",
            Direction.UP_IS_BAD,
        ),
        MetricSpec(
            "app_agent_spool_depth_count",
            Unit.COUNT,
            "Results waiting in the agent's spool for the collector's acknowledgement",
            Direction.UP_IS_BAD,
        ),
        MetricSpec(
            "app_agent_spool_bytes", Unit.BYTES, "Bytes held by the agent's spool", Direction.UP_IS_BAD
        ),
        MetricSpec(
            "app_agent_cycle_cpu_seconds",
            Unit.SECONDS,
            "CPU time of the agent's last check cycle",
            Direction.UP_IS_BAD,
        ),
        MetricSpec(
            "app_agent_cycle_duration_seconds",
            Unit.SECONDS,
            "Wall time of the agent's last check cycle",
            Direction.UP_IS_BAD,
        ),
        MetricSpec(
            "app_agent_dropped_results_count",
            Unit.COUNT,
            "Results the agent's spool discarded since the last run",
            Direction.UP_IS_BAD,
        ),
        MetricSpec(
            "app_agent_abandoned_threads_count",
            Unit.COUNT,
            "Check threads stuck past their timeout and not yet returned",
            Direction.UP_IS_BAD,
        ),
    ),
    interval_s=60,
    rates=True,
    timeout_s=5,
)
