"""API: the service desk on cases (issue 14): open a case by hand, take and work it,
transfer it, log time, record product decisions and complaint handling; the service
manager's overview.

Endpoints (all under ``/api/v1``): ``POST /cases``; ``POST /cases/{id}/take|start|wait|
resume|follow-up|reopen``; ``POST /cases/{id}/transfer``; ``GET|POST /cases/{id}/time``;
``POST /cases/{id}/decision``; ``POST /cases/{id}/release``; ``POST /cases/{id}/complaint-steps``;
``GET /desk/overview``. Reads, ack, notes, resolve and close are in :mod:`collector.http.cases`.

Threat model (every byte is hostile; people of four roles and many customers):

- *Another customer's people* (admin or viewer of customer B) must learn nothing of
  customer A's cases: every case endpoint looks the case up within the caller's scope
  first and answers 404, exactly as for a case that does not exist, before any role check
  (so a 403 never confirms that an id exists); opening a case for another customer is 403.
- *A customer admin* may open cases for its own customer only, through the ``remote`` or
  ``email`` channel (it cannot pose as the hotline or an on-site visit, nor as detection:
  ``automatic`` is refused for everyone), and add notes; taking, working, transferring,
  logging time, deciding and closing are the vendor's (403 naming who may).
- *A viewer* reads only (403 on every write).
- *A service manager* reads every customer and does on cases what an engineer does, plus
  the overview; it cannot manage tokens, agents or plans (those keep ``can_write``).
- *Forged or stale state*: each step checks the case's current state inside its write
  transaction (a concurrent step loses with 409); a complaint cannot be closed before its
  outcome and callback are recorded (409 saying so); an upgrade record named by a release
  must belong to the case's customer (422), so a case cannot point at another customer's data.
- *Bad input*: bounded strings without control characters, enums for every kind, minutes
  1..1440, no future work dates, unknown fields refused: 422 naming the field; never a 5xx.
"""

# No `from __future__ import annotations` here: FastAPI resolves the endpoints' annotations
# at runtime.

import datetime as dt
import time
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status

from collector.emergency import service
from collector.http.deps import Principal, StoreDep, require_case_staff, scope_for, store_errors
from collector.http.models import CustomerQuery, NoQuery
from collector.http.models_cases import CaseOut
from collector.http.models_desk import (
    CaseOpen,
    ComplaintStepRequest,
    DecisionRequest,
    DeskOverviewOut,
    ReleaseRequest,
    StepRequest,
    TimeEntryOut,
    TimeEntryRequest,
    TimeLogOut,
    TransferRequest,
)
from collector.http.problems import responses
from collector.store import ApiPrincipal, Store
from collector.store.case_states import Action
from collector.store.cases import CaseRepo
from collector.store.desk_cases import DESK_STEPS, DeskRepo, NewCase
from collector.store.principal import CUSTOMER_CHANNELS
from collector.store.sla import SlaRepo
from collector.store.surveys import SurveyRepo

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["cases"])


def _staff_case(store: Store, who: ApiPrincipal, case_id: str) -> None:
    """404 for a case the caller may not see, then 403 unless it works cases."""
    with store_errors():
        CaseRepo(store).get(who.scope, case_id)
    require_case_staff(who)


@router.post("/cases", response_model=CaseOut, status_code=status.HTTP_201_CREATED, responses=responses(409))
def open_case(body: CaseOpen, store: StoreDep, who: Principal) -> CaseOut:
    """Open a case by hand (hotline, e-mail, remote, on-site): state ``new``."""
    if who.role == "viewer":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "viewer tokens are read-only")
    scope = scope_for(who, body.customer)
    if not who.may_open_case(body.channel):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"channel: a {who.role} opens cases through {' or '.join(CUSTOMER_CHANNELS)}",
        )
    new = NewCase(
        customer=body.customer, type=body.type, channel=body.channel, title=body.title,
        subtype=body.subtype, description=body.description, host=body.host, contact=body.contact,
        severity=body.severity,
    )  # fmt: skip
    with store_errors():
        case = DeskRepo(store).open(scope, new, actor=who.name, now=time.time())
    service.notify_case(case, "opened", actor=who.name)
    return CaseOut.of(case)


@router.post("/cases/{case_id}/take", response_model=CaseOut)
def take(case_id: str, store: StoreDep, who: Principal, _q: Annotated[NoQuery, Query()]) -> CaseOut:
    """new → acknowledged: the caller becomes the assignee and, if the case has none yet,
    its accountable first responder (首问负责制)."""
    _staff_case(store, who, case_id)
    with store_errors():
        case = CaseRepo(store).acknowledge(who.scope, case_id, actor=who.name, now=time.time(), action="take")
    service.notify_case(case, "acknowledged", actor=who.name)
    return CaseOut.of(case)


def _step_endpoint(action: Action) -> Callable[..., CaseOut]:
    def endpoint(
        case_id: str, store: StoreDep, who: Principal, request: Request, body: StepRequest | None = None
    ) -> CaseOut:
        _staff_case(store, who, case_id)
        note = body.note if body is not None else None
        followup = request.app.state.followup
        if action == "follow-up" and followup is not None and followup.config.enabled:
            with store_errors():  # the follow-up step with its survey link (collector.desk.followup)
                case = CaseRepo(store).get(who.scope, case_id)
                followup.start(store, case, actor=who.name, now=time.time())
                return CaseOut.of(CaseRepo(store).get(who.scope, case_id))
        with store_errors():
            return CaseOut.of(
                DeskRepo(store).step(who.scope, case_id, action, actor=who.name, now=time.time(), note=note)
            )

    endpoint.__name__ = f"step_{action.replace('-', '_')}"
    return endpoint


