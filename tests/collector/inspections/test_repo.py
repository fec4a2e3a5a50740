"""InspectionRepo on SQLite and PostgreSQL: answers, gathered facts, reports, profiles, scoping."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.inspections.facts import HostFacts
from collector.store import IngestBatch, NotFound, PointRow, ResultRow, Scope, Store, StoreError
from collector.store.inspections import InspectionRepo
from collector.store.reports import ReportRepo
from tests.collector.store.pg import SKIP_REASON, fresh_database, pg_listening

T0 = 1_780_000_000.0
RUN = "weekly-20260530T000000-abcd"


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        s = Store.open(f"sqlite:///{tmp_path / 'c.db'}")
        yield s
        s.close()
        return
    if not pg_listening():
        pytest.skip(SKIP_REASON)
    with fresh_database() as url:
        s = Store.open(url)
        yield s
        s.close()


def _seed(store: Store) -> InspectionRepo:
    repo = InspectionRepo(store)
    db1, _ = store.enroll_agent("acme", host="db1", agent_id="acme-db1")
    db2, _ = store.enroll_agent("acme", host="db2", agent_id="acme-db2")
    store.enroll_agent("globex", host="db1", agent_id="globex-db1")
    repo.create_run(RUN, "acme", "weekly", "manual", {"name": "weekly"})
    finding = json.dumps(
        [{"severity": "CRIT", "key": "FS_NEARLY_FULL", "summary": "/data 97%", "item": "/data"}]
    )
    rows = [
        ResultRow(1, T0, "storage.filesystem", "storage", "OK", "OK", "old untagged", 1.0, "[]", None),
        ResultRow(
            2, T0 + 10, "storage.filesystem", "storage", "CRIT", "FS_NEARLY_FULL", "x", 1.0, finding, RUN
        ),
        ResultRow(
            3, T0 + 11, "application.agent", "application", "OK", "INSPECTION_DONE", "ok", 1.0, "[]", RUN
        ),
    ]
    # 48 hourly points rising 1 per hour: bucketed averages keep the slope (24 per day).
    points = [
        PointRow(
            1,
            T0 - 48 * 3600 + h * 3600,
            "storage.filesystem",
            "storage_fs_used_percent",
            "percent",
            (("mountpoint", "/data"),),
            float(h),
        )
        for h in range(48)
    ]
    store.ingest(db1, IngestBatch(3, 1, rows, points, [], []))
    # db2 ran a check for the run but has not sent its marker yet: not answered.
    store.ingest(
        db2,
        IngestBatch(
            1, 1, [ResultRow(1, T0, "host.memory", "host", "OK", "OK", "ok", 1.0, "[]", RUN)], [], [], []
        ),
    )
    return repo


def test_answers_and_facts_come_from_the_runs_tagged_results(store: Store) -> None:
    repo = _seed(store)
    assert repo.answered("acme", RUN) == {"db1"}
    assert repo.answered("globex", RUN) == set()
    period = (T0 - 48 * 3600, T0 + 60)
    gathered = repo.gather("acme", RUN, ["db1", "db2"], {"db1"}, *period, ["storage.filesystem"])
    facts = [HostFacts.from_evidence(e) for e in gathered]
    db1, db2 = facts
    assert db1.answered and not db2.answered and db2.results == ()
    assert [(r.check, r.key, r.severity.value, r.item) for r in db1.results] == [
        ("application.agent", "INSPECTION_DONE", "OK", None),
        ("storage.filesystem", "FS_NEARLY_FULL", "CRIT", "/data"),
    ]
    series = db1.one("storage_fs_used_percent", mountpoint="/data")
    assert series is not None
    assert series.min == pytest.approx(0.0, abs=1.0) and series.max == pytest.approx(47.0, abs=1.0)
    assert series.slope_per_day == pytest.approx(24.0, rel=0.05)
    assert 2 <= series.count <= 48


def test_reports_round_trip_and_are_scoped(store: Store) -> None:
    runs = _seed(store)
    repo = ReportRepo(store)
    content = b"%PDF-1.7 \x00\xff binary"
    record = repo.add_report("acme", "inspection", RUN, "zh-CN", "pdf", content)
    got, data = repo.report_content(Scope.of("acme"), record.id)
    assert data == content and got.size == len(content) and len(got.sha256) == 64
    with pytest.raises(NotFound):
        repo.report_content(Scope.of("globex"), record.id)
    assert repo.reports(Scope.of("globex")) == []
    assert [r.id for r in repo.reports(Scope.everything(), kind="inspection", lang="zh-CN")] == [record.id]
    with pytest.raises(NotFound):
        runs.run(Scope.of("globex"), RUN)
    assert [r.id for r in runs.runs(Scope.of("acme"), plan="weekly")] == [RUN]


def test_customer_profile(store: Store) -> None:
    repo = _seed(store)
    profile = repo.set_profile(
        Scope.of("acme"), "acme", name="Acme Trading Co.", timezone="Asia/Shanghai", logo=b"\x89PNG"
    )
    assert (profile.name, profile.timezone, profile.logo) == ("Acme Trading Co.", "Asia/Shanghai", b"\x89PNG")
    assert repo.timezones()["acme"] == "Asia/Shanghai"
    assert repo.set_profile(Scope.everything(), "acme", clear_logo=True).logo is None
    with pytest.raises(NotFound):
        repo.set_profile(Scope.of("globex"), "acme", name="x")
    with pytest.raises(NotFound):
        repo.set_profile(Scope.of("initech"), "initech", name="x")  # only engineers create customers
    assert repo.set_profile(Scope.everything(), "initech", name="Initech").name == "Initech"
    with pytest.raises(StoreError, match="at most"):
        repo.set_profile(Scope.everything(), "acme", logo=b"x" * (600 * 1024))
