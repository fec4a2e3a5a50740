"""API: remote sessions (``/api/v1/sessions``) and their WebSocket relay.

Threat model:

- *Who may do what* (the rules on :class:`~collector.store.ApiPrincipal`, shared with the
  dashboard): an engineer requests (for a case and a host of that case's customer),
  connects (only to a session they requested) and revokes (as may a service manager); a
  customer_admin of the host's customer approves, denies and revokes (an engineer never
  approves, least of all their own request); a viewer only reads. Every read and write is
  scoped in SQL: another customer's session answers 404, exactly like a missing one (404
  before 403, so a viewer learns nothing about other customers' sessions).
- *Connect* (WebSocket): the Bearer token is checked before anything is relayed; the
  session must be approved by the agent itself, unexpired and unrevoked, and the caller
  its engineer; each refusal closes the socket with a code (4401, 4403, 4404, 4409) and
  a sentence, and is audited. The relay itself (flow control, bounded buffers, revoke
  within a second) is :mod:`collector.sessions.relay`.
- *Recording download*: engineers and the customer's admins; the body is the cast as the
  agent sent it with its sha256 (``X-Recording-Sha256``) and whether it matched
  (``X-Recording-Verified``); viewers get 403 (a recording may show secrets typed).
- Every input is validated (the public key is parsed, NUL refused, sizes bounded); a
  session id in a path is matched against its format before any query.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response, WebSocket, WebSocketDisconnect, status
from starlette.concurrency import run_in_threadpool

from collector.http.deps import Principal, StoreDep, store_errors
from collector.http.models import NoQuery
from collector.http.models_sessions import (
    AuditOut,
    AuditVerifyOut,
    DenyRequest,
    SessionOut,
    SessionRequest,
    SessionsQuery,
)
from collector.ingest.decode_sessions import SESSION_ID_RE
from collector.sessions import control
from collector.sessions.relay import SessionHub
from collector.store import ApiPrincipal, Scope, Store
from collector.store.errors import NotFound
from collector.store.sessions import SessionRecord, SessionRepo

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["sessions"])


def _hub(request: Request | WebSocket) -> SessionHub | None:
    hub: SessionHub | None = getattr(request.app.state, "sessions", None)
    return hub


def _check_id(session_id: str) -> None:
    if not SESSION_ID_RE.fullmatch(session_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no session {session_id[:40]!r}")


def _out(repo: SessionRepo, scope: Scope, s: SessionRecord) -> SessionOut:
    return SessionOut.of(s, time.time(), repo.streams(scope, s.id))


def _require_role(who: ApiPrincipal, *roles: str, what: str) -> None:
    if who.role not in roles:
        _refuse(*roles, what=what)


def _refuse(*roles: str, what: str) -> None:
    raise HTTPException(status.HTTP_403_FORBIDDEN, f"only {' or '.join(roles)} tokens may {what}")


@router.post("/sessions", response_model=SessionOut, status_code=201)
async def request_session(
    body: SessionRequest, request: Request, store: StoreDep, who: Principal
) -> SessionOut:
    """Request a session (engineers): stored as ``requested``; the agent gets the grant if connected."""
    if not who.requests_sessions:
        _refuse("engineer", what="request remote sessions")
    repo = SessionRepo(store)
    with store_errors():
        s = await run_in_threadpool(
            lambda: repo.request(
                who.scope,
                engineer=who.name,
                host=body.host,
                case_id=body.case,
                reason=body.reason,
                mode=body.mode,
                public_key=body.public_key,
                duration_s=body.duration_s,
                now=time.time(),
            )
        )
    hub = _hub(request)
    if hub is not None:
        await hub.send_grant(s)
    return SessionOut.of(s, time.time())


@router.get("/sessions", response_model=list[SessionOut])
def list_sessions(store: StoreDep, who: Principal, q: Annotated[SessionsQuery, Query()]) -> list[SessionOut]:
    """Sessions the caller may see, newest first."""
    now = time.time()
    rows = SessionRepo(store).list(who.scope, case_id=q.case, host=q.host, state=q.state, limit=q.limit)
    return [SessionOut.of(s, now) for s in rows]


@router.get("/sessions/audit", response_model=list[AuditOut])
def audit(
    store: StoreDep,
    who: Principal,
    session: Annotated[str | None, Query(max_length=40, description="Only this session's rows.")] = None,
) -> list[AuditOut]:
    """The audit log (hash-chained per customer) the caller may see."""
    if session is not None:
        _check_id(session)
    with store_errors():
        return [AuditOut.of(r) for r in SessionRepo(store).audit(who.scope, session)]


@router.get("/sessions/audit/verify", response_model=list[AuditVerifyOut])
def verify_audit(store: StoreDep, who: Principal, _q: Annotated[NoQuery, Query()]) -> list[AuditVerifyOut]:
    """Verify each chain the caller may see; ``first_bad_seq``: the first changed, removed or moved row."""
    return [AuditVerifyOut.of(v) for v in SessionRepo(store).verify_audit(who.scope)]


@router.get("/sessions/{session_id}", response_model=SessionOut)
def show(session_id: str, store: StoreDep, who: Principal, _q: Annotated[NoQuery, Query()]) -> SessionOut:
    """One session with its streams and, once the agent approved, how to connect."""
    _check_id(session_id)
    repo = SessionRepo(store)
    with store_errors():
        return _out(repo, who.scope, repo.get(who.scope, session_id))


@router.post("/sessions/{session_id}/approve", response_model=SessionOut)
async def approve(session_id: str, request: Request, store: StoreDep, who: Principal) -> SessionOut:
    """Approve (a customer_admin of the host's customer); the agent gets the approved grant."""
    _check_id(session_id)
    repo = SessionRepo(store)
    with store_errors():
        await run_in_threadpool(repo.get, who.scope, session_id)
        if not who.approves_sessions:
            _refuse("customer_admin", what="approve sessions (ask the customer's admin)")
        s = await control.approve(store, _hub(request), who, session_id)
    return await run_in_threadpool(_out, repo, who.scope, s)


@router.post("/sessions/{session_id}/deny", response_model=SessionOut)
async def deny(
    session_id: str, request: Request, store: StoreDep, who: Principal, body: DenyRequest | None = None
) -> SessionOut:
    """Deny a requested session (a customer_admin of the host's customer)."""
    return await _end(session_id, request, store, who, "deny", body.reason if body else "")


@router.post("/sessions/{session_id}/revoke", response_model=SessionOut)
async def revoke(
    session_id: str, request: Request, store: StoreDep, who: Principal, body: DenyRequest | None = None
) -> SessionOut:
    """End a session now (engineers, service managers, or the customer's admin): every stream is cut off."""
    return await _end(session_id, request, store, who, "revoke", body.reason if body else "")


async def _end(
    session_id: str, request: Request, store: Store, who: ApiPrincipal, how: str, reason: str
) -> SessionOut:
    _check_id(session_id)
    repo = SessionRepo(store)
    with store_errors():
        await run_in_threadpool(repo.get, who.scope, session_id)
        if not who.revokes_sessions:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "viewer tokens are read-only")
        if how == "deny" and not who.approves_sessions:
            _refuse("customer_admin", what="deny sessions")
        s = await control.end(
            store, _hub(request), who, session_id, "deny" if how == "deny" else "revoke", reason
        )
    return await run_in_threadpool(_out, repo, who.scope, s)


