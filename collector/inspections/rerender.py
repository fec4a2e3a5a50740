"""Render a stored report again: a new service record from the same subject.

Why: a record rendered on a machine that lacked something (a CJK font, before the
missing-glyph check existed; a logo fixed since) stays wrong byte for byte, because
reports are served from the store. Rendering again makes a *new* record (same kind,
subject, language and format) and leaves the old one as it was: stored records are
never rewritten, and the newest record is the one served from then on.
"""

from __future__ import annotations

from typing import cast

from collector.inspections.runner import Runner, render_run_report
from collector.reports import Lang, ReportError
from collector.reports.render import Format
from collector.store.queries import Scope
from collector.store.reports import ReportRecord

__all__ = ["render_again"]


def render_again(runner: Runner, scope: Scope, report_id: int, *, patient: bool = True) -> ReportRecord:
    """Render report ``report_id`` again from its run or case and store it as a new record.

    NotFound when the report is outside ``scope``; ReportError when it cannot be rendered
    (the message says why, e.g. which font to install); ``patient=False`` (the API):
    RenderBusy when the render pool is full (:mod:`collector.reports.on_demand`).
    """
    old = runner.reports.report(scope, report_id)
    own = Scope.of(old.customer)
    if old.lang not in ("en", "zh-CN") or old.format not in ("html", "pdf", "json"):
        raise ReportError(f"report {report_id} is in {old.lang!r}/{old.format!r}, which cannot be rendered")
    lang, fmt = cast(Lang, old.lang), cast(Format, old.format)
    if old.kind == "inspection":
        run = runner.repo.run(own, old.subject)
        return render_run_report(runner, run, lang, fmt, again=True, patient=patient)
    if old.kind == "fault":
        from collector.reports.fault import stored_fault_report

        record, _ = stored_fault_report(runner, own, old.subject, lang, fmt, again=True, patient=patient)
        return record
    raise ReportError(f"report {report_id} is a {old.kind!r} report, which cannot be rendered again")
