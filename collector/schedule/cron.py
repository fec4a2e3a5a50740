"""Cron schedules: the classic five fields, evaluated in a time zone.

A small parser and evaluator for the crontab(5) syntax, shared by maintenance windows
(issue 4) and inspection plans (issue 5). Fields, in order::

    minute        0-59
    hour          0-23
    day-of-month  1-31
    month         1-12 or jan-dec
    day-of-week   0-7 or sun-sat (0 and 7 are both Sunday)

Each field is ``*``, a value, a range ``a-b``, a step ``*/n``, ``a-b/n`` or ``a/n``
(``a`` to the end of the field's range), or a comma-separated list of those. Names are
case-insensitive. The macros ``@yearly`` (``@annually``), ``@monthly``, ``@weekly``,
``@daily`` (``@midnight``) and ``@hourly`` are accepted; ``@reboot`` and the Quartz
extensions (``L``, ``W``, ``#``, ``?``, seconds, years) are not. As in Vixie cron and
cronie, when both day fields are restricted (neither starts with ``*``) a day matches
if *either* matches; otherwise both must match.

**Time zone.** A schedule is evaluated on the wall clock of a zone: the one given to
:meth:`CronSchedule.parse` (``tz=``), else the zone of the datetime passed in. Every
datetime argument must be timezone-aware; results are aware datetimes in that zone.

**Daylight saving time** follows the rule of crontab's manual page (cron(8) on Debian):
a schedule whose minute or hour field starts with ``*`` (``*/5 * * * *``, ``0 * * * *``,
``@hourly``) is a *wildcard* schedule and runs on the wall clock as it is: times skipped
by a spring-forward do not happen, and times repeated by a fall-back happen twice. Any
other schedule is a *fixed-time* schedule (``30 2 * * *``, ``0 9-17 * * mon-fri``):

- a local time that does not exist (skipped by spring-forward) fires once, at the
  instant the clocks jump (e.g. 03:00 local on Europe/Berlin's spring-forward day for
  ``30 2 * * *``); several scheduled times inside one gap fire once together;
- a local time that occurs twice (fall-back) fires once, on its first occurrence
  (the earlier instant, ``fold=0``).

So a fixed-time schedule never loses a day's run and never doubles it.

>>> from zoneinfo import ZoneInfo
>>> berlin = ZoneInfo("Europe/Berlin")
>>> nightly = CronSchedule.parse("30 2 * * *", tz="Europe/Berlin")
>>> nightly.next_after(datetime(2025, 3, 29, 12, 0, tzinfo=berlin)).isoformat()
'2025-03-30T03:00:00+02:00'
>>> nightly.next_after(datetime(2025, 10, 25, 12, 0, tzinfo=berlin)).isoformat()
'2025-10-26T02:30:00+02:00'
>>> nightly.last_due_at_or_before(datetime(2025, 10, 26, 2, 45, tzinfo=berlin, fold=1)).isoformat()
'2025-10-26T02:30:00+02:00'
>>> CronSchedule.parse("0 0 * * mon-fri/2").days_of_week
frozenset({1, 3, 5})
>>> CronSchedule.parse("61 * * * *")
Traceback (most recent call last):
...
collector.schedule.cron.CronError: minute: 61 is out of range 0-59 (cron '61 * * * *')
"""

from __future__ import annotations

import bisect
import calendar
import difflib
import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

__all__ = ["FIELD_NAMES", "CronError", "CronSchedule", "load_zone", "resolve_local"]

FIELD_NAMES = ("minute", "hour", "day-of-month", "month", "day-of-week")
"""The five fields, in order; :attr:`CronError.field` is one of these (or None)."""

_MONTHS = {name.lower(): number for number, name in enumerate(calendar.month_abbr) if name}
_WEEKDAYS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MAX_EXPRESSION = 1000
# Longest stretch searched for the next matching day. A schedule that validates always
# matches within this span (the worst case, 29 February on a given weekday, recurs within
# 28 years in 1901-2099 and within 40 years around a skipped century leap year).
_SEARCH_YEARS = 41
_UTC = UTC
_ONE_DAY = timedelta(days=1)
_TWO_DAYS = timedelta(days=2)


