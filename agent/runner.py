"""Runs checks isolated: a bounded worker pool, per-check timeouts, failures as results.

A check's run becomes exactly one of:

* a :class:`~agent.records.CheckRecord` of its results and metrics;
* ``UNKNOWN`` / ``CHECK_TIMEOUT`` when it overruns its timeout. Python cannot kill a
  thread, so the stuck thread is *abandoned*: a replacement worker takes its slot and
  the check is not started again until the thread returns, so at most one thread per
  check can ever be stuck (:attr:`WorkerPool.abandoned_total` counts them);
* ``UNKNOWN`` / ``CHECK_ERROR`` when it raises (exception type and first line of the
  message, scrubbed of secrets; the traceback goes to the debug log), emits a metric
  its declaration does not list, or yields something that is not a Result or Metric;
* ``UNKNOWN`` / ``CHECK_PERMISSION`` naming the path when it hits a PermissionError;
* a :class:`Skip` with the reason when it raises :class:`~checks.api.SkipCheck`.

>>> scrub("connect failed: postgres://app:hunter2@db/x password=hunter2 ok", ())
'connect failed: postgres://app:<redacted>@db/x password=<redacted> ok'
"""

from __future__ import annotations

import collections
import contextlib
import enum
import errno
import logging
import os
import queue
import re
import resource
import select
import threading
import time
import weakref
from collections.abc import Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from agent.config import CheckPlan
from agent.records import CheckRecord
from agent.state import StateStore
from checks.api import Check, Layer, Metric, Result, Severity, SkipCheck
from checks.probe import MAX_COMMAND_OUTPUT, CommandTimeout, Probe

__all__ = [
    "AgentProbe",
    "CheckOutcome",
    "RunReport",
    "Skip",
    "Task",
    "WorkerPool",
    "execute_check",
    "run_all",
    "scrub",
    "timeout_record",
]

T = TypeVar("T")
log = logging.getLogger("diag_agent.runner")

MAX_MESSAGE = 200
"""Characters of an exception message kept in a CHECK_ERROR summary."""


# --- probe ------------------------------------------------------------------------------


