"""Targets per contract tier and case type; a complaint is answered within one business day."""

from __future__ import annotations

from collector.desk.calendar import BusinessCalendar, CalendarSettings
from collector.desk.sla import TargetMinutes, history_from_events, target_seconds

SPLIT = BusinessCalendar(
    CalendarSettings(timezone="Asia/Shanghai", hours={"mon": ("09:00-12:00", "13:30-18:00")})
)


def test_a_complaint_is_answered_within_one_business_day_by_default():
    assert target_seconds({}, "gold", "complaint", SPLIT)["first_response"] == 7.5 * 3600
    assert "restore" not in target_seconds({}, "gold", "complaint", SPLIT)


def test_the_contract_overrides_the_tier_defaults_clock_by_clock():
    given = {"emergency": TargetMinutes(first_response=5)}
    found = target_seconds(given, "gold", "emergency", SPLIT)
    assert found == {"first_response": 300.0, "restore": 240 * 60.0, "resolve": 1440 * 60.0}
    assert target_seconds({}, "standard", "emergency", SPLIT)["first_response"] == 30 * 60.0
    assert target_seconds({}, "platinum", "emergency", SPLIT) == target_seconds(
        {}, "standard", "emergency", SPLIT
    )


def test_emergency_cases_have_a_restore_clock_others_do_not():
    assert "restore" in target_seconds({}, "gold", "emergency", SPLIT)
    assert "restore" not in target_seconds({}, "gold", "routine", SPLIT)


def test_history_reads_both_case_models():
    legacy: list[tuple[float, str, dict[str, str]]] = [
        (1.0, "opened", {}),
        (2.0, "acknowledged", {}),
        (3.0, "resolved", {}),
        (4.0, "reopened", {}),
    ]
    desk = [
        (2.0, "state", {"from": "new", "to": "acknowledged"}),
        (3.0, "state", {"from": "acknowledged", "to": "waiting_on_customer"}),
        (3.5, "note", {}),
        (4.0, "restored", {}),
        (5.0, "state", {"from": "waiting_on_customer", "to": "resolved"}),
    ]
    assert [(c.from_state, c.to_state) for c in history_from_events(legacy)] == [
        ("new", "acknowledged"),
        ("acknowledged", "resolved"),
        ("resolved", "new"),
    ]
    assert [c.to_state for c in history_from_events(desk)] == [
        "acknowledged",
        "waiting_on_customer",
        "restored",
        "resolved",
    ]