_STEP_DOCS = {
    "start": "acknowledged → in_progress.",
    "wait": "in_progress → waiting_on_customer (the SLA clocks pause).",
    "resume": "waiting_on_customer → in_progress.",
    "follow-up": "resolved → follow_up: the follow-up (回访) step before closing.",
    "reopen": "resolved, follow_up or closed → in_progress.",
}
for _action in DESK_STEPS:
    router.add_api_route(
        f"/cases/{{case_id}}/{_action}",
        _step_endpoint(_action),
        methods=["POST"],
        response_model=CaseOut,
        summary=f"{_action} a case",
        description=_STEP_DOCS[_action] + " Any other state answers 409 with the steps allowed.",
    )


@router.post("/cases/{case_id}/transfer", response_model=CaseOut)
def transfer(case_id: str, body: TransferRequest, store: StoreDep, who: Principal) -> CaseOut:
    """Hand the case to another engineer (from, to and why go on the timeline); its first
    responder stays accountable."""
    _staff_case(store, who, case_id)
    with store_errors():
        return CaseOut.of(
            DeskRepo(store).transfer(
                who.scope, case_id, to=body.to, reason=body.reason, actor=who.name, now=time.time()
            )
        )


@router.post("/cases/{case_id}/time", response_model=TimeEntryOut, status_code=status.HTTP_201_CREATED)
def log_time(case_id: str, body: TimeEntryRequest, store: StoreDep, who: Principal) -> TimeEntryOut:
    """Log time worked on the case (who, minutes, activity, on-site or remote, day)."""
    _staff_case(store, who, case_id)
    now = time.time()
    with store_errors():
        entry = DeskRepo(store).log_time(
            who.scope, case_id, minutes=body.minutes, activity=body.activity, mode=body.mode,
            work_date=body.work_date or dt.datetime.fromtimestamp(now, dt.UTC).date(),
            engineer=body.engineer or who.name, actor=who.name, now=now,
        )  # fmt: skip
    return TimeEntryOut.of(entry)


@router.get("/cases/{case_id}/time", response_model=TimeLogOut)
def time_log(case_id: str, store: StoreDep, who: Principal, _q: Annotated[NoQuery, Query()]) -> TimeLogOut:
    """The case's time entries, oldest first, with totals (on-site, remote)."""
    with store_errors():
        return TimeLogOut.of(case_id, DeskRepo(store).time_log(who.scope, case_id))


@router.post("/cases/{case_id}/decision", response_model=CaseOut)
def decide(case_id: str, body: DecisionRequest, store: StoreDep, who: Principal) -> CaseOut:
    """Adaptive and perfective cases: the product team's decision (accepted, rejected, deferred)."""
    _staff_case(store, who, case_id)
    with store_errors():
        return CaseOut.of(
            DeskRepo(store).decide(
                who.scope, case_id, decision=body.decision, text=body.text, actor=who.name, now=time.time()
            )
        )


@router.post("/cases/{case_id}/release", response_model=CaseOut)
def release(case_id: str, body: ReleaseRequest, store: StoreDep, who: Principal) -> CaseOut:
    """An accepted change's release, and the upgrade record that brought it to the customer."""
    _staff_case(store, who, case_id)
    with store_errors():
        return CaseOut.of(
            DeskRepo(store).set_release(
                who.scope, case_id, release=body.release, upgrade_id=body.upgrade_id, actor=who.name,
                now=time.time(),
            )
        )  # fmt: skip


@router.post("/cases/{case_id}/complaint-steps", response_model=CaseOut)
def complaint_step(case_id: str, body: ComplaintStepRequest, store: StoreDep, who: Principal) -> CaseOut:
    """A complaint's handling: handed_over (to the responsible team), supervised, outcome
    (with its summary), callback (to the customer, after the outcome)."""
    _staff_case(store, who, case_id)
    with store_errors():
        return CaseOut.of(
            DeskRepo(store).complaint_step(
                who.scope, case_id, step=body.step, text=body.text, actor=who.name, now=time.time(),
                team=body.team, summary=body.summary,
            )
        )  # fmt: skip


@router.get("/desk/overview", response_model=DeskOverviewOut)
def overview(store: StoreDep, who: Principal, q: Annotated[CustomerQuery, Query()]) -> DeskOverviewOut:
    """The service manager's view: cases per state and type, unassigned cases, cases
    waiting on the customer, open complaints, time logged in the last 30 days; surveys not
    answered (open, expired) and callbacks due; cases whose SLA is breached or at risk."""
    if who.role != "service_manager":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the desk overview is for service managers")
    now = time.time()
    scope = scope_for(who, q.customer)
    view = DeskRepo(store).overview(scope, now=now, customer=q.customer)
    follow = SurveyRepo(store)
    counts = follow.counts(scope, now=now, customer=q.customer)
    breached, at_risk = SlaRepo(store).cases_at_risk(scope, customer=q.customer)
    return DeskOverviewOut(
        sla_breached=breached,
        sla_at_risk=at_risk,
        surveys_open=counts.surveys_open,
        surveys_expired_unanswered=counts.surveys_expired,
        callbacks_due=list(follow.callbacks_due(scope, customer=q.customer)),
        callbacks_no_answer=counts.callbacks_no_answer,
        by_state=view.by_state,
        by_type=view.by_type,
        unassigned=list(view.unassigned),
        waiting_on_customer=list(view.waiting_on_customer),
        complaints_open=list(view.complaints_open),
        minutes_logged_30d=view.minutes_logged_30d,
    )
