"""Property tests: the SLA clock arithmetic against a brute-force minute-by-minute reference.

The reference follows the definition in :mod:`collector.desk.calendar` literally: a
minute ``[t, t+60)`` counts when, at ``t``, the local date is a working day, the local
wall time lies in one of that day's periods, no maintenance pause covers ``t``, and the
case's state at ``t`` (replayed from its history) lets the clock run. The arithmetic
under test never walks minutes: it intersects whole days' intervals. Every boundary in
these tests falls on a whole minute (zones with whole-minute offsets, periods in whole
minutes), so both must agree to the second.

Cases are drawn around the days that break naive code: DST changes in New York and
Berlin (gap and fold, with working periods across 02:00-03:00), China's National Day
and Spring Festival with their make-up Saturdays and Sundays (调休), weekends, extra
holidays and workdays from a customer's file, waiting-on-customer pauses, maintenance
windows and reopenings.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.desk.calendar import WEEKDAYS, BusinessCalendar, CalendarSettings
from collector.desk.sla import (
    TARGETS,
    Transition,
    add_business_seconds,
    business_seconds,
    evaluate,
    merge_intervals,
)

ZONES = {
    "America/New_York": ("US", [date(2024, 3, 10), date(2024, 11, 3), date(2024, 7, 4)]),
    "Europe/Berlin": ("DE", [date(2024, 3, 31), date(2024, 10, 27), date(2024, 12, 25)]),
    "Asia/Shanghai": ("CN", [date(2024, 10, 1), date(2024, 2, 10), date(2025, 1, 28), date(2024, 5, 1)]),
}
"""Zone → (country, days around which spans are drawn)."""

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)

# --------------------------------------------------------------------------- strategies


@st.composite
def day_periods(draw: st.DrawFn) -> tuple[str, ...]:
    """0-3 disjoint periods on a 30-minute grid (some across the DST hours 01:00-04:00)."""
    count = draw(st.integers(0, 3))
    cuts = sorted(set(draw(st.lists(st.integers(0, 48), min_size=2 * count, max_size=2 * count))))
    if len(cuts) % 2:
        cuts = cuts[:-1]
    return tuple(
        f"{a // 2:02d}:{30 * (a % 2):02d}-{b // 2:02d}:{30 * (b % 2):02d}"
        for a, b in zip(cuts[::2], cuts[1::2], strict=True)
        if b > a
    )


@st.composite
def calendars(draw: st.DrawFn) -> tuple[BusinessCalendar, date]:
    zone = draw(st.sampled_from(sorted(ZONES)))
    country, anchors = ZONES[zone]
    anchor = draw(st.sampled_from(anchors))
    usual = draw(
        st.sampled_from([("09:00-12:00", "13:30-18:00"), ("00:00-24:00",), ("01:00-04:00", "08:00-17:00")])
    )
    hours = {day: usual for day in WEEKDAYS[:5]}
    for day in draw(st.lists(st.sampled_from(WEEKDAYS), max_size=3, unique=True)):
        hours[day] = draw(day_periods())
    near = st.integers(-6, 6).map(lambda n: anchor + timedelta(days=n))
    extra_off = set(draw(st.lists(near, max_size=2)))
    extra_on = set(draw(st.lists(near, max_size=2))) - extra_off
    makeup = draw(st.none() | day_periods().filter(bool))
    cal = BusinessCalendar(
        CalendarSettings(
            timezone=zone,
            country=draw(st.sampled_from([country, None])),
            hours=hours,
            makeup_hours=makeup,
            extra_holidays=tuple(sorted(extra_off)),
            extra_workdays=tuple(sorted(extra_on)),
        )
    )
    return cal, anchor


def start_of(cal: BusinessCalendar, anchor: date) -> int:
    return int(
        datetime(anchor.year, anchor.month, anchor.day, tzinfo=ZoneInfo(cal.settings.timezone)).timestamp()
    )


@st.composite
def spans(draw: st.DrawFn) -> tuple[BusinessCalendar, int, int, list[tuple[float, float]]]:
    cal, anchor = draw(calendars())
    base = start_of(cal, anchor)
    start = base + 60 * draw(st.integers(-5 * 1440, 3 * 1440))
    end = start + 60 * draw(st.integers(0, 8 * 1440))
    pauses = draw(st.lists(st.tuples(st.integers(-1440, 9 * 1440), st.integers(1, 2000)), max_size=4))
    windows = merge_intervals((float(start + 60 * a), float(start + 60 * (a + n))) for a, n in pauses)
    return cal, start, end, windows


# --------------------------------------------------------------------------- the reference


def paused(ts: float, pauses: list[tuple[float, float]]) -> bool:
    return any(a <= ts < b for a, b in pauses)


def counts(cal: BusinessCalendar, ts: int, pauses: list[tuple[float, float]]) -> bool:
    return cal.is_business(ts) and not paused(ts, pauses)


def brute_seconds(cal: BusinessCalendar, start: int, end: int, pauses: list[tuple[float, float]]) -> float:
    return 60.0 * sum(counts(cal, t, pauses) for t in range(start, end, 60))


def is_business_by_hand(cal: BusinessCalendar, ts: int) -> bool:
    """The definition spelled out with nothing from the module but its day rules."""
    local = datetime.fromtimestamp(ts, ZoneInfo(cal.settings.timezone))
    minute = local.hour * 60 + local.minute
    return any(a // 60 <= minute < b // 60 for a, b in cal.periods(local.date()))


# --------------------------------------------------------------------------- properties


@SETTINGS
@given(spans())
def test_business_seconds_match_minute_by_minute(case):
    cal, start, end, pauses = case
    assert business_seconds(cal, start, end, pauses) == brute_seconds(cal, start, end, pauses)


@SETTINGS
@given(calendars(), st.integers(-3 * 1440, 3 * 1440), st.integers(0, 3 * 1440))
def test_instant_rule_is_the_definition(drawn, offset, length):
    """is_business (used by the reference) agrees with the definition written out by hand."""
    cal, anchor = drawn
    start = start_of(cal, anchor) + 60 * offset
    for t in range(start, start + 60 * length, 60 * 7):
        assert cal.is_business(t) == is_business_by_hand(cal, t), datetime.fromtimestamp(t, cal.zone)


@SETTINGS
@given(spans(), st.integers(0, 3000))
def test_due_instant_is_where_the_count_reaches_n(case, minutes):
    cal, start, _, pauses = case
    due = add_business_seconds(cal, start, minutes * 60.0, pauses)
    # brute force: walk minutes until n of them counted
    t, counted = start, 0
    limit = start + 60 * 60 * 24 * 40
    while counted < minutes and t < limit:
        counted += counts(cal, t, pauses)
        t += 60
    if counted < minutes:  # no working time for weeks (possible with drawn hours): not within 40 days
        assert due is None or due >= limit
        return
    assert due == t, (datetime.fromtimestamp(due or 0, cal.zone), datetime.fromtimestamp(t, cal.zone))


@SETTINGS
@given(spans(), st.integers(0, 5000))
def test_adding_then_measuring_round_trips(case, minutes):
    cal, start, _, pauses = case
    due = add_business_seconds(cal, start, minutes * 60.0, pauses)
    if due is not None:
        assert business_seconds(cal, start, due, pauses) == minutes * 60.0


# --------------------------------------------------------------------------- clocks over a history

NEXT = {
    "new": ["acknowledged", "resolved"],
    "acknowledged": ["in_progress", "waiting_on_customer", "resolved"],
    "in_progress": ["waiting_on_customer", "resolved"],
    "waiting_on_customer": ["in_progress", "resolved"],
    "resolved": ["follow_up", "closed", "in_progress"],  # in_progress: a reopen
    "follow_up": ["closed", "in_progress"],
    "closed": ["in_progress"],
}
DONE = {"resolved", "follow_up", "closed"}


@st.composite
def histories(draw: st.DrawFn, start: int) -> list[Transition]:
    state, ts, found = "new", start, []
    for _ in range(draw(st.integers(0, 7))):
        ts += 60 * draw(st.integers(1, 2 * 1440))
        new = draw(st.sampled_from(NEXT[state]))
        found.append(Transition(float(ts), state, new))
        state = new
    if draw(st.booleans()) and found:  # an explicit restored mark somewhere
        at = draw(st.sampled_from(found)).ts - 60 * draw(st.integers(0, 30))
        found = sorted([*found, Transition(float(max(at, start)), "", "restored")], key=lambda c: c.ts)
    return found


def runs_at(target: str, opened: int, history: list[Transition], ts: int) -> bool:
    """Whether ``target``'s clock runs at ``ts``, by replaying the history up to it."""
    state, left_new, restored = "new", False, False
    for change in history:
        if change.ts > ts:
            break
        if change.to_state == "restored":
            restored = True
            continue
        if state == "new" and change.to_state != "new":
            left_new = True
        if change.to_state in DONE:
            restored = True
        state = change.to_state
    if ts < opened:
        return False
    if target == "first_response":
        return not left_new
    if target == "restore" and restored:
        return False
    return state not in DONE and state != "waiting_on_customer"