@router.get(
    "/sessions/{session_id}/recording",
    response_class=Response,
    responses={200: {"content": {"application/x-asciicast": {}}, "description": "The asciicast v2 file."}},
)
def recording(session_id: str, store: StoreDep, who: Principal, _q: Annotated[NoQuery, Query()]) -> Response:
    """The session's recording (asciicast v2), as the agent shipped it."""
    _check_id(session_id)
    repo = SessionRepo(store)
    with store_errors():
        repo.get(who.scope, session_id)
        _require_role(who, "engineer", "customer_admin", what="download recordings")
        rec = repo.recording(who.scope, session_id)
    return Response(
        rec.content,
        media_type="application/x-asciicast",
        headers={
            "X-Recording-Sha256": rec.sha256,
            "X-Recording-Verified": "true" if rec.verified else "false",
            "Content-Disposition": f'attachment; filename="{session_id}.cast"',
        },
    )


# ---------------------------------------------------------------------- the relay


@router.websocket("/sessions/{session_id}/connect")
async def connect(ws: WebSocket, session_id: str) -> None:
    """Relay one SSH connection: binary messages both ways (see the module docstring)."""
    store: Store = ws.app.state.store
    hub = _hub(ws)
    await ws.accept()
    refusal = await _admit(ws, store, hub, session_id)
    if len(refusal) == 3:
        code, text, record = refusal
        if record is not None:
            with contextlib.suppress(Exception):
                await run_in_threadpool(
                    SessionRepo(store).refused, record.id, "collector", f"connect: {text}", time.time()
                )
        await ws.close(code, text[:120])
        return
    record, who = refusal[0], refusal[1]
    assert hub is not None and isinstance(record, SessionRecord) and isinstance(who, ApiPrincipal)
    try:
        stream = await hub.open_stream(record, who.name)
    except LookupError as exc:
        await ws.close(4409, str(exc)[:120])
        return

    async def upstream() -> str:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return "the engineer's client disconnected"
            data = message.get("bytes")
            if data is None:
                return "text frames are not accepted: send binary"
            if not await stream.write(data):
                return stream.close_reason

    async def downstream() -> str:
        while True:
            data = await stream.read()
            if data is None:
                return stream.close_reason
            await ws.send_bytes(data)
            stream.consumed(len(data))

    tasks = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
    closed = asyncio.ensure_future(stream.closed.wait())
    done, _ = await asyncio.wait([*tasks, closed], return_when=asyncio.FIRST_COMPLETED)
    reason = stream.close_reason or "ended"
    for task in done:
        if task is not closed and not task.cancelled() and task.exception() is None:
            reason = str(task.result())
    if closed in done:
        # Whatever the agent already sent still goes out before the socket closes.
        with contextlib.suppress(Exception):
            for _ in range(3):
                if not stream.inbound:
                    break
                await asyncio.sleep(0)
    for task in [*tasks, closed]:
        task.cancel()
    hub.close_stream(stream, reason)
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        await ws.close(4410 if "revoked" in reason or "expired" in reason else 1000, reason[:120])


