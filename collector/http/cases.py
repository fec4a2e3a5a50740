"""API: cases and incidents (``/api/v1/cases``, ``/api/v1/incidents``): reads, ack,
notes, resolve, close. The service desk's own endpoints are in :mod:`collector.http.desk`.

Reads are scoped by the caller's customer (a case of another customer is a 404, like one
that does not exist); viewer tokens are read-only; customer admins add notes; engineers
and service managers ack, resolve and close. State changes that the case's state does
not allow are 409 with what is allowed (see :mod:`collector.store.case_states`).
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from collector.emergency import service
from collector.http.deps import (
    Principal,
    StoreDep,
    list_scope,
    require_case_staff,
    require_case_writer,
    scope_for,
    store_errors,
)
from collector.http.models import NoQuery
from collector.http.models_cases import (
    AckRequest,
    CaseOut,
    CasesQuery,
    CaseSummaryOut,
    IncidentOut,
    NoteRequest,
    ResolveRequest,
)
from collector.http.models_sessions import CaseSessionOut
from collector.http.pages import decode_cursor, page
from collector.notify.event import EventKind
from collector.store.case_states import ACTIVE_STATES
from collector.store.cases import CaseRecord, CaseRepo
from collector.store.sessions import SessionRepo

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["cases"])


@router.get("/cases", response_model=list[CaseSummaryOut])
def list_cases(
    store: StoreDep, who: Principal, q: Annotated[CasesQuery, Query()], request: Request, response: Response
) -> list[CaseSummaryOut]:
    """Cases, newest first, filtered by state, type, channel, assignee and customer: one
    page (``limit`` rows, at most 4 MiB of JSON); a ``Link: <...>; rel="next"`` header
    gives the next page."""
    scope = list_scope(who, q.customer)
    state = ACTIVE_STATES if q.active else q.state
    rows = CaseRepo(store).list(
        scope, state=state, limit=q.limit + 1, type=q.type, channel=q.channel, assignee=q.assignee,
        before=decode_cursor(q.cursor),
    )  # fmt: skip
    return page(
        request,
        response,
        [CaseSummaryOut.of(c) for c in rows],
        [(c.opened_at, c.position) for c in rows],
        q.limit,
    )


@router.get("/cases/{case_id}", response_model=CaseOut)
def get_case(case_id: str, store: StoreDep, who: Principal, _q: Annotated[NoQuery, Query()]) -> CaseOut:
    """One case with its probable causes, evidence, timeline and remote sessions."""
    with store_errors():
        case = CaseRepo(store).get(who.scope, case_id)
        linked = SessionRepo(store).for_case(who.scope, case_id)
        return CaseOut.of(case, [CaseSessionOut.of(s) for s in linked])


@router.post("/cases/{case_id}/ack", response_model=CaseOut)
def acknowledge(case_id: str, store: StoreDep, who: Principal, body: AckRequest | None = None) -> CaseOut:
    """new → acknowledged; the owner (assignee) defaults to the token's name and, if the
    case has none, becomes its first responder."""
    repo = CaseRepo(store)
    with store_errors():
        repo.get(who.scope, case_id)  # 404 before 403: a viewer learns nothing of other customers
        require_case_staff(who)
        owner = body.owner if body is not None else None
        case = repo.acknowledge(who.scope, case_id, actor=who.name, owner=owner, now=time.time())
    _notify(case, "acknowledged", who.name, None)
    return CaseOut.of(case)


@router.post("/cases/{case_id}/notes", response_model=CaseOut)
def add_note(case_id: str, body: NoteRequest, store: StoreDep, who: Principal) -> CaseOut:
    """Add a note to the timeline (any state)."""
    repo = CaseRepo(store)
    with store_errors():
        repo.get(who.scope, case_id)
        require_case_writer(who)
        return CaseOut.of(repo.add_note(who.scope, case_id, actor=who.name, text=body.text, now=time.time()))


@router.post("/cases/{case_id}/resolve", response_model=CaseOut)
def resolve(
    case_id: str, store: StoreDep, who: Principal, request: Request, body: ResolveRequest | None = None
) -> CaseOut:
    """new, acknowledged, in_progress or waiting_on_customer → resolved, with an optional note;
    with the follow-up step on (``surveys.enabled``), then → follow_up with a survey link to
    the case's contact."""
    repo = CaseRepo(store)
    note = body.note if body is not None else None
    with store_errors():
        repo.get(who.scope, case_id)
        require_case_staff(who)
        case = repo.resolve(who.scope, case_id, actor=who.name, note=note, now=time.time())
    _notify(case, "resolved", who.name, note)
    followup = request.app.state.followup
    if followup is not None and followup.config.enabled:  # resolved → follow_up, survey link
        with store_errors():
            followup.start(store, case, actor=who.name, now=time.time())
            case = repo.get(who.scope, case_id)
    return CaseOut.of(case)


@router.post("/cases/{case_id}/close", response_model=CaseOut)
def close(
    case_id: str, store: StoreDep, who: Principal, request: Request, _q: Annotated[NoQuery, Query()]
) -> CaseOut:
    """resolved or follow_up → closed (a complaint needs its outcome and callback first);
    with the follow-up step on, the closed case is drawn for a callback (once)."""
    repo = CaseRepo(store)
    with store_errors():
        repo.get(who.scope, case_id)
        require_case_staff(who)
        case = repo.close(who.scope, case_id, actor=who.name, now=time.time())
        followup = request.app.state.followup
        if followup is not None:
            followup.case_closed(store, case, now=time.time())
            case = repo.get(who.scope, case_id)
        return CaseOut.of(case)


@router.get("/incidents", response_model=list[IncidentOut], tags=["cases"])
def list_incidents(store: StoreDep, who: Principal, q: Annotated[CasesQuery, Query()]) -> list[IncidentOut]:
    """Incidents (with or without a case, e.g. suppressed by a maintenance window), newest first."""
    scope = scope_for(who, q.customer)
    return [IncidentOut.of(i) for i in CaseRepo(store).incidents(scope, customer=q.customer, limit=q.limit)]


def _notify(case: CaseRecord, event: EventKind, actor: str, note: str | None) -> None:
    service.notify_case(case, event, actor=actor, note=note)