@dataclass
class AgentProbe(Probe):
    """A :class:`Probe` whose ``memo`` computes each key once even when checks run in parallel.

    Without the per-key lock two checks starting together (``host.processes`` and
    ``host.top_consumers``) would both scan the process table.
    """

    _memo_locks: dict[str, threading.RLock] = field(default_factory=dict, repr=False)
    _memo_guard: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _kept: dict[str, int] = field(default_factory=dict, repr=False)
    """Kernel files kept open between cycles (absolute path → descriptor); see :meth:`read_bytes`."""
    _unkeepable: set[str] = field(default_factory=set, repr=False)
    _boot_constants: dict[str, bytes] = field(default_factory=dict, repr=False)
    """Files that cannot change while this kernel runs, read once (see :data:`_BOOT_CONSTANT_FILES`)."""
    _polled: dict[str, tuple[int, select.poll]] = field(default_factory=dict, repr=False)
    """Open files whose changes the kernel signals with POLLPRI (the mount table)."""
    _lasting_guard: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        # Descriptors are closed with the probe (tests make many), not left to the process.
        weakref.finalize(self, _close_kept, self._kept)
        weakref.finalize(self, _close_polled, self._polled)

    def read_bytes(self, absolute: str, limit: int = MAX_COMMAND_OUTPUT) -> bytes:
        """As :meth:`Probe.read_bytes`; kernel-generated files of the live host stay open.

        ``pread`` at offset 0 makes the kernel generate a ``/proc`` or ``/sys`` file
        afresh, and skips the path walk and setup of ``open`` (measured: 70 → 32 µs for
        ``/proc/net/netstat``, 8 → 1 µs for a sysfs attribute). A kept descriptor that
        fails (its interface was removed: ENODEV) is dropped and the file read by path,
        so errors are exactly those of a fresh read.
        """
        if absolute in _BOOT_CONSTANT_FILES and self.is_host_root:
            constant = self._boot_constants.get(absolute)
            if constant is None:  # two threads may both read it once: same bytes either way
                constant = self._boot_constants[absolute] = super().read_bytes(absolute, limit)
            return constant[:limit]
        if not self.is_host_root or not _keepable(absolute) or absolute in self._unkeepable:
            return super().read_bytes(absolute, limit)
        kept = self._kept
        fd = kept.get(absolute)
        if fd is not None:
            try:
                return _pread_all(fd, limit)
            except OSError as exc:  # the object behind it is gone or errs now: read by path below
                with self._memo_guard:
                    if kept.get(absolute) == fd:
                        del kept[absolute]
                        os.close(fd)
                    if exc.errno == errno.ESPIPE:
                        self._unkeepable.add(absolute)  # a stream: read it by path from now on
        fd = os.open(absolute, _READ_FLAGS)
        try:
            data = _read_all(fd, limit)
        except BaseException:
            os.close(fd)
            raise
        with self._memo_guard:
            if absolute not in kept and len(kept) < MAX_KEPT_FILES:
                kept[absolute] = fd
                return data
        os.close(fd)  # another thread kept one first, or the cache is full
        return data

    def parsed_while_unchanged(self, key: str, absolute: str, parse: Callable[[str], T]) -> T:
        """As :meth:`Probe.parsed_while_unchanged`; a file whose changes the kernel signals
        (``/proc/self/mounts``: POLLPRI once the mount table changed since the file was
        opened) is kept open and read again only after such a signal.

        The signal is armed when the file is opened, before it is read, so a change
        during or after the read is seen by the next call; then the file is opened
        afresh and read.
        """
        if not self.is_host_root or absolute not in _POLLED_FILES:
            return super().parsed_while_unchanged(key, absolute, parse)
        with self._lasting_guard:
            held = self._lasting.get(key)
            polled = self._polled.get(absolute)
            if held is not None and polled is not None and not polled[1].poll(0):
                return held[1]  # type: ignore[no-any-return]
            if polled is not None:
                del self._polled[absolute]
                os.close(polled[0])
            fd = os.open(absolute, _READ_FLAGS)
            try:
                data = _read_all(fd, MAX_COMMAND_OUTPUT)
                value = parse(data.decode("utf-8", errors="replace"))
            except BaseException:
                os.close(fd)
                raise
            watcher = select.poll()
            watcher.register(fd, select.POLLPRI | select.POLLERR)
            self._polled[absolute] = (fd, watcher)
            self._lasting[key] = (None, value)
            return value

    def memo(self, key: str, compute: Callable[[], T]) -> T:
        """Compute once per cycle; concurrent callers of the same key wait for the first."""
        try:
            return self.cache[key]  # type: ignore[no-any-return]
        except KeyError:
            pass  # not computed yet this cycle: take the key's lock below
        with self._memo_guard:
            lock = self._memo_locks.setdefault(key, threading.RLock())
        with lock:
            try:
                return self.cache[key]  # type: ignore[no-any-return]
            except KeyError:
                value = self.cache[key] = compute()
                return value


