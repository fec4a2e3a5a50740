"""The daemon's loop: per-check intervals with deterministic jitter, timeouts, clean stop.

Timing. Check ``c`` runs at ``anchor_c + n * interval_c`` on the monotonic clock, where
``anchor_c = start + offset_c`` and ``offset_c`` is a hash of (agent id, check name)
spread over ``[0, min(jitter, interval_c))``. Due times are computed from the anchor,
never from the previous run's end, so there is no drift; a run that cannot start at
its slot (the previous one is still running, or was abandoned after a timeout and has
not returned) is *missed* and counted, and the next slot is the next one in the future.
The fixed per-agent offsets spread a fleet's load on the collector and the start-up of
one host's checks over the jitter window.

Shared data. ``probe.new_cycle()`` clears the memoised per-cycle data (process table,
mount list) when a wave of checks starts and the cache is older than the jitter window,
so every check of one cycle shares one snapshot and no snapshot is older than the
jitter window.

Output. Finished records are buffered and written to the :class:`~agent.sink.Sink` in
one batch when a wave is over (nothing running, nothing due within a second) or after
at most :data:`MAX_FLUSH_DELAY_S`. Once per base interval a self-health snapshot goes to
the sink too.

Inspections. :meth:`Scheduler.request_inspection` (any thread: the streamer's) queues a
collector's ``InspectionRequest``; the loop runs one inspection at a time (see
:mod:`agent.inspection`): the selected checks start at once on the same worker pool
under their own task names (``inspection:<check>``), so the scheduled runs keep their
slots; they run on a copy of the check's state that is not kept, with timeouts cut so
they end before the request's deadline. Their records carry the inspection id; when
the last is in, the agent check's tagged record (the completion marker) is buffered
after them and everything is written at once.

Stopping. :meth:`Scheduler.request_stop` (safe in a signal handler) ends the loop: no
new checks start, running ones get ``grace_s`` to finish (those that do are kept), the
rest are abandoned; then records, a last health snapshot and the checks' state are
written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import queue
import resource
import threading
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent import __version__
from agent.config import CheckPlan
from agent.inspection import (
    AGENT_CHECK,
    Inspection,
    InspectionQueue,
    marker_record,
    request_from_proto,
    select,
    tag,
)
from agent.records import CheckRecord
from agent.runner import (
    IO,
    LOCAL,
    CheckOutcome,
    OutcomeKind,
    Task,
    TaskState,
    WorkerPool,
    execute_check,
    scrub,
    timeout_record,
)
from agent.sink import Sink
from agent.spool import encode_json, encode_record
from agent.state import StateStore
from checks.probe import Probe

__all__ = ["CheckSchedule", "Scheduler", "start_offset"]

log = logging.getLogger("diag_agent.scheduler")

MAX_FLUSH_DELAY_S = 5.0
"""Longest a finished record waits in memory before it is written to the sink."""
QUIET_BEFORE_FLUSH_S = 1.0
"""Flush early when nothing runs and nothing is due for this long."""
MAX_PENDING = 20_000
"""Records buffered while the sink fails; beyond this the oldest are dropped (and logged)."""
WAVES = 3
"""Start moments per jitter window for one agent (see :func:`start_offset`)."""
START_AHEAD_S = 0.25
"""A check due within this long joins the wave starting now (fewer wake-ups, shared data)."""
INVENTORY_TASK = "agent.inventory"
INSPECTION_TASK_PREFIX = "inspection:"
"""Task names of an inspection's runs: ``inspection:<check>``, apart from the scheduled ones."""
_WAKE = object()


def _fraction(text: str) -> float:
    # CRC-32 spreads ids evenly enough for jitter; hashlib would load OpenSSL (3 MB RSS).
    return zlib.crc32(text.encode()) / 2.0**32


