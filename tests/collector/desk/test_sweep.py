"""The SLA sweep over a real store (SQLite and PostgreSQL): clocks, warnings and breaches once.

Cases are opened the way the live observer opens them (:func:`open_case`) and moved through
the real case repository (acknowledge, resolve); the contract goes through the desk
repository. Times are chosen on Berlin business days so the expected instants can be
worked out by hand.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from collector.desk.sweep import SlaSweep
from collector.schedule.windows import load_windows
from collector.store import Scope, Store
from collector.store.cases import CaseRepo
from collector.store.customer_file import CustomerFileRepo
from collector.store.schema_cases import case_events
from collector.store.sla import Alert, SlaRepo
from tests.collector.cases.test_api import open_case
from tests.collector.store.conftest import pg_store_session, pg_url, store

__all__ = ["pg_store_session", "pg_url", "store"]

BERLIN = ZoneInfo("Europe/Berlin")
MON_9 = datetime(2024, 1, 8, 9, 0, tzinfo=BERLIN).timestamp()  # a Monday, 09:00 Berlin
HOUR = 3600.0

CONTRACT = {
    "name": "2024 maintenance",
    "tier": "gold",
    "starts_on": date(2024, 1, 1),
    "ends_on": date(2024, 12, 31),
    "targets": {"emergency": {"first_response": 60, "restore": 240, "resolve": 480}},
    "rate_onsite": "1200.00",
    "rate_remote": "800.00",
    "currency": "CNY",
    "calendar": {
        "timezone": "Europe/Berlin",
        "country": "DE",
        "hours": {d: ["09:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
    },
}


def sweep_for(store: Store, escalated: list[Alert], windows=None) -> SlaSweep:
    return SlaSweep(SlaRepo(store), CustomerFileRepo(store), windows=windows, escalate=escalated.append)


def events_of(store: Store, case_id: str, kind: str) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(case_events.c.kind, case_events.c.text, case_events.c.data).where(
                case_events.c.case_id == case_id, case_events.c.kind == kind
            )
        ).all()
    return [dict(r._mapping) for r in rows]


def test_a_case_warns_then_breaches_exactly_once(store: Store):
    case_id = open_case(store, "acme", "db1", at=MON_9)
    CustomerFileRepo(store).add_contract(Scope.everything(), "acme", CONTRACT, now=MON_9)
    escalated: list[Alert] = []
    sweep = sweep_for(store, escalated)

    first = sweep.run(MON_9 + 10 * 60)
    assert (first.recomputed, first.warnings, first.breaches) == (1, 0, 0)
    clocks = {r.target: r for r in SlaRepo(store).view(Scope.everything())}
    assert clocks == {}  # nothing at risk yet

    report = sweep.run(MON_9 + 50 * 60)  # 50 of 60 minutes: at risk
    assert (report.recomputed, report.warnings, report.breaches) == (0, 1, 0)
    (row,) = SlaRepo(store).view(Scope.everything())
    assert (row.case_id, row.target, row.state, row.due_at) == (
        case_id,
        "first_response",
        "warning",
        MON_9 + HOUR,
    )

    again = sweep.run(MON_9 + 55 * 60)
    assert (again.warnings, again.breaches) == (0, 0)
    breach = sweep.run(MON_9 + 61 * 60)
    assert (breach.warnings, breach.breaches) == (0, 1)
    assert sweep.run(MON_9 + 2 * HOUR).breaches == 0
    assert [a.target for a in escalated] == ["first_response"]
    assert len(events_of(store, case_id, "sla_warning")) == 1
    (event,) = events_of(store, case_id, "sla_breach")
    assert "first response" in event["text"] and event["data"]["due_at"] == MON_9 + HOUR


def test_acknowledging_in_time_stops_the_first_response_clock(store: Store):
    case_id = open_case(store, "acme", "db1", at=MON_9)
    CustomerFileRepo(store).add_contract(Scope.everything(), "acme", CONTRACT, now=MON_9)
    sweep = sweep_for(store, [])
    sweep.run(MON_9 + 60)
    CaseRepo(store).acknowledge(Scope.everything(), case_id, actor="eng", owner=None, now=MON_9 + 30 * 60)
    report = sweep.run(MON_9 + 3 * HOUR)  # restore (4 h) not yet at 75%, first response met
    assert (report.recomputed, report.warnings, report.breaches) == (1, 1, 0)  # restore at 75% after 3 h
    (row,) = SlaRepo(store).view(Scope.everything())
    assert row.target == "restore" and row.due_at == MON_9 + 4 * HOUR


def test_business_hours_carry_the_clock_over_the_night_and_weekend(store: Store):
    friday_17 = MON_9 + 4 * 24 * HOUR + 8.5 * HOUR  # 17:30
    case_id = open_case(store, "acme", "db1", at=friday_17)
    CustomerFileRepo(store).add_contract(Scope.everything(), "acme", CONTRACT, now=friday_17)
    sweep = sweep_for(store, [])
    sweep.run(friday_17 + 60)
    assert sweep.run(friday_17 + 60 * HOUR).breaches == 0  # Sunday: still 30 min used
    assert sweep.run(MON_9 + 7 * 24 * HOUR + 29 * 60).breaches == 0
    report = sweep.run(MON_9 + 7 * 24 * HOUR + 30 * 60)  # the next Monday 09:30: due
    assert report.breaches == 1
    with store.engine.connect() as conn:
        due = conn.execute(
            sa.text("SELECT due_at FROM case_sla WHERE case_id = :c AND target = 'first_response'"),
            {"c": case_id},
        ).scalar()
    assert due == MON_9 + 7 * 24 * HOUR + 30 * 60


def test_a_maintenance_window_over_the_case_pauses_its_clocks(store: Store):
    case_id = open_case(store, "acme", "db1", at=MON_9)
    CustomerFileRepo(store).add_contract(Scope.everything(), "acme", CONTRACT, now=MON_9)
    windows = load_windows(
        [
            {
                "name": "patch",
                "customer": "acme",
                "timezone": "Europe/Berlin",
                "hosts": ["db1"],
                "once": {"start": "2024-01-08T09:30", "end": "2024-01-08T11:00"},
            }
        ]
    )
    sweep = sweep_for(store, [], windows)
    sweep.run(MON_9 + 60)
    with store.engine.connect() as conn:
        due = conn.execute(
            sa.text("SELECT due_at FROM case_sla WHERE case_id = :c AND target = 'first_response'"),
            {"c": case_id},
        ).scalar()
    assert due == MON_9 + 2.5 * HOUR  # 30 min before the window, 30 min after it


def test_a_changed_contract_recomputes_the_customers_clocks(store: Store):
    open_case(store, "acme", "db1", at=MON_9)
    desk = CustomerFileRepo(store)
    contract = desk.add_contract(Scope.everything(), "acme", CONTRACT, now=MON_9)
    sweep = sweep_for(store, [])
    sweep.run(MON_9 + 60)
    assert sweep.run(MON_9 + 120).recomputed == 0
    targets = {"emergency": {"first_response": 240}}
    desk.update_contract(Scope.everything(), "acme", contract.id, {"targets": targets}, now=MON_9 + 180)
    assert sweep.run(MON_9 + 240).recomputed == 1
    assert sweep.run(MON_9 + 50 * 60).warnings == 0  # 50 of 240 minutes


def test_resolving_and_reopening_resumes_the_resolve_clock(store: Store):
    case_id = open_case(store, "acme", "db1", at=MON_9)
    CustomerFileRepo(store).add_contract(Scope.everything(), "acme", CONTRACT, now=MON_9)
    repo = CaseRepo(store)
    repo.acknowledge(Scope.everything(), case_id, actor="eng", owner=None, now=MON_9 + 600)
    repo.resolve(Scope.everything(), case_id, actor="eng", note=None, now=MON_9 + 2 * HOUR)
    sweep = sweep_for(store, [])
    sweep.run(MON_9 + 3 * HOUR)
    with store.engine.connect() as conn:
        rows: dict[str, str] = dict(
            conn.execute(
                sa.text("SELECT target, clock FROM case_sla WHERE case_id = :c"), {"c": case_id}
            ).all()
        )
    assert rows == {"first_response": "stopped", "restore": "stopped", "resolve": "stopped"}
    # the desk's reopen: a state change recorded as {"from", "to"} on the timeline
    with store.engine.begin() as conn:
        conn.execute(
            case_events.insert().values(
                case_id=case_id,
                ts=MON_9 + 4 * HOUR,
                kind="reopened",
                actor=None,
                text="reopened",
                data={"from": "resolved", "to": "in_progress"},
            )
        )
    sweep.run(MON_9 + 4 * HOUR + 60)
    with store.engine.connect() as conn:
        clock, due = conn.execute(
            sa.text("SELECT clock, due_at FROM case_sla WHERE case_id = :c AND target = 'resolve'"),
            {"c": case_id},
        ).one()
    # 2 h used before resolving, 6 h left from 13:00: due 19:00 is after hours, so Tuesday 10:00
    assert clock == "running" and due == MON_9 + 25 * HOUR


def test_an_event_committed_after_a_higher_id_is_not_missed(store: Store):
    """PostgreSQL hands out sequence ids before commit: id N+1 may become visible after N+2."""
    first = open_case(store, "acme", "db1", at=MON_9)
    second = open_case(store, "acme", "db2", at=MON_9)
    CustomerFileRepo(store).add_contract(Scope.everything(), "acme", CONTRACT, now=MON_9)
    sweep = sweep_for(store, [])
    sweep.run(MON_9 + 60)
    with store.engine.connect() as conn:
        top = conn.execute(sa.select(sa.func.max(case_events.c.id))).scalar_one()

    def ack(case_id: str, event_id: int, at: float) -> None:
        data = {"from": "new", "to": "acknowledged"}
        with store.engine.begin() as conn:
            conn.execute(
                case_events.insert().values(
                    id=event_id, case_id=case_id, ts=at, kind="state", actor="eng", text="ack", data=data
                )
            )

    ack(second, top + 2, MON_9 + 120)  # committed first
    assert sweep.run(MON_9 + 180).recomputed == 1
    ack(first, top + 1, MON_9 + 100)  # the lower id, committed later
    assert sweep.run(MON_9 + 240).recomputed == 1
    with store.engine.connect() as conn:
        clocks: dict[str, str] = dict(
            conn.execute(sa.text("SELECT case_id, clock FROM case_sla WHERE target = 'first_response'")).all()
        )
    assert clocks == {first: "stopped", second: "stopped"}
    assert sweep.run(MON_9 + 300).recomputed == 0
