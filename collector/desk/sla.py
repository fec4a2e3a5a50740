"""SLA clocks on a business calendar (pure): business time, due instants, clocks over a case's history.

Three clocks per case, each with a target in business minutes from the customer's
contract (tier and case type, :class:`Targets`):

- ``first_response``: runs from opening until the case first leaves ``new``;
- ``restore``: runs until service is restored: the first ``resolved`` (or an explicit
  ``restored`` mark on the timeline), and never resumes;
- ``resolve``: runs until ``resolved``; a reopened case's resolve clock *resumes* where it
  stopped (the time it spent resolved does not count).

Every clock pauses while the case is ``waiting_on_customer`` and inside the customer's
maintenance windows covering the case (``pauses``), and counts only business time
(:class:`~collector.desk.calendar.BusinessCalendar`). A clock warns at 75% of its target
and breaches at 100%.

Today's emergency cases use ``open`` for ``new``; both are read as ``new``. A history is
a list of :class:`Transition` (from the ``case_events`` rows: ``data = {"from", "to"}``,
or the older event kinds ``acknowledged``/``resolved``/``closed``/``reopened``).

>>> from collector.desk.calendar import CalendarSettings, BusinessCalendar
>>> cal = BusinessCalendar(CalendarSettings(timezone="Europe/Berlin"))
>>> monday_9 = 1_704_700_800.0   # 2024-01-08 08:00 UTC = 09:00 Berlin
>>> business_seconds(cal, monday_9 - 86400 * 2, monday_9 + 3600)  # from Saturday: one hour
3600.0
>>> add_business_seconds(cal, monday_9 + 8 * 3600, 2 * 3600) == monday_9 + 86400 + 3600
True
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from collector.desk.calendar import BusinessCalendar, Interval

__all__ = [
    "BREACH_AT",
    "CASE_TYPES",
    "DEFAULT_TARGETS",
    "TARGETS",
    "WARN_AT",
    "ClockState",
    "ClockStatus",
    "Target",
    "TargetMinutes",
    "Targets",
    "Transition",
    "add_business_seconds",
    "business_seconds",
    "clock_runs",
    "evaluate",
    "history_from_events",
    "merge_intervals",
    "normalise_state",
    "subtract",
]

Target = Literal["first_response", "restore", "resolve"]
TARGETS: Final[tuple[Target, ...]] = ("first_response", "restore", "resolve")
CASE_TYPES: Final = ("emergency", "routine", "adaptive", "perfective", "complaint", "consultation", "onsite")
WARN_AT: Final = 0.75
"""Fraction of a target at which a clock warns."""
BREACH_AT: Final = 1.0
MAX_DAYS: Final = 3 * 366
"""How far ahead a due instant is looked for (a calendar with no working day: never due)."""

_DONE = frozenset({"resolved", "follow_up", "closed"})
_PAUSED = frozenset({"waiting_on_customer"})

ClockState = Literal["ok", "warning", "breached"]


# --------------------------------------------------------------------------- intervals


def merge_intervals(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, disjoint union of ``[start, end)`` intervals (empty ones dropped).

    >>> merge_intervals([(5, 7), (1, 3), (2, 4), (8, 8)])
    [(1, 4), (5, 7)]
    """
    merged: list[Interval] = []
    for start, end in sorted(i for i in intervals if i[1] > i[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def subtract(intervals: Sequence[Interval], holes: Sequence[Interval]) -> list[Interval]:
    """``intervals`` minus ``holes`` (both sorted and disjoint).

    >>> subtract([(0, 10), (20, 30)], [(5, 22), (25, 26)])
    [(0, 5), (22, 25), (26, 30)]
    """
    out: list[Interval] = []
    j = 0
    for start, end in intervals:
        cur = start
        while j < len(holes) and holes[j][1] <= cur:
            j += 1
        k = j
        while k < len(holes) and holes[k][0] < end:
            if holes[k][0] > cur:
                out.append((cur, holes[k][0]))
            cur = max(cur, holes[k][1])
            k += 1
        if cur < end:
            out.append((cur, end))
    return out


def _business_pieces(
    calendar: BusinessCalendar, start: float, end: float | None, pauses: Sequence[Interval]
) -> Iterator[Interval]:
    """Business intervals inside ``[start, end)`` (end None: open-ended), minus ``pauses``."""
    day = calendar.local_date(start)
    last = calendar.local_date(end) if end is not None else day + timedelta(days=MAX_DAYS)
    while day <= last:
        clipped = [
            (max(s, start), e if end is None else min(e, end))
            for s, e in calendar.day_intervals(day)
            if e > start and (end is None or s < end)
        ]
        if clipped:
            relevant = [p for p in pauses if p[1] > clipped[0][0] and p[0] < clipped[-1][1]]
            yield from subtract(clipped, relevant) if relevant else clipped
        day += timedelta(days=1)


def business_seconds(
    calendar: BusinessCalendar, start: float, end: float, pauses: Sequence[Interval] = ()
) -> float:
    """Business seconds in ``[start, end)``, not counting ``pauses`` (sorted, disjoint)."""
    if end <= start:
        return 0.0
    return float(sum(e - s for s, e in _business_pieces(calendar, start, end, pauses)))


def add_business_seconds(
    calendar: BusinessCalendar, start: float, seconds: float, pauses: Sequence[Interval] = ()
) -> float | None:
    """The instant at which ``seconds`` business seconds have elapsed from ``start`` (None:
    not within :data:`MAX_DAYS`). Zero seconds is ``start`` itself."""
    if seconds <= 0:
        return start
    left = seconds
    for s, e in _business_pieces(calendar, start, None, pauses):
        if e - s >= left:
            return s + left
        left -= e - s
    return None


# --------------------------------------------------------------------------- targets


class TargetMinutes(BaseModel):
    """One case type's targets in business minutes; None: no such clock."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    first_response: int | None = Field(default=None, ge=1, le=525_600)
    restore: int | None = Field(default=None, ge=1, le=525_600)
    resolve: int | None = Field(default=None, ge=1, le=525_600)


Targets = Mapping[str, TargetMinutes]
"""Case type → its targets."""

_DEFAULT_BY_TIER: Final[dict[str, dict[str, tuple[int | None, int | None, int | None]]]] = {
    # (first response, restore, resolve) in business minutes
    "gold": {
        "emergency": (15, 240, 1440),
        "routine": (60, None, 2880),
        "adaptive": (240, None, 9600),
        "perfective": (480, None, 28800),
        "complaint": (None, None, 2400),
        "consultation": (120, None, 960),
        "onsite": (240, None, 4800),
    },
    "standard": {
        "emergency": (30, 480, 2880),
        "routine": (240, None, 4800),
        "adaptive": (480, None, 19200),
        "perfective": (960, None, 48000),
        "complaint": (None, None, 4800),
        "consultation": (480, None, 2400),
        "onsite": (480, None, 9600),
    },
}

DEFAULT_TARGETS: Final[dict[str, dict[str, TargetMinutes]]] = {
    tier: {
        kind: TargetMinutes(first_response=fr, restore=rs, resolve=rv) for kind, (fr, rs, rv) in table.items()
    }
    for tier, table in _DEFAULT_BY_TIER.items()
}
"""Targets when a contract gives none for a case type (tiers ``gold`` and ``standard``).
A complaint's first response without a target is due within ONE business day (the
calendar's regular day, :attr:`BusinessCalendar.standard_day_seconds`)."""


def target_seconds(
    targets: Targets, tier: str, case_type: str, calendar: BusinessCalendar
) -> dict[Target, float]:
    """The business seconds of each clock a case of ``case_type`` has under the contract."""
    defaults = DEFAULT_TARGETS.get(tier, DEFAULT_TARGETS["standard"])
    given = targets.get(case_type)
    fallback = defaults.get(case_type, defaults["routine"])
    found: dict[Target, float] = {}
    for name in TARGETS:
        minutes = getattr(given, name) if given is not None else None
        if minutes is None:
            minutes = getattr(fallback, name)
        if minutes is not None:
            found[name] = minutes * 60.0
        elif name == "first_response" and case_type == "complaint":
            found[name] = float(calendar.standard_day_seconds)
    return found


# --------------------------------------------------------------------------- history


@dataclass(frozen=True, slots=True)
class Transition:
    """A state change of a case (``new`` for today's ``open``); ``restored`` marks restore."""

    ts: float
    from_state: str
    to_state: str


def normalise_state(state: str) -> str:
    """Today's ``open`` is the desk's ``new``; everything else as is."""
    return "new" if state == "open" else state


_LEGACY_KINDS: Final = {
    "acknowledged": "acknowledged",
    "resolved": "resolved",
    "closed": "closed",
    "reopened": "new",
}


def history_from_events(events: Iterable[tuple[float, str, Mapping[str, Any]]]) -> list[Transition]:
    """Transitions from case timeline rows ``(ts, kind, data)``, oldest first.

    A row whose data has ``from`` and ``to`` is a state change (the desk's cases); the
    older event kinds stand for theirs; ``restored`` is kept as a restore mark.

    >>> changes = history_from_events([(1.0, "opened", {}), (2.0, "acknowledged", {}),
    ...     (3.0, "state", {"from": "acknowledged", "to": "waiting_on_customer"})])
    >>> [(c.ts, c.from_state, c.to_state) for c in changes]
    [(2.0, 'new', 'acknowledged'), (3.0, 'acknowledged', 'waiting_on_customer')]
    """
    found: list[Transition] = []
    state = "new"
    for ts, kind, data in sorted(events, key=lambda e: e[0]):
        if kind == "restored":
            found.append(Transition(ts, state, "restored"))
            continue
        target = data.get("to") if isinstance(data, Mapping) else None
        if isinstance(target, str) and isinstance(data.get("from"), str):
            new = normalise_state(target)
        elif kind in _LEGACY_KINDS:
            new = _LEGACY_KINDS[kind]
        else:
            continue
        if new != state:
            found.append(Transition(ts, state, new))
            state = new
    return found


def clock_runs(
    target: Target, opened_at: float, history: Sequence[Transition]
) -> tuple[list[tuple[float, float | None]], float | None]:
    """When ``target``'s clock runs: ``[(from, to or None)]`` and the instant it stopped for
    good (None: it may still run). Pauses for waiting on the customer are gaps between runs."""
    runs: list[tuple[float, float | None]] = []
    running_since: float | None = opened_at
    state = "new"
    for change in history:
        if change.ts < opened_at:
            continue
        if change.to_state == "restored":
            if target == "restore":
                return _close(runs, running_since, change.ts), change.ts
            continue
        before, state = state, change.to_state
        if target == "first_response" and before == "new" and state != "new":
            return _close(runs, running_since, change.ts), change.ts
        if target == "restore" and state in _DONE:
            return _close(runs, running_since, change.ts), change.ts
        runs_now = state not in _DONE and state not in _PAUSED
        if runs_now and running_since is None:
            running_since = change.ts
        elif not runs_now and running_since is not None:
            runs.append((running_since, change.ts))
            running_since = None
    if running_since is not None:
        runs.append((running_since, None))
    # resolve: stopped while resolved (a reopen resumes it); the others never stopped yet
    stopped = runs[-1][1] if target == "resolve" and state in _DONE and runs else None
    if target == "resolve" and state in _DONE and not runs:
        stopped = opened_at
    return runs, stopped


def _close(
    runs: list[tuple[float, float | None]], running_since: float | None, ts: float
) -> list[tuple[float, float | None]]:
    if running_since is not None and ts > running_since:
        runs.append((running_since, ts))
    return runs


@dataclass(frozen=True, slots=True)
class ClockStatus:
    """One clock of one case, evaluated at ``now``."""

    target: Target
    target_s: float
    elapsed_s: float
    """Business seconds counted so far."""
    clock: Literal["running", "paused", "stopped"]
    """``paused``: waiting on the customer (a maintenance window does not count as paused here:
    its pause is already inside ``due_at``)."""
    warn_at: float | None
    """When the clock reached (or will reach, if it keeps running) 75% of the target."""
    due_at: float | None
    """When it reached (or will reach) 100%; None while paused short of it or stopped short of it."""
    state: ClockState
    remaining_s: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "target_s": self.target_s,
            "elapsed_s": self.elapsed_s,
            "clock": self.clock,
            "warn_at": self.warn_at,
            "due_at": self.due_at,
            "state": self.state,
            "remaining_s": self.remaining_s,
        }


def _walk(
    calendar: BusinessCalendar,
    runs: Sequence[tuple[float, float | None]],
    pauses: Sequence[Interval],
    marks: tuple[float, float],
    now: float,
) -> tuple[float | None, float | None, float]:
    """One pass over the runs' business time: the instants ``marks`` (warn, due) seconds
    have accumulated (None: not within the runs), and the seconds counted before ``now``."""
    warn_need, due_need = marks
    counted = elapsed = 0.0
    warn_at: float | None = None
    due_at: float | None = None
    for start, end in runs:
        for s, e in _business_pieces(calendar, start, end, pauses):
            length = e - s
            if s < now:
                elapsed += min(e, now) - s
            if warn_at is None and counted + length >= warn_need:
                warn_at = s + (warn_need - counted)
            if due_at is None and counted + length >= due_need:
                due_at = s + (due_need - counted)
            counted += length
            if due_at is not None and e >= now:
                return warn_at, due_at, elapsed
    return warn_at, due_at, elapsed


def evaluate(
    calendar: BusinessCalendar,
    target: Target,
    target_s: float,
    opened_at: float,
    history: Sequence[Transition],
    now: float,
    pauses: Sequence[Interval] = (),
) -> ClockStatus:
    """The clock ``target`` of a case opened at ``opened_at`` with ``history``, at ``now``.

    ``pauses``: sorted, disjoint maintenance intervals covering the case. Past and future
    crossings are computed once from the history (``warn_at``, ``due_at``): as long as the
    history does not change, the state at any later instant follows from comparing it
    with them, which is what the sweep stores.
    """
    runs, stopped = clock_runs(target, opened_at, history)
    open_run = bool(runs) and runs[-1][1] is None
    clock: Literal["running", "paused", "stopped"] = (
        "running" if open_run else "stopped" if stopped is not None else "paused"
    )
    warn_at, due_at, elapsed = _walk(calendar, runs, pauses, (target_s * WARN_AT, target_s * BREACH_AT), now)
    state: ClockState = (
        "breached"
        if due_at is not None and due_at <= now
        else "warning"
        if warn_at is not None and warn_at <= now
        else "ok"
    )
    return ClockStatus(
        target=target,
        target_s=target_s,
        elapsed_s=elapsed,
        clock=clock,
        warn_at=warn_at,
        due_at=due_at,
        state=state,
        remaining_s=max(0.0, target_s - elapsed),
    )
