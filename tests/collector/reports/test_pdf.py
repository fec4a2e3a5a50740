"""PDF output: real WeasyPrint, rasterised with pdftoppm, text extracted with pdftotext (poppler-utils)."""

# ruff: noqa: RUF001  # full-width punctuation is correct in Chinese text
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from collector.reports import render_fault_analysis, render_inspection

CASES = [
    pytest.param("inspection", "en", id="inspection-en"),
    pytest.param("inspection", "zh-CN", id="inspection-zh-CN"),
    pytest.param("fault", "en", id="fault-en"),
    pytest.param("fault", "zh-CN", id="fault-zh-CN"),
]


def _pgm_dark_pixels(path: Path) -> tuple[int, int]:
    """(dark pixels, all pixels) of a binary PGM (P5, 8-bit) as written by ``pdftoppm -gray``."""
    data = path.read_bytes()
    fields = re.match(rb"P5\s+(\d+)\s+(\d+)\s+(\d+)\s", data)
    assert fields is not None, f"{path} is not a binary PGM"
    width, height, maxval = (int(x) for x in fields.groups())
    assert maxval == 255
    pixels = data[fields.end() : fields.end() + width * height]
    assert len(pixels) == width * height
    return sum(1 for p in pixels if p < 160), width * height


@pytest.fixture(scope="module")
def pdfs(inspection, fault, tmp_path_factory) -> dict[tuple[str, str], Path]:
    out = tmp_path_factory.mktemp("pdf")
    paths = {}
    for kind, render, report in (
        ("inspection", render_inspection, inspection),
        ("fault", render_fault_analysis, fault),
    ):
        for lang in ("en", "zh-CN"):
            path = out / f"{kind}.{lang}.pdf"
            path.write_bytes(render(report, "pdf", lang))
            paths[(kind, lang)] = path
    return paths


def _pdftotext(path: Path, page: int | None = None) -> str:
    args = ["pdftotext", "-enc", "UTF-8", "-layout"]
    if page is not None:
        args += ["-f", str(page), "-l", str(page)]
    return subprocess.run([*args, str(path), "-"], check=True, capture_output=True, timeout=60).stdout.decode(
        "utf-8"
    )


@pytest.mark.parametrize(("kind", "lang"), CASES)
def test_every_page_has_ink_and_text(kind, lang, pdfs, tmp_path):
    pdf = pdfs[(kind, lang)]
    assert pdf.read_bytes().startswith(b"%PDF-")
    subprocess.run(
        ["pdftoppm", "-r", "50", "-gray", str(pdf), str(tmp_path / "page")], check=True, timeout=120
    )
    pages = sorted(tmp_path.glob("page-*.pgm"))
    assert len(pages) >= 2
    for number, page in enumerate(pages, start=1):
        dark, total = _pgm_dark_pixels(page)
        assert dark > total * 0.002, f"page {number} of {pdf.name} looks blank ({dark} dark pixels)"
        text = _pdftotext(pdf, number)
        assert len(text.split()) >= 5, f"page {number} of {pdf.name} has no text"
        footer = (
            f"第 {number} 页，共 {len(pages)} 页" if lang == "zh-CN" else f"Page {number} of {len(pages)}"
        )
        assert footer in text


@pytest.mark.parametrize(
    ("kind", "phrases"),
    [
        pytest.param(
            "inspection",
            ["巡检报告", "健康评分", "文件系统即将写满", "签字确认", "与上次巡检对比"],
            id="inspection",
        ),
        pytest.param(
            "fault",
            ["事故分析报告", "时间线", "可能原因", "db1 存储层：RAID 写缓存被关闭", "防止再次发生的建议"],
            id="fault",
        ),
    ],
)
def test_chinese_is_real_text(kind, phrases, pdfs):
    text = " ".join(_pdftotext(pdfs[(kind, "zh-CN")]).split())
    for phrase in phrases:
        assert " ".join(phrase.split()) in text
    assert "Hengxin Logistics Co., Ltd." in text  # the running header and title page


def test_pdf_fonts_are_embedded_noto_cjk(pdfs):
    fonts = subprocess.run(
        ["pdffonts", str(pdfs[("inspection", "zh-CN")])], check=True, capture_output=True, timeout=60
    ).stdout.decode()
    assert "Noto-Sans-CJK-SC" in fonts and "Noto-Sans-CJK-SC-Bold" in fonts
    # every text, SVG chart labels included, uses the Simplified Chinese face (not JP/KR/TC glyph forms)
    assert not re.search(r"CJK-(JP|KR|TC|HK)", fonts)
    for line in fonts.splitlines()[2:]:
        assert " yes " in line, f"font not embedded: {line}"
