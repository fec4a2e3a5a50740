"""A whole inspection run: findings, scores, coverage, comparison with the previous run."""

from __future__ import annotations

import json

import pytest

from checks.api import Layer, Severity, Unit
from collector.inspections.engine import run_inspection
from collector.inspections.facts import DAY_S, HostFacts
from collector.inspections.model import (
    CapacityTrend,
    FindingRef,
    InspectionResult,
    InventoryChange,
    LayerScore,
    OfflineHost,
)
from collector.inspections.plan import InspectionPlan, parse_plan
from collector.inspections.scoring import combine, host_layer_score, layer_scores, overall
from tests.collector.inspections.builders import T0, flat, host, inventory, line, res

GIB = 2**30
PLAN = parse_plan(
    {"name": "monthly", "customer": "acme", "timezone": "Asia/Shanghai", "schedule": "@monthly"}
)


def plan(**changes: object) -> InspectionPlan:
    data: dict[str, object] = {
        "name": "monthly",
        "customer": "acme",
        "timezone": "UTC",
        "schedule": "@monthly",
    }
    data.update(changes)
    return parse_plan(data)


def previous_hosts() -> list[HostFacts]:
    return [
        host(
            "db1",
            [res("storage.filesystem", "FS_NEARLY_FULL", "WARN", item="/")],
            [
                flat("storage_fs_used_percent", 85, {"mountpoint": "/"}),
                flat("host_memory_used_bytes", 6 * GIB),
                flat("host_memory_total_bytes", 16 * GIB),
                flat("net_tcp_sockets_in_use_count", 100),
            ],
            inventory(products={"billing": "7.3.0"}, kernel="6.1.0-25"),
        ),
        host("db2", [res("host.processes", "ZOMBIES")], inventory=inventory(products={"billing": "7.3.0"})),
        host(
            "web1",
            [res("application.process", "PROCESS_MISSING", "CRIT", item="nginx")],
            inventory=inventory(products={"billing": "7.3.0"}),
        ),
        host("old1", inventory=inventory()),
    ]


def current_hosts() -> list[HostFacts]:
    return [
        host(
            "db1",
            [
                res("storage.filesystem", "FS_NEARLY_FULL", "CRIT", item="/"),
                res("platform.reboot_required", "REBOOT_REQUIRED", "WARN", summary="kernel waiting"),
            ],
            [
                flat("storage_fs_used_percent", 95, {"mountpoint": "/"}),
                line("storage_fs_free_bytes", 20 * GIB, -0.5 * GIB, labels={"mountpoint": "/"}),
                flat("storage_fs_size_bytes", 100 * GIB, {"mountpoint": "/"}),
                line("host_memory_used_bytes", 8 * GIB, 0.1 * GIB),
                flat("host_memory_total_bytes", 16 * GIB),
                line("net_tcp_sockets_in_use_count", 120, 10),
            ],
            inventory(products={"billing": "7.4.2"}, kernel="6.1.0-26"),
        ),
        host("db2", inventory=inventory(products={"billing": "7.4.2"})),
        host(
            "web1",
            [res("application.process", "PROCESS_MISSING", "CRIT", item="nginx")],
            answered=False,
            last_seen=T0 - 3600,
        ),
        host(
            "web2",
            [res("platform.reboot_required", "REBOOT_REQUIRED", "WARN", summary="libc updated")],
            inventory=inventory(products={"billing": "7.4.2"}),
        ),
    ]


def run(previous: InspectionResult | None = None, the_plan: InspectionPlan = PLAN) -> InspectionResult:
    return run_inspection(the_plan, "run-2", current_hosts(), T0, T0 + 2 * DAY_S, previous)


@pytest.fixture(scope="module")
def previous() -> InspectionResult:
    result = run_inspection(PLAN, "run-1", previous_hosts(), T0 - 30 * DAY_S, T0 - 28 * DAY_S)
    # what the store keeps and hands back: the JSON form
    return InspectionResult.from_dict(json.loads(json.dumps(result.to_dict())))


def test_coverage_lists_offline_hosts() -> None:
    result = run()
    assert (result.coverage.selected, result.coverage.answered) == (4, 3)
    assert result.coverage.offline == (OfflineHost("web1", T0 - 3600),)
    assert result.coverage.percent == 75.0


