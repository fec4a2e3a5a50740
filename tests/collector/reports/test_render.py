"""HTML and JSON rendering: self-contained, exactly the model's figures, clear errors on bad input."""

# ruff: noqa: RUF001  # full-width punctuation is correct in Chinese text
from __future__ import annotations

import base64
import json
import re
import zlib
from dataclasses import replace

import pytest

from checks.api import Layer, Severity
from collector.reports import (
    Customer,
    FaultAnalysisReport,
    InspectionReport,
    ReportError,
    load_logo,
    render_fault_analysis,
    render_inspection,
)
from collector.reports.i18n import Formatter
from collector.reports.sample import synthetic_inspection
from tests.collector.reports.htmltext import ReportHTML

LANGS = ("en", "zh-CN")


def _png(width: int = 2, height: int = 2) -> bytes:
    """A real, minimal PNG (grey pixels) built with zlib."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


def _html(report: InspectionReport | FaultAnalysisReport, lang: str) -> ReportHTML:
    if isinstance(report, InspectionReport):
        data = render_inspection(report, "html", lang)  # type: ignore[arg-type]
    else:
        data = render_fault_analysis(report, "html", lang)  # type: ignore[arg-type]
    return ReportHTML(data.decode("utf-8"))


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("kind", ["inspection", "fault"])
def test_html_is_self_contained(kind, lang, inspection, fault):
    report = inspection if kind == "inspection" else fault
    raw = (render_inspection if kind == "inspection" else render_fault_analysis)(report, "html", lang)
    text = raw.decode("utf-8")
    doc = ReportHTML(text)
    assert "script" not in doc.tags and "link" not in doc.tags and "iframe" not in doc.tags
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/|url\(", text, re.IGNORECASE), (
        "external reference"
    )
    assert doc.urls and all(u.startswith("data:image/") for u in doc.urls), doc.urls  # the logo only
    assert doc.tags.count("svg") >= 3  # charts are inline SVG
    assert "<style>" in text and "@page" in text


def test_inspection_html_shows_exactly_the_model_figures(inspection):
    doc = _html(inspection, "en")
    f = Formatter("en", inspection.customer.timezone)
    assert doc.by_id["fig-overall"].strip() == str(inspection.overall_score) == "76"
    assert doc.by_id["fig-coverage"].strip() == f.percent(inspection.coverage.percent) == "91.7 %"
    assert doc.by_id["fig-crit"].strip() == str(inspection.count(Severity.CRIT)) == "2"
    assert doc.by_id["fig-warn"].strip() == str(inspection.count(Severity.WARN)) == "7"
    assert doc.by_id["fig-unknown"].strip() == str(inspection.count(Severity.UNKNOWN)) == "1"
    assert doc.by_id["fig-hosts-with"].strip() == str(inspection.hosts_with_findings)
    # the layer score table: one row per layer with the model's score and counts
    for score in inspection.layers:
        label = f.layer(score.layer)
        row = next(r for r in doc.rows if r and r[0] == label and len(r) == 5)
        assert row[1:] == [str(score.score), str(score.crit), str(score.warn), str(score.unknown)]
    # the per-host table: one row per host, counts as in the model
    host_rows = {r[0]: r for r in doc.rows if len(r) == 8}
    for host in inspection.hosts:
        row = host_rows[host.name]
        assert row[4:7] == [str(host.crit), str(host.warn), str(host.unknown)]
        assert row[7] == ", ".join(host.top_findings)
        assert (f.t("hosts.offline") in row[1]) is (not host.answered)
    # every finding with every instance's evidence and its recommendation
    for finding in inspection.findings:
        assert finding.title.en in doc.text and finding.recommendation.en in doc.text
        for inst in finding.instances:
            assert " ".join(inst.evidence.en.split()) in doc.text
    # offline hosts and comparison figures
    assert "web3" in doc.text and "2026-11-24 22:41" in doc.text
    assert "insp-2026-11-18-0900" in doc.text
    assert "5.14.0-427.13.1.el9_4" in doc.text


def test_inspection_findings_are_listed_most_severe_first(inspection):
    doc = _html(inspection, "en")
    positions = [doc.text.index(f.title.en) for f in inspection.findings_by_severity]
    assert positions == sorted(positions)
    severities = [f.severity for f in inspection.findings_by_severity]
    assert severities[:2] == [Severity.CRIT, Severity.CRIT] and severities[2] is Severity.UNKNOWN
    assert severities[-1] is Severity.WARN


def test_fault_html_shows_timeline_cause_and_durations(fault):
    doc = _html(fault, "en")
    assert doc.by_id["fig-hosts"].strip() == str(len(fault.impact.hosts)) == "5"
    assert doc.by_id["fig-duration"].strip() == "46 min"  # 14:02 -> 14:48
    assert doc.by_id["fig-ttd"].strip() == "2 min"
    assert doc.by_id["fig-ttr"].strip() == "46 min"
    assert fault.impact.duration_s == 46 * 60
    timeline_rows = [r for r in doc.rows if len(r) == 4 and r[0].startswith("2026-")]
    assert [r[1] for r in timeline_rows] == [
        "Onset",
        "Detected",
        "Case opened",
        "Acknowledged",
        "Action",
        "Recovered",
        "Case closed",
    ]
    assert timeline_rows[0][0] == "2026-11-24 14:02"  # shown in the customer's zone (Asia/Shanghai)
    assert "82 %" in doc.text and "11 %" in doc.text and "4 %" in doc.text  # confidences
    for line in fault.cause.reasoning:
        assert line.en in doc.text
    recs = [r for r in doc.rows if len(r) == 4 and r[0] in ("1", "2", "3")]
    assert [r[1] for r in recs] == ["High", "High", "Medium"]


@pytest.mark.parametrize("lang", LANGS)
def test_json_has_the_same_facts(lang, inspection):
    doc = json.loads(render_inspection(inspection, "json", lang))
    assert doc["schema"] == 1 and doc["report"] == "inspection" and doc["lang"] == lang
    assert doc["overall_score"] == inspection.overall_score
    assert doc["coverage"]["selected"] == 12 and doc["coverage"]["answered"] == 11
    assert doc["derived"]["coverage_percent"] == 91.7
    assert doc["derived"]["counts"] == {"CRIT": 2, "UNKNOWN": 1, "WARN": 7, "OK": 0}
    assert [f["key"] for f in doc["findings"]] == [f.key for f in inspection.findings]
    assert [h["name"] for h in doc["hosts"]] == [h.name for h in inspection.hosts]
    assert doc["layers"][2] == {"layer": "storage", "score": 62, "crit": 1, "warn": 0, "unknown": 0}
    first = doc["findings"][0]
    assert first["title"] == inspection.findings[0].title.get(lang)
    assert doc["customer"] == {
        "name": "Hengxin Logistics Co., Ltd.",
        "timezone": "Asia/Shanghai",
        "has_logo": True,
    }
    assert doc["trends"][0]["points"][0][0].endswith("+08:00")


def test_fault_json_has_the_same_facts(fault):
    doc = json.loads(render_fault_analysis(fault, "json", "zh-CN"))
    assert doc["report"] == "fault_analysis"
    assert doc["case"]["case_id"] == "CASE-2026-0142" and doc["case"]["severity"] == "CRIT"
    assert [e["kind"] for e in doc["timeline"]][:3] == ["onset", "detected", "case_opened"]
    assert doc["cause"]["confidence"] == 0.82 and doc["cause"]["layer"] == "storage"
    assert doc["cause"]["label"] == "db1 存储层：RAID 写缓存被关闭"
    assert doc["derived"] == {"duration_s": 2760.0, "time_to_detect_s": 120.0, "time_to_recover_s": 2760.0}


def test_missing_logo_file_is_a_clear_error(inspection, tmp_path):
    missing = tmp_path / "acme-logo.png"
    report = replace(inspection, customer=replace(inspection.customer, logo=missing))
    for fmt in ("html", "json", "pdf"):
        with pytest.raises(ReportError, match=r"logo file '.*acme-logo\.png' does not exist"):
            render_inspection(report, fmt, "en")


@pytest.mark.parametrize(
    ("logo", "message"),
    [
        pytest.param(b"", "is empty", id="empty bytes"),
        pytest.param(b"GIF-ish but not an image", "not a PNG, JPEG, GIF, WebP or SVG", id="not an image"),
        pytest.param(
            b"<svg><script>alert(1)</script></svg>", "must not contain scripts", id="svg with script"
        ),
        pytest.param(b"\x89PNG\r\n\x1a\n" + b"\0" * (3 * 1024 * 1024), "at most", id="too large"),
    ],
)
def test_bad_logo_bytes_are_clear_errors(logo, message):
    with pytest.raises(ReportError, match=message):
        load_logo(logo)


def test_logo_directory_is_a_clear_error(tmp_path):
    with pytest.raises(ReportError, match="is a directory"):
        load_logo(tmp_path)


def test_logo_file_is_embedded_as_data_uri(inspection, tmp_path):
    png = _png()
    path = tmp_path / "logo.png"
    path.write_bytes(png)
    report = replace(inspection, customer=Customer("Acme", "Europe/Berlin", path))
    doc = _html(report, "en")
    assert doc.urls == ["data:image/png;base64," + base64.b64encode(png).decode()]
    no_logo = _html(replace(inspection, customer=Customer("Acme", "UTC", None)), "en")
    assert no_logo.urls == [] and "img" not in no_logo.tags


@pytest.mark.parametrize(
    ("fmt", "lang", "message"),
    [
        pytest.param("docx", "en", "unknown report format 'docx'", id="format"),
        pytest.param("html", "fr", "unknown report language 'fr'", id="language"),
    ],
)
def test_unknown_format_or_language(fmt, lang, message, inspection):
    with pytest.raises(ReportError, match=message):
        render_inspection(inspection, fmt, lang)


def test_template_escapes_data(inspection):
    evil = "<script>alert('x')</script>"
    report = replace(inspection, plan=evil, customer=replace(inspection.customer, name="A & B <Ltd>"))
    html = render_inspection(report, "html", "en").decode()
    assert "<script>" not in html and "&lt;script&gt;" in html and "A &amp; B &lt;Ltd&gt;" in html


def test_large_inspection_keeps_one_row_per_host():
    report = synthetic_inspection(300)
    doc = _html(report, "en")
    host_rows = [r for r in doc.rows if len(r) == 8 and r[0].startswith("host-")]
    assert len(host_rows) == 300
    assert doc.by_id["fig-coverage"].strip() == Formatter("en", "UTC").percent(report.coverage.percent)
    assert report.layers[0].layer is Layer.HOST


def test_sample_command_writes_every_report(tmp_path):
    from collector.reports.sample import main

    assert main(["--out", str(tmp_path), "--formats", "html,json"]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(
        f"{kind}.{lang}.{fmt}"
        for kind in ("inspection", "fault-analysis")
        for lang in LANGS
        for fmt in ("html", "json")
    )
    assert json.loads((tmp_path / "fault-analysis.zh-CN.json").read_text("utf-8"))["lang"] == "zh-CN"