async def _admit(
    ws: WebSocket, store: Store, hub: SessionHub | None, session_id: str
) -> tuple[int, str, SessionRecord | None] | tuple[SessionRecord, ApiPrincipal]:
    header = ws.headers.get("authorization", "")
    token = header[len("Bearer ") :].strip() if header.startswith("Bearer ") else ""
    who = await run_in_threadpool(store.authenticate_api_token, token) if 0 < len(token) <= 512 else None
    if who is None:
        return 4401, "missing, invalid or revoked API token", None
    if not SESSION_ID_RE.fullmatch(session_id):
        return 4404, f"no session {session_id[:40]!r}", None
    try:
        record = await run_in_threadpool(SessionRepo(store).get, who.scope, session_id)
    except NotFound:
        return 4404, f"no session {session_id!r}", None
    if who.role != "engineer" or who.name != record.engineer:
        return 4403, f"only {record.engineer}, who requested session {session_id}, may connect", record
    if hub is not None and hub.refuses_sessions(record.agent_id):
        return (
            4409,
            f"the agent of host {record.host} does not accept sessions "
            "(sessions.enabled is off in its config)",
            record,
        )
    why = record.connectable(time.time())
    if why is not None:
        return 4409, why, record
    if hub is None or not hub.connected(record.agent_id):
        return 4409, f"the agent of host {record.host} is not connected", record
    return record, who
