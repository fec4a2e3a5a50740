"""Maintenance windows: when case opening is suppressed, per customer, host or label.

A window belongs to one customer and is evaluated in that customer's time zone. It has
exactly one schedule:

- ``once``: a one-off ``start`` and ``end``. A time without a UTC offset is local time in
  the window's zone; one that does not exist there (skipped by a spring-forward) or is
  ambiguous (repeated by a fall-back) is rejected with a message that says how to write it.
- ``cron``: a cron ``expression`` for the start (see :mod:`collector.schedule.cron`) plus a
  ``duration``.
- ``weekly``: ``days`` (``mon`` ... ``sun``), a start time ``at`` (``"HH:MM"``) and a
  ``duration``; the same as the cron expression ``M H * * days``.

Recurring starts follow :mod:`collector.schedule.cron`'s DST rules; for the usual fixed-time
schedule a start inside a spring-forward gap begins when the clocks jump (02:30 ->
03:00), and a start repeated by a fall-back begins on its first occurrence, once. A
``duration`` is elapsed time: a 2-hour window is two real hours even across a DST change.
An occurrence covers the half-open interval ``[start, end)``.

Scope: ``hosts`` (names) and ``labels`` (every given label must match). A host is covered
when it belongs to the window's customer and its name is listed, or it carries every
label given; a window with neither covers all of the customer's hosts.

Config (YAML, validated like every config; errors name the path)::

    windows:
      - name: db-patching
        customer: acme
        timezone: Europe/Berlin          # may be filled from the customer's settings
        labels: {role: db}
        weekly: {days: [sat], at: "22:00", duration: 4h}
        reason: monthly OS patching
      - name: core-switch-replacement
        customer: acme
        timezone: Europe/Berlin
        once: {start: "2025-03-30T01:00", end: "2025-03-30T05:00"}

>>> calendar = load_windows(
...     {"windows": [{"name": "nightly", "customer": "acme", "timezone": "Asia/Shanghai",
...                   "cron": {"expression": "0 2 * * *", "duration": "1h30m"}}]}
... )
>>> ts = datetime(2025, 6, 1, 3, 0, tzinfo=load_zone("Asia/Shanghai")).timestamp()
>>> [w.name for w in calendar.active_windows("acme", "db1", {"role": "db"}, ts)]
['nightly']
>>> calendar.active_windows("acme", "db1", {}, ts + 1800)
[]
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from collector.schedule.cron import CronSchedule, load_zone, resolve_local
from diagconfig import ConfigError, ConfigIssue, show_value

__all__ = [
    "MAX_ONE_OFF",
    "MAX_RECURRING_DURATION",
    "CronRecurrence",
    "HostRef",
    "MaintenanceCalendar",
    "MaintenanceConfig",
    "Occurrence",
    "OneOff",
    "WeeklyRecurrence",
    "Window",
    "load_windows",
    "next_occurrences",
    "parse_duration",
    "suppresses",
    "windows_with_file",
]

MAX_RECURRING_DURATION = timedelta(days=31)
"""Longest recurring occurrence: anything longer is not a maintenance window."""
MAX_ONE_OFF = timedelta(days=366)
"""Longest one-off window (catches a mistyped year)."""
MAX_OCCURRENCES = 1000
"""Most occurrences one call returns (next_occurrences' n, occurrences_between's limit)."""

_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_FULL_DAYS = {
    name: name[:3] for name in ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
}
_AT_RE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_DURATION_RE = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- durations


def parse_duration(value: object) -> timedelta:
    """A positive duration: seconds (a number), ``"4h"``, ``"90m"``, ``"1h30m"``, ``"2d"``.

    >>> parse_duration("1h30m"), parse_duration(600)
    (datetime.timedelta(seconds=5400), datetime.timedelta(seconds=600))
    """
    if isinstance(value, timedelta):
        duration = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if value != value or value in (float("inf"), float("-inf")):  # NaN or infinite
            raise ValueError(f"expected a duration like 2h, 90m or 1h30m, got {value!r}")
        duration = timedelta(seconds=value)
    elif isinstance(value, str):
        match = _DURATION_RE.match(value.replace(" ", "").lower())
        if not value.strip() or match is None:
            raise ValueError(f"expected a duration like 2h, 90m or 1h30m, got {value!r}")
        days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
        duration = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    else:
        raise ValueError(f"expected a duration like 2h, 90m or 1h30m, got {type(value).__name__}")
    if duration <= timedelta(0):
        raise ValueError(f"expected a positive duration, got {value!r}")
    return duration


def _recurring_duration(value: object) -> timedelta:
    duration = parse_duration(value)
    if duration > MAX_RECURRING_DURATION:
        raise ValueError(
            f"a recurring window lasts at most {MAX_RECURRING_DURATION.days} days, got {value!r}; "
            "use a one-off window for longer"
        )
    return duration


# --------------------------------------------------------------------------- schedules


class OneOff(_Model):
    """A single window from ``start`` to ``end``."""

    start: datetime
    """ISO 8601; without a UTC offset it is local time in the window's time zone."""
    end: datetime
    """Must be after ``start``, at most 366 days later."""

    @field_validator("start", "end", mode="before")
    @classmethod
    def _date_time(cls, value: object) -> object:
        # pydantic would read a number as a Unix time: too surprising in a config file
        if not isinstance(value, str | datetime):
            raise ValueError(
                f"expected an ISO 8601 date-time such as 2025-03-30T01:00 or 2025-03-30T01:00+08:00, "
                f"got {type(value).__name__}"
            )
        return value


