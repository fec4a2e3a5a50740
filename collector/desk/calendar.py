"""A customer's business calendar: time zone, working hours, public holidays, make-up workdays.

An instant is *business time* when, in the calendar's time zone, its local date is a
working day and its local wall time lies in one of that day's working periods
(half-open ``[from, to)``). That definition is the whole contract: the arithmetic in
:mod:`collector.desk.sla` and the brute-force reference in the tests both follow it, so
DST days come out right by construction (a working period across a spring-forward gap is
an hour shorter in real time; one across a fall-back fold counts the repeated hour twice).

Which days are working days, first match wins:

1. ``extra_holidays`` of the settings (the customer's calendar file): a day off;
2. ``extra_workdays``: a working day (with ``makeup_hours``);
3. ``country: CN``: China's official schedule from ``chinese-calendar`` (it knows the
   public holidays *and* the make-up working days, 调休, on which a Saturday or Sunday is
   worked with ``makeup_hours``). For years it does not cover, ``holidays``' CN calendar
   (public holidays only) is used and the fallback is logged once per year;
4. any other ``country``: its public holidays from ``holidays`` are days off;
5. otherwise the weekday's ``hours`` decide (no hours: a day off).

Settings are pydantic (:class:`CalendarSettings`), stored on a contract and optionally
overridden by a calendar file (:func:`load_calendar_file`, read with the repository's
bounded YAML loader; errors name the file and the field).

>>> cal = BusinessCalendar(CalendarSettings(timezone="Asia/Shanghai", country="CN"))
>>> cal.is_workday(date(2024, 10, 1)), cal.is_workday(date(2024, 10, 12))  # National Day; 调休 Saturday
(False, True)
>>> [(iso(s, cal), iso(e, cal)) for s, e in cal.day_intervals(date(2024, 10, 12))]
[('2024-10-12T09:00:00+08:00', '2024-10-12T18:00:00+08:00')]
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from collector.schedule.cron import load_zone
from diagconfig import ConfigError, ConfigIssue, issues_from, load_yaml_file

__all__ = [
    "DEFAULT_HOURS",
    "WEEKDAYS",
    "BusinessCalendar",
    "CalendarSettings",
    "Interval",
    "Period",
    "iso",
    "load_calendar_file",
    "merge_settings",
]

log = logging.getLogger(__name__)

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Interval = tuple[float, float]
"""``[start, end)`` in Unix seconds."""
Period = tuple[int, int]
"""A working period of a day: ``[from, to)`` in seconds after local midnight (to ≤ 86400)."""

_PERIOD_RE = re.compile(r"^\s*([01]?\d|2[0-3]):([0-5]\d)\s*-\s*([01]?\d|2[0-4]):([0-5]\d)\s*$")
DEFAULT_HOURS: tuple[str, ...] = ("09:00-18:00",)
"""Working hours of a weekday when none are given (Monday to Friday)."""
_MAX_PERIODS = 8
_EPOCH_DAY = date(1970, 1, 1)


def parse_period(text: str) -> Period:
    """``"09:00-12:00"`` → ``(32400, 43200)``; ``24:00`` may end a period.

    >>> parse_period("13:30-18:00"), parse_period("00:00-24:00")
    ((48600, 64800), (0, 86400))
    """
    match = _PERIOD_RE.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"expected a period HH:MM-HH:MM such as 09:00-12:00, got {text!r}")
    h1, m1, h2, m2 = (int(part) for part in match.groups())
    start, end = h1 * 3600 + m1 * 60, h2 * 3600 + m2 * 60
    if end > 86400:
        raise ValueError(f"a period ends at 24:00 at the latest, got {text!r}")
    if end <= start:
        raise ValueError(f"a period must end after it starts, got {text!r}")
    return start, end


def _periods(values: Iterable[str], where: str) -> tuple[Period, ...]:
    found = sorted(parse_period(value) for value in values)
    for (_, end), (start, _) in itertools.pairwise(found):
        if start < end:
            raise ValueError(f"{where}: periods overlap ({', '.join(values)})")
    return tuple(found)


def _period_text(value: str) -> str:
    parse_period(value)
    return value


PeriodText = Annotated[str, AfterValidator(_period_text)]
"""A working period as written: ``"09:00-12:00"``."""


class CalendarSettings(BaseModel):
    """What a customer's business calendar is made of (a contract's ``calendar``, a calendar file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = "UTC"
    """IANA time zone, e.g. ``Asia/Shanghai``."""
    country: str | None = Field(default=None, min_length=2, max_length=3)
    """ISO 3166 country whose public holidays apply (``CN``: with make-up workdays); None: none."""
    subdivision: str | None = Field(default=None, max_length=10)
    """A state or province of ``country`` (``holidays``' subdivision code), e.g. ``BY``."""
    hours: dict[Weekday, tuple[PeriodText, ...]] = Field(
        default_factory=lambda: {day: DEFAULT_HOURS for day in WEEKDAYS[:5]}
    )
    """Working periods per weekday, e.g. ``mon: ["09:00-12:00", "13:30-18:00"]``; a weekday
    not listed is a day off."""
    makeup_hours: tuple[PeriodText, ...] | None = None
    """Working periods of a make-up working day (调休) or an extra workday; default: Monday's."""
    extra_holidays: tuple[date, ...] = Field(default=(), max_length=1000)
    """Days off beside the country's (company holidays, a site closure)."""
    extra_workdays: tuple[date, ...] = Field(default=(), max_length=1000)
    """Working days beside the usual ones (make-up days the library does not know)."""

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        load_zone(value)
        return value

    @field_validator("country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        if value is None:
            return None
        import holidays

        code = value.upper()
        if code not in holidays.list_supported_countries():
            raise ValueError(f"unknown country {value!r}: expected an ISO 3166 code such as CN, US or DE")
        return code

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: dict[Weekday, tuple[str, ...]]) -> dict[Weekday, tuple[str, ...]]:
        for day, periods in value.items():
            if len(periods) > _MAX_PERIODS:
                raise ValueError(f"{day}: at most {_MAX_PERIODS} periods a day")
            _periods(periods, day)
        return value

    @field_validator("makeup_hours")
    @classmethod
    def _makeup(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None:
            _periods(value, "makeup_hours")
        return value

    @model_validator(mode="after")
    def _disjoint(self) -> CalendarSettings:
        both = sorted(set(self.extra_holidays) & set(self.extra_workdays))
        if both:
            raise ValueError(f"a day cannot be both an extra holiday and an extra workday: {both[0]}")
        if self.subdivision is not None and self.country is None:
            raise ValueError("subdivision needs a country")
        return self


def merge_settings(base: CalendarSettings, override: Mapping[str, Any]) -> CalendarSettings:
    """``base`` with a calendar file's keys: scalars and ``hours`` replace, extra days add up."""
    data = base.model_dump()
    for key, value in override.items():
        if key in ("extra_holidays", "extra_workdays") and isinstance(value, list | tuple):
            data[key] = [*data[key], *value]
        else:
            data[key] = value
    return CalendarSettings.model_validate(data)


def load_calendar_file(path: str | Path, base: CalendarSettings | None = None) -> CalendarSettings:
    """Read a customer's calendar file over ``base``; a :class:`ConfigError` names file and field.

    The file holds :class:`CalendarSettings` keys (``deploy/calendar.example.yaml``).
    """
    raw = load_yaml_file(path, "calendar file")
    source = str(path)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(source, [ConfigIssue("", "expected a mapping of calendar settings")])
    unknown = sorted(str(key) for key in raw if key not in CalendarSettings.model_fields)
    if unknown:
        valid = ", ".join(CalendarSettings.model_fields)
        raise ConfigError(source, [ConfigIssue(key, f"unknown key; valid keys: {valid}") for key in unknown])
    try:
        # Validate the file alone first so errors point at the file's own fields.
        CalendarSettings.model_validate(raw)
        return merge_settings(base or CalendarSettings(), raw)
    except ValidationError as exc:
        raise ConfigError(source, issues_from(exc, CalendarSettings, secret=re.compile(r"(?!)"))) from None


def iso(ts: float, calendar: BusinessCalendar) -> str:
    """``ts`` as local ISO 8601 in the calendar's zone (for messages and doctests)."""
    return datetime.fromtimestamp(ts, calendar.zone).isoformat()


_fallback_logged: set[int] = set()


class BusinessCalendar:
    """Working intervals of a customer's calendar; pure, with per-day results cached."""

    def __init__(self, settings: CalendarSettings) -> None:
        self.settings = settings
        self.zone: tzinfo = load_zone(settings.timezone)
        self._hours: dict[int, tuple[Period, ...]] = {
            index: _periods(settings.hours.get(day, ()), day) for index, day in enumerate(WEEKDAYS)
        }
        makeup = settings.makeup_hours
        self._makeup = (
            _periods(makeup, "makeup_hours")
            if makeup is not None
            else self._hours[0] or (_periods(DEFAULT_HOURS, "makeup_hours"))
        )
        self._extra_off = frozenset(settings.extra_holidays)
        self._extra_on = frozenset(settings.extra_workdays)
        self._holidays: Any = None
        self._intervals = lru_cache(maxsize=4096)(self._compute_intervals)

    # ------------------------------------------------------------------ days

    @property
    def standard_day_seconds(self) -> int:
        """Length of a regular working day (Monday's hours, else the make-up hours): "one business day"."""
        periods = self._hours[0] or self._makeup
        return sum(end - start for start, end in periods)

    def periods(self, day: date) -> tuple[Period, ...]:
        """The working periods of local ``day`` (empty on a day off)."""
        kind = self._day_kind(day)
        if kind == "off":
            return ()
        if kind == "makeup":
            return self._makeup
        return self._hours[day.weekday()]

    def is_workday(self, day: date) -> bool:
        return bool(self.periods(day))

    def _day_kind(self, day: date) -> Literal["off", "makeup", "usual"]:
        if day in self._extra_off:
            return "off"
        if day in self._extra_on:
            return "makeup" if not self._hours[day.weekday()] else "usual"
        country = self.settings.country
        if country == "CN":
            official = _china_day(day)
            if official is not None:
                if official == "workday":  # a weekend worked (调休) keeps weekday (make-up) hours
                    return "makeup" if day.weekday() >= 5 else "usual"
                if official == "holiday":
                    return "off"
                return "usual"  # an ordinary weekend: the weekday's own hours (usually none)
        if country is not None and day in self._country_holidays():
            return "off"
        return "usual"

    def _country_holidays(self) -> Any:
        if self._holidays is None:
            import holidays

            self._holidays = holidays.country_holidays(
                self.settings.country or "", subdiv=self.settings.subdivision
            )
        return self._holidays

    # ------------------------------------------------------------------ instants

    def local_date(self, ts: float) -> date:
        return datetime.fromtimestamp(ts, self.zone).date()

    def day_bounds(self, day: date) -> Interval:
        """``[first instant of local day, first instant of the next)``."""
        return self._day_start(day), self._day_start(day + timedelta(days=1))

    def day_intervals(self, day: date) -> tuple[Interval, ...]:
        """The business intervals of local ``day``, sorted and disjoint."""
        result: tuple[Interval, ...] = self._intervals(day)
        return result

    def _compute_intervals(self, day: date) -> tuple[Interval, ...]:
        periods = self.periods(day)
        if not periods:
            return ()
        start, end = self.day_bounds(day)
        wall_midnight = (day - _EPOCH_DAY).days * 86400
        found: list[list[float]] = []
        for seg_start, seg_end, offset in self._segments(start, end):
            # In a segment wall(t) = t + offset; want from <= wall(t) - wall_midnight < to.
            for p_from, p_to in periods:
                lo = max(seg_start, wall_midnight + p_from - offset)
                hi = min(seg_end, wall_midnight + p_to - offset)
                if lo < hi:
                    if found and found[-1][1] >= lo:
                        found[-1][1] = max(found[-1][1], hi)
                    else:
                        found.append([lo, hi])
        found.sort()
        merged: list[Interval] = []
        for lo, hi in found:
            if merged and merged[-1][1] >= lo:
                merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
            else:
                merged.append((lo, hi))
        return tuple(merged)

    def _offset(self, ts: float) -> int:
        offset = datetime.fromtimestamp(ts, self.zone).utcoffset()
        return int(offset.total_seconds()) if offset is not None else 0

    def _segments(self, start: float, end: float) -> list[tuple[float, float, int]]:
        """``[start, end)`` cut where the UTC offset changes: ``(from, to, offset)`` pieces."""
        pieces: list[tuple[float, float, int]] = []
        while start < end:
            first = self._offset(start)
            if self._offset(end - 1) == first and self._offset((start + end) / 2) == first:
                pieces.append((start, end, first))
                break
            lo, hi = start, end - 1  # offset(lo) == first != offset somewhere before end
            if self._offset(hi) == first:
                hi = (start + end) / 2
            while hi - lo > 1:  # first second with another offset (transitions are on whole seconds)
                mid = (lo + hi) // 2
                if self._offset(mid) == first:
                    lo = mid
                else:
                    hi = mid
            pieces.append((start, hi, first))
            start = hi
        return pieces

    def _day_start(self, day: date) -> float:
        naive = datetime.combine(day, time(0))
        candidates = [naive.replace(tzinfo=self.zone, fold=fold).timestamp() for fold in (0, 1)]
        earliest = min(candidates)
        if self.local_date(earliest) >= day:
            return earliest
        # local midnight falls in a gap: the day begins when the clocks jump
        lo, hi = earliest, max(candidates)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.local_date(mid) >= day:
                hi = mid
            else:
                lo = mid
        return hi

    def is_business(self, ts: float) -> bool:
        """Whether instant ``ts`` is business time (the definition, instant by instant)."""
        local = datetime.fromtimestamp(ts, self.zone)
        seconds = local.hour * 3600 + local.minute * 60 + local.second
        return any(start <= seconds < end for start, end in self.periods(local.date()))


@lru_cache(maxsize=1)
def _china_module() -> Any:
    import chinese_calendar

    return chinese_calendar


def _china_day(day: date) -> Literal["workday", "holiday", "weekend"] | None:
    """China's official answer for ``day``, or None outside chinese-calendar's years (logged once)."""
    module = _china_module()
    try:
        if module.is_workday(day):
            return "workday"
        _, name = module.get_holiday_detail(day)
        return "weekend" if name is None else "holiday"
    except NotImplementedError:
        if day.year not in _fallback_logged:
            _fallback_logged.add(day.year)
            log.warning(
                "chinese-calendar has no official schedule for %d (update the package); "
                "using holidays' CN public holidays without make-up workdays for that year",
                day.year,
            )
        return None
