"""The inspection scheduler against real stores: catch-up after downtime, exactly-once claims.

Claims are what start scheduled runs (see service.py); these tests drive
:meth:`InspectionService.due_runs` with explicit times on SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from collector.inspections.plan import parse_plan
from collector.inspections.service import InspectionService, check_plans
from collector.store import Scope, Store
from collector.store.inspections import InspectionRepo
from tests.collector.store.pg import SKIP_REASON, fresh_database, pg_listening

DAILY = parse_plan(
    {"name": "daily", "customer": "acme", "timezone": "Asia/Shanghai", "schedule": "0 2 * * *"}, "daily.yaml"
)


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'c.db'}"
        return
    if not pg_listening():
        pytest.skip(SKIP_REASON)
    with fresh_database() as pg_url:
        yield pg_url


def _service(store: Store, name: str) -> InspectionService:
    service = InspectionService(store, None, name=name)
    service.add_plan(DAILY)
    return service


def test_missed_runs_start_once_after_downtime(url: str) -> None:
    store = Store.open(url)
    try:
        store.enroll_agent("acme", host="db1")
        service = _service(store, "a")
        # 02:00 Asia/Shanghai is 18:00 UTC the day before.
        assert service.due_runs(at("2026-03-01T12:00:00")) == []  # first sight: nothing is "missed"
        assert service.due_runs(at("2026-03-01T17:59:00")) == []
        claimed = service.due_runs(at("2026-03-01T18:00:30"))
        assert [(p.name, due) for p, due in claimed] == [("daily", at("2026-03-01T18:00:00"))]
        # The collector is down for three days; back up, the latest due time runs once.
        restarted = _service(store, "a-after-restart")
        claimed = restarted.due_runs(at("2026-03-04T20:00:00"))
        assert [due for _, due in claimed] == [at("2026-03-04T18:00:00")]
        assert restarted.due_runs(at("2026-03-04T20:00:00")) == []
        assert restarted.due_runs(at("2026-03-04T23:00:00")) == []
    finally:
        store.close()


def _race(service: InspectionService, now: float, barrier: threading.Barrier, claims: list[str]) -> None:
    barrier.wait()
    claims.extend(service.name for _plan, _due in service.due_runs(now))  # list.extend is atomic


def test_two_schedulers_on_one_store_claim_a_due_plan_once(url: str) -> None:
    stores = [Store.open(url), Store.open(url, migrate=False)]
    try:
        stores[0].enroll_agent("acme", host="db1")
        services = [_service(s, f"collector-{i}") for i, s in enumerate(stores)]
        services[0].due_runs(at("2026-03-01T12:00:00"))
        for day in range(2, 6):
            now = at(f"2026-03-0{day}T18:00:05")
            barrier = threading.Barrier(6)
            claims: list[str] = []
            threads = [
                threading.Thread(target=_race, args=(services[i % 2], now, barrier, claims)) for i in range(6)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            assert len(claims) == 1, f"day {day}: claimed by {claims}"
    finally:
        for s in stores:
            s.close()


def test_schedule_state_is_per_customer_and_plan(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        store.enroll_agent("acme", host="db1")
        store.enroll_agent("globex", host="app1")
        repo = InspectionRepo(store)
        assert repo.schedule_state("acme", "daily", 100.0) == 100.0
        assert repo.schedule_state("globex", "daily", 50.0) == 50.0
        assert repo.claim_due("acme", "daily", 200.0, "x") is True
        assert repo.claim_due("acme", "daily", 200.0, "y") is False
        assert repo.claim_due("acme", "daily", 150.0, "y") is False  # never backwards
        assert repo.schedule_state("globex", "daily", 0.0) == 50.0
        assert repo.runs(Scope.of("globex")) == []
    finally:
        store.close()


def test_a_plan_for_a_customer_without_hosts_waits(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        service = _service(store, "a")
        assert service.due_runs(at("2026-03-01T19:00:00")) == []
    finally:
        store.close()


def test_check_plans_reports_every_bad_file_by_path(tmp_path: Path) -> None:
    (tmp_path / "ok.yaml").write_text('name: ok\ncustomer: acme\ntimezone: UTC\nschedule: "@daily"\n')
    (tmp_path / "cron.yaml").write_text('name: cron\ncustomer: acme\ntimezone: UTC\nschedule: "0 25 * * *"\n')
    (tmp_path / "dup.yml").write_text('name: ok\ncustomer: acme\ntimezone: UTC\nschedule: "@weekly"\n')
    (tmp_path / "zone.yaml").write_text('name: zone\ncustomer: acme\nschedule: "@daily"\n')
    plans, errors = check_plans(tmp_path, {"globex": "Asia/Shanghai"})
    assert [p.name for p in plans] == ["ok"]
    assert any(
        e.startswith(f"{tmp_path / 'cron.yaml'}: schedule: expected: hour: 25 is out of range")
        for e in errors
    )
    assert any(
        e == f"{tmp_path / 'ok.yaml'}: name: plan 'ok' of customer 'acme' is also in {tmp_path / 'dup.yml'}"
        for e in errors
    )
    assert f"{tmp_path / 'zone.yaml'}: timezone: required key is missing" in errors
    # The customer's time zone from its settings fills a plan without one.
    plans, errors = check_plans(tmp_path, {"acme": "Asia/Shanghai"})
    assert sorted(p.name for p in plans) == ["ok", "zone"]


def test_runs_interrupted_by_a_stop_are_marked_failed_at_start(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        store.enroll_agent("acme", host="db1")
        clock = [at("2026-03-01T00:00:00")]
        service = InspectionService(store, None, plans_dir=tmp_path / "none", clock=lambda: clock[0])
        old = service.runner.create(DAILY, "manual")
        service.repo.update_run(old.id, state="running", deadline_at=clock[0] + 60)
        fresh = service.runner.create(DAILY, "manual")
        clock[0] += 2 * 3600
        service.repo.update_run(fresh.id, state="running", deadline_at=clock[0] + 60)
        service.load_plans()
        assert service.repo.run(Scope.everything(), old.id).state == "failed"
        assert "interrupted" in (service.repo.run(Scope.everything(), old.id).error or "")
        assert service.repo.run(Scope.everything(), fresh.id).state == "running"  # maybe another collector's
    finally:
        store.close()