def start_offset(agent_id: str, check: str, spread_s: float) -> float:
    """Deterministic offset in ``[0, spread_s)`` for this agent and check.

    Each agent has :data:`WAVES` evenly spaced start moments in the window, rotated by
    a phase from its id (a fleet covers the whole window); each check is assigned to
    one wave by hashing (agent id, check). One host's checks thus start in a few
    bursts that share data and wake-ups, not one by one.

    >>> start_offset("web-1", "host.load", 6.0) == start_offset("web-1", "host.load", 6.0)
    True
    >>> 0 <= start_offset("web-2", "host.load", 6.0) < 6.0
    True
    >>> len({round(start_offset("web-1", f"host.c{i}", 6.0), 6) for i in range(50)}) == WAVES
    True
    """
    if spread_s <= 0:
        return 0.0
    phase = _fraction(agent_id) * spread_s
    wave = int(_fraction(f"{agent_id}\0{check}") * WAVES)
    return (phase + wave * spread_s / WAVES) % spread_s


@dataclass
class CheckSchedule:
    """One check's timing and counters."""

    plan: CheckPlan
    anchor: float
    next_due: float
    runs: int = 0
    timeouts: int = 0
    errors: int = 0
    skips: int = 0
    missed: int = 0
    last_severity: str | None = None
    last_duration_ms: float | None = None
    last_cpu_ms: float | None = None
    failing_key: str | None = None
    """CHECK_ERROR etc. while the check is failing (logged on change only)."""

    @property
    def name(self) -> str:
        """The check's name."""
        return self.plan.name

    start_ahead_s: float = 0.0
    """How early this check may start to join a wave (never more than 5% of its interval)."""

    def advance(self, now: float) -> None:
        """Move ``next_due`` to the first slot strictly after ``now``."""
        interval = self.plan.interval_s
        slots = max(math.floor((now - self.anchor) / interval) + 1, 1)
        while self.anchor + slots * interval <= now:  # float rounding at an exact slot boundary
            slots += 1
        self.next_due = self.anchor + slots * interval


@dataclass
class _RunningInspection:
    inspection: Inspection
    pending: set[str] = field(default_factory=set)
    """Task names not finished yet."""
    ran: list[str] = field(default_factory=list)
    unavailable: list[tuple[str, str]] = field(default_factory=list)
    agent_requested: bool = False


@dataclass
class _Buffer:
    records: list[CheckRecord] = field(default_factory=list)
    payloads: list[bytes | None] = field(default_factory=list)
    oldest: float | None = None
    dropped: int = 0
    retry_at: float = 0.0
    """After a failed write: no new attempt before this moment (no hot retry loop)."""


