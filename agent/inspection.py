"""Inspections on demand: what the agent does with the collector's ``InspectionRequest``.

The streamer hands each request to :meth:`InspectionQueue.offer` (from its own thread);
the scheduler takes them one at a time with :meth:`InspectionQueue.take` and runs them
(see :class:`agent.scheduler.Scheduler`). This module holds the rules that do not need
the scheduler:

- **Validation.** An inspection id is 1 to :data:`MAX_ID_LEN` characters of
  ``[A-Za-z0-9._:@-]``, starting with a letter or digit (what the collector stores). A
  request with a bad id is dropped with a log line. At most :data:`MAX_NAMES` check
  names and layers are read from one request; longer names are cut.
- **One at a time.** A request arriving while another runs waits in the queue (at most
  :data:`MAX_QUEUED`; beyond that it is dropped with a log line). A request whose id is
  queued, running or among the last :data:`REMEMBERED_IDS` done is a duplicate and
  ignored.
- **Selection** (:func:`select`): the named checks plus every check of the named
  layers; a check runs only when it is enabled in this agent's config. Unknown names,
  disabled checks and unknown layers are listed as unavailable, never an error. An
  empty request (no checks, no layers) means every enabled check.
- **The completion marker** (:func:`marker_record`): after every requested check has a
  result, the agent's own ``application.agent`` check runs and its record, tagged with
  the inspection id, is spooled last. Its summary and its ``INSPECTION_*`` findings
  say how many requested checks ran and which were not available here and why
  (unknown, disabled, skipped, hung). The collector counts the host as answered when
  it stores that record.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from agent.config import CheckPlan
from agent.records import CheckRecord, ResultRecord

__all__ = [
    "AGENT_CHECK",
    "Inspection",
    "InspectionQueue",
    "Selection",
    "marker_record",
    "request_from_proto",
    "select",
    "tag",
    "unavailable_for_skips",
    "valid_id",
]

log = logging.getLogger("diag_agent.inspection")

AGENT_CHECK: Final = "application.agent"
"""The check whose tagged record is the completion marker."""
MAX_ID_LEN: Final = 64
MAX_NAMES: Final = 1000
MAX_NAME_LEN: Final = 128
MAX_QUEUED: Final = 8
REMEMBERED_IDS: Final = 256
MAX_FINDINGS: Final = 200
"""Unavailable checks listed as findings of the marker; the rest are counted."""
MAX_SUMMARY_NAMES: Final = 10
LAYERS: Final = ("host", "network", "storage", "platform", "application")
_ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]*")
_PRINTABLE_RE: Final = re.compile(r"[^\x20-\x7e]")


def valid_id(inspection_id: str) -> bool:
    """Whether ``inspection_id`` is one the collector can store.

    >>> valid_id("acme-monthly-20261125T120000-1a2b"), valid_id(""), valid_id("x" * 65), valid_id("a b")
    (True, False, False, False)
    """
    return 0 < len(inspection_id) <= MAX_ID_LEN and _ID_RE.fullmatch(inspection_id) is not None


def _clean(name: str) -> str:
    """A requested name as we may echo it back: printable ASCII, at most MAX_NAME_LEN characters."""
    cleaned = _PRINTABLE_RE.sub("?", name[: MAX_NAME_LEN + 1])
    return cleaned if len(cleaned) <= MAX_NAME_LEN else cleaned[: MAX_NAME_LEN - 1] + "…"


@dataclass(frozen=True, slots=True)
class Inspection:
    """One validated request."""

    inspection_id: str
    checks: tuple[str, ...] = ()
    layers: tuple[str, ...] = ()
    deadline_unix_ms: int = 0
    received: float = field(default_factory=time.time)
    """Wall-clock time it arrived."""

    def remaining_s(self, now: float) -> float | None:
        """Seconds until the deadline (negative: past); None without a deadline."""
        return None if self.deadline_unix_ms <= 0 else self.deadline_unix_ms / 1000.0 - now


def request_from_proto(request: Any) -> Inspection | None:
    """An :class:`Inspection` from an ``agent.wire.InspectionRequest``; None (logged) when invalid."""
    inspection_id = str(request.inspection_id)
    if not valid_id(inspection_id):
        log.warning(
            "ignored an inspection request with an invalid id %r (expected 1-%d characters of "
            "letters, digits and ._:@-)",
            _clean(inspection_id[:MAX_ID_LEN]),
            MAX_ID_LEN,
        )
        return None
    names = list(request.checks)
    layers = list(request.layers)
    if len(names) > MAX_NAMES or len(layers) > MAX_NAMES:
        log.warning(
            "inspection %s names %d checks and %d layers; only the first %d of each are read",
            inspection_id,
            len(names),
            len(layers),
            MAX_NAMES,
        )
    return Inspection(
        inspection_id,
        tuple(dict.fromkeys(_clean(str(n)) for n in names[:MAX_NAMES])),
        tuple(dict.fromkeys(_clean(str(n)) for n in layers[:MAX_NAMES])),
        int(request.deadline_unix_ms),
    )


class InspectionQueue:
    """Thread-safe hand-over of inspections from the streamer to the scheduler (one at a time)."""

    def __init__(self, max_queued: int = MAX_QUEUED, remember: int = REMEMBERED_IDS) -> None:
        self._lock = threading.Lock()
        self._queued: deque[Inspection] = deque()
        self._max_queued = max_queued
        self._done: deque[str] = deque(maxlen=remember)
        self._done_set: set[str] = set()
        self.active: Inspection | None = None
        self.ignored = 0
        """Requests dropped: invalid, duplicate or over the queue bound."""

    def offer(self, inspection: Inspection | None) -> bool:
        """Queue ``inspection`` unless it is invalid (None), a duplicate or the queue is full."""
        if inspection is None:
            self.ignored += 1
            return False
        iid = inspection.inspection_id
        with self._lock:
            if (
                iid in self._done_set
                or (self.active is not None and self.active.inspection_id == iid)
                or any(q.inspection_id == iid for q in self._queued)
            ):
                self.ignored += 1
                log.info("inspection %s already received; duplicate ignored", iid)
                return False
            if len(self._queued) >= self._max_queued:
                self.ignored += 1
                log.warning(
                    "inspection %s ignored: %d inspections already wait for the one running",
                    iid,
                    len(self._queued),
                )
                return False
            self._queued.append(inspection)
            if self.active is not None:
                log.info("inspection %s queued behind %s", iid, self.active.inspection_id)
            return True

    def take(self) -> Inspection | None:
        """The next inspection to run, when none is running; it becomes :attr:`active`."""
        with self._lock:
            if self.active is not None or not self._queued:
                return None
            self.active = self._queued.popleft()
            return self.active

    def finish(self) -> None:
        """The active inspection is answered: remember its id, let the next one start."""
        with self._lock:
            if self.active is None:
                return
            iid = self.active.inspection_id
            if len(self._done) == self._done.maxlen:
                self._done_set.discard(self._done[0])
            self._done.append(iid)
            self._done_set.add(iid)
            self.active = None

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queued)


@dataclass(frozen=True, slots=True)
class Selection:
    """What an inspection runs here and what it cannot."""

    run: tuple[CheckPlan, ...]
    unavailable: tuple[tuple[str, str], ...]
    """(requested name, reason) in request order: ``unknown check``, ``disabled``, ``unknown layer``."""

    @property
    def requested(self) -> int:
        return len(self.run) + sum(1 for _, reason in self.unavailable if reason != "unknown layer")


def select(inspection: Inspection, plans: Sequence[CheckPlan]) -> Selection:
    """The enabled plans the inspection asks for, in config order, and what it asked for in vain.

    >>> from agent.config import default_config
    >>> plans = default_config().plans
    >>> sel = select(Inspection("i1", checks=("host.load", "host.nope"), layers=("storage", "moon")), plans)
    >>> "host.load" in [p.name for p in sel.run]
    True
    >>> sorted({p.check.layer.value for p in sel.run})
    ['host', 'storage']
    >>> sel.unavailable
    (('host.nope', 'unknown check'), ('moon', 'unknown layer'))
    """
    by_name = {p.name: p for p in plans}
    wanted: dict[str, None] = {}
    unavailable: list[tuple[str, str]] = []
    every = not inspection.checks and not inspection.layers
    for name in inspection.checks:
        plan = by_name.get(name)
        if plan is None:
            unavailable.append((name, "unknown check"))
        elif not plan.enabled:
            unavailable.append((name, "disabled"))
        else:
            wanted[name] = None
    for layer in inspection.layers:
        if layer not in LAYERS:
            unavailable.append((layer, "unknown layer"))
    layers = set(inspection.layers)
    run = tuple(
        p for p in plans if p.enabled and (every or p.name in wanted or p.check.layer.value in layers)
    )
    return Selection(run, tuple(unavailable))


def marker_record(
    inspection: Inspection,
    agent_record: CheckRecord | None,
    ran: Iterable[str],
    unavailable: Sequence[tuple[str, str]],
    now: float,
) -> CheckRecord:
    """The completion marker: the agent check's record tagged, with the inspection's account.

    ``agent_record`` is the agent check's own record of this run (None when the check
    itself was skipped or is not installed: the marker then carries only the account).
    ``ran``: names of the requested checks that produced a result; ``unavailable``:
    (name, reason) of those that did not.
    """
    ran_names = list(dict.fromkeys(ran))
    requested = len(ran_names) + sum(1 for _, reason in unavailable if reason != "unknown layer")
    head = f"Inspection {inspection.inspection_id}: {len(ran_names)} of {requested} requested checks ran"
    remaining = inspection.remaining_s(now)
    if remaining is not None and remaining < 0:
        head += f" (answered {-remaining:.0f} s after the deadline)"
    if unavailable:
        shown = ", ".join(f"{name} ({reason})" for name, reason in unavailable[:MAX_SUMMARY_NAMES])
        more = len(unavailable) - MAX_SUMMARY_NAMES
        head += f"; not available here: {shown}" + (f" and {more} more" if more > 0 else "")
    findings = [ResultRecord("OK", "INSPECTION_ANSWERED", head, None, None)]
    for name, reason in unavailable[:MAX_FINDINGS]:
        findings.append(
            ResultRecord("OK", "INSPECTION_CHECK_UNAVAILABLE", f"{name}: not available here ({reason})", name)
        )
    if len(unavailable) > MAX_FINDINGS:
        findings.append(
            ResultRecord(
                "OK",
                "INSPECTION_CHECK_UNAVAILABLE",
                f"and {len(unavailable) - MAX_FINDINGS} more requested checks not available here",
            )
        )
    if agent_record is None:
        iid = inspection.inspection_id
        return CheckRecord(AGENT_CHECK, "application", now, 0.0, "OK", "OK", head, tuple(findings), (), iid)
    return dataclasses.replace(
        agent_record,
        summary=f"{head}. Agent: {agent_record.summary}",
        results=(*findings, *agent_record.results),
        inspection_id=inspection.inspection_id,
    )


def tag(record: CheckRecord, inspection_id: str) -> CheckRecord:
    """``record`` as a result of the inspection ``inspection_id``."""
    return dataclasses.replace(record, inspection_id=inspection_id)


def unavailable_for_skips(skips: Mapping[str, str]) -> list[tuple[str, str]]:
    """(name, ``skipped: <reason>``) for checks that said they do not apply here."""
    return [(name, f"skipped: {reason}"[:200]) for name, reason in skips.items()]
