"""Pages: emergency cases (list with filters) and one case, with its forms.

``/cases/{id}`` is where notification links land (``{public_url}/cases/{id}``): without a
session it redirects to the sign-in page and back here.

Threat model: reads go through the session's scope (another customer's case is the same
404 page as a missing one, checked before the role, so a viewer learns nothing); changes
need a writing role (engineer, customer_admin) and the session's CSRF token; a state
change the case does not allow is a 409 page naming what is allowed. Notes are stored
as text and autoescaped when shown.
"""

# No `from __future__ import annotations` here: FastAPI resolves the endpoints' annotations
# at runtime.

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from collector.emergency import service
from collector.inspections.service import service_for
from collector.reports import ReportError
from collector.reports.fault import build_fault_report
from collector.reports.model import Customer, SignOff
from collector.reports.render import ChartMaker
from collector.store import Conflict, NotFound, Scope, StoreError
from collector.store.case_states import ACTIVE_STATES, CASE_TYPES, CHANNELS, COMPLAINT_STEPS
from collector.store.cases import CASE_STATES, CaseRecord, CaseRepo
from collector.store.desk_cases import DECISIONS, DeskRepo
from collector.store.sessions import SessionRepo
from collector.web.desk import complaint_steps_of, desk_actions, desk_label
from collector.web.frame import FormDep, PageError, WebUser, WebUserDep, render, store_of

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

SEVERITIES = ("CRIT", "WARN", "UNKNOWN")
NOTE_MAX = 4000


@router.get("/cases")
def cases_page(
    request: Request,
    user: WebUserDep,
    state: str = "active",
    customer: str = "",
    severity: str = "",
    type: str = "",
    channel: str = "",
    assignee: str = "",
) -> Response:
    scope = user.principal.scope
    if state not in ("active", "all", *CASE_STATES):
        raise PageError(400, "web.error.bad_filter", field="state")
    if severity and severity not in SEVERITIES:
        raise PageError(400, "web.error.bad_filter", field="severity")
    if type and type not in CASE_TYPES:
        raise PageError(400, "web.error.bad_filter", field="type")
    if channel and channel not in CHANNELS:
        raise PageError(400, "web.error.bad_filter", field="channel")
    if len(assignee) > 200 or len(customer) > 63:
        raise PageError(400, "web.error.bad_filter", field="assignee" if len(assignee) > 200 else "customer")
    wanted: Any = ACTIVE_STATES if state == "active" else None if state == "all" else state
    if customer and not scope.allows(customer):
        rows: list[CaseRecord] = []
    else:
        rows = CaseRepo(store_of(request)).list(
            scope, state=wanted, customer=customer or None, limit=500, type=type or None,
            channel=channel or None, assignee=assignee.strip() or None,
        )  # fmt: skip
    if severity:
        rows = [c for c in rows if c.severity == severity]
    return render(
        request,
        "cases.html",
        user=user,
        active="cases",
        rows=rows,
        states=("active", "all", *CASE_STATES),
        severities=SEVERITIES,
        state=state,
        customer=customer,
        severity=severity,
        types=CASE_TYPES,
        channels=CHANNELS,
        type=type,
        channel=channel,
        assignee=assignee,
        may_open=user.principal.may_open_case("remote"),
        desk_label=desk_label(user),
    )


def _case(request: Request, user: WebUser, case_id: str) -> CaseRecord:
    try:
        return CaseRepo(store_of(request)).get(user.principal.scope, case_id)
    except NotFound:
        raise PageError(404, "web.error.no_case", case=case_id) from None


@router.get("/cases/{case_id}")
def case_page(case_id: str, request: Request, user: WebUserDep) -> Response:
    case = _case(request, user, case_id)
    store = store_of(request)
    runner = service_for(store, request.app.state.grpc).runner
    profile = runner.repo.profile(Scope.everything(), case.customer)
    report = build_fault_report(
        store,
        case,
        Customer(profile.name, profile.timezone, None),
        SignOff(case.owner or runner.settings.prepared_by, organisation=runner.settings.organisation),
        time.time(),
    )
    return render(
        request,
        "case.html",
        user=user,
        active="cases",
        c=case,
        r=report,
        chart=ChartMaker(user.f),
        L=lambda text: text.get(user.lang),
        desk_label=desk_label(user),
        actions=desk_actions(case.state),
        time_log=DeskRepo(store).time_log(user.principal.scope, case.id),
        sessions=SessionRepo(store).list(user.principal.scope, case_id=case.id, limit=200),
        complaint_done=[s for s in COMPLAINT_STEPS if s in complaint_steps_of(case)],
        complaint_steps=COMPLAINT_STEPS,
        decisions=DECISIONS,
    )


