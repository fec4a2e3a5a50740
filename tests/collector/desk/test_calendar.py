"""Business calendars: China's official schedule (holidays and 调休), other countries, files."""

from __future__ import annotations

import logging
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from collector.desk import calendar as calendar_module
from collector.desk.calendar import BusinessCalendar, CalendarSettings, load_calendar_file
from diagconfig import ConfigError

SHANGHAI = ZoneInfo("Asia/Shanghai")


def cn(**kwargs) -> BusinessCalendar:
    return BusinessCalendar(CalendarSettings(timezone="Asia/Shanghai", country="CN", **kwargs))


@pytest.mark.parametrize(
    ("day", "workday"),
    [
        (date(2024, 10, 1), False),  # National Day
        (date(2024, 10, 7), False),  # National Day week, a Monday
        (date(2024, 9, 29), True),  # 调休: a Sunday worked
        (date(2024, 10, 12), True),  # 调休: a Saturday worked
        (date(2024, 2, 4), True),  # 调休 before the Spring Festival, a Sunday
        (date(2024, 2, 12), False),  # Spring Festival, a Monday
        (date(2024, 10, 19), False),  # an ordinary Saturday
        (date(2024, 10, 21), True),  # an ordinary Monday
    ],
)
def test_china_official_schedule(day, workday):
    assert cn().is_workday(day) is workday


def test_make_up_days_use_make_up_hours_and_weekends_their_own():
    cal = cn(makeup_hours=("10:00-16:00",), hours={"mon": ("09:00-18:00",), "sat": ("09:00-12:00",)})
    assert cal.periods(date(2024, 10, 12)) == ((36000, 57600),)  # 调休 Saturday: make-up hours
    assert cal.periods(date(2024, 10, 19)) == ((32400, 43200),)  # ordinary Saturday: Saturday's hours
    assert cal.periods(date(2024, 10, 3)) == ()  # a holiday, whatever the weekday
    assert cal.periods(date(2024, 10, 22)) == ()  # a Tuesday without hours


def test_split_hours_give_two_intervals_a_day():
    cal = cn(hours={"mon": ("09:00-12:00", "13:30-18:00")})
    day = date(2024, 10, 21)
    at = lambda h, m: datetime(2024, 10, 21, h, m, tzinfo=SHANGHAI).timestamp()  # noqa: E731
    assert cal.day_intervals(day) == ((at(9, 0), at(12, 0)), (at(13, 30), at(18, 0)))


def test_other_countries_come_from_holidays():
    us = BusinessCalendar(CalendarSettings(timezone="America/New_York", country="US"))
    de = BusinessCalendar(CalendarSettings(timezone="Europe/Berlin", country="DE", subdivision="BY"))
    assert not us.is_workday(date(2024, 7, 4)) and us.is_workday(date(2024, 7, 5))
    assert not de.is_workday(date(2024, 1, 6))  # Epiphany in Bavaria
    assert BusinessCalendar(CalendarSettings(timezone="Europe/Berlin", country="DE")).is_workday(
        date(2024, 1, 5)
    )


def test_customer_days_override_the_country():
    cal = cn(extra_holidays=(date(2024, 10, 21),), extra_workdays=(date(2024, 10, 19), date(2024, 10, 2)))
    assert not cal.is_workday(date(2024, 10, 21))
    assert cal.is_workday(date(2024, 10, 19)) and cal.is_workday(date(2024, 10, 2))


def test_dst_days_are_shorter_and_longer_in_real_time():
    hours = {day: ("00:00-24:00",) for day in ("sat", "sun")}
    cal = BusinessCalendar(CalendarSettings(timezone="Europe/Berlin", hours=hours))
    spring = cal.day_intervals(date(2024, 3, 31))
    autumn = cal.day_intervals(date(2024, 10, 27))
    assert sum(e - s for s, e in spring) == 23 * 3600
    assert sum(e - s for s, e in autumn) == 25 * 3600
    across = BusinessCalendar(CalendarSettings(timezone="Europe/Berlin", hours={"sun": ("01:30-02:30",)}))
    # the fold repeats 02:00-03:00: 01:30-02:00 once, 02:00-02:30 twice
    assert sum(e - s for s, e in across.day_intervals(date(2024, 10, 27))) == 90 * 60
    assert sum(e - s for s, e in across.day_intervals(date(2024, 3, 31))) == 30 * 60  # 02:00-03:00 skipped


def test_years_outside_chinese_calendar_fall_back_and_say_so_once(caplog, monkeypatch):
    monkeypatch.setattr(calendar_module, "_fallback_logged", set())
    cal = cn()
    with caplog.at_level(logging.WARNING, logger="collector.desk.calendar"):
        assert not cal.is_workday(date(2100, 10, 1))  # holidays' CN calendar: National Day
        assert cal.is_workday(date(2100, 10, 11))  # a Monday; no make-up data
        assert not cal.is_workday(date(2100, 10, 2))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "2100" in warnings[0] and "chinese-calendar" in warnings[0]


def test_one_business_day_is_the_regular_day():
    assert cn(hours={"mon": ("09:00-12:00", "13:30-18:00")}).standard_day_seconds == 7.5 * 3600


# --------------------------------------------------------------------------- files


def test_calendar_file_extends_the_contract(tmp_path: Path):
    path = tmp_path / "acme.yaml"
    path.write_text(
        "timezone: Asia/Shanghai\n"
        "hours:\n  mon: ['09:00-12:00', '13:30-18:00']\n"
        "extra_holidays: [2024-10-21]\n"
    )
    base = CalendarSettings(timezone="UTC", country="CN", extra_holidays=(date(2024, 12, 24),))
    merged = load_calendar_file(path, base)
    assert merged.timezone == "Asia/Shanghai" and merged.country == "CN"
    assert merged.extra_holidays == (date(2024, 12, 24), date(2024, 10, 21))
    assert merged.hours == {"mon": ("09:00-12:00", "13:30-18:00")}


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ("timezone: Mars/Olympus\n", "timezone", "Mars/Olympus"),
        ("hours: {mon: ['18:00-09:00']}\n", "hours.mon", "must end after it starts"),
        ("hours: {mon: ['9-5']}\n", "hours.mon", "HH:MM-HH:MM"),
        ("hours: {funday: ['09:00-10:00']}\n", "hours.funday", ""),
        ("country: XX\n", "country", "ISO 3166"),
        ("extra_holidays: [2024-13-01]\n", "", "invalid value: month must be in 1..12"),
        ("holidays: []\n", "holidays", "valid keys"),
        ("extra_holidays: [2024-10-21]\nextra_workdays: [2024-10-21]\n", "", "both"),
    ],
)
def test_calendar_file_errors_name_the_file_and_field(tmp_path: Path, text, field, words):
    path = tmp_path / "acme.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_calendar_file(path)
    message = str(raised.value)
    assert str(path) in message
    assert field in message and words in message, message


def test_hostile_calendar_file_is_refused_before_it_is_built(tmp_path: Path):
    path = tmp_path / "bomb.yaml"
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 12)]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="expand"):
        load_calendar_file(path)


def test_the_sample_calendar_file_loads():
    sample = Path(__file__).resolve().parents[3] / "deploy" / "calendar.example.yaml"
    settings = load_calendar_file(sample)
    cal = BusinessCalendar(settings)
    assert settings.country == "CN" and cal.standard_day_seconds == 7.5 * 3600
    assert not cal.is_workday(date(2026, 12, 31))
