"""The inspection result maps onto the report model with exactly its figures."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

from checks.api import Layer, Severity
from collector.inspections.engine import run_inspection
from collector.inspections.facts import DAY_S
from collector.inspections.model import InspectionResult
from collector.inspections.report import build_trends, to_report
from collector.reports import model as rm
from tests.collector.inspections.builders import T0
from tests.collector.inspections.test_engine import PLAN, current_hosts, previous_hosts

SHANGHAI = ZoneInfo("Asia/Shanghai")
CUSTOMER = rm.Customer("ACME 有限公司", timezone="Asia/Shanghai")
SIGNOFF = rm.SignOff("Li Lei", "Han Meimei", "Vendor Ltd")


def results() -> tuple[InspectionResult, InspectionResult]:
    before = run_inspection(PLAN, "run-1", previous_hosts(), T0 - 30 * DAY_S, T0 - 28 * DAY_S)
    before = InspectionResult.from_dict(json.loads(json.dumps(before.to_dict())))
    return before, run_inspection(PLAN, "run-2", current_hosts(), T0, T0 + 2 * DAY_S, before)


def test_report_has_the_result_figures() -> None:
    _, result = results()
    report = to_report(result, CUSTOMER, SIGNOFF, T0 + 2 * DAY_S + 60)
    assert report.period_start == datetime.fromtimestamp(T0, SHANGHAI)
    assert report.generated_at.tzinfo is not None
    assert (report.coverage.selected, report.coverage.answered, report.coverage.percent) == (4, 3, 75.0)
    assert report.coverage.offline == (rm.OfflineHost("web1", datetime.fromtimestamp(T0 - 3600, SHANGHAI)),)
    assert report.overall_score == result.overall_score == 93
    assert [(s.layer, s.score, s.crit, s.warn) for s in report.layers] == [
        (s.layer, s.score, s.crit, s.warn) for s in result.layers
    ]
    assert [(f.key, f.severity, f.host_count) for f in report.findings] == [
        ("FS_NEARLY_FULL", Severity.CRIT, 1),
        ("REBOOT_REQUIRED", Severity.WARN, 2),
        ("HOST_NOT_ANSWERING", Severity.WARN, 1),
    ]
    fs = report.findings[0]
    assert (
        fs.title.get("zh-CN") == "文件系统空间不足" and fs.instances[0].evidence.get("en") == "/: 95.0% used"
    )
    rows = {h.name: h for h in report.hosts}
    assert rows["db1"].product_version == "billing 7.4.2" and rows["db1"].top_findings == (
        "FS_NEARLY_FULL",
        "REBOOT_REQUIRED",
    )
    assert rows["web1"].product_version is None and not rows["web1"].answered


def test_comparison_groups_instances_per_key() -> None:
    before, result = results()
    comparison = to_report(result, CUSTOMER, SIGNOFF, T0).comparison
    assert comparison is not None
    assert (comparison.previous_run, comparison.previous_score) == ("run-1", before.overall_score)
    assert [(c.key, c.severity, c.hosts) for c in comparison.new] == [
        ("HOST_NOT_ANSWERING", Severity.WARN, ("web1",)),
        ("REBOOT_REQUIRED", Severity.WARN, ("db1", "web2")),
    ]
    assert [(c.key, c.hosts) for c in comparison.resolved] == [("ZOMBIE_PROCESSES", ("db2",))]
    assert [(c.key, c.severity) for c in comparison.persisting] == [("FS_NEARLY_FULL", Severity.CRIT)]
    assert len(comparison.inventory) == 3
    assert {(c.resource.get("zh-CN"), c.item) for c in comparison.capacity} == {
        ("文件系统", "/"),
        ("内存", None),
        ("TCP 连接数", None),
    }


def test_first_report_has_no_comparison_and_skips_empty_layers() -> None:
    from tests.collector.inspections.builders import host

    result = run_inspection(PLAN, "r", [host("a", answered=False)], T0, T0)
    report = to_report(result, CUSTOMER, SIGNOFF, T0)
    assert report.comparison is None
    assert [s.layer for s in report.layers] == [Layer.APPLICATION]


def test_trends_chart_the_growing_resources() -> None:
    _, result = results()
    trends = build_trends(result, current_hosts(), "Asia/Shanghai")
    assert [(t.metric, t.host, t.item) for t in trends] == [
        ("storage_fs_used_percent", "db1", "/"),
        ("host_memory_used_bytes", "db1", None),
        ("net_tcp_sockets_in_use_count", "db1", None),
    ]
    assert trends[0].days_until_full == 38.0 and trends[0].warn == 80.0
    assert trends[1].points[0][0] == datetime.fromtimestamp(T0, SHANGHAI)
    assert len(build_trends(result, current_hosts(), limit=1)) == 1


def test_rendered_report_carries_the_result_figures() -> None:
    from collector.reports import render_inspection

    _, result = results()
    report = to_report(
        result, CUSTOMER, SIGNOFF, T0, trends=build_trends(result, current_hosts(), "Asia/Shanghai")
    )
    document = json.loads(render_inspection(report, "json", "zh-CN"))
    assert document["overall_score"] == result.overall_score
    assert document["coverage"]["selected"] == 4 and document["coverage"]["answered"] == 3
    assert [f["key"] for f in document["findings"]] == [f.key for f in result.findings]
    html = render_inspection(report, "html", "zh-CN").decode("utf-8")
    assert "文件系统空间不足" in html and "web1" in html
