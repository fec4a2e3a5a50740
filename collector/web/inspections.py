"""Pages: inspection plans and runs (run now, live progress, findings, comparison), reports.

Threat model: plans, runs and reports are read through the session's scope (another
customer's run or report is the same 404 page as a missing one; ids are not probeable);
starting a run needs a writing role and the CSRF token, and is limited to plans the scope
sees. Reports are our own templates over stored data; they are served with their own CSP
(``sandbox``, no script, no network) so even a report's content cannot act as the
dashboard. ``/inspections/runs/{id}.json`` (polled by ``static/live.js``) gives the same
progress the page shows, to the same session.
"""

# No `from __future__ import annotations` here: FastAPI resolves the endpoints' annotations
# at runtime.

import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from collector.inspections.plan import InspectionPlan
from collector.inspections.runner import render_run_report
from collector.inspections.service import InspectionService, service_for
from collector.reports import ReportError
from collector.reports.on_demand import RenderBusy
from collector.store import NotFound, StoreError
from collector.store.inspections import RunRecord
from collector.store.reports import ReportRecord, ReportRepo
from collector.web.frame import FormDep, PageError, WebUser, WebUserDep, render, require_write, store_of

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; sandbox"
CONTENT_TYPES = {"html": "text/html; charset=utf-8", "pdf": "application/pdf", "json": "application/json"}
LANG_CHOICES = ("en", "zh-CN")


def _service(request: Request) -> InspectionService:
    return service_for(store_of(request), getattr(request.app.state, "grpc", None))


def _next_due(plan: InspectionPlan, now: float) -> float | None:
    try:
        return plan.cron().next_after(datetime.fromtimestamp(now, UTC)).timestamp()
    except ValueError:
        return None


@router.get("/inspections")
def inspections_page(request: Request, user: WebUserDep) -> Response:
    service = _service(request)
    scope = user.principal.scope
    now = time.time()
    plans = [(p, _next_due(p, now)) for p in service.visible_plans(scope)]
    runs = service.repo.runs(scope, limit=50)
    return render(request, "inspections.html", user=user, active="inspections", plans=plans, runs=runs)


def _plan(request: Request, user: WebUser, customer: str, name: str) -> InspectionPlan:
    if not user.principal.scope.allows(customer):
        raise PageError(404, "web.error.no_plan", plan=name)
    try:
        return _service(request).plan(user.principal.scope, name, customer)
    except NotFound:
        raise PageError(404, "web.error.no_plan", plan=name) from None


@router.get("/inspections/plans/{customer}/{name}")
def plan_page(customer: str, name: str, request: Request, user: WebUserDep) -> Response:
    plan = _plan(request, user, customer, name)
    runs = _service(request).repo.runs(user.principal.scope, customer=customer, plan=name, limit=20)
    return render(
        request,
        "plan.html",
        user=user,
        active="inspections",
        plan=plan,
        next_due=_next_due(plan, time.time()),
        runs=runs,
    )


@router.post("/inspections/plans/{customer}/{name}/run")
async def run_now(customer: str, name: str, request: Request, user: WebUserDep, fields: FormDep) -> Response:
    """Start a run now; the browser goes to the run's page, which shows its progress."""
    plan = _plan(request, user, customer, name)
    require_write(user)
    try:
        record = await _service(request).launch(plan, "manual", requested_by=user.principal.name)
    except StoreError as exc:
        raise PageError(409, "web.error.conflict", detail=str(exc)) from None
    return RedirectResponse(f"/inspections/runs/{record.id}", status_code=303)


def _run(request: Request, user: WebUser, run_id: str, *, with_result: bool = False) -> RunRecord:
    try:
        return _service(request).repo.run(user.principal.scope, run_id, with_result=with_result)
    except NotFound:
        raise PageError(404, "web.error.no_run", run=run_id) from None


def progress(run: RunRecord) -> dict[str, Any]:
    """What the run page shows while it runs (and its JSON endpoint answers)."""
    selected, answered = run.hosts_selected, run.hosts_answered
    return {
        "id": run.id,
        "state": run.state,
        "hosts_selected": selected,
        "hosts_answered": answered,
        "percent": None if not selected else round(100.0 * (answered or 0) / selected, 1),
        "overall_score": run.overall_score,
        "finished": run.state in ("done", "failed"),
    }


@router.get("/inspections/runs/{run_id}.json")
def run_json(run_id: str, request: Request, user: WebUserDep) -> Response:
    return JSONResponse(progress(_run(request, user, run_id)))


@router.get("/inspections/runs/{run_id}")
def run_page(run_id: str, request: Request, user: WebUserDep) -> Response:
    run = _run(request, user, run_id, with_result=True)
    return render(
        request,
        "run.html",
        user=user,
        active="inspections",
        run=run,
        p=progress(run),
        result=run.result or {},
        langs=LANG_CHOICES,
    )


def serve_report(record: ReportRecord, content: bytes, download: bool) -> Response:
    disposition = "attachment" if download or record.format == "pdf" else "inline"
    ext = record.format
    return Response(
        content,
        media_type=CONTENT_TYPES.get(record.format, "application/octet-stream"),
        headers={
            "Content-Disposition": f'{disposition}; filename="report-{record.id}.{record.lang}.{ext}"',
            "Content-Security-Policy": REPORT_CSP,
            "X-Report-Sha256": record.sha256,
        },
    )


@router.get("/inspections/runs/{run_id}/report")
def run_report(
    run_id: str,
    request: Request,
    user: WebUserDep,
    lang: str = "en",
    format: str = "html",
    download: bool = False,
) -> Response:
    if lang not in LANG_CHOICES:
        raise PageError(400, "web.error.bad_filter", field="lang")
    if format not in ("html", "pdf"):
        raise PageError(400, "web.error.bad_filter", field="format")
    run = _run(request, user, run_id)
    service = _service(request)
    try:
        record = render_run_report(
            service.runner,
            run,
            "zh-CN" if lang == "zh-CN" else "en",
            "pdf" if format == "pdf" else "html",
            patient=False,
        )
        record, content = ReportRepo(store_of(request)).report_content(user.principal.scope, record.id)
    except ReportError:
        raise PageError(409, "web.error.report_unavailable") from None
    except RenderBusy:
        raise PageError(503, "web.error.busy") from None
    except NotFound:
        raise PageError(404, "web.error.no_run", run=run_id) from None
    return serve_report(record, content, download)


@router.get("/reports")
def reports_page(request: Request, user: WebUserDep, kind: str = "", lang: str = "") -> Response:
    if kind and kind not in ("inspection", "fault"):
        raise PageError(400, "web.error.bad_filter", field="kind")
    if lang and lang not in LANG_CHOICES:
        raise PageError(400, "web.error.bad_filter", field="lang")
    rows = ReportRepo(store_of(request)).reports(
        user.principal.scope, kind=kind or None, lang=lang or None, limit=200
    )
    return render(
        request,
        "reports.html",
        user=user,
        active="reports",
        rows=rows,
        kind=kind,
        lang_filter=lang,
        langs=LANG_CHOICES,
    )


@router.get("/reports/{report_id}/view")
def report_view(report_id: int, request: Request, user: WebUserDep, download: bool = False) -> Response:
    if not 1 <= report_id < 2**63:
        raise PageError(404, "web.error.no_report", report=report_id)
    try:
        record, content = ReportRepo(store_of(request)).report_content(user.principal.scope, report_id)
    except NotFound:
        raise PageError(404, "web.error.no_report", report=report_id) from None
    return serve_report(record, content, download)
