"""deploy/prometheus and deploy/grafana: promtool checks and unit tests, and the dashboards' shape.

Each alert is tested firing and quiet by ``alerts_test.yaml``; the mutation tests below
prove those unit tests bite: an alert that never fires, or that fires on every series,
must fail them. The live side (every query against a real Prometheus scraping a real
collector) is ``tests/integration/test_prometheus.py``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROM = DEPLOY / "prometheus"
GRAFANA = DEPLOY / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
CJK = re.compile(r"[\u4e00-\u9fff]")
COMPARISON = re.compile(r"^(?P<query>.*?)\s*(?:==|!=|>=|<=|>|<)\s*[0-9.eE+-]+\s*$", re.DOTALL)

needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool (Debian package prometheus) is not installed"
)


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((PROM / "alerts.yaml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def without_threshold(expr: str) -> str:
    """An alert's expression minus its final threshold comparison: the series it watches.

    >>> without_threshold("sum by (customer) (diag_cases_open) > 0")
    'sum by (customer) (diag_cases_open)'
    """
    match = COMPARISON.match(expr.strip())
    assert match is not None, f"alert expression {expr!r} does not end in a threshold comparison"
    return match["query"]


def promtool(*args: str, cwd: Path = PROM) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=60)


# --------------------------------------------------------------------------- alerts


@needs_promtool
def test_rules_and_example_config_pass_promtool() -> None:
    done = promtool("check", "rules", "alerts.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in done.stdout
    done = promtool("check", "config", "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_alert_unit_tests_pass() -> None:
    done = promtool("test", "rules", "alerts_test.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    tests = yaml.safe_load((PROM / "alerts_test.yaml").read_text())["tests"]
    cases: dict[str, list[list[Any]]] = {}
    for test in tests:
        for case in test.get("alert_rule_test", []):
            cases.setdefault(case["alertname"], []).append(case["exp_alerts"])
    for rule in alert_rules():
        seen = cases.get(rule["alert"], [])
        assert [] in seen, f"{rule['alert']}: no case where it stays quiet"
        assert any(seen), f"{rule['alert']}: no case where it fires"


def _mutated(tmp_path: Path, alert: str, expr: str) -> subprocess.CompletedProcess[str]:
    doc = yaml.safe_load((PROM / "alerts.yaml").read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alert:
                rule["expr"] = expr
    (tmp_path / "alerts.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True))
    shutil.copy(PROM / "alerts_test.yaml", tmp_path / "alerts_test.yaml")
    return promtool("test", "rules", "alerts_test.yaml", cwd=tmp_path)


@needs_promtool
@pytest.mark.parametrize("alert", [r["alert"] for r in alert_rules()])
def test_unit_tests_catch_an_alert_that_never_fires_or_always_fires(tmp_path: Path, alert: str) -> None:
    rule = next(r for r in alert_rules() if r["alert"] == alert)
    never = _mutated(tmp_path, alert, f"({rule['expr']}) and on() vector(0) > 1")
    assert never.returncode != 0, f"{alert}: the unit tests pass although it never fires"
    always = _mutated(tmp_path, alert, without_threshold(rule["expr"]))
    assert always.returncode != 0, f"{alert}: the unit tests pass although it fires on every series"


def test_every_alert_speaks_english_and_chinese() -> None:
    for rule in alert_rules():
        notes = rule["annotations"]
        assert {"summary", "description", "summary_zh", "description_zh"} <= set(notes), rule["alert"]
        assert not CJK.search(notes["summary"] + notes["description"]), rule["alert"]
        assert CJK.search(notes["summary_zh"]) and CJK.search(notes["description_zh"]), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]


# --------------------------------------------------------------------------- dashboards

BUILTINS = {"__rate_interval", "__interval", "__range", "__interval_ms", "__range_s"}


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # collapsed rows hold their panels
    return out


def test_the_three_dashboards_exist_with_unique_uids() -> None:
    docs = [json.loads(p.read_text()) for p in DASHBOARDS]
    assert sorted(p.stem for p in DASHBOARDS) == ["collector-health", "customer", "fleet-overview"]
    assert len({d["uid"] for d in docs}) == len(docs)
    customer = json.loads((GRAFANA / "dashboards" / "customer.json").read_text())
    assert [v["name"] for v in customer["templating"]["list"]] == ["customer"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_panels_use_the_provisioned_datasource_and_known_variables(path: Path) -> None:
    datasources = yaml.safe_load((GRAFANA / "provisioning/datasources/diag-prometheus.yaml").read_text())
    (uid,) = [d["uid"] for d in datasources["datasources"]]
    dashboard = json.loads(path.read_text())
    variables = {v["name"] for v in dashboard["templating"]["list"]} | BUILTINS
    assert panels(dashboard)
    for panel in panels(dashboard):
        title = panel["title"]
        assert CJK.search(title) and re.search(r"[A-Za-z]{3}", title), f"{title!r}: English and Chinese"
        assert panel["datasource"]["uid"] == uid, title
        assert panel["targets"], title
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid, title
            used = set(re.findall(r"\$\{?(\w+)", target["expr"]))
            assert used <= variables, f"{title}: unknown variables {used - variables}"
    for variable in dashboard["templating"]["list"]:
        assert variable["datasource"]["uid"] == uid
        assert re.fullmatch(r"label_values\(.+, *\w+\)", variable["query"]["query"])


def test_provisioning_points_at_files_and_the_example_scrape_job_matches_the_dashboards() -> None:
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/remote-diag.yaml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    assert [job["job_name"] for job in config["scrape_configs"]] == ["diag-collector"]
    assert config["rule_files"] == ["alerts.yaml"]
    expressions = " ".join(
        t["expr"] for p in DASHBOARDS for panel in panels(json.loads(p.read_text())) for t in panel["targets"]
    )
    assert 'job="diag-collector"' in expressions