def test_findings_most_severe_first_with_instances() -> None:
    result = run()
    assert [(f.key, f.severity.value, f.hosts) for f in result.findings] == [
        ("FS_NEARLY_FULL", "CRIT", ("db1",)),
        ("REBOOT_REQUIRED", "WARN", ("db1", "web2")),
        ("HOST_NOT_ANSWERING", "WARN", ("web1",)),
    ]
    # the offline host's stale PROCESS_MISSING result is not a finding
    assert result.finding("PROCESS_MISSING") is None
    assert result.rule_errors == ()


def test_scores_follow_the_documented_formula() -> None:
    result = run()
    assert result.layers == (
        LayerScore(Layer.HOST, 100),
        LayerScore(Layer.NETWORK, 100),
        LayerScore(Layer.STORAGE, 80, crit=1),  # db1 70, others 100: (90 + 70) / 2
        LayerScore(Layer.PLATFORM, 92, warn=1),  # 90, 100, 90: (93.3 + 90) / 2 = 91.7
        LayerScore(Layer.APPLICATION, 94, warn=1),  # 100 x3 and offline web1 90: (97.5 + 90) / 2
    )
    assert result.overall_score == 93  # (100 + 100 + 80 + 92 + 94) / 5 = 93.2


def test_host_rows() -> None:
    rows = {h.name: h for h in run().hosts}
    assert list(rows) == ["db1", "db2", "web1", "web2"]
    db1 = rows["db1"]
    assert (db1.worst, db1.crit, db1.warn, db1.top_findings) == (
        Severity.CRIT,
        1,
        1,
        ("FS_NEARLY_FULL", "REBOOT_REQUIRED"),
    )
    assert db1.os == "Debian GNU/Linux 12" and db1.components["product:billing"] == "7.4.2"
    assert (rows["db2"].worst, rows["db2"].top_findings) == (Severity.OK, ())
    assert (rows["web1"].answered, rows["web1"].top_findings, rows["web1"].components) == (
        False,
        ("HOST_NOT_ANSWERING",),
        {},
    )


def test_first_inspection_has_only_new_findings() -> None:
    comparison = run().comparison
    assert comparison.previous_run is None and comparison.resolved == () and comparison.persisting == ()
    assert [(r.key, r.host) for r in comparison.new] == [
        ("FS_NEARLY_FULL", "db1"),
        ("HOST_NOT_ANSWERING", "web1"),
        ("REBOOT_REQUIRED", "db1"),
        ("REBOOT_REQUIRED", "web2"),
    ]


def test_comparison_with_the_previous_inspection(previous: InspectionResult) -> None:
    comparison = run(previous).comparison
    assert (comparison.previous_run, comparison.previous_at, comparison.previous_score) == (
        "run-1",
        T0 - 28 * DAY_S,
        previous.overall_score,
    )
    assert comparison.persisting == (
        FindingRef(
            "FS_NEARLY_FULL", "db1", "/", Severity.CRIT, Layer.STORAGE, previous_severity=Severity.WARN
        ),
    )
    assert [(r.key, r.host) for r in comparison.new] == [
        ("HOST_NOT_ANSWERING", "web1"),
        ("REBOOT_REQUIRED", "db1"),
        ("REBOOT_REQUIRED", "web2"),
    ]
    # db2's zombies are gone; web1's missing process is not "resolved": web1 did not answer
    assert comparison.resolved == (FindingRef("ZOMBIE_PROCESSES", "db2", None, Severity.WARN, Layer.HOST),)
    assert comparison.hosts_added == ("web2",)
    assert comparison.hosts_removed == ("old1",)
    assert comparison.inventory == (
        InventoryChange("db1", "kernel", "6.1.0-25", "6.1.0-26"),
        InventoryChange("db1", "product:billing", "7.3.0", "7.4.2"),
        InventoryChange("db2", "product:billing", "7.3.0", "7.4.2"),
    )