_SOFT_NOFILE = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
MAX_KEPT_FILES = 128 if _SOFT_NOFILE == resource.RLIM_INFINITY else min(128, _SOFT_NOFILE // 8)
"""Most files one :class:`AgentProbe` keeps open (an eighth of the soft open-files
limit at most; the process table keeps up to a quarter); beyond it, files are read by path."""
_READ_FLAGS = os.O_RDONLY | os.O_CLOEXEC
_KEEPABLE_PREFIXES = ("/proc/sys/", "/proc/net/", "/proc/pressure/", "/sys/")
_KEEPABLE_FILES = frozenset(
    {"/proc/stat", "/proc/meminfo", "/proc/vmstat", "/proc/loadavg", "/proc/uptime", "/proc/diskstats"}
)


def _keepable(path: str) -> bool:
    """Files the kernel generates on every read and that outlive any process: global
    ``/proc`` tables, ``/proc/sys``, ``/proc/net`` (this process's namespace) and sysfs.
    Never a regular file (replaced by rename, the kept one would go stale), nor
    ``/proc/<pid>/`` or ``/proc/self/``."""
    return path.startswith(_KEEPABLE_PREFIXES) or path in _KEEPABLE_FILES


def _pread_all(fd: int, limit: int) -> bytes:
    """Up to ``limit`` bytes from offset 0; a short read ends the file (as in
    :func:`~checks.probe.read_file_bytes`)."""
    chunks: list[bytes] = []
    offset = 0
    while offset < limit:
        want = min(limit - offset, 65536)
        chunk = os.pread(fd, want, offset)
        chunks.append(chunk)
        offset += len(chunk)
        if len(chunk) < want:
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _read_all(fd: int, limit: int) -> bytes:
    """:func:`_pread_all` with ``read``, for a freshly opened file (as a plain read would)."""
    chunks: list[bytes] = []
    remaining = limit
    while remaining > 0:
        want = min(remaining, 65536)
        chunk = os.read(fd, want)
        chunks.append(chunk)
        remaining -= len(chunk)
        if len(chunk) < want:
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


_BOOT_CONSTANT_FILES = frozenset(
    {
        "/proc/sys/kernel/osrelease",
        "/proc/sys/kernel/arch",
        "/proc/version",
        "/proc/sys/kernel/random/boot_id",
    }
)
"""Fixed from boot to shutdown (the running kernel's release, build and architecture, the
boot's id): read once by a probe of the live host, not once per check and cycle."""
_POLLED_FILES = frozenset({"/proc/self/mounts"})
"""``/proc`` files whose changes ``poll`` reports (POLLPRI | POLLERR, ``proc_mounts(5)``)."""


def _close_polled(polled: dict[str, tuple[int, select.poll]]) -> None:
    for fd, _ in polled.values():
        with contextlib.suppress(OSError):  # already closed elsewhere: nothing left to release
            os.close(fd)
    polled.clear()


def _close_kept(kept: dict[str, int]) -> None:
    for fd in kept.values():
        with contextlib.suppress(OSError):  # already closed elsewhere: nothing left to release
            os.close(fd)
    kept.clear()


# --- outcome of one run -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Skip:
    """A check that does not apply here, with the reason it gave."""

    check: str
    layer: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """The shape of a CheckRecord dict, flagged ``skipped``, for JSON output."""
        return {
            "check": self.check,
            "layer": self.layer,
            "severity": "SKIP",
            "key": "SKIPPED",
            "summary": self.reason,
            "duration_ms": 0.0,
            "results": [],
            "metrics": [],
            "skipped": True,
        }


class OutcomeKind(enum.Enum):
    OK = "ok"
    SKIP = "skip"
    ERROR = "error"
    PERMISSION = "permission"
    TIMEOUT = "timeout"


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """What one run produced. ``store`` is the check's state to commit (None: keep the old)."""

    check: str
    kind: OutcomeKind
    record: CheckRecord | None
    skip: Skip | None
    store: MutableMapping[str, Any] | None
    cpu_s: float
    duration_s: float


_SECRET_ASSIGNMENT = re.compile(
    r"(?i)\b(password|passwd|pwd|token|secret|api[_-]?key|authorization)(\s*[=:]\s*|\s+)"
    r"((?:bearer|basic|token)\s+)?\S+"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_URL_CREDENTIALS = re.compile(r"(://[^/\s:@]+:)[^@\s/]+@")


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Remove known secret values, ``password=...``-style values and URL passwords."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<redacted>")
    text = _URL_CREDENTIALS.sub(r"\1<redacted>@", text)
    text = _SECRET_ASSIGNMENT.sub(r"\1\2\3<redacted>", text)
    return _BEARER.sub(r"\1 <redacted>", text)


def _short_error(exc: BaseException, secrets: Sequence[str]) -> str:
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else ""
    message = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    message = scrub(message, secrets)
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."


class UndeclaredMetric(Exception):
    """A check emitted a metric (or label) its declaration does not list."""


_SPEC_LABELS: dict[int, tuple[Check[Any, Any], dict[str, frozenset[str]]]] = {}


def _declared_labels(check: Check[Any, Any]) -> dict[str, frozenset[str]]:
    cached = _SPEC_LABELS.get(id(check))
    if cached is None or cached[0] is not check:
        cached = _SPEC_LABELS[id(check)] = (check, {s.name: frozenset(s.labels) for s in check.metrics})
    return cached[1]


def _unknown(plan: CheckPlan, ts: float, duration_s: float, key: str, summary: str) -> CheckRecord:
    return CheckRecord.from_outputs(
        plan.name, plan.check.layer.value, ts, duration_s * 1000, [Result(Severity.UNKNOWN, key, summary)], []
    )


def execute_check(
    plan: CheckPlan,
    probe: Probe,
    store: MutableMapping[str, Any],
    secrets: Sequence[str] = (),
) -> CheckOutcome:
    """Run ``plan``'s check once in the calling thread; never raises.

    Exceptions become UNKNOWN records (see the module docstring). The timeout is not
    enforced here but by whoever waits for the result (:class:`WorkerPool`).
    """
    check = plan.check
    ts = probe.now()
    started = time.perf_counter()
    cpu_started = time.thread_time()
    results: list[Result] = []
    metrics: list[Metric] = []
    kind = OutcomeKind.OK
    record: CheckRecord | None = None
    skip: Skip | None = None
    try:
        declared = _declared_labels(check)
        # check.run(), unrolled: one generator fewer to resume for every item.
        params = plan.params
        for item in check.evaluate(params, check.collect(probe, params), store):
            if isinstance(item, Metric):
                labels = declared.get(item.name)
                if labels is None:
                    raise UndeclaredMetric(f"metric {item.name!r} is not declared in {check.name}'s metrics")
                for label, _ in item.labels:
                    if label not in labels:
                        raise UndeclaredMetric(f"metric {item.name!r}: label {label!r} is not declared")
                metrics.append(item)
            elif isinstance(item, Result):
                results.append(item)
            else:
                raise TypeError(f"{check.name} yielded {type(item).__name__}, not a Result or Metric")
    except SkipCheck as exc:
        kind, skip = OutcomeKind.SKIP, Skip(check.name, check.layer.value, scrub(exc.reason, secrets))
    except PermissionError as exc:
        kind = OutcomeKind.PERMISSION
        where = exc.filename if exc.filename is not None else _short_error(exc, secrets)
        summary = f"Permission denied: {where} (the agent runs unprivileged; grant read access or disable)"
        record = _unknown(plan, ts, time.perf_counter() - started, "CHECK_PERMISSION", summary)
        log.debug("check %s: permission denied", check.name, exc_info=True)
    except CommandTimeout as exc:
        kind = OutcomeKind.TIMEOUT
        summary = scrub(str(exc), secrets)
        record = _unknown(plan, ts, time.perf_counter() - started, "CHECK_TIMEOUT", summary)
    except (Exception, SystemExit) as exc:  # isolation: any failure of a check becomes its result
        kind = OutcomeKind.ERROR
        summary = _short_error(exc, secrets)
        record = _unknown(plan, ts, time.perf_counter() - started, "CHECK_ERROR", summary)
        log.debug("check %s failed", check.name, exc_info=True)
    duration_s = time.perf_counter() - started
    if kind is OutcomeKind.OK:
        record = CheckRecord.from_outputs(
            check.name, check.layer._value_, ts, duration_s * 1000, results, metrics
        )
    keep = store if kind in (OutcomeKind.OK, OutcomeKind.SKIP) else None
    return CheckOutcome(check.name, kind, record, skip, keep, time.thread_time() - cpu_started, duration_s)


def timeout_record(plan: CheckPlan, ts: float, elapsed_s: float) -> CheckRecord:
    """The UNKNOWN / CHECK_TIMEOUT record of a run cut off after ``elapsed_s``."""
    summary = f"Check did not finish within its {plan.timeout_s:g} s timeout (abandoned)"
    return _unknown(plan, ts, elapsed_s, "CHECK_TIMEOUT", summary)


# --- the pool -------------------------------------------------------------------------------


class TaskState(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    ABANDONED = "abandoned"
    """Timed out while running; its thread may still be running."""
    RETURNED = "returned"
    """An abandoned task whose thread finally returned; its result is discarded."""


@dataclass(eq=False)
class Task(Generic[T]):
    """One unit of work in the pool. ``result`` is set when it finishes in time."""

    name: str
    fn: Callable[[], T]
    timeout_s: float
    submitted: float
    wall_ts: float
    lane: str = "local"
    detached: bool = False
    """A slow local task whose thread gave its lane slot to a new thread; it still
    delivers its result, then its thread exits."""
    wake: bool = False
    """Wake the owner when this task finishes even though others still run (an
    inspection's runs must not wait for a slow scheduled check)."""
    state: TaskState = TaskState.QUEUED
    started: float | None = None
    result: T | None = None
    error: BaseException | None = None

    @property
    def deadline(self) -> float:
        """When the task times out; for a queued task, a conservative moment to look again."""
        return (self.started if self.started is not None else self.submitted) + self.timeout_s


_STOP = object()
IDLE = object()
"""Put in ``completions`` when a ``wake_when_idle`` pool has nothing left in flight."""


LOCAL = "local"
IO = "io"
SLOW_LOCAL_S = 0.25
"""A local task running longer than this is waiting on something (a hung NFS statvfs,
a process stuck in D state): its lane gets a new thread so the queue behind it keeps
its schedule, while the slow task runs on until it finishes or times out."""


class WorkerPool(Generic[T]):
    """Threads running :class:`Task` s in two lanes.

    The ``local`` lane has one thread: checks that only read kernel files run one after
    another there, because Python threads contending for the GIL cost more CPU than the
    checks themselves (measured: 4 threads made a cycle 60% dearer than 1). The ``io``
    lane has ``max_workers - 1`` threads (at least one) for checks that wait on peers or
    subprocesses (``Check.blocking``). An abandoned task's thread is replaced in its lane.

    Finished tasks appear in :attr:`completions`, or with ``wake_when_idle`` in
    :attr:`finished`, with a single :data:`IDLE` token in ``completions`` each time
    the pool runs out of work.

    The pool does not measure time by itself: the owner calls :meth:`expire` when
    :meth:`next_deadline` passes (the scheduler's loop does, and so does :func:`run_all`).
    """

    def __init__(
        self,
        max_workers: int,
        completions: queue.SimpleQueue[Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wake_when_idle: bool = False,
    ) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.max_workers = max_workers
        self.wake_when_idle = wake_when_idle
        self.finished: collections.deque[Task[T]] = collections.deque()
        """With ``wake_when_idle``: finished tasks, for the owner to pop (deque ops are thread-safe)."""
        self.completions: queue.SimpleQueue[Any] = (
            completions if completions is not None else queue.SimpleQueue()
        )
        self.clock = clock
        self._queues: dict[str, queue.SimpleQueue[Any]] = {
            LOCAL: queue.SimpleQueue(),
            IO: queue.SimpleQueue(),
        }
        self._lock = threading.Lock()
        self._inflight: dict[str, Task[T]] = {}
        self._abandoned: dict[str, Task[T]] = {}
        self._threads: dict[threading.Thread, str] = {}
        self._spawned = 0
        self.abandoned_total = 0
        self._spawn(LOCAL)
        for _ in range(max(1, max_workers - 1)):
            self._spawn(IO)

    # -- owner side ---------------------------------------------------------------------

    def submit(
        self,
        name: str,
        fn: Callable[[], T],
        timeout_s: float,
        wall_ts: float | None = None,
        lane: str = LOCAL,
        wake: bool = False,
    ) -> Task[T]:
        """Queue ``fn`` in ``lane``. Raises RuntimeError if a task of that name is running or abandoned.

        ``wake``: with ``wake_when_idle``, put a token in ``completions`` when this task
        finishes even if the pool is not idle.
        """
        now = self.clock()
        task: Task[T] = Task(name, fn, timeout_s, now, time.time() if wall_ts is None else wall_ts, lane)
        task.wake = wake
        with self._lock:
            if name in self._inflight or name in self._abandoned:
                raise RuntimeError(f"{name} is still running")
            self._inflight[name] = task
        self._queues[lane].put(task)
        return task

    def busy(self, name: str) -> bool:
        """True while a task of that name is queued, running, or abandoned but not returned."""
        with self._lock:
            return name in self._inflight or name in self._abandoned

    def next_deadline(self) -> float | None:
        """The earliest moment :meth:`expire` may have work (None: nothing in flight)."""
        with self._lock:
            return min((self._next_event(t) for t in self._inflight.values()), default=None)

    @staticmethod
    def _next_event(task: Task[T]) -> float:
        if task.lane == LOCAL and not task.detached and task.started is not None:
            return min(task.deadline, task.started + SLOW_LOCAL_S)
        return task.deadline

    def expire(self, now: float | None = None) -> list[Task[T]]:
        """Abandon running tasks past their timeout; a new worker replaces each one."""
        now = self.clock() if now is None else now
        expired: list[Task[T]] = []
        slow: list[Task[T]] = []
        with self._lock:
            for task in list(self._inflight.values()):
                if (
                    task.lane == LOCAL
                    and task.state is TaskState.RUNNING
                    and not task.detached
                    and task.started is not None
                    and now >= task.started + SLOW_LOCAL_S
                ):
                    task.detached = True
                    slow.append(task)
                if task.state is TaskState.RUNNING and task.started is not None and now >= task.deadline:
                    task.state = TaskState.ABANDONED
                    del self._inflight[task.name]
                    self._abandoned[task.name] = task
                    self.abandoned_total += 1
                    expired.append(task)
        for task in slow:
            log.debug("check %s is slow; the local lane continues on a new thread", task.name)
            self._spawn(LOCAL)
        for task in expired:
            log.warning(
                "check %s exceeded its %g s timeout; its thread is abandoned", task.name, task.timeout_s
            )
            if not task.detached:  # a detached task's lane slot was already refilled
                self._spawn(task.lane)
        return expired

    @property
    def inflight(self) -> int:
        """Tasks queued or running (abandoned ones not counted)."""
        with self._lock:
            return len(self._inflight)

    @property
    def abandoned_now(self) -> list[str]:
        """Names of checks whose abandoned thread has not returned yet."""
        with self._lock:
            return sorted(self._abandoned)

    def shutdown(self, wait_s: float = 0.0) -> list[str]:
        """Stop the workers; wait up to ``wait_s`` for running tasks. Returns those still running."""
        with self._lock:
            threads = list(self._threads.items())
        for _, lane in threads:
            self._queues[lane].put(_STOP)
        deadline = time.monotonic() + wait_s
        for thread, _ in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            running = [t.name for t in self._inflight.values() if t.state is TaskState.RUNNING]
            return sorted(running + list(self._abandoned))

    # -- worker side --------------------------------------------------------------------

    def _spawn(self, lane: str) -> None:
        self._spawned += 1
        thread = threading.Thread(
            target=self._work, args=(lane,), name=f"diag-check-{lane}-{self._spawned}", daemon=True
        )
        with self._lock:
            self._threads[thread] = lane
        thread.start()

    def _work(self, lane: str) -> None:
        me = threading.current_thread()
        source = self._queues[lane]
        try:
            while True:
                item = source.get()
                if item is _STOP:
                    return
                task: Task[T] = item
                with self._lock:
                    task.state = TaskState.RUNNING
                    task.started = self.clock()
                result: T | None = None
                error: BaseException | None = None
                try:
                    result = task.fn()
                except BaseException as exc:  # noqa: BLE001 - handed to the owner, never lost
                    error = exc
                with self._lock:
                    abandoned = task.state is TaskState.ABANDONED
                    if abandoned:
                        task.state = TaskState.RETURNED
                        self._abandoned.pop(task.name, None)
                    else:
                        task.state = TaskState.DONE
                        task.result, task.error = result, error
                        self._inflight.pop(task.name, None)
                    idle = not self._inflight
                    if self.wake_when_idle:
                        # Under the lock: once busy() is False the task is already in
                        # ``finished``, so the owner handles it before starting the next run.
                        self.finished.append(task)
                if self.wake_when_idle:
                    # One wake-up per wave instead of one per check: the owner pops
                    # ``finished`` whenever it wakes (for a timer, or here when all is done).
                    if idle or task.wake:
                        self.completions.put(IDLE)
                else:
                    self.completions.put(task)
                if abandoned:
                    # A replacement took this thread's slot when it was abandoned.
                    log.info("abandoned check %s returned; its thread exits", task.name)
                    return
                if task.detached:
                    return  # a replacement took this thread's slot when the task was slow
        finally:
            with self._lock:
                self._threads.pop(me, None)


# --- one-shot run -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunReport:
    """Records and skips of a one-shot run, in layer then name order."""

    records: tuple[CheckRecord, ...]
    skips: tuple[Skip, ...]
    outcomes: tuple[CheckOutcome, ...]
    abandoned: tuple[str, ...]


_LAYER_ORDER = {layer.value: i for i, layer in enumerate(Layer)}
IO_HEAD_START_S = 0.005
"""How long :func:`run_all` lets the blocking checks run alone (less if they finish first)."""


def run_all(
    plans: Sequence[CheckPlan],
    probe: Probe,
    state: StateStore,
    max_workers: int = 4,
    secrets: Sequence[str] = (),
    pool: WorkerPool[CheckOutcome] | None = None,
) -> RunReport:
    """Run ``plans`` once, on a bounded pool, each cut off at its timeout.

    Calls ``probe.new_cycle()`` first so the checks share one cycle's memoised data.
    Commits each finished check's store into ``state`` (saving is the caller's job).
    ``pool`` (created with ``wake_when_idle=True``) may be reused across runs; without
    one a pool is made for this run and shut down after it.
    """
    probe.new_cycle()
    own_pool = pool is None
    if pool is None:
        pool = WorkerPool(max_workers, wake_when_idle=True)
    if not pool.wake_when_idle:
        raise ValueError("run_all needs a pool created with wake_when_idle=True")
    by_name: dict[str, CheckPlan] = {}
    blocking: list[tuple[str, CheckPlan]] = []
    local: list[tuple[str, CheckPlan]] = []
    for plan in plans:
        name = plan.name
        by_name[name] = plan
        (blocking if plan.check.blocking else local).append((name, plan))
    submit, checkout = pool.submit, state.checkout
    ts = probe.now()
    for name, plan in blocking:
        submit(name, _bind(plan, probe, checkout(name), secrets), plan.timeout_s, ts, IO)
    if blocking and local:
        # A head start for the blocking checks: most skip or reach their wait on a peer
        # within a fraction of a millisecond. Run alongside the local lane, every file
        # read of either thread hands the GIL over (measured: ~25 context switches and
        # 0.5 ms more CPU per cycle); run first, they cost only their own CPU.
        with contextlib.suppress(queue.Empty):
            pool.completions.get(timeout=IO_HEAD_START_S)
        ts = probe.now()
    for name, plan in local:
        submit(name, _bind(plan, probe, checkout(name), secrets), plan.timeout_s, ts, LOCAL)
    pending = set(by_name)
    outcomes: list[CheckOutcome] = []
    while pending:
        # Woken once when the pool runs dry (not once per check: every wake-up of this
        # thread competes with the workers for the GIL), or at the next deadline.
        deadline = pool.next_deadline()
        wait = None if deadline is None else max(0.0, deadline - pool.clock()) + 0.001
        with contextlib.suppress(queue.Empty):
            pool.completions.get(timeout=wait)
        while pool.finished:
            task = pool.finished.popleft()
            if task.state is TaskState.DONE and task.name in pending:
                pending.discard(task.name)
                outcomes.append(_task_outcome(task, by_name[task.name], secrets))
        for expired in pool.expire():
            if expired.name in pending:
                pending.discard(expired.name)
                plan = by_name[expired.name]
                elapsed = pool.clock() - (expired.started or expired.submitted)
                record = timeout_record(plan, expired.wall_ts, elapsed)
                outcomes.append(
                    CheckOutcome(plan.name, OutcomeKind.TIMEOUT, record, None, None, 0.0, elapsed)
                )
    abandoned = pool.shutdown() if own_pool else pool.abandoned_now
    for outcome in outcomes:
        if outcome.store is not None:
            state.commit(outcome.check, outcome.store)
    order = _report_order(by_name)
    outcomes.sort(key=lambda o: order[o.check])
    return RunReport(
        records=tuple(o.record for o in outcomes if o.record is not None),
        skips=tuple(o.skip for o in outcomes if o.skip is not None),
        outcomes=tuple(outcomes),
        abandoned=tuple(abandoned),
    )


_ORDER_CACHE: dict[tuple[str, ...], dict[str, int]] = {}


def _report_order(by_name: dict[str, CheckPlan]) -> dict[str, int]:
    """Each check's place in a report (layer, then name), remembered per set of checks:
    the daemon runs the same plans every cycle."""
    names = tuple(by_name)
    order = _ORDER_CACHE.get(names)
    if order is None:
        if len(_ORDER_CACHE) >= 16:
            _ORDER_CACHE.clear()  # config reloads: keep the cache bounded
        ranked = sorted(names, key=lambda n: (_layer_rank(by_name[n]), n))
        order = _ORDER_CACHE[names] = {name: i for i, name in enumerate(ranked)}
    return order


def _layer_rank(plan: CheckPlan) -> int:
    return _LAYER_ORDER.get(plan.check.layer.value, len(_LAYER_ORDER))


def _bind(
    plan: CheckPlan, probe: Probe, store: MutableMapping[str, Any], secrets: Sequence[str]
) -> Callable[[], CheckOutcome]:
    def run() -> CheckOutcome:
        return execute_check(plan, probe, store, secrets)

    return run


def _task_outcome(task: Task[CheckOutcome], plan: CheckPlan, secrets: Sequence[str]) -> CheckOutcome:
    """The outcome of a finished task; a failure of the runner itself becomes CHECK_ERROR."""
    if task.result is not None:
        return task.result
    error = task.error or RuntimeError("no result")
    record = _unknown(plan, task.wall_ts, 0.0, "CHECK_ERROR", _short_error(error, secrets))
    return CheckOutcome(plan.name, OutcomeKind.ERROR, record, None, None, 0.0, 0.0)