def _change(request: Request, user: WebUser, case_id: str, action: str, fields: dict[str, str]) -> Response:
    repo = CaseRepo(store_of(request))
    scope, actor, now = user.principal.scope, user.principal.name, time.time()
    _case(request, user, case_id)  # 404 before 403
    if not user.principal.adds_notes:
        raise PageError(403, "web.error.read_only")
    if action != "note" and not user.principal.is_staff:  # as the API: people of a customer add notes
        raise PageError(403, "web.error.staff_only")
    note = fields.get("note", "").strip() or None
    if note is not None and len(note) > NOTE_MAX:
        raise PageError(422, "web.error.note_long", n=NOTE_MAX)
    try:
        if action == "ack":
            owner = fields.get("owner", "").strip()[:200] or None
            case = repo.acknowledge(scope, case_id, actor=actor, owner=owner, now=now)
            service.notify_case(case, "acknowledged", actor=actor, note=None)
        elif action == "resolve":
            case = repo.resolve(scope, case_id, actor=actor, note=note, now=now)
            service.notify_case(case, "resolved", actor=actor, note=note)
        elif action == "close":
            repo.close(scope, case_id, actor=actor, now=now)
        else:  # note
            if note is None:
                raise PageError(422, "web.error.note_empty")
            repo.add_note(scope, case_id, actor=actor, text=note, now=now)
    except Conflict as exc:
        raise PageError(409, "web.error.conflict", detail=str(exc)) from None
    except NotFound:
        raise PageError(404, "web.error.no_case", case=case_id) from None
    except StoreError as exc:
        raise PageError(422, "web.error.conflict", detail=str(exc)) from None
    return RedirectResponse(f"/cases/{case_id}", status_code=303)


@router.post("/cases/{case_id}/ack")
def acknowledge(case_id: str, request: Request, user: WebUserDep, fields: FormDep) -> Response:
    return _change(request, user, case_id, "ack", fields)


@router.post("/cases/{case_id}/resolve")
def resolve(case_id: str, request: Request, user: WebUserDep, fields: FormDep) -> Response:
    return _change(request, user, case_id, "resolve", fields)


@router.post("/cases/{case_id}/close")
def close(case_id: str, request: Request, user: WebUserDep, fields: FormDep) -> Response:
    return _change(request, user, case_id, "close", fields)


@router.post("/cases/{case_id}/notes")
def add_note(case_id: str, request: Request, user: WebUserDep, fields: FormDep) -> Response:
    return _change(request, user, case_id, "note", fields)


@router.get("/cases/{case_id}/report")
def case_report(case_id: str, request: Request, user: WebUserDep, lang: str = "en") -> Response:
    """The case's fault-analysis report (HTML) in ``lang``, rendered once per version."""
    from collector.reports.fault import stored_fault_report
    from collector.reports.on_demand import RenderBusy
    from collector.web.inspections import LANG_CHOICES, serve_report

    if lang not in LANG_CHOICES:
        raise PageError(400, "web.error.bad_filter", field="lang")
    runner = service_for(store_of(request), request.app.state.grpc).runner
    try:
        record, content = stored_fault_report(
            runner,
            user.principal.scope,
            case_id,
            "zh-CN" if lang == "zh-CN" else "en",
            "html",
            patient=False,
        )
    except NotFound:
        raise PageError(404, "web.error.no_case", case=case_id) from None
    except RenderBusy:
        raise PageError(503, "web.error.busy") from None
    except ReportError:
        raise PageError(409, "web.error.report_unavailable") from None
    return serve_report(record, content, False)