class CronRecurrence(_Model):
    """Starts given by a cron expression, each lasting ``duration``."""

    expression: str
    """Five-field cron expression in the window's time zone, e.g. ``"0 22 * * sat"``."""
    duration: timedelta
    """How long each occurrence lasts: ``4h``, ``90m``, ``1h30m`` or seconds; at most 31 days."""

    @field_validator("expression")
    @classmethod
    def _cron(cls, value: str) -> str:
        CronSchedule.parse(value)
        return value

    _duration = field_validator("duration", mode="before")(_recurring_duration)


class WeeklyRecurrence(_Model):
    """Starts on the given weekdays at ``at``, each lasting ``duration``."""

    days: tuple[str, ...] = Field(min_length=1)
    """Weekdays: ``mon`` ... ``sun`` (full names accepted), stored as three-letter names."""
    at: str
    """Local start time ``"HH:MM"`` (24-hour)."""
    duration: timedelta
    """How long each occurrence lasts: ``4h``, ``90m``, ``1h30m`` or seconds; at most 31 days."""

    @field_validator("days", mode="before")
    @classmethod
    def _weekdays(cls, value: object) -> object:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple):
            return value
        days: list[str] = []
        for item in value:
            name = item.strip().lower() if isinstance(item, str) else item
            name = _FULL_DAYS.get(name, name) if isinstance(name, str) else name
            if name not in _DAYS:
                raise ValueError(f"expected weekday names ({', '.join(_DAYS)}), got {item!r}")
            if name not in days:
                days.append(name)
        return sorted(days, key=_DAYS.index)

    @field_validator("at")
    @classmethod
    def _time(cls, value: str) -> str:
        match = _AT_RE.match(value.strip())
        if match is None:
            raise ValueError(f"expected a 24-hour time HH:MM such as 22:00, got {value!r}")
        return f"{int(match.group(1)):02d}:{match.group(2)}"

    _duration = field_validator("duration", mode="before")(_recurring_duration)

    def cron_expression(self) -> str:
        """The equivalent cron expression, e.g. ``0 22 * * sat,sun``."""
        hour, minute = self.at.split(":")
        return f"{int(minute)} {int(hour)} * * {','.join(self.days)}"


# --------------------------------------------------------------------------- windows


@dataclass(frozen=True, slots=True)
class HostRef:
    """The host a question is about: its customer, name and labels."""

    customer: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, eq=False)
