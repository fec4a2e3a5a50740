"""Scheduled analyses over a real store (SQLite and PostgreSQL): built once per ended period,
in every language and format listed; and their collector.yaml section."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from collector.cli.config import CollectorConfig
from collector.inspections.service import service_for
from collector.records.schedule import AnalysisSchedule, last_complete, run_due
from collector.store import Scope, Store
from collector.store.reports import ReportRepo
from tests.collector.cases.test_api import T0, open_case


def test_last_complete_period_in_the_customers_zone() -> None:
    # 2026-12-01 03:00 in Shanghai is still 2026-11-30 in UTC
    now = dt.datetime(2026, 11, 30, 19, 0, tzinfo=dt.UTC).timestamp()
    assert last_complete("month", "Asia/Shanghai", now).name == "2026-11"
    assert last_complete("month", "UTC", now).name == "2026-10"
    assert last_complete("quarter", "UTC", now).name == "2026-Q3"
    assert (
        last_complete("quarter", "UTC", dt.datetime(2026, 1, 5, tzinfo=dt.UTC).timestamp()).name == "2025-Q4"
    )


def test_due_analyses_are_built_once(store: Store) -> None:
    open_case(store, "acme", "db1")  # 2023-11-14
    open_case(store, "globex", "erp1")
    runner = service_for(store).runner
    schedules = [AnalysisSchedule(customer="acme", languages=("en", "zh-CN"), formats=("html", "json"))]
    december = T0 + 20 * 86400  # 2023-12-04
    built = run_due(runner, schedules, december)
    assert sorted((r.customer, r.kind, r.subject, r.lang, r.format) for r in built) == [
        ("acme", "analysis", "2023-11", lang, fmt) for lang in ("en", "zh-CN") for fmt in ("html", "json")
    ]
    doc = json.loads(
        ReportRepo(store).report_content(Scope.of("acme"), next(r.id for r in built if r.format == "json"))[1]
    )
    assert doc["figures"]["cases"] == 1
    open_case(store, "acme", "web1", at=T0 + 86400)  # the data changes, the period's analysis stays
    assert run_due(runner, schedules, december + 3600) == []
    assert len(ReportRepo(store).reports(Scope.everything(), kind="analysis")) == 4
    # the next month, the next period
    january = T0 + 50 * 86400
    assert {r.subject for r in run_due(runner, schedules, january)} == {"2023-12"}


def test_the_collector_yaml_section() -> None:
    cfg = CollectorConfig.model_validate(
        {
            "records": {
                "analysis": [{"customer": "acme", "every": "quarter", "formats": ["pdf"]}],
                "tick_s": 600,
            }
        }
    )
    assert cfg.records.analysis[0].languages == ("en", "zh-CN") and cfg.records.tick_s == 600
    assert CollectorConfig.model_validate({}).records.analysis == []
    with pytest.raises(ValueError, match="every"):
        CollectorConfig.model_validate({"records": {"analysis": [{"customer": "acme", "every": "week"}]}})