@SETTINGS
@given(st.data())
def test_clock_matches_a_replay_minute_by_minute(data):
    cal, start, _, pauses = data.draw(spans())
    history = data.draw(histories(start))
    target = data.draw(st.sampled_from(TARGETS))
    target_s = 60.0 * data.draw(st.integers(1, 3000))
    now = start + 60 * data.draw(st.integers(0, 12 * 1440))
    status = evaluate(cal, target, target_s, float(start), history, float(now), pauses)

    running = [
        t for t in range(start, now, 60) if runs_at(target, start, history, t) and counts(cal, t, pauses)
    ]
    assert status.elapsed_s == 60.0 * len(running)

    elapsed, warn_at, due_at, t = 0.0, None, None, start
    horizon = max(now, int(history[-1].ts) if history else start) + 60 * 1440 * 20
    while t < horizon and due_at is None:
        if runs_at(target, start, history, t) and counts(cal, t, pauses):
            if warn_at is None and elapsed + 60 >= 0.75 * target_s:
                warn_at = t + (0.75 * target_s - elapsed)  # exact: 75% may fall inside a minute
            elapsed += 60
            if elapsed >= target_s:
                due_at = t + 60
        t += 60
    if due_at is None:
        assert status.due_at is None or status.due_at >= horizon
    else:
        assert status.due_at == due_at
    if warn_at is None:
        assert status.warn_at is None or status.warn_at >= horizon
    else:
        assert status.warn_at == warn_at
    expected = (
        "breached"
        if due_at is not None and due_at <= now
        else ("warning" if warn_at is not None and warn_at <= now else "ok")
    )
    assert status.state == expected
    assert status.remaining_s == max(0.0, target_s - status.elapsed_s)


