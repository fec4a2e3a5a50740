"""collector.schedule.cron: parsing, errors naming the field, and runs across DST transitions.

The DST cases use the real tz database (zoneinfo over /usr/share/zoneinfo). A brute-force
reference (stepping minute by minute through UTC and applying the documented rules)
cross-checks next_after / last_due_at_or_before around every transition used here.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from collector.schedule.cron import CronError, CronSchedule, load_zone

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")  # 30-minute DST shift: a stress case


def at(
    zone: ZoneInfo,
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    second: int = 0,
    fold: int = 0,
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=zone, fold=fold)


def iso(dt: datetime) -> str:
    return dt.isoformat()


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "* * * * *",
            (set(range(60)), set(range(24)), set(range(1, 32)), set(range(1, 13)), set(range(7))),
            id="all stars",
        ),
        pytest.param(
            "*/15 9-17 1,15 * mon-fri",
            ({0, 15, 30, 45}, set(range(9, 18)), {1, 15}, set(range(1, 13)), {1, 2, 3, 4, 5}),
            id="steps ranges lists names",
        ),
        pytest.param(
            "5/20 0-23/6 */10 jan-dec/3 SUN,sat",
            ({5, 25, 45}, {0, 6, 12, 18}, {1, 11, 21, 31}, {1, 4, 7, 10}, {0, 6}),
            id="start/step, range/step, star/step, upper-case names",
        ),
        pytest.param(
            "0 0 * * 7",
            ({0}, {0}, set(range(1, 32)), set(range(1, 13)), {0}),
            id="7 is sunday",
        ),
        pytest.param(
            "0 0 * * 5-7",
            ({0}, {0}, set(range(1, 32)), set(range(1, 13)), {5, 6, 0}),
            id="range through 7",
        ),
        pytest.param(
            "  30   2  *  *  sun  ",
            ({30}, {2}, set(range(1, 32)), set(range(1, 13)), {0}),
            id="extra whitespace",
        ),
        pytest.param(
            "@weekly",
            ({0}, {0}, set(range(1, 32)), set(range(1, 13)), {0}),
            id="macro weekly",
        ),
        pytest.param("@Monthly", ({0}, {0}, {1}, set(range(1, 13)), set(range(7))), id="macro monthly"),
    ],
)
def test_parse_fields(text, expected):
    schedule = CronSchedule.parse(text)
    got = (
        schedule.minutes,
        schedule.hours,
        schedule.days_of_month,
        schedule.months,
        schedule.days_of_week,
    )
    assert got == tuple(frozenset(values) for values in expected)
    assert str(schedule) == text


@pytest.mark.parametrize(
    ("text", "day_or", "wildcard"),
    [
        pytest.param("0 0 1 * mon", True, False, id="both days restricted: or"),
        pytest.param("0 0 */2 * mon", False, False, id="day-of-month starts with star: and"),
        pytest.param("0 0 1 * *", False, False, id="only day-of-month"),
        pytest.param("*/5 3 * * *", False, True, id="minute star: wildcard"),
        pytest.param("0 */2 * * *", False, True, id="hour star: wildcard"),
        pytest.param("@hourly", False, True, id="hourly macro is wildcard"),
        pytest.param("0 9-17 * * mon-fri", False, False, id="fixed-time range"),
    ],
)
def test_day_rule_and_wildcard(text, day_or, wildcard):
    schedule = CronSchedule.parse(text)
    assert (schedule.day_or, schedule.wildcard) == (day_or, wildcard)


@pytest.mark.parametrize(
    ("text", "day", "matches"),
    [
        pytest.param("0 0 1 * mon", date(2025, 6, 1), True, id="or: 1st (a sunday)"),
        pytest.param("0 0 1 * mon", date(2025, 6, 2), True, id="or: a monday"),
        pytest.param("0 0 1 * mon", date(2025, 6, 3), False, id="or: neither"),
        pytest.param("0 0 */2 * mon", date(2025, 6, 2), False, id="and: even day monday"),
        pytest.param("0 0 */2 * mon", date(2025, 6, 9), True, id="and: odd day monday"),
        pytest.param("0 0 * 2 *", date(2025, 3, 1), False, id="month not selected"),
    ],
)
def test_matches_day(text, day, matches):
    assert CronSchedule.parse(text).matches_day(day) is matches


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        pytest.param("", None, "expected 5 fields", id="empty"),
        pytest.param(
            "* * * *",
            None,
            "expected 5 fields (minute hour day-of-month month day-of-week), got 4",
            id="four fields",
        ),
        pytest.param("0 0 * * * 2025", None, "got 6", id="six fields (quartz year)"),
        pytest.param("61 * * * *", "minute", "61 is out of range 0-59", id="minute too big"),
        pytest.param("* 24 * * *", "hour", "24 is out of range 0-23", id="hour too big"),
        pytest.param("* * 0 * *", "day-of-month", "0 is out of range 1-31", id="day zero"),
        pytest.param("* * * 13 *", "month", "13 is out of range 1-12", id="month 13"),
        pytest.param(
            "* * * foo *", "month", "expected a number 1-12 or a name (jan, feb", id="bad month name"
        ),
        pytest.param("* * * * 8", "day-of-week", "8 is out of range 0-7", id="weekday 8"),
        pytest.param("* * * * funday", "day-of-week", "got 'funday'", id="bad weekday name"),
        pytest.param("* * * * mon#2", "day-of-week", "Quartz extensions", id="quartz hash"),
        pytest.param("* * L * *", "day-of-month", "Quartz extensions", id="quartz L"),
        pytest.param("* * ? * *", "day-of-month", "Quartz extensions", id="quartz question mark"),
        pytest.param(
            "*/0 * * * *", "minute", "step '0' in '*/0' must be a whole number 1-60", id="step zero"
        ),
        pytest.param("*/61 * * * *", "minute", "must be a whole number 1-60", id="step too big"),
        pytest.param("*/x * * * *", "minute", "step 'x'", id="step not a number"),
        pytest.param("5-1 * * * *", "minute", "range '5-1' runs backwards", id="backwards range"),
        pytest.param("fri-mon * * * *", "minute", "got 'fri'", id="names in wrong field"),
        pytest.param(
            "* * * * fri-mon", "day-of-week", "range 'fri-mon' runs backwards", id="wrapping weekdays"
        ),
        pytest.param("1,,2 * * * *", "minute", "empty item", id="empty list item"),
        pytest.param("1- * * * *", "minute", "got nothing", id="open range"),
        pytest.param("-1 * * * *", "minute", "got nothing", id="negative"),
        pytest.param("\uff11 * * * *", "minute", "got '\uff11'", id="fullwidth digit"),
        pytest.param(
            "0 0 31 2 *", "day-of-month", "day 31 never occurs in the selected months (feb)", id="31 february"
        ),
        pytest.param("0 0 31 apr,jun *", "day-of-month", "never occurs", id="31 april and june"),
        pytest.param("@reboot", None, "unknown macro '@reboot'", id="reboot macro"),
        pytest.param("x" * 1001, None, "longer than 1000 characters", id="too long"),
    ],
)
def test_bad_expressions_name_the_field(text, field, message):
    with pytest.raises(CronError) as caught:
        CronSchedule.parse(text)
    assert caught.value.field == field
    assert message in str(caught.value)
    if field:
        assert str(caught.value).startswith(f"{field}: ")
    assert isinstance(caught.value, ValueError)


def test_not_a_string():
    with pytest.raises(CronError, match="expected a string, got int"):
        CronSchedule.parse(5)  # type: ignore[arg-type]


def test_february_29_is_valid_and_waits_for_a_leap_year():
    schedule = CronSchedule.parse("0 12 29 2 *", tz="Asia/Shanghai")
    assert iso(schedule.next_after(at(SHANGHAI, 2025, 1, 1))) == "2028-02-29T12:00:00+08:00"
    assert iso(schedule.last_due_at_or_before(at(SHANGHAI, 2027, 1, 1))) == "2024-02-29T12:00:00+08:00"
    # 2100 is not a leap year: eight years between runs
    assert iso(schedule.next_after(at(SHANGHAI, 2096, 3, 1))) == "2104-02-29T12:00:00+08:00"


# --------------------------------------------------------------------------- time zones


@pytest.mark.parametrize(
    ("name", "message"),
    [
        pytest.param(
            "Europe/Berln", "unknown time zone 'Europe/Berln'; did you mean 'Europe/Berlin'?", id="typo"
        ),
        pytest.param("asia/shanghai", "did you mean 'Asia/Shanghai'?", id="wrong case"),
        pytest.param("Mars/Olympus", "unknown time zone 'Mars/Olympus'", id="unknown"),
        pytest.param("", "unknown time zone ''", id="empty"),
        pytest.param("../etc/passwd", "unknown time zone '../etc/passwd'", id="path traversal"),
        pytest.param("Europe", "unknown time zone 'Europe'", id="a directory"),
        pytest.param("zone.tab", "unknown time zone 'zone.tab'", id="not a tzif file"),
    ],
)
def test_bad_zone_names(name, message):
    with pytest.raises(ValueError, match="unknown time zone") as caught:
        load_zone(name)
    assert message in str(caught.value)


def test_zone_binding_and_naive_input():
    bound = CronSchedule.parse("0 9 * * *", tz="Asia/Shanghai")
    # A UTC datetime is converted: the schedule still runs at 09:00 in Shanghai.
    assert iso(bound.next_after(datetime(2025, 6, 1, 2, 0, tzinfo=UTC))) == "2025-06-02T09:00:00+08:00"
    unbound = CronSchedule.parse("0 9 * * *")
    # Unbound: the zone of the argument decides.
    assert iso(unbound.next_after(datetime(2025, 6, 1, 2, 0, tzinfo=UTC))) == "2025-06-01T09:00:00+00:00"
    fixed = timezone(timedelta(hours=-5))
    assert iso(unbound.next_after(datetime(2025, 6, 1, 10, 0, tzinfo=fixed))) == "2025-06-02T09:00:00-05:00"
    assert bound.with_tz("Europe/Berlin").tz == BERLIN
    with pytest.raises(ValueError, match="expected a timezone-aware datetime, got naive 2025-06-01T02:00:00"):
        bound.next_after(datetime(2025, 6, 1, 2, 0))
    with pytest.raises(ValueError, match="timezone-aware"):
        bound.last_due_at_or_before(datetime(2025, 6, 1, 2, 0))
    with pytest.raises(TypeError, match="expected a datetime, got float"):
        bound.next_after(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="did you mean 'Asia/Shanghai'"):
        CronSchedule.parse("0 9 * * *", tz="Asia/Shangai")


# --------------------------------------------------------------------------- runs


@pytest.mark.parametrize(
    ("text", "zone", "after", "expected"),
    [
        # no DST in China since 1991: the "transition" days of Europe and the US are ordinary
        pytest.param(
            "30 2 * * *",
            SHANGHAI,
            at(SHANGHAI, 2025, 3, 29, 12),
            "2025-03-30T02:30:00+08:00",
            id="shanghai 02:30 on berlin's spring day",
        ),
        pytest.param(
            "30 2 * * *",
            SHANGHAI,
            at(SHANGHAI, 2025, 10, 26, 2, 30),
            "2025-10-27T02:30:00+08:00",
            id="shanghai strictly after",
        ),
        pytest.param(
            "*/20 * * * *",
            SHANGHAI,
            at(SHANGHAI, 2025, 3, 9, 1, 59, 59),
            "2025-03-09T02:00:00+08:00",
            id="shanghai wildcard at 02:00",
        ),
        # Europe/Berlin: 2025-03-30 02:00 -> 03:00, 2025-10-26 03:00 -> 02:00
        pytest.param(
            "30 2 * * *",
            BERLIN,
            at(BERLIN, 2025, 3, 29, 12),
            "2025-03-30T03:00:00+02:00",
            id="berlin fixed 02:30 on spring day runs when clocks jump",
        ),
        pytest.param(
            "30 2 * * *",
            BERLIN,
            at(BERLIN, 2025, 3, 30, 3, 0),
            "2025-03-31T02:30:00+02:00",
            id="berlin the jump's run is not repeated",
        ),
        pytest.param(
            "0,30 2 * * *",
            BERLIN,
            at(BERLIN, 2025, 3, 30, 1, 59),
            "2025-03-30T03:00:00+02:00",
            id="berlin two times in the gap fire once",
        ),
        pytest.param(
            "0,30 2 * * *",
            BERLIN,
            at(BERLIN, 2025, 3, 30, 3, 0),
            "2025-03-31T02:00:00+02:00",
            id="berlin two times in the gap: no second run",
        ),
        pytest.param(
            "0 3 * * *",
            BERLIN,
            at(BERLIN, 2025, 3, 30, 1, 0),
            "2025-03-30T03:00:00+02:00",
            id="berlin 03:00 exists on spring day",
        ),
        pytest.param(
            "30 * * * *",
            BERLIN,
            at(BERLIN, 2025, 3, 30, 1, 30),
            "2025-03-30T03:30:00+02:00",
            id="berlin wildcard skips the missing hour",
        ),
        pytest.param(
            "30 2 * * *",
            BERLIN,
            at(BERLIN, 2025, 10, 25, 12),
            "2025-10-26T02:30:00+02:00",
            id="berlin fixed ambiguous: first pass",
        ),
        pytest.param(
            "30 2 * * *",
            BERLIN,
            at(BERLIN, 2025, 10, 26, 2, 30),
            "2025-10-27T02:30:00+01:00",
            id="berlin fixed ambiguous: not again on second pass",
        ),
        pytest.param(
            "30 * * * *",
            BERLIN,
            at(BERLIN, 2025, 10, 26, 2, 30),
            "2025-10-26T02:30:00+01:00",
            id="berlin wildcard ambiguous: runs again on second pass",
        ),
        pytest.param(
            "10 * * * *",
            BERLIN,
            at(BERLIN, 2025, 10, 26, 2, 30),
            "2025-10-26T02:10:00+01:00",
            id="berlin wildcard: an earlier wall time comes next",
        ),
        pytest.param(
            "30 2 * * *",
            BERLIN,
            at(BERLIN, 2025, 10, 26, 2, 45, fold=1),
            "2025-10-27T02:30:00+01:00",
            id="berlin fixed from second pass",
        ),
        # America/New_York: 2025-03-09 02:00 -> 03:00, 2025-11-02 02:00 -> 01:00
        pytest.param(
            "15 2 * * sun",
            NEW_YORK,
            at(NEW_YORK, 2025, 3, 8),
            "2025-03-09T03:00:00-04:00",
            id="new york spring forward",
        ),
        pytest.param(
            "30 1 * * *",
            NEW_YORK,
            at(NEW_YORK, 2025, 11, 2, 0, 0),
            "2025-11-02T01:30:00-04:00",
            id="new york fall back first pass",
        ),
        pytest.param(
            "30 1 * * *",
            NEW_YORK,
            at(NEW_YORK, 2025, 11, 2, 1, 30),
            "2025-11-03T01:30:00-05:00",
            id="new york fall back once",
        ),
        pytest.param(
            "0 9 * * mon-fri",
            NEW_YORK,
            at(NEW_YORK, 2025, 3, 7, 9),
            "2025-03-10T09:00:00-04:00",
            id="new york weekday across the weekend and DST",
        ),
        pytest.param(
            "0 0 1 1 *",
            NEW_YORK,
            at(NEW_YORK, 2025, 12, 31, 23, 59, 59),
            "2026-01-01T00:00:00-05:00",
            id="year rollover",
        ),
    ],
)
def test_next_after(text, zone, after, expected):
    assert iso(CronSchedule.parse(text, tz=zone).next_after(after)) == expected


@pytest.mark.parametrize(
    ("text", "zone", "now", "expected"),
    [
        pytest.param(
            "0 6 * * *", SHANGHAI, at(SHANGHAI, 2025, 6, 1, 6, 0), "2025-06-01T06:00:00+08:00", id="at counts"
        ),
        pytest.param(
            "0 6 * * *",
            SHANGHAI,
            at(SHANGHAI, 2025, 6, 1, 5, 59),
            "2025-05-31T06:00:00+08:00",
            id="yesterday's",
        ),
        pytest.param(
            "0 6 1 * *", SHANGHAI, at(SHANGHAI, 2025, 3, 1, 5), "2025-02-01T06:00:00+08:00", id="last month's"
        ),
        pytest.param(
            "30 2 * * *",
            BERLIN,
            at(BERLIN, 2025, 3, 30, 3, 10),
            "2025-03-30T03:00:00+02:00",
            id="berlin spring run at the jump",
        ),
        pytest.param(
            "30 2 * * *",
            BERLIN,
            at(BERLIN, 2025, 3, 30, 1, 59),
            "2025-03-29T02:30:00+01:00",
            id="berlin before the jump",
        ),
        pytest.param(
            "30 2 * * *",
            BERLIN,
            at(BERLIN, 2025, 10, 26, 2, 45, fold=1),
            "2025-10-26T02:30:00+02:00",
            id="berlin second pass sees first-pass run",
        ),
        pytest.param(
            "50 2 * * *",
            BERLIN,
            at(BERLIN, 2025, 10, 26, 2, 10, fold=1),
            "2025-10-26T02:50:00+02:00",
            id="berlin first-pass run at a later wall time",
        ),
        pytest.param(
            "50 * * * *",
            BERLIN,
            at(BERLIN, 2025, 10, 26, 2, 55, fold=1),
            "2025-10-26T02:50:00+01:00",
            id="berlin wildcard second pass",
        ),
        pytest.param(
            "15 2 * * *",
            NEW_YORK,
            at(NEW_YORK, 2025, 3, 9, 4),
            "2025-03-09T03:00:00-04:00",
            id="new york catch-up after the gap",
        ),
    ],
)
def test_last_due_at_or_before(text, zone, now, expected):
    assert iso(CronSchedule.parse(text, tz=zone).last_due_at_or_before(now)) == expected


def test_runs_between_and_limit():
    schedule = CronSchedule.parse("0 */6 * * *", tz="Asia/Shanghai")
    runs = schedule.runs_between(at(SHANGHAI, 2025, 6, 1, 0), at(SHANGHAI, 2025, 6, 2, 0))
    assert [r.hour for r in runs] == [6, 12, 18, 0]
    with pytest.raises(ValueError, match="more than 3 runs between"):
        schedule.runs_between(at(SHANGHAI, 2025, 6, 1, 0), at(SHANGHAI, 2025, 6, 2, 0), limit=3)
    with pytest.raises(ValueError, match="limit must be at least 1"):
        schedule.runs_between(at(SHANGHAI, 2025, 6, 1, 0), at(SHANGHAI, 2025, 6, 2, 0), limit=0)
    assert schedule.runs_between(at(SHANGHAI, 2025, 6, 1, 0), at(SHANGHAI, 2025, 6, 1, 5)) == []


def test_end_of_calendar_is_a_clear_error():
    schedule = CronSchedule.parse("0 0 1 1 *", tz="UTC")
    with pytest.raises(ValueError, match=r"no run after 9999-06-01.* within the calendar"):
        schedule.next_after(datetime(9999, 6, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match=r"no run at or before 0001-01-01T12.* within the calendar"):
        CronSchedule.parse("0 0 2 1 *", tz="UTC").last_due_at_or_before(datetime(1, 1, 1, 12, tzinfo=UTC))


# --------------------------------------------------------------------------- reference cross-check


def _reference_runs(schedule: CronSchedule, zone: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """Runs in [start, end) by stepping UTC minutes and applying the documented rules directly."""

    def matches(wall: datetime) -> bool:
        if wall.minute not in schedule.minutes or wall.hour not in schedule.hours:
            return False
        if wall.month not in schedule.months:
            return False
        dom = wall.day in schedule.days_of_month
        dow = wall.isoweekday() % 7 in schedule.days_of_week
        return (dom or dow) if schedule.day_or else (dom and dow)

    runs = []
    step = timedelta(minutes=1)
    t = start - timedelta(days=1)  # warm-up so "already seen" is known at start
    latest_wall = (t - step).astimezone(zone).replace(tzinfo=None)
    for _ in range(int((end - t) / step)):
        wall = t.astimezone(zone).replace(tzinfo=None)
        if schedule.wildcard:
            fires = matches(wall)
        elif wall <= latest_wall:
            fires = False  # a repeated wall time: fixed-time runs happened on the first pass
        else:
            skipped = latest_wall + step
            fires = matches(wall)
            while not fires and skipped < wall:  # wall times jumped over just now
                fires = matches(skipped)
                skipped += step
        latest_wall = max(latest_wall, wall)
        if fires and t >= start:
            runs.append(t)
        t += step
    return runs


TRANSITIONS = [
    pytest.param(SHANGHAI, datetime(2025, 3, 29, 12, tzinfo=UTC), id="shanghai (no DST)"),
    pytest.param(BERLIN, datetime(2025, 3, 29, 18, tzinfo=UTC), id="berlin spring"),
    pytest.param(BERLIN, datetime(2025, 10, 25, 18, tzinfo=UTC), id="berlin fall"),
    pytest.param(NEW_YORK, datetime(2025, 3, 9, 0, tzinfo=UTC), id="new york spring"),
    pytest.param(NEW_YORK, datetime(2025, 11, 1, 23, tzinfo=UTC), id="new york fall"),
    pytest.param(LORD_HOWE, datetime(2025, 4, 5, 8, tzinfo=UTC), id="lord howe 30-minute fall"),
    pytest.param(LORD_HOWE, datetime(2025, 10, 4, 8, tzinfo=UTC), id="lord howe 30-minute spring"),
]
SCHEDULES = ["30 2 * * *", "0,30 1-3 * * *", "*/15 * * * *", "50 * * * *", "* 2 * * *", "45 1 * * sun"]


@pytest.mark.parametrize(("zone", "start"), TRANSITIONS)
def test_matches_reference_around_transitions(zone, start):
    end = start + timedelta(hours=20)
    for text in SCHEDULES:
        schedule = CronSchedule.parse(text, tz=zone)
        reference = _reference_runs(schedule, zone, start - timedelta(days=8), end + timedelta(days=8))
        assert len(set(reference)) == len(reference)
        probe = start
        while probe < end:  # every 7 minutes 13 seconds: aligned and unaligned probes
            expected_next = next(r for r in reference if r > probe)
            expected_last = [r for r in reference if r <= probe][-1]
            local = probe.astimezone(zone)
            assert schedule.next_after(local).astimezone(UTC) == expected_next, (text, local)
            assert schedule.last_due_at_or_before(local).astimezone(UTC) == expected_last, (text, local)
            assert schedule.next_after(probe).astimezone(UTC) == expected_next, (text, probe)
            probe += timedelta(minutes=7, seconds=13)
