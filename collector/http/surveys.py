"""API: the follow-up step's surveys and callbacks (issue 14).

Endpoints (under ``/api/v1``): ``GET /surveys`` (scoped, filtered by customer, state,
case), ``GET /surveys/{id}``, ``POST /cases/{id}/callback`` (the engineer's callback
result), ``GET /cases/{id}/callback``. The public survey page is :mod:`collector.http.survey_page`.

Threat model: a survey holds the contact's address, ratings and comment: the caller's
customer only (another customer's survey or case is 404, like one that does not exist,
checked before any role check). Recording a callback is for engineers and service
managers (403 for customer admins and viewers). Bodies are bounded, unknown fields
refused (422 naming the field); a callback on a case not in follow_up or closed is 409.
"""

# No `from __future__ import annotations` here: FastAPI resolves the endpoints' annotations
# at runtime.

import time
from typing import Annotated

from fastapi import APIRouter, Query

from collector.http.deps import Principal, StoreDep, list_scope, require_case_staff, store_errors
from collector.http.models import NoQuery
from collector.http.models_surveys import CallbackOut, CallbackRequest, SurveyOut, SurveysQuery
from collector.store.cases import CaseRepo
from collector.store.surveys import SurveyRepo

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["cases"])


@router.get("/surveys", response_model=list[SurveyOut])
def list_surveys(store: StoreDep, who: Principal, q: Annotated[SurveysQuery, Query()]) -> list[SurveyOut]:
    """Satisfaction surveys sent, newest first: open, answered or expired without an answer."""
    now = time.time()
    rows = SurveyRepo(store).list(
        list_scope(who, q.customer), now=now, state=q.state, case_id=q.case, limit=q.limit
    )
    return [SurveyOut.of(s, now) for s in rows]


@router.get("/surveys/{survey_id}", response_model=SurveyOut)
def get_survey(survey_id: int, store: StoreDep, who: Principal, _q: Annotated[NoQuery, Query()]) -> SurveyOut:
    """One survey with its answers."""
    with store_errors():
        return SurveyOut.of(SurveyRepo(store).get(who.scope, survey_id), time.time())


@router.post("/cases/{case_id}/callback", response_model=CallbackOut)
def record_callback(case_id: str, body: CallbackRequest, store: StoreDep, who: Principal) -> CallbackOut:
    """The callback (回访) to the customer: reached (with satisfaction 1..5) or no_answer;
    a case in follow_up or closed. A later call replaces the result (a second attempt)."""
    with store_errors():
        CaseRepo(store).get(who.scope, case_id)
        require_case_staff(who)
        record = SurveyRepo(store).record_callback(
            who.scope, case_id, result=body.result, satisfied=body.satisfied, note=body.note,
            actor=who.name, now=time.time(),
        )  # fmt: skip
    return CallbackOut.of(record)


@router.get("/cases/{case_id}/callback", response_model=CallbackOut)
def get_callback(
    case_id: str, store: StoreDep, who: Principal, _q: Annotated[NoQuery, Query()]
) -> CallbackOut:
    """The case's callback draw and result (404 when the case has none)."""
    with store_errors():
        return CallbackOut.of(SurveyRepo(store).callback(who.scope, case_id))
