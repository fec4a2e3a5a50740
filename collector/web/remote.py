"""Pages: remote sessions (issue 15/16): the list, one session, and the customer admin's
approval in the dashboard (Approve / Deny), Revoke.

``GET /remote-sessions`` (``?case=`` filters to one case: the case page links here),
``GET /remote-sessions/{id}``, ``POST /remote-sessions/{id}/approve|deny|revoke``.

Threat model:

- *Another customer's people*: the session is read in the session's scope first; another
  customer's session answers the same 404 page as a missing one, before any role check.
  Ids are matched against their format before any query.
- *Who may*: the API's rules (:class:`~collector.store.ApiPrincipal`):
  ``approves_sessions`` (the customer admin of the host's customer approves and denies;
  an engineer never approves, least of all their own request: the store refuses that too),
  ``revokes_sessions`` (engineers, service managers and the customer admin); viewers read only (403 page).
  The change and the agent's notification are :mod:`collector.sessions.control`, the same
  code the API runs; every change is audited by the store.
- *Forged or stale state*: approving a denied, revoked or expired session, or denying an
  approved one, is the 409 page saying why; forms carry the session's CSRF token.
- *Leaks*: the page shows public keys only (the engineer's, the host key the agent
  pinned); the ssh command holds no token (``diagctl sessions proxy`` reads it locally).
"""

# No `from __future__ import annotations` here: FastAPI resolves the endpoints' annotations
# at runtime.

import time
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from collector.ingest.decode_sessions import SESSION_ID_RE
from collector.sessions import control
from collector.store import Conflict, NotFound, StoreError
from collector.store.sessions import SessionRecord, SessionRepo
from collector.web.desk import text_field
from collector.web.frame import (
    FormDep,
    NavItem,
    PageError,
    WebUser,
    WebUserDep,
    register_nav,
    render,
    store_of,
)

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

STATES = ("requested", "approved", "denied", "revoked", "expired")

register_nav(NavItem("sessions", "/remote-sessions", 45))


def _session(request: Request, user: WebUser, session_id: str) -> SessionRecord:
    if not SESSION_ID_RE.fullmatch(session_id):
        raise PageError(404, "web.error.no_session", session=session_id[:40])
    try:
        return SessionRepo(store_of(request)).get(user.principal.scope, session_id)
    except NotFound:
        raise PageError(404, "web.error.no_session", session=session_id) from None


@router.get("/remote-sessions")
def sessions_page(request: Request, user: WebUserDep, case: str = "", state: str = "") -> Response:
    if state and state not in STATES:
        raise PageError(400, "web.error.bad_filter", field="state")
    if len(case) > 200:
        raise PageError(400, "web.error.bad_filter", field="case")
    rows = SessionRepo(store_of(request)).list(
        user.principal.scope, case_id=case or None, state=state or None, limit=200
    )
    return render(
        request, "remote_sessions.html", user=user, active="sessions", rows=rows, case=case, state=state,
        states=STATES, now=time.time(),
    )  # fmt: skip


@router.get("/remote-sessions/{session_id}")
def session_page(session_id: str, request: Request, user: WebUserDep) -> Response:
    s = _session(request, user, session_id)
    repo = SessionRepo(store_of(request))
    scope = user.principal.scope
    return render(
        request,
        "remote_session.html",
        user=user,
        active="sessions",
        s=s,
        now=time.time(),
        streams=repo.streams(scope, s.id),
        audit=repo.audit(scope, s.id),
        ssh_command=control.ssh_command(s),
        known_hosts_line=control.known_hosts_line(s),
    )


async def _act(
    request: Request, user: WebUser, session_id: str, how: Literal["approve", "deny", "revoke"], reason: str
) -> Response:
    from starlette.concurrency import run_in_threadpool

    await run_in_threadpool(_session, request, user, session_id)  # 404 before 403
    who = user.principal
    if how == "revoke" and not who.revokes_sessions:
        raise PageError(403, "web.error.read_only")
    if how != "revoke" and not who.approves_sessions:
        raise PageError(403, "web.error.approve_role")
    store, hub = store_of(request), getattr(request.app.state, "sessions", None)
    try:
        if how == "approve":
            await control.approve(store, hub, who, session_id)
        else:
            await control.end(store, hub, who, session_id, how, reason)
    except NotFound:
        raise PageError(404, "web.error.no_session", session=session_id) from None
    except Conflict as exc:
        raise PageError(409, "web.error.conflict", detail=str(exc)) from None
    except StoreError as exc:
        raise PageError(422, "web.error.invalid", detail=str(exc)) from None
    return RedirectResponse(f"/remote-sessions/{session_id}", status_code=303)


@router.post("/remote-sessions/{session_id}/approve")
async def approve(session_id: str, request: Request, user: WebUserDep, fields: FormDep) -> Response:
    return await _act(request, user, session_id, "approve", "")


@router.post("/remote-sessions/{session_id}/deny")
async def deny(session_id: str, request: Request, user: WebUserDep, fields: FormDep) -> Response:
    return await _act(
        request, user, session_id, "deny", text_field(fields, "reason", limit=500, required=False)
    )


@router.post("/remote-sessions/{session_id}/revoke")
async def revoke(session_id: str, request: Request, user: WebUserDep, fields: FormDep) -> Response:
    return await _act(
        request, user, session_id, "revoke", text_field(fields, "reason", limit=500, required=False)
    )
