"""collector.schedule.windows: validation by path, scope, and occurrences across DST transitions."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import yaml

from collector.cli.config import ConfigError
from collector.schedule.windows import (
    HostRef,
    MaintenanceCalendar,
    Window,
    load_windows,
    next_occurrences,
    parse_duration,
    suppresses,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def ts(
    zone: ZoneInfo,
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    second: int = 0,
    fold: int = 0,
) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=zone, fold=fold).timestamp()


def window(**fields) -> Window:
    base = {"name": "w", "customer": "acme", "timezone": "Europe/Berlin"}
    return Window.model_validate(base | fields)


# --------------------------------------------------------------------------- validation


def _base(**fields):
    return {"name": "w", "customer": "acme", "timezone": "Europe/Berlin"} | fields


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(
            [_base(cron={"expression": "61 2 * * *", "duration": "1h"})],
            [
                "windows.0.cron.expression: minute: 61 is out of range 0-59 (cron '61 2 * * *') "
                "(got '61 2 * * *')"
            ],
            id="bad cron names the field",
        ),
        pytest.param(
            [_base(cron={"expression": "0 2 * * moon", "duration": "1h"})],
            ["windows.0.cron.expression: day-of-week: expected a number 0-7 or a name"],
            id="bad weekday in cron",
        ),
        pytest.param(
            [_base(once={"start": "2025-06-01T10:00", "end": "2025-06-01T09:00"})],
            ["windows.0.once: end 2025-06-01T09:00:00+02:00 must be after start 2025-06-01T10:00:00+02:00"],
            id="end before start",
        ),
        pytest.param(
            [_base(once={"start": "2025-06-01T10:00", "end": "2025-06-01T10:00"})],
            ["windows.0.once: end 2025-06-01T10:00:00+02:00 must be after start"],
            id="empty one-off",
        ),
        pytest.param(
            [_base(once={"start": "2025-06-01T10:00", "end": "2026-06-03T10:00"})],
            ["windows.0.once: a one-off window lasts at most 366 days"],
            id="one-off too long",
        ),
        pytest.param(
            [_base(timezone="Europe/Berln", weekly={"days": ["sat"], "at": "22:00", "duration": "4h"})],
            [
                "windows.0.timezone: unknown time zone 'Europe/Berln'; did you mean 'Europe/Berlin'? "
                "(got 'Europe/Berln')"
            ],
            id="unknown time zone",
        ),
        pytest.param(
            [_base(once={"start": "2025-03-30T02:30", "end": "2025-03-30T04:00"})],
            [
                "windows.0.once: start 2025-03-30T02:30:00 does not exist in Europe/Berlin (the clocks jump "
                "forward at 2025-03-30T03:00:00+02:00); write 2025-03-30T03:00:00+02:00 "
                "or a time outside the gap"
            ],
            id="nonexistent local start (spring forward)",
        ),
        pytest.param(
            [_base(once={"start": "2025-10-26T01:00", "end": "2025-10-26T02:30"})],
            [
                "windows.0.once: end 2025-10-26T02:30:00 occurs twice in Europe/Berlin (the clocks go back); "
                "add the UTC offset: 2025-10-26T02:30:00+02:00 (first) or 2025-10-26T02:30:00+01:00 (second)"
            ],
            id="ambiguous local end (fall back)",
        ),
        pytest.param(
            [_base()],
            ["windows.0: expected exactly one schedule: once, cron or weekly (got none)"],
            id="no schedule",
        ),
        pytest.param(
            [
                _base(
                    cron={"expression": "0 2 * * *", "duration": "1h"},
                    weekly={"days": ["sun"], "at": "02:00", "duration": "1h"},
                )
            ],
            ["windows.0: expected exactly one schedule: once, cron or weekly (got cron and weekly)"],
            id="two schedules",
        ),
        pytest.param(
            [_base(cron={"expression": "0 2 * * *", "duration": "2 hours"})],
            ["windows.0.cron.duration: expected a duration like 2h, 90m or 1h30m, got '2 hours'"],
            id="bad duration",
        ),
        pytest.param(
            [_base(cron={"expression": "0 2 * * *", "duration": 0})],
            ["windows.0.cron.duration: expected a positive duration, got 0"],
            id="zero duration",
        ),
        pytest.param(
            [_base(weekly={"days": ["sat"], "at": "22:00", "duration": "32d"})],
            ["windows.0.weekly.duration: a recurring window lasts at most 31 days, got '32d'"],
            id="recurring too long",
        ),
        pytest.param(
            [_base(weekly={"days": ["sat", "caturday"], "at": "22:00", "duration": "1h"})],
            [
                "windows.0.weekly.days: expected weekday names (sun, mon, tue, wed, thu, fri, sat), "
                "got 'caturday'"
            ],
            id="bad weekday",
        ),
        pytest.param(
            [_base(weekly={"days": [], "at": "22:00", "duration": "1h"})],
            ["windows.0.weekly.days: Tuple should have at least 1 item after validation, not 0"],
            id="no weekdays",
        ),
        pytest.param(
            [_base(weekly={"days": ["sat"], "at": "24:00", "duration": "1h"})],
            ["windows.0.weekly.at: expected a 24-hour time HH:MM such as 22:00, got '24:00'"],
            id="bad start time",
        ),
        pytest.param(
            [_base(once={"start": 1700000000, "end": "2025-06-01T10:00"})],
            ["windows.0.once.start: expected an ISO 8601 date-time such as 2025-03-30T01:00"],
            id="number as a date-time",
        ),
        pytest.param(
            [_base(weekly={"days": ["sat"], "at": "22:00", "duration": "1h"}, host=["db1"])],
            [
                "windows.0.host: unknown key; valid keys here: name, customer, timezone, hosts, "
                "labels, reason, once, cron, weekly"
            ],
            id="unknown key",
        ),
        pytest.param(
            [
                {
                    "name": "w",
                    "timezone": "UTC",
                    "once": {"start": "2025-06-01T10:00", "end": "2025-06-01T11:00"},
                }
            ],
            ["windows.0.customer: required key is missing"],
            id="missing customer",
        ),
        pytest.param(
            [
                _base(weekly={"days": ["sat"], "at": "22:00", "duration": "1h"}),
                _base(weekly={"days": ["sun"], "at": "22:00", "duration": "1h"}),
            ],
            ["windows: duplicate window name 'w' for customer 'acme' (windows 0 and 1)"],
            id="duplicate name",
        ),
        pytest.param(
            [{"name": "w", "customer": "unknown-co", "cron": {"expression": "0 2 * * *", "duration": "1h"}}],
            ["windows.0.timezone: required key is missing"],
            id="no time zone and none for the customer",
        ),
    ],
)
def test_config_errors_name_the_path(data, expected):
    with pytest.raises(ConfigError) as caught:
        load_windows(data, "windows.yaml", timezones={"acme": "Asia/Shanghai"})
    lines = str(caught.value).splitlines()
    assert len(lines) == len(expected), lines
    for line, fragment in zip(lines, expected, strict=True):
        assert line.startswith("windows.yaml: ")
        assert fragment in line


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(
            "windows: []", "expected a mapping with a windows list (got 'windows: []')", id="a string"
        ),
        pytest.param(5, "expected a mapping with a windows list (got 5)", id="a number"),
    ],
)
def test_top_level_must_be_a_mapping(data, message):
    with pytest.raises(ConfigError, match=re.escape("windows.yaml: " + message)):
        load_windows(data, "windows.yaml")


def test_yaml_config_with_customer_time_zone_and_yaml_timestamps():
    text = """