class Scheduler:
    """Runs ``plans`` on their intervals until stopped (or once, with ``once=True``)."""

    def __init__(
        self,
        plans: Sequence[CheckPlan],
        *,
        probe: Probe,
        state: StateStore,
        sink: Sink,
        agent_id: str,
        base_interval_s: float,
        jitter_s: float,
        max_workers: int = 4,
        secrets: Sequence[str] = (),
        inventory: Callable[[], Mapping[str, Any]] | None = None,
        inventory_interval_s: float = 3600.0,
        inspections: InspectionQueue | None = None,
        state_save_interval_s: float = 120.0,
        grace_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.plans = [p for p in plans if p.enabled]
        self.all_plans = list(plans)
        """Every plan, disabled ones too: an inspection names what is not available and why."""
        self.inspections = inspections if inspections is not None else InspectionQueue()
        self._inspection: _RunningInspection | None = None
        self.inspections_answered = 0
        self.probe = probe
        self.state = state
        self.sink = sink
        self.agent_id = agent_id
        self.base_interval_s = base_interval_s
        self.jitter_s = jitter_s
        self.secrets = tuple(secrets)
        self.inventory = inventory
        self.inventory_interval_s = inventory_interval_s
        self.state_save_interval_s = state_save_interval_s
        self.grace_s = grace_s
        self.clock = clock
        self.wall_clock = wall_clock
        self.completions: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.pool: WorkerPool[Any] = WorkerPool(max_workers, self.completions, clock, wake_when_idle=True)
        self.schedules: dict[str, CheckSchedule] = {}
        self.cycles_health = 0
        self._stop = threading.Event()
        self._buffer = _Buffer()
        self._cycle_started: float | None = None
        self._last_inventory: bytes | None = None
        self._health_due = False
        self._cpu_at_health = _process_cpu()
        self._cpu_at_cycle = self._cpu_at_health

    # -- control ---------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Ask the loop to stop; safe to call from a signal handler or another thread."""
        self._stop.set()
        self.completions.put(_WAKE)  # SimpleQueue.put is reentrant: fine in a signal handler

    def request_inspection(self, request: Any) -> bool:
        """Queue an ``agent.wire.InspectionRequest`` (any thread). False when it was ignored
        (invalid id, duplicate, queue full; logged)."""
        queued = self.inspections.offer(request_from_proto(request))
        if queued:
            self.completions.put(_WAKE)
        return queued

    def wake(self) -> None:
        """Make the loop look at its queues now (safe from any thread)."""
        self.completions.put(_WAKE)

    @property
    def stopping(self) -> bool:
        """True once a stop was requested."""
        return self._stop.is_set()

    # -- the loop --------------------------------------------------------------------------

    def run(self, once: bool = False) -> None:
        """Run until :meth:`request_stop` (or, with ``once``, until every check ran once)."""
        start = self.clock()
        for plan in self.plans:
            spread = 0.0 if once else min(self.jitter_s, plan.interval_s)
            anchor = start + start_offset(self.agent_id, plan.name, spread)
            ahead = min(START_AHEAD_S, plan.interval_s * 0.05)
            self.schedules[plan.name] = CheckSchedule(plan, anchor, anchor, start_ahead_s=ahead)
        next_health = start + self.base_interval_s
        next_save = start + self.state_save_interval_s
        next_inventory = start if self.inventory is not None else math.inf
        log.info(
            "agent %s started: %d checks, base interval %g s, jitter %g s",
            self.agent_id,
            len(self.schedules),
            self.base_interval_s,
            self.jitter_s,
        )
        try:
            while not self.stopping:
                now = self.clock()
                self._expire(now)
                self._start_due(now, once)
                self._start_inspection(now)
                if now >= next_inventory:
                    self._start_inventory()
                    next_inventory = math.inf if once else now + self.inventory_interval_s
                if once and self._all_done():
                    break
                self._maybe_flush(now)
                if now >= next_health:
                    self._health_due = True
                    if self._buffer.oldest is None:
                        self._buffer.oldest = now  # written with the next wave's records, or by itself soon
                    next_health += self.base_interval_s * max(
                        1, math.ceil((now - next_health) / self.base_interval_s)
                    )
                if now >= next_save:
                    self._save_state()
                    next_save = now + self.state_save_interval_s
                self._wait(min(self._next_wake(), next_health, next_save, next_inventory))
        finally:
            self._shutdown()

    def _start_due(self, now: float, once: bool) -> None:
        # A run that finished since the last wake-up commits its state before the next starts.
        self._drain_finished()
        # Checks due within a moment start with this wave: one wake-up, one shared snapshot.
        due = [s for s in self.schedules.values() if s.next_due <= now + s.start_ahead_s]
        if not due:
            return
        self._maybe_new_cycle(now)
        for sched in due:
            if self.pool.busy(sched.name):
                sched.missed += 1
                log.debug("check %s still running at its next slot; slot missed", sched.name)
            else:
                self._submit(sched)
            if once:
                sched.next_due = math.inf
            else:
                sched.advance(max(now, sched.next_due))

    def _maybe_new_cycle(self, now: float) -> None:
        if self._cycle_started is None or now - self._cycle_started >= self.jitter_s:
            self.probe.new_cycle()
            self.probe.agent_status = self._agent_status(now)
            self._cycle_started = now

    def _submit(self, sched: CheckSchedule) -> None:
        plan = sched.plan
        store = self.state.checkout(plan.name)
        probe, secrets = self.probe, self.secrets

        def run() -> tuple[CheckOutcome, bytes | None]:
            outcome = execute_check(plan, probe, store, secrets)
            # Encode here, in the worker, while the record is hot: cheaper than later.
            return outcome, encode_record(outcome.record) if outcome.record is not None else None

        self.pool.submit(
            plan.name, run, plan.timeout_s, self.wall_clock(), IO if plan.check.blocking else LOCAL
        )

    def _start_inventory(self) -> None:
        if self.inventory is None or self.pool.busy(INVENTORY_TASK):
            return
        self.pool.submit(
            INVENTORY_TASK, lambda: dict(self.inventory() if self.inventory else {}), 120.0, lane=IO
        )

    def _all_done(self) -> bool:
        return all(s.next_due == math.inf for s in self.schedules.values()) and self.pool.inflight == 0

    def _next_wake(self) -> float:
        wake = min((s.next_due for s in self.schedules.values()), default=math.inf)
        deadline = self.pool.next_deadline()
        if deadline is not None:
            wake = min(wake, deadline)
        if self._buffer.oldest is not None:
            wake = min(wake, self._buffer.oldest + MAX_FLUSH_DELAY_S)
        return wake

    def _wait(self, until: float) -> None:
        """Sleep until ``until``, the pool going idle or a stop request; then handle finished runs."""
        timeout = until - self.clock()
        if timeout > 0:
            # Empty: woke for a timer; the loop looks at what is due.
            with contextlib.suppress(queue.Empty):
                self.completions.get(timeout=min(timeout, 3600.0))
        while True:  # drop further tokens: one pass over ``finished`` serves them all
            try:
                self.completions.get_nowait()
            except queue.Empty:
                break
        self._drain_finished()

    def _drain_finished(self) -> None:
        finished = self.pool.finished
        while finished:
            self._handle(finished.popleft())

    # -- outcomes --------------------------------------------------------------------------

    def _handle(self, task: Task[Any]) -> None:
        if task.state is TaskState.RETURNED:
            log.info("abandoned %s returned after %.1f s", task.name, self.clock() - (task.started or 0.0))
            return
        if task.name == INVENTORY_TASK:
            self._handle_inventory(task)
            return
        if task.name.startswith(INSPECTION_TASK_PREFIX):
            self._inspection_task_done(task)
            return
        sched = self.schedules.get(task.name)
        if sched is None:
            return
        if task.result is None:
            summary = scrub(f"{type(task.error).__name__}: {task.error}", self.secrets)[:200]
            log.error("runner failed for %s: %s", task.name, summary)
            sched.errors += 1
            return
        outcome: CheckOutcome = task.result[0]
        sched.runs += 1
        sched.last_duration_ms = round(outcome.duration_s * 1000, 3)
        sched.last_cpu_ms = round(outcome.cpu_s * 1000, 3)
        if outcome.kind is OutcomeKind.SKIP:
            sched.skips += 1
            sched.last_severity = "SKIP"
        elif outcome.kind in (OutcomeKind.ERROR, OutcomeKind.PERMISSION):
            sched.errors += 1
        elif outcome.kind is OutcomeKind.TIMEOUT:
            sched.timeouts += 1
        if outcome.store is not None:
            self.state.commit(outcome.check, outcome.store)
        if outcome.record is not None:
            sched.last_severity = outcome.record.severity
            self._log_transition(sched, outcome)
            self._buffer_record(outcome.record, task.result[1])

    @staticmethod
    def _log_transition(sched: CheckSchedule, outcome: CheckOutcome) -> None:
        # A failing check fails every interval: log when it starts and stops failing only.
        failing = outcome.kind is not OutcomeKind.OK and outcome.record is not None
        key = outcome.record.key if failing and outcome.record is not None else None
        if key != sched.failing_key:
            if failing and outcome.record is not None:
                log.warning("check %s: %s %s", outcome.check, outcome.record.key, outcome.record.summary)
            else:
                log.info("check %s runs normally again", outcome.check)
            sched.failing_key = key

    def _handle_inventory(self, task: Task[Any]) -> None:
        if task.error is not None or not isinstance(task.result, dict):
            error = scrub(f"{type(task.error).__name__}: {task.error}", self.secrets)[:200]
            log.error("inventory collection failed: %s", error)
            return
        encoded = encode_json(task.result)
        if encoded == self._last_inventory:
            return
        try:
            self.sink.write_inventory(task.result)
            self._last_inventory = encoded
        except Exception as exc:  # noqa: BLE001 - a failing sink must not stop the daemon; retried next time
            log.error("could not write inventory: %s", scrub(str(exc), self.secrets)[:200])

    def _expire(self, now: float) -> None:
        for task in self.pool.expire(now):
            if task.name.startswith(INSPECTION_TASK_PREFIX):
                self._inspection_task_expired(task, now)
                continue
            sched = self.schedules.get(task.name)
            if sched is None:
                continue  # the inventory task: logged by the pool, retried at its interval
            sched.runs += 1
            sched.timeouts += 1
            sched.last_severity = "UNKNOWN"
            sched.failing_key = "CHECK_TIMEOUT"
            elapsed = now - (task.started if task.started is not None else task.submitted)
            self._buffer_record(timeout_record(sched.plan, task.wall_ts, elapsed))

    # -- inspections -----------------------------------------------------------------------

    def _start_inspection(self, now: float) -> None:
        """Start the next queued inspection when none is running."""
        if self._inspection is not None or self.stopping:
            return
        inspection = self.inspections.take()
        if inspection is None:
            return
        selection = select(inspection, self.all_plans)
        running = _RunningInspection(inspection, unavailable=list(selection.unavailable))
        self._inspection = running
        self._maybe_new_cycle(now)
        wall = self.wall_clock()
        remaining = inspection.remaining_s(wall)
        abandoned = set(self.pool.abandoned_now)
        probe, secrets, iid = self.probe, self.secrets, inspection.inspection_id
        for plan in selection.run:
            if plan.name == AGENT_CHECK:
                running.agent_requested = True  # the marker is its run
                continue
            task_name = INSPECTION_TASK_PREFIX + plan.name
            if plan.name in abandoned or self.pool.busy(task_name):
                running.unavailable.append((plan.name, "hung: an earlier run has not returned"))
                continue
            timeout = plan.timeout_s
            if remaining is not None and remaining > 0:
                timeout = min(timeout, max(1.0, round(remaining - 1.0, 1)))
            store = self.state.snapshot(plan.name)

            def run(
                plan: CheckPlan = plan, store: Any = store
            ) -> tuple[CheckOutcome, CheckRecord | None, bytes | None]:
                outcome = execute_check(plan, probe, store, secrets)
                record = tag(outcome.record, iid) if outcome.record is not None else None
                return outcome, record, encode_record(record) if record is not None else None

            self.pool.submit(task_name, run, timeout, wall, IO if plan.check.blocking else LOCAL, wake=True)
            running.pending.add(task_name)
        log.info(
            "inspection %s: running %d checks now (%d requested ones not available here)%s",
            iid,
            len(running.pending) + running.agent_requested,
            len(running.unavailable),
            " after its deadline" if remaining is not None and remaining <= 0 else "",
        )
        self._maybe_finish_inspection()

    def _inspection_task_done(self, task: Task[Any]) -> None:
        running = self._inspection
        if running is None or task.name not in running.pending:
            return  # a straggler of an inspection already answered
        running.pending.discard(task.name)
        name = task.name[len(INSPECTION_TASK_PREFIX) :]
        if task.result is None:
            error = scrub(f"{type(task.error).__name__}: {task.error}", self.secrets)[:200]
            log.error("runner failed for %s: %s", task.name, error)
            running.unavailable.append((name, "runner error"))
        else:
            outcome, record, payload = task.result
            if outcome.kind is OutcomeKind.SKIP and outcome.skip is not None:
                running.unavailable.append((name, f"skipped: {outcome.skip.reason}"[:200]))
            elif record is not None:
                running.ran.append(name)
                self._buffer_record(record, payload)
        self._maybe_finish_inspection()

    def _inspection_task_expired(self, task: Task[Any], now: float) -> None:
        running = self._inspection
        if running is None or task.name not in running.pending:
            return
        running.pending.discard(task.name)
        name = task.name[len(INSPECTION_TASK_PREFIX) :]
        plan = next((p for p in self.all_plans if p.name == name), None)
        if plan is not None:
            elapsed = now - (task.started if task.started is not None else task.submitted)
            # The run's own timeout: the deadline may have cut the check's.
            record = timeout_record(
                dataclasses.replace(plan, timeout_s=task.timeout_s), task.wall_ts, elapsed
            )
            self._buffer_record(tag(record, running.inspection.inspection_id))
            running.ran.append(name)
        self._maybe_finish_inspection()

    def _maybe_finish_inspection(self) -> None:
        """Once every run of the inspection is in: buffer the marker last and write it all."""
        running = self._inspection
        if running is None or running.pending:
            return
        inspection = running.inspection
        agent_record: CheckRecord | None = None
        plan = next((p for p in self.all_plans if p.name == AGENT_CHECK), None)
        if plan is not None:
            outcome = execute_check(plan, self.probe, self.state.snapshot(AGENT_CHECK), self.secrets)
            agent_record = outcome.record
            if running.agent_requested:
                if agent_record is not None:
                    running.ran.append(AGENT_CHECK)
                elif outcome.skip is not None:
                    running.unavailable.append((AGENT_CHECK, f"skipped: {outcome.skip.reason}"[:200]))
        marker = marker_record(inspection, agent_record, running.ran, running.unavailable, self.wall_clock())
        self._buffer_record(marker)
        self._flush()
        self._inspection = None
        self.inspections.finish()
        self.inspections_answered += 1
        log.info("inspection %s answered: %s", inspection.inspection_id, marker.summary[:300])
        self._start_inspection(self.clock())

    # -- output ----------------------------------------------------------------------------

    def _buffer_record(self, record: CheckRecord, payload: bytes | None = None) -> None:
        buf = self._buffer
        if buf.oldest is None:
            buf.oldest = self.clock()
        buf.records.append(record)
        buf.payloads.append(payload)
        if len(buf.records) > MAX_PENDING:
            excess = len(buf.records) - MAX_PENDING
            del buf.records[:excess]
            del buf.payloads[:excess]
            buf.dropped += excess
            log.error(
                "sink unavailable: dropped %d oldest unwritten records (%d so far)", excess, buf.dropped
            )

    def _maybe_flush(self, now: float) -> None:
        buf = self._buffer
        if buf.oldest is None or now < buf.retry_at:
            return
        next_due = min((s.next_due for s in self.schedules.values()), default=math.inf)
        # A wave is over: write its records (a due health snapshot rides along). A health
        # snapshot alone waits up to MAX_FLUSH_DELAY_S for a wave to share the transaction.
        quiet = bool(buf.records) and self.pool.inflight == 0 and next_due - now > QUIET_BEFORE_FLUSH_S
        if quiet or now - buf.oldest >= MAX_FLUSH_DELAY_S:
            self._flush()

    def _flush(self) -> None:
        buf = self._buffer
        health = self.health_snapshot() if self._health_due else None
        if not buf.records and health is None:
            buf.oldest = None
            return
        try:
            self.sink.write(buf.records, health, buf.payloads)
        except Exception as exc:  # noqa: BLE001 - a failing sink must not stop the daemon; retried
            log.error(
                "could not write %d records (kept in memory, retrying): %s",
                len(buf.records),
                scrub(str(exc), self.secrets)[:200],
            )
            buf.oldest = self.clock()
            buf.retry_at = buf.oldest + MAX_FLUSH_DELAY_S  # not in a hot loop
            return
        buf.retry_at = 0.0
        buf.records, buf.payloads = [], []
        buf.oldest = None
        if health is not None:
            self._health_due = False
            self.cycles_health += 1

    def _agent_status(self, now: float) -> dict[str, Any]:
        """What ``application.agent`` reads: spool figures, hung threads, last cycle's cost."""
        cpu = _process_cpu()
        status: dict[str, Any] = {"abandoned_threads": len(self.pool.abandoned_now)}
        if self._cycle_started is not None:
            status["last_cycle_cpu_ms"] = round((cpu - self._cpu_at_cycle) * 1000, 3)
            status["last_cycle_s"] = round(now - self._cycle_started, 3)
        self._cpu_at_cycle = cpu
        try:
            stats = self.sink.stats()
        except Exception as exc:  # noqa: BLE001 - the check reports what it can without the sink
            log.debug("sink stats unavailable: %s", scrub(str(exc), self.secrets)[:200])
        else:
            for key in ("spool_depth", "spool_bytes", "dropped_total"):
                if key in stats:
                    status[key] = stats[key]
        return status

    def health_snapshot(self) -> dict[str, Any]:
        """The agent's own health: CPU, RSS, threads, sink counters, per-check figures.

        ``check_duration_ms`` and ``check_cpu_ms`` hold each check's last run;
        ``check_problems`` lists only checks with timeouts, errors or missed slots.
        """
        cpu = _process_cpu()
        durations: dict[str, float] = {}
        cpu_ms: dict[str, float] = {}
        problems: dict[str, dict[str, int]] = {}
        runs = 0
        for name, s in self.schedules.items():
            runs += s.runs
            if s.last_duration_ms is not None:
                durations[name] = s.last_duration_ms
            if s.last_cpu_ms is not None:
                cpu_ms[name] = s.last_cpu_ms
            if s.timeouts or s.errors or s.missed:
                problems[name] = {"timeouts": s.timeouts, "errors": s.errors, "missed": s.missed}
        snapshot: dict[str, Any] = {
            "ts": self.wall_clock(),
            "agent_id": self.agent_id,
            "agent_version": __version__,
            "cpu_seconds_total": round(cpu, 6),
            "cycle_cpu_seconds": round(cpu - self._cpu_at_health, 6),
            "rss_bytes": _rss_bytes(),
            "threads": threading.active_count(),
            "abandoned_threads": len(self.pool.abandoned_now),
            "abandoned_total": self.pool.abandoned_total,
            "unwritten_dropped": self._buffer.dropped,
            "runs_total": runs,
            "check_duration_ms": durations,
            "check_cpu_ms": cpu_ms,
            "check_problems": problems,
        }
        self._cpu_at_health = cpu
        try:
            snapshot.update(self.sink.stats())
        except Exception as exc:  # noqa: BLE001 - health must not fail because the sink does
            snapshot["sink_error"] = scrub(str(exc), self.secrets)[:200]
        return snapshot

    def _save_state(self) -> None:
        try:
            self.state.save()
        except OSError as exc:
            log.error("could not save check state to %s: %s", self.state.path, exc)

    def _shutdown(self) -> None:
        if self._inspection is not None:
            iid = self._inspection.inspection.inspection_id
            log.warning("stopping during inspection %s: it stays unanswered", iid)
        if self.stopping:
            log.info("stopping: waiting up to %g s for %d running checks", self.grace_s, self.pool.inflight)
        deadline = self.clock() + self.grace_s
        while self.pool.inflight and self.clock() < deadline:
            self._expire(self.clock())
            self._wait(min(deadline, self.pool.next_deadline() or deadline))
        left = self.pool.shutdown(0.0)
        self._wait(-1.0)  # handle runs that finished after the last wake-up
        if left:
            log.warning("abandoned at shutdown (no result kept): %s", ", ".join(left))
        self._health_due = True
        self._flush()
        self._save_state()
        log.info("stopped")


def _process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        # No /proc (or odd content): peak RSS is the next best figure (KiB on Linux).
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