class Occurrence:
    """One occurrence of a window: ``[start, end)``, aware datetimes in the window's zone."""

    window: Window
    start: datetime
    end: datetime

    @property
    def start_ts(self) -> float:
        return self.start.timestamp()

    @property
    def end_ts(self) -> float:
        return self.end.timestamp()

    def contains(self, at_ts: float) -> bool:
        return self.start_ts <= at_ts < self.end_ts

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for timeline annotations ("suppressed by maintenance window ...")."""
        return {
            "window": self.window.name,
            "customer": self.window.customer,
            "reason": self.window.reason,
            "timezone": self.window.timezone,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "start_ts": self.start_ts,
            "end_ts": self.end_ts,
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Occurrence):
            return NotImplemented
        return (self.window.customer, self.window.name, self.start_ts, self.end_ts) == (
            other.window.customer,
            other.window.name,
            other.start_ts,
            other.end_ts,
        )

    def __hash__(self) -> int:
        return hash((self.window.customer, self.window.name, self.start_ts, self.end_ts))

    def __repr__(self) -> str:
        return f"Occurrence({self.window.name!r}, {self.start.isoformat()}, {self.end.isoformat()})"


class Window(_Model):
    """One maintenance window of one customer; exactly one of once, cron, weekly."""

    name: str = Field(min_length=1, max_length=200)
    """Unique per customer; shown on case timelines."""
    customer: str = Field(min_length=1)
    timezone: str
    """The customer's IANA time zone, e.g. ``Asia/Shanghai``."""
    hosts: tuple[str, ...] = ()
    """Host names covered (with labels: either matches). Neither given: every host."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Labels a host must all carry to be covered."""
    reason: str = ""
    """Why: shown with the suppression on the timeline."""
    once: OneOff | None = None
    cron: CronRecurrence | None = None
    weekly: WeeklyRecurrence | None = None

    _zone: tzinfo = PrivateAttr()
    _schedule: CronSchedule | None = PrivateAttr(default=None)
    _duration: timedelta = PrivateAttr()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        load_zone(value)
        return value

    @field_validator("once")
    @classmethod
    def _localise(cls, value: OneOff | None, info: ValidationInfo) -> OneOff | None:
        name = info.data.get("timezone")
        if value is None or name is None:  # no zone: its own error is already reported
            return value
        zone = load_zone(name)
        start, end = _localise(value.start, zone, "start"), _localise(value.end, zone, "end")
        # Compare in UTC: aware datetimes sharing a tzinfo compare and subtract as wall
        # clocks, which is wrong across a fall-back.
        length = end.astimezone(UTC) - start.astimezone(UTC)
        if length <= timedelta(0):
            raise ValueError(f"end {end.isoformat()} must be after start {start.isoformat()}")
        if length > MAX_ONE_OFF:
            raise ValueError(f"a one-off window lasts at most {MAX_ONE_OFF.days} days, got {length}")
        return OneOff(start=start, end=end)

    @model_validator(mode="after")
    def _one_schedule(self) -> Window:
        given = [key for key in ("once", "cron", "weekly") if getattr(self, key) is not None]
        if len(given) != 1:
            found = f"got {' and '.join(given)}" if given else "got none"
            raise ValueError(f"expected exactly one schedule: once, cron or weekly ({found})")
        return self

    def model_post_init(self, context: Any, /) -> None:
        zone = load_zone(self.timezone)
        self._zone = zone
        if self.once is not None:
            self._duration = self.once.end.astimezone(UTC) - self.once.start.astimezone(UTC)
        elif self.cron is not None:
            self._schedule = CronSchedule.parse(self.cron.expression, zone)
            self._duration = self.cron.duration
        elif self.weekly is not None:
            self._schedule = CronSchedule.parse(self.weekly.cron_expression(), zone)
            self._duration = self.weekly.duration

    # ------------------------------------------------------------------ properties

    @property
    def zone(self) -> tzinfo:
        return self._zone

    @property
    def schedule(self) -> CronSchedule | None:
        """The start schedule of a recurring window (weekly ones as cron); None for once."""
        return self._schedule

    @property
    def duration(self) -> timedelta:
        """Length of each occurrence (elapsed time)."""
        return self._duration

    # ------------------------------------------------------------------ questions

    def covers(self, host: HostRef) -> bool:
        """Whether ``host`` is in this window's scope (whatever the time)."""
        if host.customer != self.customer:
            return False
        if not self.hosts and not self.labels:
            return True
        if host.name in self.hosts:
            return True
        return bool(self.labels) and all(host.labels.get(key) == value for key, value in self.labels.items())

    def occurrence_at(self, at_ts: float) -> Occurrence | None:
        """The occurrence in progress at ``at_ts`` (the latest-started one), or None."""
        if self.once is not None:
            occurrence = Occurrence(self, self.once.start, self.once.end)
            return occurrence if occurrence.contains(at_ts) else None
        schedule = self._recurring()
        start = schedule.last_due_at_or_before(self._local(at_ts))
        occurrence = self._occurrence(start)
        return occurrence if occurrence.contains(at_ts) else None

    def is_active(self, at_ts: float) -> bool:
        return self.occurrence_at(at_ts) is not None

    def next_occurrences(self, after_ts: float, n: int = 1) -> list[Occurrence]:
        """The next ``n`` (1-1000) occurrences starting strictly after ``after_ts``."""
        if not 1 <= n <= MAX_OCCURRENCES:
            raise ValueError(f"n must be 1-{MAX_OCCURRENCES}, got {n}")
        if self.once is not None:
            return (
                [Occurrence(self, self.once.start, self.once.end)]
                if self.once.start.timestamp() > after_ts
                else []
            )
        schedule = self._recurring()
        found: list[Occurrence] = []
        start = self._local(after_ts)
        for _ in range(n):
            start = schedule.next_after(start)
            found.append(self._occurrence(start))
        return found

    def occurrences_between(
        self, start_ts: float, end_ts: float, limit: int = MAX_OCCURRENCES
    ) -> list[Occurrence]:
        """Occurrences overlapping ``[start_ts, end_ts)``, by start; ValueError past ``limit``."""
        if end_ts <= start_ts:
            return []
        if self.once is not None:
            occurrence = Occurrence(self, self.once.start, self.once.end)
            overlaps = occurrence.start_ts < end_ts and occurrence.end_ts > start_ts
            return [occurrence] if overlaps else []
        schedule = self._recurring()
        found: list[Occurrence] = []
        # the earliest start that can still overlap is just after start_ts - duration
        start = self._local(start_ts - self._duration.total_seconds())
        while True:
            start = schedule.next_after(start)
            if start.timestamp() >= end_ts:
                return found
            if len(found) == limit:
                raise ValueError(
                    f"window {self.name!r}: more than {limit} occurrences between {start_ts} and {end_ts}"
                )
            found.append(self._occurrence(start))

    # ------------------------------------------------------------------ internals

    def _recurring(self) -> CronSchedule:
        if self._schedule is None:  # pragma: no cover - the validator guarantees a schedule
            raise ValueError(f"window {self.name!r} has no schedule")
        return self._schedule

    def _local(self, ts: float) -> datetime:
        return datetime.fromtimestamp(ts, self._zone)

    def _occurrence(self, start: datetime) -> Occurrence:
        # Elapsed-time arithmetic: aware + timedelta in Python is wall-clock arithmetic.
        end = (start.astimezone(UTC) + self._duration).astimezone(self._zone)
        return Occurrence(self, start, end)


