"""Message catalogues: same keys in both languages, every key used, no English left in zh-CN reports."""

from __future__ import annotations

import dataclasses
import enum
import re
from pathlib import Path

import pytest

from checks.api import Layer, Severity, Unit
from collector.reports import LocalText, TimelineKind, render_fault_analysis, render_inspection
from collector.reports.i18n import Formatter, catalogue, css_string
from tests.collector.reports.htmltext import ReportHTML

PACKAGE = Path(__file__).resolve().parents[3] / "collector" / "reports"
LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_.\-/:]*")


def test_catalogues_have_the_same_keys_and_placeholders():
    en, zh = catalogue("en"), catalogue("zh-CN")
    assert set(en) == set(zh)
    for key in en:
        assert set(re.findall(r"{(\w+)}", en[key])) == set(re.findall(r"{(\w+)}", zh[key])), key


def test_every_catalogue_key_is_used():
    sources = "".join(p.read_text("utf-8") for p in (PACKAGE / "templates").iterdir())
    sources += "".join(p.read_text("utf-8") for p in PACKAGE.glob("*.py"))
    dynamic = {
        **{f"sev.{s.value}": True for s in Severity},
        **{f"layer.{layer.value}": True for layer in Layer},
        **{f"tl.{k.value}": True for k in TimelineKind},
        **{f"rec.p{i}": True for i in (1, 2, 3)},
        **{k: True for k in ("dur.d", "dur.h", "dur.min", "dur.s")},
        "report.inspection.title": True,
        "report.fault.title": True,
    }
    unused = [
        k for k in catalogue("en") if k not in dynamic and f"'{k}'" not in sources and f'"{k}"' not in sources
    ]
    assert unused == []


def test_every_enum_member_has_a_label():
    for lang in ("en", "zh-CN"):
        f = Formatter(lang, "UTC")
        for sev in Severity:
            assert f.severity(sev)
        for layer in Layer:
            assert f.layer(layer)
        for kind in TimelineKind:
            assert f.t(f"tl.{kind.value}")


def test_zh_cn_labels_are_chinese():
    zh = catalogue("zh-CN")
    # every label with letters in it is one of these proper names, units or symbols
    allowed = {"remote-diag", "GiB"}
    for key, text in zh.items():
        words = set(
            LATIN_WORD.findall(
                text.replace("{customer}", "").replace("{n}", "").replace("{total}", "").replace("{v}", "")
            )
        )
        assert words <= allowed, (key, text)


def _data_words(value: object) -> set[str]:
    """Latin words of the model's data (host names, keys, versions...), not of its prose."""
    words: set[str] = set()
    if isinstance(value, LocalText):
        words |= set(LATIN_WORD.findall(value.zh_cn))  # names inside Chinese prose (db1, RAID, NTP)
    elif isinstance(value, str):
        words |= set(LATIN_WORD.findall(value))
    elif isinstance(value, bytes | enum.Enum | int | float) or value is None:
        pass
    elif isinstance(value, tuple | list):
        for item in value:
            words |= _data_words(item)
    elif dataclasses.is_dataclass(value):
        for field in dataclasses.fields(value):
            words |= _data_words(getattr(value, field.name))
    return words


# Units and symbols the formatter prints in every language, and our product's name.
UNIVERSAL = {"GiB", "MiB", "KiB", "TiB", "ms", "s", "B", "Hz", "MHz", "remote-diag", "p95", "/s"}


@pytest.mark.parametrize("kind", ["inspection", "fault"])
def test_zh_cn_rendering_leaves_no_english_label(kind, inspection, fault):
    report = inspection if kind == "inspection" else fault
    render = render_inspection if kind == "inspection" else render_fault_analysis
    doc = ReportHTML(render(report, "html", "zh-CN").decode("utf-8"))
    allowed = _data_words(report) | UNIVERSAL | {"Asia/Shanghai"}
    leftovers = {
        w for w in LATIN_WORD.findall(doc.text) if w not in allowed and not re.fullmatch(r"[\d/]*s?", w)
    }
    assert leftovers == set()
    en_labels = {v for v in catalogue("en").values() if len(v) > 3 and "{" not in v and v != "remote-diag"}
    assert [label for label in en_labels if label in doc.text] == []
    assert "巡检报告" in doc.text if kind == "inspection" else "事故分析报告" in doc.text


def test_english_rendering_has_no_chinese_labels(inspection):
    doc = ReportHTML(render_inspection(inspection, "html", "en").decode("utf-8"))
    assert not re.search(r"[\u4e00-\u9fff]", doc.text)


@pytest.mark.parametrize(
    ("seconds", "en", "zh"),
    [
        pytest.param(0, "0 s", "0 秒", id="zero"),
        pytest.param(45, "45 s", "45 秒", id="seconds"),
        pytest.param(150, "2 min 30 s", "2 分钟 30 秒", id="minutes"),
        pytest.param(3600, "1 h", "1 小时", id="whole hour"),
        pytest.param(90061, "1 d 1 h", "1 天 1 小时", id="two largest units"),
        pytest.param(None, "—", "—", id="unknown"),
    ],
)
def test_durations(seconds, en, zh):
    assert Formatter("en", "UTC").duration(seconds) == en
    assert Formatter("zh-CN", "UTC").duration(seconds) == zh


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        pytest.param(1610612736, Unit.BYTES, "1.5 GiB", id="bytes"),
        pytest.param(512, Unit.BYTES, "512 B", id="small bytes"),
        pytest.param(0.048, Unit.SECONDS, "48 ms", id="milliseconds"),
        pytest.param(3.25, Unit.SECONDS, "3.25 s", id="seconds"),
        pytest.param(96.25, Unit.PERCENT, "96.2 %", id="percent"),
        pytest.param(12345, Unit.COUNT, "12,345", id="count grouped"),
        pytest.param(2.5, Unit.DAYS, "2.5 days", id="days"),
        pytest.param(14.0, Unit.PER_SECOND, "14/s", id="rate"),
        pytest.param(1.0, Unit.BOOLEAN, "Yes", id="boolean"),
    ],
)
def test_values_with_units(value, unit, text):
    assert Formatter("en", "UTC").value(value, unit) == text


def test_times_are_shown_in_the_customer_zone():
    from datetime import UTC, datetime

    moment = datetime(2026, 11, 24, 6, 2, tzinfo=UTC)
    assert Formatter("zh-CN", "Asia/Shanghai").dt(moment) == "2026-11-24 14:02"
    assert Formatter("en", "Europe/Berlin").dt(moment) == "2026-11-24 07:02"


def test_css_string_cannot_break_out():
    assert css_string('a"b\\c</style>') == "a\\22 b\\5c c\\3c /style\\3e "


def test_unknown_language_and_missing_key():
    with pytest.raises(ValueError, match="unknown report language 'de'"):
        catalogue("de")
    with pytest.raises(KeyError, match=r"'no\.such\.key' is missing from the en catalogue"):
        Formatter("en", "UTC").t("no.such.key")