def test_a_reopened_case_resumes_its_resolve_clock_not_its_restore_clock():
    cal = BusinessCalendar(CalendarSettings(timezone="Europe/Berlin"))
    monday_9 = datetime(2024, 1, 8, 9, tzinfo=ZoneInfo("Europe/Berlin")).timestamp()
    history = [
        Transition(monday_9 + 3600, "new", "acknowledged"),
        Transition(monday_9 + 2 * 3600, "acknowledged", "resolved"),
        Transition(monday_9 + 5 * 3600, "resolved", "in_progress"),  # reopened at 14:00
    ]
    now = monday_9 + 6 * 3600
    resolve = evaluate(cal, "resolve", 4 * 3600.0, monday_9, history, now)
    restore = evaluate(cal, "restore", 4 * 3600.0, monday_9, history, now)
    assert (resolve.clock, resolve.elapsed_s) == ("running", 3 * 3600.0)  # 2 h + 1 h after the reopen
    assert resolve.due_at == monday_9 + 7 * 3600  # 16:00: two hours still to go
    assert (restore.clock, restore.elapsed_s, restore.due_at) == ("stopped", 2 * 3600.0, None)


@SETTINGS
@given(spans(), st.integers(0, 8 * 1440))
def test_business_time_adds_up_across_any_cut(case, cut):
    cal, start, end, pauses = case
    middle = min(end, start + 60 * cut) + 17  # a cut off the minute grid
    if middle >= end:
        return
    whole = business_seconds(cal, start, end, pauses)
    assert whole == business_seconds(cal, start, middle, pauses) + business_seconds(cal, middle, end, pauses)