def _localise(value: datetime, zone: tzinfo, what: str) -> datetime:
    """An aware datetime for a config time; naive local times must be unambiguous."""
    if value.tzinfo is not None and value.utcoffset() is not None:
        return value.astimezone(zone)
    first = value.replace(tzinfo=zone, fold=0)
    second = value.replace(tzinfo=zone, fold=1)
    first_utc, second_utc = first.astimezone(UTC), second.astimezone(UTC)
    if first_utc == second_utc:
        return first
    shown = value.isoformat()
    if first_utc < second_utc:
        earlier, later = first_utc.astimezone(zone).isoformat(), second_utc.astimezone(zone).isoformat()
        raise ValueError(
            f"{what} {shown} occurs twice in {zone} (the clocks go back); add the UTC offset: "
            f"{earlier} (first) or {later} (second)"
        )
    jump = resolve_local(value, zone)
    raise ValueError(
        f"{what} {shown} does not exist in {zone} (the clocks jump forward at {jump.isoformat()}); "
        f"write {jump.isoformat()} or a time outside the gap"
    )


# --------------------------------------------------------------------------- free functions


def suppresses(window: Window, host: HostRef, at_ts: float | None = None) -> bool:
    """Whether ``window`` covers ``host``; with ``at_ts``, also whether it is active then."""
    return window.covers(host) and (at_ts is None or window.is_active(at_ts))


def next_occurrences(window: Window, after_ts: float, n: int = 1) -> list[Occurrence]:
    """The next ``n`` occurrences of ``window`` starting strictly after ``after_ts``."""
    return window.next_occurrences(after_ts, n)