def test_capacity_trends(previous: InspectionResult) -> None:
    trends = {(t.host, t.resource, t.item): t for t in run(previous).comparison.capacity}
    assert set(trends) == {
        ("db1", "filesystem", "/"),
        ("db1", "memory", None),
        ("db1", "tcp_connections", None),
    }
    fs = trends[("db1", "filesystem", "/")]
    assert fs.unit is Unit.BYTES and fs.limit == 100 * GIB
    assert fs.current == pytest.approx(81 * GIB)  # 100 GiB size - 19 GiB free at the end
    assert fs.growth_per_day == pytest.approx(0.5 * GIB)
    assert fs.days_until_full == pytest.approx(38.0)  # 19 GiB free / 0.5 GiB per day
    assert fs.previous is None  # the previous run had no free-space history for "/"
    memory = trends[("db1", "memory", None)]
    assert memory.current == pytest.approx(8.2 * GIB) and memory.growth_per_day == pytest.approx(0.1 * GIB)
    assert memory.days_until_full == pytest.approx(78.0)  # 7.8 GiB left / 0.1 GiB per day
    assert memory.previous == pytest.approx(6 * GIB) and memory.change == pytest.approx(2.2 * GIB)
    conns = trends[("db1", "tcp_connections", None)]
    assert (conns.current, conns.previous, conns.days_until_full) == (140.0, 100.0, None)
    assert conns.growth_per_day == pytest.approx(10.0)


def test_capacity_needs_enough_history() -> None:
    short = host(metrics=[line("host_memory_used_bytes", GIB, GIB, days=0.1)])
    result = run_inspection(PLAN, "r", [short], T0, T0 + 3600)
    (trend,) = result.comparison.capacity
    assert trend.current == pytest.approx(GIB * (1 + 2 / 24))
    assert trend == CapacityTrend(
        "db1", "memory", Unit.BYTES, trend.current, 0.0
    )  # no growth rate, no forecast


def test_result_round_trips_through_json(previous: InspectionResult) -> None:
    result = run(previous)
    again = InspectionResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again == result


def test_plan_checks_limit_the_rules() -> None:
    storage_only = run(the_plan=plan(layers=["storage"]))
    assert [f.key for f in storage_only.findings] == ["FS_NEARLY_FULL", "HOST_NOT_ANSWERING"]


def test_no_host_answered() -> None:
    result = run_inspection(PLAN, "r", [host("a", answered=False)], T0, T0)
    assert result.coverage.answered == 0
    assert [s.score for s in result.layers] == [None, None, None, None, 90]
    assert result.overall_score == 90


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="a host is listed twice"):
        run_inspection(PLAN, "r", [host("a"), host("a")], T0, T0)
    with pytest.raises(ValueError, match=r"period_end .* is before period_start"):
        run_inspection(PLAN, "r", [host("a")], T0, T0 - 1)


@pytest.mark.parametrize(
    ("severities", "expected"),
    [
        pytest.param([], 100, id="clean"),
        pytest.param([Severity.WARN], 90, id="one warning"),
        pytest.param([Severity.UNKNOWN], 85, id="one unknown"),
        pytest.param([Severity.CRIT, Severity.CRIT, Severity.CRIT, Severity.CRIT], 0, id="floor at zero"),
    ],
)
def test_host_layer_score(severities: list[Severity], expected: int) -> None:
    assert host_layer_score(severities) == expected


def test_layer_and_overall_scores() -> None:
    assert combine([100] * 11 + [70]) == 84  # one critical host among twelve stays visible
    assert combine([100, 85]) == 89  # (92.5 + 85) / 2 = 88.75
    assert combine([100, 90]) == 93  # (95 + 90) / 2 = 92.5 rounds half up
    with pytest.raises(ValueError):
        combine([])
    assert overall([None, 80, 90]) == 85
    assert overall([None]) is None
    assert layer_scores([], []) == tuple(LayerScore(layer, None) for layer in Layer)


def test_os_drift_only_with_platform_checks() -> None:
    hosts = [
        host("a", inventory=inventory("12")),
        host("b", inventory=inventory("12")),
        host("c", inventory=inventory("11")),
    ]
    assert [f.key for f in run_inspection(plan(layers=["platform"]), "r", hosts, T0, T0).findings] == [
        "OS_VERSION_DRIFT"
    ]
    assert run_inspection(plan(layers=["storage"]), "r", hosts, T0, T0).findings == ()


def test_findings_of_rules_not_applied_now_are_not_resolved(previous: InspectionResult) -> None:
    # previous: db2 had ZOMBIE_PROCESSES (host layer); a storage-only run cannot tell whether it is gone
    storage_only = run(previous, the_plan=plan(layers=["storage"]))
    assert storage_only.comparison.resolved == ()
    assert [r.key for r in storage_only.comparison.persisting] == ["FS_NEARLY_FULL"]
