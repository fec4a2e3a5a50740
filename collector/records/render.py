"""Render a :class:`~collector.records.model.ServiceRecord` to HTML, PDF or JSON, en or zh-CN.

The same page as the reports (``_base.html``: masthead, logo, sign-off block, report.css),
with the records' labels on top of the reports' (:mod:`.i18n`). PDFs go through the
reports' WeasyPrint path, with its ``data:``-only URL fetcher and missing-glyph check.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from jinja2 import ChoiceLoader, Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from collector.records.i18n import RecordFormatter
from collector.records.model import Chart, ServiceRecord
from collector.reports import charts
from collector.reports.model import Lang
from collector.reports.render import SCHEMA_VERSION, Format, check_format, html_to_pdf, jsonable, load_logo

__all__ = ["render_record"]


class _Charts:
    def bars(self, chart: Chart) -> Markup:
        top = chart.maximum if chart.maximum is not None else max([v for _, v in chart.bars] or [1.0])
        return Markup(charts.bar_chart(list(chart.bars), maximum=max(top, 1e-9)))


@cache
def _env() -> Environment:
    return Environment(
        loader=ChoiceLoader(
            [PackageLoader("collector.records", "templates"), PackageLoader("collector.reports", "templates")]
        ),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _html(record: ServiceRecord, lang: Lang) -> str:
    f = RecordFormatter(lang, record.customer.timezone)
    return (
        _env()
        .get_template("service_record.html")
        .render(
            title_key=f"kind.{record.kind}",
            service_key=f"kind.{record.kind}",
            r=record,
            f=f,
            lang=lang,
            chart=_Charts(),
            logo=load_logo(record.customer.logo),
            L=lambda text: text.get(lang),
        )
    )


def render_record(record: ServiceRecord, fmt: Format = "html", lang: Lang = "en") -> bytes:
    """The record as HTML, PDF or JSON bytes, in English or Chinese."""
    check_format(fmt, lang)
    if fmt == "json":
        load_logo(record.customer.logo)  # same errors in every format
        doc: dict[str, Any] = {
            "schema": SCHEMA_VERSION,
            "report": record.kind,
            "lang": lang,
            "title": RecordFormatter(lang).t(f"kind.{record.kind}"),
            **{
                k: jsonable(getattr(record, k), lang)
                for k in ("subject", "customer", "signoff", "generated_at")
            },
            "facts": jsonable(record.facts, lang),
            "summary": jsonable(record.summary, lang),
            "sections": jsonable(record.sections, lang),
            "figures": record.extra,
        }
        return json.dumps(doc, ensure_ascii=False, indent=1, allow_nan=False).encode("utf-8")
    html = _html(record, lang)
    return html_to_pdf(html) if fmt == "pdf" else html.encode("utf-8")
