"""``diag-collector check-plans`` and the diagctl parser of the inspection and report commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.cli.main import main as collector_main
from diagctl.main import build_parser

DEPLOY_PLANS = Path(__file__).resolve().parents[3] / "deploy" / "plans"


def test_the_example_plan_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert collector_main(["check-plans", str(DEPLOY_PLANS)]) == 0
    out = capsys.readouterr().out
    assert "ok  acme/acme-monthly: 0 2 1 * * (Asia/Shanghai)" in out
    assert "1 valid plan(s), 0 problem(s)" in out


def test_check_plans_names_file_and_path_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "p.yaml").write_text(
        'name: p\ncustomer: acme\ntimezone: UTC\nschedule: "@daily"\nlayers: [disk]\n'
    )
    assert collector_main(["check-plans", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'p.yaml'}: layers: expected layer names (host, network, storage" in err


def test_check_plans_refuses_a_bad_threshold_override_naming_rule_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "p.yaml").write_text(
        'name: p\ncustomer: acme\ntimezone: UTC\nschedule: "@daily"\n'
        "thresholds:\n  CPU_SATURATED: {wran: 70}\n  CERT_EXPRING: {warn: 10}\n"
    )
    assert collector_main(["check-plans", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'p.yaml'}: thresholds.CPU_SATURATED.wran: unknown key; did you mean 'warn'?" in err
    assert f"{tmp_path / 'p.yaml'}: thresholds.CERT_EXPRING: unknown rule 'CERT_EXPRING'; did you mean" in err


def test_document_format_and_listing_format_do_not_clash() -> None:
    parser = build_parser()
    args = parser.parse_args(
        ["--format", "json", "reports", "inspection", "weekly", "--format", "pdf", "--lang", "zh-CN"]
    )
    assert (args.format, args.report_format, args.lang, args.target) == ("json", "pdf", "zh-CN", "weekly")
    args = parser.parse_args(["reports", "list", "--format", "json"])
    assert args.format == "json"
    args = parser.parse_args(["reports", "fault", "C-acme-1"])
    assert (args.report_format, args.lang) == ("html", "en")
    with pytest.raises(Exception, match="invalid choice"):
        parser.parse_args(["reports", "list", "--format", "pdf"])
    args = parser.parse_args(["inspections", "run", "weekly", "--wait", "--customer", "acme"])
    assert (args.plan, args.wait, args.customer) == ("weekly", True, "acme")