class CronError(ValueError):
    """A cron expression that cannot be used; ``field`` names the culprit (None: the whole)."""

    def __init__(self, expression: str, field: str | None, problem: str) -> None:
        self.expression = expression
        self.field = field
        self.problem = problem
        where = f"{field}: " if field else ""
        super().__init__(f"{where}{problem} (cron {_show(expression)})")


@dataclass(frozen=True, slots=True)
class _FieldSpec:
    name: str
    low: int
    high: int
    names: dict[str, int]


_SPECS = (
    _FieldSpec("minute", 0, 59, {}),
    _FieldSpec("hour", 0, 23, {}),
    _FieldSpec("day-of-month", 1, 31, {}),
    _FieldSpec("month", 1, 12, _MONTHS),
    _FieldSpec("day-of-week", 0, 7, _WEEKDAYS),
)


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """A parsed five-field cron expression; build one with :meth:`parse`."""

    expression: str
    """The text as given (macros kept as written)."""
    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]
    """0 = Sunday ... 6 = Saturday (a 7 in the expression is stored as 0)."""
    day_or: bool
    """True when both day fields are restricted: a day matches if either does."""
    wildcard: bool
    """True when the minute or hour field starts with ``*``: see the module's DST rules."""
    tz: tzinfo | None = None
    """Zone the schedule is evaluated in; None: the zone of each datetime passed in."""
    _times: tuple[int, ...] = field(default=(), repr=False, compare=False)
    """Matching minutes of the day (hour * 60 + minute), ascending."""

    # ------------------------------------------------------------------ building

    @classmethod
    def parse(cls, text: str, tz: str | tzinfo | None = None) -> CronSchedule:
        """Parse ``text``; raise :class:`CronError` naming the bad field.

        ``tz`` binds the schedule to a zone (an IANA name such as ``"Asia/Shanghai"`` or
        a tzinfo); an unknown name raises ValueError.
        """
        if not isinstance(text, str):
            raise CronError(repr(text), None, f"expected a string, got {type(text).__name__}")
        if len(text) > _MAX_EXPRESSION:
            raise CronError(text, None, f"longer than {_MAX_EXPRESSION} characters")
        stripped = text.strip()
        if stripped.startswith("@"):
            body = _MACROS.get(stripped.lower())
            if body is None:
                raise CronError(text, None, f"unknown macro {stripped!r}; known: {', '.join(_MACROS)}")
        else:
            body = stripped
        parts = body.split()
        if len(parts) != 5:
            raise CronError(
                text,
                None,
                f"expected 5 fields ({' '.join(FIELD_NAMES)}), got {len(parts)}",
            )
        minutes, hours, doms, months, dows = (
            _parse_field(part, spec, text) for part, spec in zip(parts, _SPECS, strict=True)
        )
        dows = frozenset(day % 7 for day in dows)
        dom_star, dow_star = parts[2].startswith("*"), parts[4].startswith("*")
        day_or = not dom_star and not dow_star
        if not day_or and not any(
            day <= _longest_month(month) for month in months for day in doms
        ):  # with AND, the day-of-month set alone decides whether the schedule ever fires
            raise CronError(
                text,
                "day-of-month",
                f"day {min(doms)} never occurs in the selected months "
                f"({', '.join(calendar.month_abbr[m].lower() for m in sorted(months))})",
            )
        zone = None if tz is None else load_zone(tz)
        return cls(
            expression=text,
            minutes=minutes,
            hours=hours,
            days_of_month=doms,
            months=months,
            days_of_week=dows,
            day_or=day_or,
            wildcard=parts[0].startswith("*") or parts[1].startswith("*"),
            tz=zone,
            _times=tuple(sorted(h * 60 + m for h in hours for m in minutes)),
        )

    def with_tz(self, tz: str | tzinfo) -> CronSchedule:
        """The same schedule evaluated in ``tz``."""
        return CronSchedule.parse(self.expression, tz)

    def __str__(self) -> str:
        return self.expression

    # ------------------------------------------------------------------ queries

    def matches_day(self, day: date) -> bool:
        """Whether the schedule fires on calendar ``day`` (month and day fields only)."""
        if day.month not in self.months:
            return False
        dom = day.day in self.days_of_month
        dow = day.isoweekday() % 7 in self.days_of_week
        return (dom or dow) if self.day_or else (dom and dow)

    def next_after(self, dt: datetime) -> datetime:
        """The first run strictly after ``dt`` (aware), in the schedule's zone."""
        zone, at = self._zone_and_utc(dt)
        try:
            return self._next_after(zone, at)
        except OverflowError:  # dt is within days of year 9999
            raise ValueError(
                f"cron {_show(self.expression)}: no run after {dt.isoformat()} within the calendar"
            ) from None

    def _next_after(self, zone: tzinfo, at: datetime) -> datetime:
        # Lowest wall time whose run could still lie after dt: dt's own wall time, or an
        # earlier one when a fall-back just after dt repeats it (wildcard second pass).
        low = _naive(at) + min(_offset(at, zone), _offset(at, zone, _TWO_DAYS))
        best: datetime | None = None
        for wall in self._walls_from(low):
            runs = self._runs_at(wall, zone)
            if not runs:
                continue
            if best is not None and runs[0] >= best:
                break  # runs of later wall times are never earlier than this one's first
            later = [run for run in runs if run > at]
            if later and (best is None or later[0] < best):
                best = later[0]
        if best is None:  # the day search ran off the calendar (or its bound)
            raise OverflowError("no run within the calendar")
        return best.astimezone(zone)

    def last_due_at_or_before(self, dt: datetime) -> datetime:
        """The latest run at or before ``dt`` (aware), in the schedule's zone.

        For a scheduler catching up after downtime: if this is later than the last run it
        started, one run is due now.
        """
        zone, at = self._zone_and_utc(dt)
        try:
            return self._last_due(zone, at)
        except OverflowError:  # dt is within days of year 1
            raise ValueError(
                f"cron {_show(self.expression)}: no run at or before {dt.isoformat()} within the calendar"
            ) from None

    def _last_due(self, zone: tzinfo, at: datetime) -> datetime:
        high = _naive(at) + max(_offset(at, zone), _offset(at, zone, -_TWO_DAYS))
        best: datetime | None = None
        for wall in self._walls_down_from(high):
            runs = self._runs_at(wall, zone)
            if not runs:
                continue
            if best is not None and runs[-1] <= best:
                break  # runs of earlier wall times are never later than this one's last
            earlier = [run for run in runs if run <= at]
            if earlier and (best is None or earlier[-1] > best):
                best = earlier[-1]
        if best is None:  # the day search ran off the calendar (or its bound)
            raise OverflowError("no run within the calendar")
        return best.astimezone(zone)

    def runs_between(self, start: datetime, end: datetime, limit: int = 10_000) -> list[datetime]:
        """Runs in the half-open interval ``(start, end]``, at most ``limit`` (else ValueError)."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        _, end_utc = self._zone_and_utc(end)
        runs: list[datetime] = []
        run = self.next_after(start)
        while run.astimezone(_UTC) <= end_utc:
            if len(runs) == limit:
                raise ValueError(
                    f"cron {_show(self.expression)}: more than {limit} runs between "
                    f"{start.isoformat()} and {end.isoformat()}"
                )
            runs.append(run)
            run = self.next_after(run)
        return runs

    # ------------------------------------------------------------------ internals

    def _zone_and_utc(self, dt: datetime) -> tuple[tzinfo, datetime]:
        if not isinstance(dt, datetime):
            raise TypeError(f"expected a datetime, got {type(dt).__name__}")
        if dt.tzinfo is None or dt.utcoffset() is None:
            raise ValueError(f"expected a timezone-aware datetime, got naive {dt.isoformat()}")
        zone = self.tz or dt.tzinfo
        return zone, dt.astimezone(_UTC)

    def _runs_at(self, wall: datetime, zone: tzinfo) -> tuple[datetime, ...]:
        """UTC instants at which the schedule fires for local ``wall`` time (0, 1 or 2)."""
        first = wall.replace(tzinfo=zone, fold=0).astimezone(_UTC)
        second = wall.replace(tzinfo=zone, fold=1).astimezone(_UTC)
        if first == second:
            return (first,)
        if first < second:  # repeated by a fall-back: first is the earlier pass
            return (first, second) if self.wildcard else (first,)
        # skipped by a spring-forward (PEP 495 maps it both ways around the jump)
        return () if self.wildcard else (_jump_instant(wall, second, first, zone),)

    def _walls_from(self, low: datetime) -> Iterator[datetime]:
        """Matching wall times >= ``low`` (minute resolution), ascending."""
        start_minute = low.hour * 60 + low.minute + (1 if low.second or low.microsecond else 0)
        for day in self._days(low.date(), forward=True):
            first = bisect.bisect_left(self._times, start_minute) if day == low.date() else 0
            for minute in self._times[first:]:
                yield datetime.combine(day, time(minute // 60, minute % 60))

    def _walls_down_from(self, high: datetime) -> Iterator[datetime]:
        """Matching wall times <= ``high`` (minute resolution), descending."""
        end_minute = high.hour * 60 + high.minute
        for day in self._days(high.date(), forward=False):
            stop = bisect.bisect_right(self._times, end_minute) if day == high.date() else len(self._times)
            for minute in reversed(self._times[:stop]):
                yield datetime.combine(day, time(minute // 60, minute % 60))

    def _days(self, start: date, *, forward: bool) -> Iterator[date]:
        """Matching days from ``start`` (inclusive), ascending or descending.

        Bounded: stops after _SEARCH_YEARS or at the end of the calendar (year 1 or 9999);
        the callers report "no run" then.
        """
        day = start
        for _ in range(_SEARCH_YEARS * 366):  # each step moves at least one day
            if day.month not in self.months:
                # jump to the first (or last) day of the next (or previous) month
                if forward:
                    nxt = _shift(day.replace(day=28), timedelta(days=4))
                    nxt = nxt.replace(day=1) if nxt else None
                else:
                    nxt = _shift(day.replace(day=1), -_ONE_DAY)
            else:
                if self.matches_day(day):
                    yield day
                nxt = _shift(day, _ONE_DAY if forward else -_ONE_DAY)
            if nxt is None:
                return
            day = nxt


# --------------------------------------------------------------------------- parsing


def _parse_field(text: str, spec: _FieldSpec, expression: str) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise CronError(expression, spec.name, f"empty item in list {text!r}")
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            span = spec.high - spec.low + (0 if spec.name == "day-of-week" else 1)
            if not (step_text.isascii() and step_text.isdigit()) or not 1 <= int(step_text) <= span:
                raise CronError(
                    expression, spec.name, f"step {step_text!r} in {item!r} must be a whole number 1-{span}"
                )
            step = int(step_text)
        if base == "*":
            low = spec.low
            high = 6 if spec.name == "day-of-week" else spec.high
        elif "-" in base:
            first, _, last = base.partition("-")
            low, high = _value(first, spec, expression), _value(last, spec, expression)
            if low > high:
                raise CronError(
                    expression, spec.name, f"range {base!r} runs backwards (write {last}-{first}?)"
                )
        else:
            low = _value(base, spec, expression)
            high = spec.high if slash else low
        values.update(range(low, high + 1, step))
    return frozenset(values)


def _value(token: str, spec: _FieldSpec, expression: str) -> int:
    if token.isascii() and token.isdigit():
        number = int(token)
        if not spec.low <= number <= spec.high:
            raise CronError(expression, spec.name, f"{token} is out of range {spec.low}-{spec.high}")
        return number
    named = spec.names.get(token.lower())
    if named is not None:
        return named
    expected = f"a number {spec.low}-{spec.high}"
    if spec.names:
        expected += f" or a name ({', '.join(spec.names)})"
    if token in ("L", "W", "?") or "#" in token or token.upper().endswith(("L", "W")):
        expected += "; Quartz extensions (L, W, #, ?) are not supported"
    shown = repr(token) if token else "nothing"
    raise CronError(expression, spec.name, f"expected {expected}, got {shown}")


def _longest_month(month: int) -> int:
    return 29 if month == 2 else calendar.monthrange(2001, month)[1]


# --------------------------------------------------------------------------- time zones


def load_zone(name: str | tzinfo) -> tzinfo:
    """The zone for an IANA name (a tzinfo passes through); ValueError with a suggestion.

    >>> load_zone("Asia/Shanghai")
    zoneinfo.ZoneInfo(key='Asia/Shanghai')
    >>> load_zone("Europe/Berln")
    Traceback (most recent call last):
    ...
    ValueError: unknown time zone 'Europe/Berln'; did you mean 'Europe/Berlin'?
    """
    if isinstance(name, tzinfo):
        return name
    if not isinstance(name, str):
        raise ValueError(
            f"expected an IANA time zone name such as 'Asia/Shanghai', got {type(name).__name__}"
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # not found, not a normalised key, or not a TZif file: all are a bad name to the user
        pass
    known = _zone_names()
    if not known:
        raise ValueError(
            f"unknown time zone {_show(name)}: this system has no time zone data "
            "(install the tzdata package: apt-get install tzdata, or pip install tzdata)"
        )
    by_lower = {zone.lower(): zone for zone in known}
    close = [by_lower[name.strip().lower()]] if name.strip().lower() in by_lower else []
    close = close or difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else "; expected an IANA name such as 'Asia/Shanghai'"
    raise ValueError(f"unknown time zone {_show(name)}{hint}")


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


# --------------------------------------------------------------------------- helpers


def resolve_local(wall: datetime, zone: tzinfo) -> datetime:
    """The instant of naive local ``wall`` time in ``zone`` under the fixed-time DST rule.

    A time skipped by a spring-forward maps to the instant the clocks jump; a time that
    occurs twice maps to its first occurrence. The result is aware, in ``zone``.

    >>> from zoneinfo import ZoneInfo
    >>> resolve_local(datetime(2025, 3, 9, 2, 30), ZoneInfo("America/New_York")).isoformat()
    '2025-03-09T03:00:00-04:00'
    >>> resolve_local(datetime(2025, 11, 2, 1, 30), ZoneInfo("America/New_York")).isoformat()
    '2025-11-02T01:30:00-04:00'
    """
    if wall.tzinfo is not None:
        raise ValueError(f"expected a naive local time, got {wall.isoformat()}")
    first = wall.replace(tzinfo=zone, fold=0).astimezone(_UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(_UTC)
    instant = first if first <= second else _jump_instant(wall, second, first, zone)
    return instant.astimezone(zone)


def _naive(at: datetime) -> datetime:
    return at.replace(tzinfo=None)


def _offset(at: datetime, zone: tzinfo, shift: timedelta = timedelta(0)) -> timedelta:
    """UTC offset of ``zone`` at ``at + shift`` (at itself past the end of the calendar)."""
    try:
        offset = (at + shift).astimezone(zone).utcoffset()
    except OverflowError:  # within days of year 1 or 9999: use the offset at ``at``
        offset = at.astimezone(zone).utcoffset()
    return offset or timedelta(0)


def _shift(day: date, delta: timedelta) -> date | None:
    try:
        return day + delta
    except OverflowError:  # the calendar ends (year 1 or 9999)
        return None


def _jump_instant(wall: datetime, before: datetime, after: datetime, zone: tzinfo) -> datetime:
    """The instant the clocks jump over ``wall``: the first second whose wall time is later.

    ``before`` and ``after`` are the two PEP 495 readings of ``wall`` (UTC); the jump lies
    between them. Bisection on whole seconds: at most 17 steps for a 24-hour gap.
    """
    low, high = int(before.timestamp()), int(after.timestamp())  # wall(low) < wall <= wall(high)
    while high - low > 1:
        middle = (low + high) // 2
        if _naive(datetime.fromtimestamp(middle, zone)) >= wall:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, _UTC)


def _show(value: str, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"
