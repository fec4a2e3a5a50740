"""Render report models to self-contained HTML, PDF (WeasyPrint) or JSON.

HTML: one file, inline CSS, charts as inline SVG, the logo as a ``data:`` URI; no
script and no external reference. PDF: the same HTML laid out by WeasyPrint on A4 with
a running header (customer name, report title) and page numbers; Chinese renders with
Noto Sans CJK SC found through fontconfig; a PDF in which any character would come out
as an empty box (no installed font has it) is refused with what to install
(:mod:`collector.reports.glyphs`). JSON: the model's facts, prose resolved to
the requested language, with stable keys and enum values beside the labels.

WeasyPrint is imported only when a PDF is asked for (it is heavy).
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import json
import logging
from collections.abc import Callable
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, Literal

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from checks.api import Layer, Severity, Unit
from collector.reports import charts
from collector.reports.glyphs import MissingGlyphsError, missing_code_points
from collector.reports.i18n import LANGS, Formatter
from collector.reports.model import (
    SEVERITY_ORDER,
    Customer,
    EvidenceChart,
    FaultAnalysisReport,
    InspectionReport,
    Lang,
    LocalText,
    Trend,
)
from collector.reports.svg_logo import SvgLogoError, sanitize_svg

__all__ = [
    "SCHEMA_VERSION",
    "Format",
    "ReportError",
    "check_format",
    "clean_logo",
    "html_to_pdf",
    "jsonable",
    "load_logo",
    "render_fault_analysis",
    "render_inspection",
]

Format = Literal["html", "pdf", "json"]
_FORMATS = ("html", "pdf", "json")
SCHEMA_VERSION = 1

_MAX_LOGO_BYTES = 2 * 1024 * 1024


class ReportError(Exception):
    """A report cannot be rendered (bad logo, unknown format or language); the message says why."""


# --------------------------------------------------------------------------- logo


def _sniff_mime(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    head = data[:512].lstrip().lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in head):
        return "image/svg+xml"
    return None


def load_logo(logo: Path | bytes | None) -> str | None:
    """The logo as a ``data:`` URI (None without a logo); a clear ReportError when unusable.

    An SVG is checked and cut down to a safe subset on every load (:func:`clean_logo`), so a
    logo stored or configured before that check cannot reach outside the report either.
    """
    if logo is None:
        return None
    data, mime = _checked_logo(logo)
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def clean_logo(logo: bytes) -> bytes:
    """The logo as it should be stored: an SVG re-serialised from its checked subset,
    a raster image unchanged; ReportError saying what is wrong (see :mod:`.svg_logo`)."""
    return _checked_logo(logo)[0]


def _checked_logo(logo: Path | bytes) -> tuple[bytes, str]:
    source = "logo bytes"
    if isinstance(logo, Path):
        source = f"logo file {str(logo)!r}"
        try:
            data = logo.read_bytes()
        except FileNotFoundError:
            raise ReportError(f"{source} does not exist (customer logo setting)") from None
        except IsADirectoryError:
            raise ReportError(f"{source} is a directory, not an image") from None
        except PermissionError:
            raise ReportError(f"{source} is not readable (permission denied)") from None
    else:
        data = logo
    if not data:
        raise ReportError(f"{source} is empty")
    if len(data) > _MAX_LOGO_BYTES:
        raise ReportError(f"{source} is {len(data)} bytes; a logo may be at most {_MAX_LOGO_BYTES} bytes")
    mime = _sniff_mime(data)
    if mime is None:
        raise ReportError(f"{source} is not a PNG, JPEG, GIF, WebP or SVG image")
    if mime == "image/svg+xml":
        if b"<script" in data.lower():
            raise ReportError(f"{source}: an SVG logo must not contain scripts")
        try:
            data = sanitize_svg(data)
        except SvgLogoError as exc:
            raise ReportError(f"{source}: {exc}") from None
    return data, mime


# --------------------------------------------------------------------------- charts


class ChartMaker:
    """Builds the inline SVG charts a template asks for (drawing only, no aggregation)."""

    def __init__(self, f: Formatter) -> None:
        self.f = f

    def _fmt(self, unit: Unit) -> Callable[[float], str]:
        return lambda v: self.f.value(v, unit)

    def trend(self, trend: Trend) -> Markup:
        bands = []
        if trend.warn is not None:
            bands.append(charts.Band(trend.warn, self.f.t("trend.warn"), charts.COLORS["warn"]))
        if trend.crit is not None:
            bands.append(charts.Band(trend.crit, self.f.t("trend.crit"), charts.COLORS["crit"]))
        svg = charts.line_chart(
            trend.points,
            tz=self.f.tz,
            fmt=self._fmt(trend.unit),
            bands=bands,
            aria_label=trend.title.get(self.f.lang),
        )
        return Markup(svg)

    def evidence(self, chart: EvidenceChart) -> Markup:
        bands = []
        if chart.threshold is not None:
            bands.append(charts.Band(chart.threshold, self.f.t("chart.threshold"), charts.COLORS["crit"]))
        if chart.baseline is not None:
            bands.append(
                charts.Band(
                    chart.baseline, self.f.t("chart.baseline"), charts.COLORS["baseline"], dashed=True
                )
            )
        markers = [charts.Marker(chart.onset, self.f.t("chart.onset"), charts.COLORS["crit"])]
        if chart.recovered is not None:
            markers.append(charts.Marker(chart.recovered, self.f.t("chart.recovered"), charts.COLORS["ok"]))
        svg = charts.line_chart(
            chart.points,
            tz=self.f.tz,
            fmt=self._fmt(chart.unit),
            bands=bands,
            markers=markers,
            shade=(chart.onset, chart.recovered or chart.points[-1][0]),
            aria_label=chart.title.get(self.f.lang),
        )
        return Markup(svg)

    def scores(self, layers: Any) -> Markup:
        items = [(self.f.layer(s.layer), float(s.score)) for s in layers]
        return Markup(charts.bar_chart(items))

    def spark(self, trend: Trend) -> Markup:
        return Markup(charts.sparkline([v for _, v in trend.points]))


# --------------------------------------------------------------------------- templates


@cache
def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("collector.reports", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["Layer"] = Layer
    env.globals["Severity"] = Severity
    return env


def _check(fmt: str, lang: str) -> None:
    if fmt not in _FORMATS:
        raise ReportError(f"unknown report format {fmt!r}: expected one of {', '.join(_FORMATS)}")
    if lang not in LANGS:
        raise ReportError(f"unknown report language {lang!r}: expected one of {', '.join(LANGS)}")


def _html(template: str, report: InspectionReport | FaultAnalysisReport, lang: Lang) -> str:
    f = Formatter(lang, report.customer.timezone)
    kind = "inspection" if isinstance(report, InspectionReport) else "fault"
    return (
        _env()
        .get_template(template)
        .render(
            title_key=f"report.{kind}.title",
            service_key="service.inspection" if kind == "inspection" else "service.fault",
            r=report,
            f=f,
            lang=lang,
            chart=ChartMaker(f),
            logo=load_logo(report.customer.logo),
            L=lambda text: text.get(lang),
        )
    )


def _pdf(html: str) -> bytes:
    # Its per-step progress lines are INFO: noise in a collector's log at the default level.
    # Set before the import, which already parses the default stylesheets (and says so).
    logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)
    # Heavy import (pydyf, tinycss2, fontTools, Pango through cffi): only for PDFs.
    try:
        from weasyprint import HTML  # type: ignore[import-untyped]
    except ImportError as exc:  # the Python package or its Pango library is missing
        raise ReportError(f"PDF reports need WeasyPrint >= 62 and Pango: {exc}") from exc
    from collector.reports.url_fetcher import data_only_fetcher

    document = HTML(string=html, url_fetcher=data_only_fetcher()).render()
    pdf = document.write_pdf()
    if not isinstance(pdf, bytes):
        raise ReportError("WeasyPrint returned no PDF")
    try:
        missing = missing_code_points(document)
    except TypeError as exc:
        raise ReportError(str(exc)) from None
    if missing:  # boxes instead of text: never hand out (or store) such a record
        raise ReportError(str(MissingGlyphsError(missing)))
    return pdf


# --------------------------------------------------------------------------- JSON


def _jsonable(value: Any, lang: Lang) -> Any:
    if isinstance(value, LocalText):
        return value.get(lang)
    if isinstance(value, Customer):
        return {"name": value.name, "timezone": value.timezone, "has_logo": value.logo is not None}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {fld.name: _jsonable(getattr(value, fld.name), lang) for fld in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_jsonable(v, lang) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _json(
    kind: str, report: InspectionReport | FaultAnalysisReport, lang: Lang, extra: dict[str, Any]
) -> bytes:
    doc = {"schema": SCHEMA_VERSION, "report": kind, "lang": lang, **_jsonable(report, lang), **extra}
    return json.dumps(doc, ensure_ascii=False, indent=1, allow_nan=False).encode("utf-8")


# --------------------------------------------------------------------------- public API

check_format = _check
"""ReportError unless ``fmt`` and ``lang`` are a report format and language (other documents' renderers)."""
html_to_pdf = _pdf
"""Report HTML as a PDF: the data:-only fetcher and the missing-glyph check (other documents' renderers)."""
jsonable = _jsonable
"""A report model's value as JSON data, prose in ``lang`` (other documents' renderers)."""


def render_inspection(report: InspectionReport, fmt: Format = "html", lang: Lang = "en") -> bytes:
    """The inspection report (巡检报告) as HTML, PDF or JSON bytes, in English or Chinese."""
    _check(fmt, lang)
    if fmt == "json":
        derived = {
            "coverage_percent": report.coverage.percent,
            "counts": {sev.value: report.count(sev) for sev in SEVERITY_ORDER},
            "hosts_with_findings": report.hosts_with_findings,
        }
        load_logo(report.customer.logo)  # same errors in every format
        return _json("inspection", report, lang, {"derived": derived})
    html = _html("inspection.html", report, lang)
    return _pdf(html) if fmt == "pdf" else html.encode("utf-8")


def render_fault_analysis(report: FaultAnalysisReport, fmt: Format = "html", lang: Lang = "en") -> bytes:
    """The fault-analysis report (事故分析报告) as HTML, PDF or JSON bytes, in English or Chinese."""
    _check(fmt, lang)
    if fmt == "json":
        derived = {
            "duration_s": report.impact.duration_s,
            "time_to_detect_s": report.time_to_detect_s,
            "time_to_recover_s": report.time_to_recover_s,
        }
        load_logo(report.customer.logo)
        return _json("fault_analysis", report, lang, {"derived": derived})
    html = _html("fault_analysis.html", report, lang)
    return _pdf(html) if fmt == "pdf" else html.encode("utf-8")