windows:
  - name: db-patching
    customer: acme
    labels: {role: db}
    weekly: {days: [Saturday, sun, sat], at: "9:05", duration: 1h30m}
  - name: switch-swap
    customer: acme
    timezone: Europe/Berlin
    once: {start: 2025-06-01 10:00:00+02:00, end: "2025-06-01T12:00"}
"""
    calendar = load_windows(yaml.safe_load(text), "w.yaml", timezones={"acme": "Asia/Shanghai"})
    patching, swap = calendar.for_customer("acme")
    assert patching.timezone == "Asia/Shanghai"  # filled from the customer's settings
    assert patching.weekly is not None
    assert patching.weekly.days == ("sun", "sat")
    assert patching.weekly.at == "09:05"
    assert patching.weekly.cron_expression() == "5 9 * * sun,sat"
    assert patching.duration == timedelta(hours=1, minutes=30)
    assert swap.once is not None
    assert swap.once.start.isoformat() == "2025-06-01T10:00:00+02:00"
    assert swap.once.end.isoformat() == "2025-06-01T12:00:00+02:00"
    assert load_windows(None).windows == ()
    assert load_windows([]).windows == ()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("4h", timedelta(hours=4), id="hours"),
        pytest.param("90m", timedelta(minutes=90), id="minutes"),
        pytest.param("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4), id="all units"),
        pytest.param(" 1H 30M ", timedelta(hours=1, minutes=30), id="spaces and upper case"),
        pytest.param(3600, timedelta(hours=1), id="seconds"),
        pytest.param(timedelta(minutes=5), timedelta(minutes=5), id="timedelta"),
    ],
)
def test_parse_duration(value, expected):
    assert parse_duration(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("", id="empty"),
        pytest.param("h", id="unit only"),
        pytest.param("2w", id="weeks"),
        pytest.param(-5, id="negative"),
        pytest.param(float("nan"), id="nan"),
        pytest.param(True, id="bool"),
        pytest.param([1], id="list"),
    ],
)
def test_parse_duration_rejects(value):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


# --------------------------------------------------------------------------- activity across DST

# Each case: window fields, the local moment asked about, and whether a window is active.
ACTIVE_CASES = [
    # Asia/Shanghai: no DST; the European and US transition days are ordinary days
    pytest.param(
        {"timezone": "Asia/Shanghai", "weekly": {"days": ["sat"], "at": "22:00", "duration": "4h"}},
        ts(SHANGHAI, 2025, 3, 29, 23, 0),
        True,
        id="shanghai weekly in progress",
    ),
    pytest.param(
        {"timezone": "Asia/Shanghai", "weekly": {"days": ["sat"], "at": "22:00", "duration": "4h"}},
        ts(SHANGHAI, 2025, 3, 30, 1, 59, 59),
        True,
        id="shanghai weekly past midnight",
    ),
    pytest.param(
        {"timezone": "Asia/Shanghai", "weekly": {"days": ["sat"], "at": "22:00", "duration": "4h"}},
        ts(SHANGHAI, 2025, 3, 30, 2, 0),
        False,
        id="shanghai weekly end is exclusive",
    ),
    pytest.param(
        {"timezone": "Asia/Shanghai", "weekly": {"days": ["sat"], "at": "22:00", "duration": "4h"}},
        ts(SHANGHAI, 2025, 3, 29, 21, 59, 59),
        False,
        id="shanghai weekly not yet",
    ),
    pytest.param(
        {"timezone": "Asia/Shanghai", "cron": {"expression": "30 2 * * *", "duration": "1h"}},
        ts(SHANGHAI, 2025, 3, 30, 2, 30),
        True,
        id="shanghai 02:30 exists on europe's spring day",
    ),
    # Europe/Berlin spring forward 2025-03-30 02:00 -> 03:00: a 02:30 start begins at the jump
    pytest.param(
        {"cron": {"expression": "30 2 * * sun", "duration": "2h"}},
        ts(BERLIN, 2025, 3, 30, 1, 59),
        False,
        id="berlin spring: before the jump",
    ),
    pytest.param(
        {"cron": {"expression": "30 2 * * sun", "duration": "2h"}},
        ts(BERLIN, 2025, 3, 30, 3, 0),
        True,
        id="berlin spring: starts at the jump",
    ),
    pytest.param(
        {"cron": {"expression": "30 2 * * sun", "duration": "2h"}},
        ts(BERLIN, 2025, 3, 30, 4, 59),
        True,
        id="berlin spring: two real hours",
    ),
    pytest.param(
        {"cron": {"expression": "30 2 * * sun", "duration": "2h"}},
        ts(BERLIN, 2025, 3, 30, 5, 0),
        False,
        id="berlin spring: over",
    ),
    # Europe/Berlin fall back 2025-10-26 03:00 -> 02:00: 02:30 starts on the first pass, once
    pytest.param(
        {"weekly": {"days": ["sun"], "at": "02:30", "duration": "2h"}},
        ts(BERLIN, 2025, 10, 26, 2, 29),
        False,
        id="berlin fall: before the first pass",
    ),
    pytest.param(
        {"weekly": {"days": ["sun"], "at": "02:30", "duration": "2h"}},
        ts(BERLIN, 2025, 10, 26, 2, 30),
        True,
        id="berlin fall: first pass starts",
    ),
    pytest.param(
        {"weekly": {"days": ["sun"], "at": "02:30", "duration": "2h"}},
        ts(BERLIN, 2025, 10, 26, 2, 15, fold=1),
        True,
        id="berlin fall: second pass is inside",
    ),
    pytest.param(
        {"weekly": {"days": ["sun"], "at": "02:30", "duration": "2h"}},
        ts(BERLIN, 2025, 10, 26, 3, 29),
        True,
        id="berlin fall: two real hours end at 03:30 winter time",
    ),
    pytest.param(
        {"weekly": {"days": ["sun"], "at": "02:30", "duration": "2h"}},
        ts(BERLIN, 2025, 10, 26, 3, 30),
        False,
        id="berlin fall: over",
    ),
    # America/New_York spring 2025-03-09 02:00 -> 03:00, fall 2025-11-02 02:00 -> 01:00
    pytest.param(
        {"timezone": "America/New_York", "weekly": {"days": ["sun"], "at": "02:30", "duration": "1h"}},
        ts(NEW_YORK, 2025, 3, 9, 3, 59),
        True,
        id="new york spring: starts at the jump",
    ),
    pytest.param(
        {"timezone": "America/New_York", "weekly": {"days": ["sun"], "at": "02:30", "duration": "1h"}},
        ts(NEW_YORK, 2025, 3, 9, 4, 0),
        False,
        id="new york spring: one real hour",
    ),
    pytest.param(
        {"timezone": "America/New_York", "cron": {"expression": "30 1 * * sun", "duration": "1h"}},
        ts(NEW_YORK, 2025, 11, 2, 1, 15, fold=1),
        True,
        id="new york fall: second pass inside",
    ),
    pytest.param(
        {"timezone": "America/New_York", "cron": {"expression": "30 1 * * sun", "duration": "1h"}},
        ts(NEW_YORK, 2025, 11, 2, 1, 30, fold=1),
        False,
        id="new york fall: not restarted on second pass",
    ),
    # one-offs
    pytest.param(
        {"once": {"start": "2025-10-26T02:30+02:00", "end": "2025-10-26T02:20+01:00"}},
        ts(BERLIN, 2025, 10, 26, 2, 50),
        True,
        id="one-off ending at an earlier wall time on the second pass",
    ),
    pytest.param(
        {"once": {"start": "2025-10-26T02:30+02:00", "end": "2025-10-26T02:20+01:00"}},
        ts(BERLIN, 2025, 10, 26, 2, 20, fold=1),
        False,
        id="one-off over the repeated hour: end exclusive",
    ),
    pytest.param(
        {"once": {"start": "2025-10-26T01:00", "end": "2025-10-26T02:30+01:00"}},
        ts(BERLIN, 2025, 10, 26, 2, 20, fold=1),
        True,
        id="one-off over the repeated hour with an explicit offset",
    ),
    pytest.param(
        {"once": {"start": "2025-10-26T01:00", "end": "2025-10-26T02:30+02:00"}},
        ts(BERLIN, 2025, 10, 26, 2, 20, fold=1),
        False,
        id="one-off ending on the first pass",
    ),
    pytest.param(
        {"timezone": "Asia/Shanghai", "once": {"start": "2025-06-01T00:00Z", "end": "2025-06-01T01:00Z"}},
        datetime(2025, 6, 1, 0, 30, tzinfo=UTC).timestamp(),
        True,
        id="one-off in UTC for a Shanghai customer",
    ),
]


@pytest.mark.parametrize(("fields", "at_ts", "active"), ACTIVE_CASES)
def test_activity(fields, at_ts, active):
    w = window(**fields)
    calendar = MaintenanceCalendar([w])
    assert w.is_active(at_ts) is active
    assert calendar.active_windows("acme", "db1", {}, at_ts) == ([w] if active else [])
    occurrence = w.occurrence_at(at_ts)
    assert (occurrence is not None) is active
    if occurrence is not None:
        assert occurrence.start_ts <= at_ts < occurrence.end_ts
        # elapsed time (aware datetimes with one tzinfo subtract as wall clocks: compare in ts)
        assert occurrence.end_ts - occurrence.start_ts == w.duration.total_seconds()


# --------------------------------------------------------------------------- occurrences


@pytest.mark.parametrize(
    ("fields", "after_ts", "n", "expected"),
    [
        pytest.param(
            {"weekly": {"days": ["sun"], "at": "02:30", "duration": "2h"}},
            ts(BERLIN, 2025, 3, 20),
            3,
            [
                ("2025-03-23T02:30:00+01:00", "2025-03-23T04:30:00+01:00"),
                ("2025-03-30T03:00:00+02:00", "2025-03-30T05:00:00+02:00"),
                ("2025-04-06T02:30:00+02:00", "2025-04-06T04:30:00+02:00"),
            ],
            id="berlin weekly across spring forward",
        ),
        pytest.param(
            {"weekly": {"days": ["sun"], "at": "02:30", "duration": "2h"}},
            ts(BERLIN, 2025, 10, 20),
            2,
            [
                ("2025-10-26T02:30:00+02:00", "2025-10-26T03:30:00+01:00"),
                ("2025-11-02T02:30:00+01:00", "2025-11-02T04:30:00+01:00"),
            ],
            id="berlin weekly across fall back",
        ),
        pytest.param(
            {"timezone": "America/New_York", "cron": {"expression": "0 22 * * fri", "duration": "6h"}},
            ts(NEW_YORK, 2025, 10, 31, 22, 0),
            1,
            [("2025-11-07T22:00:00-05:00", "2025-11-08T04:00:00-05:00")],
            id="strictly after: the one starting now is not next",
        ),
        pytest.param(
            {"timezone": "America/New_York", "cron": {"expression": "0 22 * * sat", "duration": "6h"}},
            ts(NEW_YORK, 2025, 11, 1, 12, 0),
            1,
            [("2025-11-01T22:00:00-04:00", "2025-11-02T03:00:00-05:00")],
            id="six real hours over the fall-back night",
        ),
        pytest.param(
            {"timezone": "Asia/Shanghai", "once": {"start": "2025-06-01T22:00", "end": "2025-06-02T02:00"}},
            ts(SHANGHAI, 2025, 6, 1),
            5,
            [("2025-06-01T22:00:00+08:00", "2025-06-02T02:00:00+08:00")],
            id="one-off ahead",
        ),
        pytest.param(
            {"timezone": "Asia/Shanghai", "once": {"start": "2025-06-01T22:00", "end": "2025-06-02T02:00"}},
            ts(SHANGHAI, 2025, 6, 1, 22, 0),
            5,
            [],
            id="one-off already started",
        ),
    ],
)
def test_next_occurrences(fields, after_ts, n, expected):
    w = window(**fields)
    got = next_occurrences(w, after_ts, n)
    assert [(o.start.isoformat(), o.end.isoformat()) for o in got] == expected


@pytest.mark.parametrize("n", [pytest.param(0, id="zero"), pytest.param(1001, id="too many")])
def test_next_occurrences_bounds(n):
    w = window(cron={"expression": "0 2 * * *", "duration": "1h"})
    with pytest.raises(ValueError, match="n must be 1-1000"):
        w.next_occurrences(0.0, n)


def test_occurrences_between_includes_the_one_in_progress():
    w = window(timezone="Asia/Shanghai", cron={"expression": "0 */6 * * *", "duration": "2h"})
    got = w.occurrences_between(ts(SHANGHAI, 2025, 6, 1, 1, 0), ts(SHANGHAI, 2025, 6, 1, 12, 0))
    assert [(o.start.hour, o.end.hour) for o in got] == [(0, 2), (6, 8)]
    assert w.occurrences_between(ts(SHANGHAI, 2025, 6, 1, 2, 0), ts(SHANGHAI, 2025, 6, 1, 6, 0)) == []
    assert w.occurrences_between(5.0, 5.0) == []
    with pytest.raises(ValueError, match="more than 2 occurrences"):
        w.occurrences_between(ts(SHANGHAI, 2025, 6, 1), ts(SHANGHAI, 2025, 6, 3), limit=2)
    once = window(once={"start": "2025-06-01T10:00", "end": "2025-06-01T11:00"})
    assert len(once.occurrences_between(ts(BERLIN, 2025, 6, 1, 10, 59), ts(BERLIN, 2025, 6, 2))) == 1
    assert once.occurrences_between(ts(BERLIN, 2025, 6, 1, 11, 0), ts(BERLIN, 2025, 6, 2)) == []


def test_overlapping_occurrences_report_the_latest_start():
    w = window(timezone="UTC", cron={"expression": "0 * * * *", "duration": "3h"})
    occurrence = w.occurrence_at(datetime(2025, 6, 1, 10, 30, tzinfo=UTC).timestamp())
    assert occurrence is not None
    assert occurrence.start.isoformat() == "2025-06-01T10:00:00+00:00"
    assert occurrence.end.isoformat() == "2025-06-01T13:00:00+00:00"


# --------------------------------------------------------------------------- scope


@pytest.mark.parametrize(
    ("scope", "host", "covered"),
    [
        pytest.param({}, HostRef("acme", "web1", {}), True, id="customer-wide"),
        pytest.param({}, HostRef("other", "web1", {}), False, id="other customer"),
        pytest.param({"hosts": ["db1", "db2"]}, HostRef("acme", "db2", {}), True, id="listed host"),
        pytest.param({"hosts": ["db1", "db2"]}, HostRef("acme", "web1", {}), False, id="unlisted host"),
        pytest.param(
            {"hosts": ["db1"]}, HostRef("other", "db1", {}), False, id="listed name, other customer"
        ),
        pytest.param(
            {"labels": {"role": "db", "site": "sh"}},
            HostRef("acme", "x", {"role": "db", "site": "sh", "os": "linux"}),
            True,
            id="all labels match",
        ),
        pytest.param(
            {"labels": {"role": "db", "site": "sh"}},
            HostRef("acme", "x", {"role": "db", "site": "bj"}),
            False,
            id="one label differs",
        ),
        pytest.param({"labels": {"role": "db"}}, HostRef("acme", "x", {}), False, id="label missing"),
        pytest.param(
            {"hosts": ["web1"], "labels": {"role": "db"}},
            HostRef("acme", "web1", {"role": "web"}),
            True,
            id="hosts or labels: by name",
        ),
        pytest.param(
            {"hosts": ["web1"], "labels": {"role": "db"}},
            HostRef("acme", "db7", {"role": "db"}),
            True,
            id="hosts or labels: by label",
        ),
    ],
)
def test_scope(scope, host, covered):
    w = window(once={"start": "2025-06-01T10:00", "end": "2025-06-01T11:00"}, **scope)
    inside, outside = ts(BERLIN, 2025, 6, 1, 10, 30), ts(BERLIN, 2025, 6, 1, 11, 0)
    assert w.covers(host) is covered
    assert suppresses(w, host) is covered
    assert suppresses(w, host, inside) is covered
    assert suppresses(w, host, outside) is False
    calendar = MaintenanceCalendar([w])
    assert calendar.active_windows(host.customer, host.name, host.labels, inside) == ([w] if covered else [])


def test_calendar_orders_and_annotates():
    a = window(name="b-patch", hosts=["db1"], weekly={"days": ["sun"], "at": "02:00", "duration": "3h"})
    b = window(name="a-network", cron={"expression": "0 1 * * sun", "duration": "4h"})
    c = window(name="c-other-host", hosts=["web1"], cron={"expression": "0 1 * * sun", "duration": "4h"})
    d = window(name="a-network", customer="globex", cron={"expression": "0 1 * * sun", "duration": "4h"})
    calendar = MaintenanceCalendar([a, b, c, d])
    at_ts = ts(BERLIN, 2025, 6, 1, 2, 30)
    assert [w.name for w in calendar.active_windows("acme", "db1", {}, at_ts)] == ["a-network", "b-patch"]
    assert calendar.active_windows("nobody", "db1", {}, at_ts) == []
    occurrences = calendar.active_occurrences("acme", "db1", {}, at_ts)
    annotation = json.loads(json.dumps(occurrences[1].to_dict()))
    assert annotation == {
        "window": "b-patch",
        "customer": "acme",
        "reason": "",
        "timezone": "Europe/Berlin",
        "start": "2025-06-01T02:00:00+02:00",
        "end": "2025-06-01T05:00:00+02:00",
        "start_ts": ts(BERLIN, 2025, 6, 1, 2, 0),
        "end_ts": ts(BERLIN, 2025, 6, 1, 5, 0),
    }
    assert (
        repr(occurrences[1]) == "Occurrence('b-patch', 2025-06-01T02:00:00+02:00, 2025-06-01T05:00:00+02:00)"
    )
    assert occurrences[1] == a.occurrence_at(at_ts)
    assert len({occurrences[1], a.occurrence_at(at_ts)}) == 1
    with pytest.raises(ValueError, match="duplicate window name 'a-network' for customer 'acme'"):
        MaintenanceCalendar([b, b])


def test_window_exposes_its_schedule():
    weekly = window(weekly={"days": ["mon", "fri"], "at": "23:30", "duration": "30m"})
    assert weekly.schedule is not None
    assert weekly.schedule.expression == "30 23 * * mon,fri"
    assert weekly.schedule.tz == BERLIN
    assert weekly.zone == BERLIN
    assert window(once={"start": "2025-06-01T10:00", "end": "2025-06-01T11:00"}).schedule is None