class MaintenanceCalendar:
    """All windows, indexed by customer; answers "is this host in maintenance now?"."""

    def __init__(self, windows: Iterable[Window] = ()) -> None:
        self._by_customer: dict[str, list[Window]] = {}
        for window in windows:
            same = self._by_customer.setdefault(window.customer, [])
            if any(existing.name == window.name for existing in same):
                raise ValueError(f"duplicate window name {window.name!r} for customer {window.customer!r}")
            same.append(window)

    @property
    def windows(self) -> tuple[Window, ...]:
        return tuple(window for windows in self._by_customer.values() for window in windows)

    def for_customer(self, customer: str) -> tuple[Window, ...]:
        return tuple(self._by_customer.get(customer, ()))

    def active_occurrences(
        self, customer: str, host: str, labels: Mapping[str, str], at_ts: float
    ) -> list[Occurrence]:
        """Occurrences in progress at ``at_ts`` of windows covering the host, by window name."""
        ref = HostRef(customer, host, labels)
        found = []
        for window in self._by_customer.get(customer, ()):
            if window.covers(ref):
                occurrence = window.occurrence_at(at_ts)
                if occurrence is not None:
                    found.append(occurrence)
        return sorted(found, key=lambda occurrence: occurrence.window.name)

    def active_windows(
        self, customer: str, host: str, labels: Mapping[str, str], at_ts: float
    ) -> list[Window]:
        """Windows covering the host that are in progress at ``at_ts``, by name."""
        return [occurrence.window for occurrence in self.active_occurrences(customer, host, labels, at_ts)]


# --------------------------------------------------------------------------- config


class MaintenanceConfig(_Model):
    """The ``windows:`` list of a config file."""

    windows: list[Window] = Field(default_factory=list)

    @field_validator("windows")
    @classmethod
    def _unique(cls, value: list[Window]) -> list[Window]:
        seen: dict[tuple[str, str], int] = {}
        for index, window in enumerate(value):
            key = (window.customer, window.name)
            if key in seen:
                raise ValueError(
                    f"duplicate window name {window.name!r} for customer {window.customer!r} "
                    f"(windows {seen[key]} and {index})"
                )
            seen[key] = index
        return value


def load_windows(
    data: object, source: str = "<windows>", timezones: Mapping[str, str] | None = None
) -> MaintenanceCalendar:
    """Validate parsed YAML/JSON (``{"windows": [...]}`` or the list) into a calendar.

    ``timezones`` (customer -> IANA name, from the customers' settings) fills a window's
    missing ``timezone``. Problems raise :class:`collector.cli.config.ConfigError`, one line
    per problem: ``<source>: windows.2.cron.expression: <what is wrong> (got <value>)``.
    """
    raw: object = {"windows": data} if isinstance(data, list) else data
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(
            source, [ConfigIssue("", "expected a mapping with a windows list", show_value(raw))]
        )
    if timezones and isinstance(raw.get("windows"), list):
        raw = dict(raw)
        raw["windows"] = [_with_zone(item, timezones) for item in raw["windows"]]
    try:
        config = MaintenanceConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(source, [_issue(error) for error in exc.errors(include_url=False)]) from None
    return MaintenanceCalendar(config.windows)


def _with_zone(item: object, timezones: Mapping[str, str]) -> object:
    if isinstance(item, dict) and "timezone" not in item and isinstance(item.get("customer"), str):
        zone = timezones.get(item["customer"])
        if zone is not None:
            return {**item, "timezone": zone}
    return item


_MODELS: dict[str, type[BaseModel]] = {
    "once": OneOff,
    "cron": CronRecurrence,
    "weekly": WeeklyRecurrence,
}


def _issue(error: Any) -> ConfigIssue:
    loc = tuple(str(part) for part in error["loc"])
    path = ".".join(loc)
    kind = error["type"]
    if kind == "missing":
        return ConfigIssue(path, "required key is missing")
    if kind == "extra_forbidden":
        parent = loc[-2] if len(loc) >= 2 else ""
        model = _MODELS.get(parent) or (Window if parent.isdigit() else MaintenanceConfig)
        return ConfigIssue(path, f"unknown key; valid keys here: {', '.join(model.model_fields)}")
    message = str(error["msg"]).removeprefix("Value error, ")
    return ConfigIssue(path, message, show_value(error["input"]))


def windows_with_file(windows: Iterable[Window], windows_file: Path | None) -> MaintenanceCalendar:
    """``windows`` plus those of ``windows_file`` (a ConfigError names the file)."""
    found = list(windows)
    if windows_file is not None:
        from diagconfig import load_yaml_file

        raw = load_yaml_file(windows_file, "maintenance windows file")
        found.extend(load_windows(raw, str(windows_file)).windows)
    return MaintenanceCalendar(found)
