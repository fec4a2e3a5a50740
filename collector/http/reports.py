"""API: reports, the customer's service records (``/api/v1/reports...``).

- ``GET /reports``                       stored reports, newest first (no content)
- ``GET /reports/inspection``            an inspection report: ``plan=`` (its latest finished
  run) or ``run=``; ``format=html|pdf|json``, ``lang=en|zh-CN``. Rendered on first request,
  then served from the store.
- ``GET /reports/fault/{case_id}``       the fault-analysis report of an emergency case
  (rendered from the case as it is now; a new record when what the report shows changed)

Renders run once per (kind, subject, language, format, version), on a bounded pool off
the event loop, and a request waits at most a time limit (then 503 with Retry-After):
see :mod:`collector.reports.on_demand`.
- ``GET /reports/{id}``                  one record's metadata
- ``GET /reports/{id}/content``          its bytes, with the format's content type
- ``POST /reports/{id}/render``          render it again from its run or case as a new record
  (e.g. once a CJK font is installed); the newest record is the one served from then on

Threat model for ``render``: it writes (a new record), so viewer tokens get 403; a
customer admin may render its own customer's reports only, another customer's report
is 404 exactly like a report that does not exist (no probing of ids); the render runs
only our templates over stored data, so the caller controls nothing but the id; a
render failure (missing fonts, bad logo) is 409 with our own message, never an
exception's text.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response, status

from collector.http.deps import GrpcDep, Principal, StoreDep, require_write, scope_for, store_errors
from collector.http.models_inspections import InspectionReportQuery, ReportOut, ReportQuery, ReportsQuery
from collector.inspections.runner import render_run_report
from collector.inspections.service import service_for
from collector.reports import ReportError
from collector.reports.on_demand import RenderBusy
from collector.store import NotFound
from collector.store.reports import ReportRecord, ReportRepo

__all__ = ["CONTENT_TYPES", "router"]

router = APIRouter(tags=["reports"])

ReportId = Annotated[int, Path(ge=1, le=2**63 - 1, description="A stored report's id (GET /reports).")]

CONTENT_TYPES = {
    "html": "text/html; charset=utf-8",
    "pdf": "application/pdf",
    "json": "application/json",
}


def _busy(exc: RenderBusy) -> HTTPException:
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE, str(exc), headers={"Retry-After": str(exc.retry_after_s)}
    )


def download(record: ReportRecord, content: bytes, header: str = "Report") -> Response:
    """A stored report/record as an attachment, with ``X-<header>-Id`` and ``-Sha256`` headers."""
    name = f"{record.kind}-{record.subject}.{record.lang}.{record.format}"
    return Response(
        content,
        media_type=CONTENT_TYPES[record.format],
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            f"X-{header}-Id": str(record.id),
            f"X-{header}-Sha256": record.sha256,
        },
    )


@router.get("/reports", response_model=list[ReportOut])
def list_reports(
    store: StoreDep, grpc: GrpcDep, who: Principal, q: Annotated[ReportsQuery, Query()]
) -> list[ReportOut]:
    """Reports stored for the caller's customers, newest first."""
    rows = ReportRepo(store).reports(
        scope_for(who, q.customer), customer=q.customer, kind=q.kind, subject=q.subject, limit=q.limit
    )
    return [ReportOut.of(r) for r in rows]


@router.get(
    "/reports/inspection",
    response_class=Response,
    responses={200: {"content": {t: {} for t in CONTENT_TYPES.values()}}},
)
def inspection_report(
    store: StoreDep, grpc: GrpcDep, who: Principal, q: Annotated[InspectionReportQuery, Query()]
) -> Response:
    """The inspection report of a run (``run=``) or of a plan's latest finished run (``plan=``)."""
    if (q.plan is None) == (q.run is None):
        raise HTTPException(422, "give exactly one of plan= or run=")
    service = service_for(store, grpc)
    scope = scope_for(who, q.customer)
    with store_errors():
        if q.run is not None:
            run = service.repo.run(scope, q.run)
        else:
            customer = q.customer
            if customer is None:  # a loaded plan names its customer; two customers' plans of one name: 409
                try:
                    customer = service.plan(scope, q.plan or "", None).customer
                except ValueError as exc:
                    raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
                except NotFound:
                    customer = None
            runs = service.repo.runs(scope, customer=customer, plan=q.plan, state="done", limit=1)
            if not runs:
                raise NotFound(
                    f"plan {q.plan!r} has no finished run yet "
                    f"(start one with: diagctl inspections run {q.plan})"
                )
            run = runs[0]
        try:
            record = render_run_report(service.runner, run, q.lang, q.format, patient=False)
        except ReportError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        except RenderBusy as exc:
            raise _busy(exc) from None
        _, content = ReportRepo(store).report_content(scope, record.id)
    return download(record, content)


@router.get(
    "/reports/fault/{case_id}",
    response_class=Response,
    responses={200: {"content": {t: {} for t in CONTENT_TYPES.values()}}},
)
def fault_report(
    case_id: str, store: StoreDep, grpc: GrpcDep, who: Principal, q: Annotated[ReportQuery, Query()]
) -> Response:
    """The fault-analysis report (事故分析报告) of an emergency case."""
    from collector.reports.fault import stored_fault_report

    service = service_for(store, grpc)
    with store_errors():
        try:
            record, content = stored_fault_report(
                service.runner, who.scope, case_id, q.lang, q.format, patient=False
            )
        except ReportError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        except RenderBusy as exc:
            raise _busy(exc) from None
    return download(record, content)


@router.get("/reports/{report_id}", response_model=ReportOut)
def show_report(report_id: ReportId, store: StoreDep, grpc: GrpcDep, who: Principal) -> ReportOut:
    with store_errors():
        return ReportOut.of(ReportRepo(store).report(who.scope, report_id))


@router.get(
    "/reports/{report_id}/content",
    response_class=Response,
    responses={200: {"content": {t: {} for t in CONTENT_TYPES.values()}}},
)
def report_content(report_id: ReportId, store: StoreDep, grpc: GrpcDep, who: Principal) -> Response:
    """The stored bytes, with the format's content type."""
    with store_errors():
        record, content = ReportRepo(store).report_content(who.scope, report_id)
    return download(record, content)


@router.post("/reports/{report_id}/render", response_model=ReportOut, status_code=status.HTTP_201_CREATED)
def render_report_again(report_id: ReportId, store: StoreDep, grpc: GrpcDep, who: Principal) -> ReportOut:
    """Render a stored report again from its run or case; the result is a new record."""
    from collector.inspections.rerender import render_again

    require_write(who)
    with store_errors():
        try:
            record = render_again(service_for(store, grpc).runner, who.scope, report_id, patient=False)
        except ReportError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        except RenderBusy as exc:
            raise _busy(exc) from None
    return ReportOut.of(record)
