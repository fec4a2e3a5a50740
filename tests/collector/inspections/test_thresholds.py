"""Typed rule thresholds a plan can override: the override changes findings, bad overrides
are refused naming file, rule and field, and the report says which thresholds were used."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collector.cli.config import ConfigError
from collector.inspections.engine import run_inspection
from collector.inspections.facts import HostFacts
from collector.inspections.model import InspectionResult
from collector.inspections.plan import InspectionPlan, load_plan, parse_plan
from collector.inspections.report import to_report
from collector.inspections.rules import RULES
from collector.inspections.rules.base import Above, Below
from collector.reports import model as rm
from tests.collector.inspections.builders import T0, flat, host

BASE = {"name": "monthly", "customer": "acme", "timezone": "UTC", "schedule": "@monthly"}


def plan(thresholds: object = None) -> InspectionPlan:
    return parse_plan({**BASE, **({"thresholds": thresholds} if thresholds is not None else {})}, "p.yaml")


def busy(percent: float) -> list[HostFacts]:
    return [host("web1", metrics=[flat("host_cpu_busy_percent", percent)])]


def severity_of(result: InspectionResult, key: str) -> str | None:
    finding = result.finding(key)
    return None if finding is None else finding.severity.value


def test_a_plans_override_changes_a_finding() -> None:
    default = run_inspection(plan(), "r1", busy(75), T0, T0 + 3600)
    assert severity_of(default, "CPU_SATURATED") is None  # 75% is under the default 85%

    lowered = run_inspection(plan({"CPU_SATURATED": {"warn": 70}}), "r2", busy(75), T0, T0 + 3600)
    assert severity_of(lowered, "CPU_SATURATED") == "WARN"

    both = run_inspection(plan({"CPU_SATURATED": {"warn": 60, "crit": 74}}), "r3", busy(75), T0, T0 + 3600)
    assert severity_of(both, "CPU_SATURATED") == "CRIT"

    raised = run_inspection(plan({"CPU_SATURATED": {"warn": 95, "crit": 99}}), "r4", busy(90), T0, T0 + 3600)
    assert severity_of(raised, "CPU_SATURATED") is None  # 90% fires by default, not at 95%


def test_a_lower_is_worse_override_changes_a_finding() -> None:
    certs = [host("web1", metrics=[flat("platform_tls_cert_expires_in_days", 20, {"endpoint": "api:443"})])]
    assert severity_of(run_inspection(plan(), "r1", certs, T0, T0 + 3600), "CERT_EXPIRING") == "WARN"
    tighter = plan({"CERT_EXPIRING": {"warn": 14}})
    assert severity_of(run_inspection(tighter, "r2", certs, T0, T0 + 3600), "CERT_EXPIRING") is None
    sooner = plan({"CERT_EXPIRING": {"warn": 60, "crit": 21}})
    assert severity_of(run_inspection(sooner, "r3", certs, T0, T0 + 3600), "CERT_EXPIRING") == "CRIT"


def test_the_result_and_report_say_which_thresholds_were_used() -> None:
    result = run_inspection(plan({"CPU_SATURATED": {"warn": 70}}), "r", busy(75), T0, T0 + 3600)
    used = {t.rule: t for t in result.thresholds}
    assert used["CPU_SATURATED"].overridden
    assert used["CPU_SATURATED"].values == {"warn": 70.0, "crit": 95.0}
    assert used["CPU_SATURATED"].described == "warn >= 70, crit >= 95"
    assert not used["FS_FILLING_UP"].overridden
    assert used["FS_FILLING_UP"].described == "warn <= 30, crit <= 7"
    assert "OOM_KILLS" not in used  # a rule without thresholds
    assert set(used) == {key for key, r in RULES.items() if r.thresholds is not None}

    stored = InspectionResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert stored.thresholds == result.thresholds

    from collector.reports import render_inspection

    report = to_report(stored, rm.Customer("ACME", timezone="UTC"), rm.SignOff("a", "b", "c"), T0)
    document = json.loads(render_inspection(report, "json", "en"))
    row = next(t for t in document["thresholds"] if t["rule"] == "CPU_SATURATED")
    assert row["overridden"] is True and row["described"] == "warn >= 70, crit >= 95"
    english = render_inspection(report, "html", "en").decode("utf-8")
    assert "Thresholds used" in english and "Overridden by the plan" in english
    assert "warn &gt;= 70, crit &gt;= 95" in english
    chinese = render_inspection(report, "html", "zh-CN").decode("utf-8")
    assert "使用的阈值" in chinese and "由巡检计划覆盖" in chinese


def test_only_applied_rules_list_their_thresholds() -> None:
    storage_only = parse_plan({**BASE, "layers": ["storage"]})
    result = run_inspection(storage_only, "r", busy(75), T0, T0 + 3600)
    assert [t.rule for t in result.thresholds] == ["FS_FILLING_UP"]


@pytest.mark.parametrize(
    ("thresholds", "expected"),
    [
        pytest.param(
            {"CPU_SATURATD": {"warn": 70}},
            "thresholds.CPU_SATURATD: unknown rule 'CPU_SATURATD'; did you mean CPU_SATURATED, CPU_STEAL?",
            id="misspelt rule",
        ),
        pytest.param(
            {"NO_SUCH": {"warn": 70}},
            "thresholds.NO_SUCH: unknown rule 'NO_SUCH'; "
            "rules with thresholds: CERT_EXPIRING, CONNTRACK_NEARLY_FULL",
            id="unknown rule lists the known",
        ),
        pytest.param(
            {"OOM_KILLS": {"warn": 1}},
            "thresholds.OOM_KILLS: rule 'OOM_KILLS' has no thresholds; rules with thresholds: CERT_EXPIRING",
            id="rule without thresholds",
        ),
        pytest.param(
            {"CPU_SATURATED": {"wran": 70}},
            "thresholds.CPU_SATURATED.wran: unknown key; did you mean 'warn'?",
            id="misspelt field",
        ),
        pytest.param(
            {"CPU_STEAL": {"crit": 20}},
            "thresholds.CPU_STEAL.crit: unknown key; valid keys here: warn",
            id="field the rule does not have",
        ),
        pytest.param(
            {"CPU_SATURATED": {"warn": 99}},
            "thresholds.CPU_SATURATED: expected crit >= warn (higher values are worse), "
            "got warn 99.0, crit 95.0",
            id="warn above the default crit",
        ),
        pytest.param(
            {"FS_FILLING_UP": {"crit": 40}},
            "thresholds.FS_FILLING_UP: expected crit <= warn (lower values are worse), "
            "got warn 30.0, crit 40.0",
            id="lower-is-worse order",
        ),
        pytest.param(
            {"CPU_SATURATED": {"warn": -5}},
            "thresholds.CPU_SATURATED.warn: expected: input should be greater than or equal to 0 (got -5.0)",
            id="negative",
        ),
        pytest.param(
            {"CPU_SATURATED": {"warn": "high"}},
            "thresholds.CPU_SATURATED.warn: expected: input should be a valid number",
            id="not a number",
        ),
        pytest.param(
            {"CPU_SATURATED": 70},
            "thresholds.CPU_SATURATED: expected: input should be a valid dictionary",
            id="not a mapping",
        ),
    ],
)
def test_a_bad_override_is_refused_naming_file_rule_and_field(
    tmp_path: Path, thresholds: object, expected: str
) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(json.dumps({**BASE, "thresholds": thresholds}), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_plan(path)
    assert f"{path}: {expected}" in str(caught.value)


def test_every_problem_of_the_thresholds_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        plan({"CPU_SATURATD": {"warn": 1}, "CPU_STEAL": {"crit": 1}})
    text = str(caught.value)
    assert "thresholds.CPU_SATURATD" in text and "thresholds.CPU_STEAL.crit" in text


def test_thresholds_are_typed_per_rule_with_their_defaults() -> None:
    assert RULES["CPU_SATURATED"].thresholds == Above(warn=85, crit=95)
    assert RULES["FS_FILLING_UP"].thresholds == Below(warn=30, crit=7)
    assert RULES["CPU_SATURATED"].override({"crit": 99}) == Above(warn=85, crit=99)
    assert RULES["OOM_KILLS"].thresholds is None
    with_thresholds = [k for k, r in RULES.items() if r.thresholds is not None]
    assert len(with_thresholds) >= 10
