"""Sign-in (an API token for a session cookie), sign-out, the language switch, ``/``.

Threat model: the sign-in form is the one page an anonymous client can post to. It is
protected by a double-submit CSRF cookie (SameSite=Strict, HttpOnly) so another site
cannot sign a browser in with its own token (login CSRF); failed attempts are counted per
client address (at most :data:`MAX_FAILURES` per :data:`FAILURE_WINDOW_S`, then 429) so
tokens cannot be guessed quickly (they are 256-bit random anyway); the token is compared
by the store as a SHA-256 digest and never echoed back, logged or kept by the session.
"""

# No `from __future__ import annotations` here: FastAPI resolves the endpoints' annotations
# at runtime.

import secrets
import time
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from collector.web.frame import (
    FORM_MAX_BYTES,
    LANG_COOKIE,
    LANGS,
    SESSION_COOKIE,
    PageError,
    SignInRequired,
    current_user,
    render,
    safe_next,
    sessions_of,
    store_of,
)
from collector.web.sessions import csrf_matches
from collector.web.throttle import Throttle

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

SIGNIN_CSRF_COOKIE = "diag_signin_csrf"
MAX_FAILURES = 10
FAILURE_WINDOW_S = 300.0
THROTTLE = Throttle(MAX_FAILURES, FAILURE_WINDOW_S)


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or bool(getattr(request.app.state, "web_secure_cookies", False))


@router.get("/")
def root(request: Request) -> Response:
    """The dashboard for a signed-in browser, else the sign-in page."""
    try:
        current_user(request)
    except SignInRequired:
        return RedirectResponse("/sign-in", status_code=303)
    return RedirectResponse("/fleet", status_code=303)


def _sign_in_page(request: Request, next_path: str, error: str | None, status: int = 200) -> Response:
    token = secrets.token_urlsafe(32)
    response = render(request, "sign_in.html", status=status, next_path=next_path, csrf=token, error=error)
    response.set_cookie(
        SIGNIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=_secure(request), path="/sign-in"
    )
    return response


@router.get("/sign-in")
def sign_in_form(request: Request, next: str | None = None) -> Response:
    return _sign_in_page(request, safe_next(next), None)


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    body = await request.body()
    if len(body) > FORM_MAX_BYTES:
        raise PageError(413, "web.error.too_large")
    try:
        fields = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=10))
    except (UnicodeDecodeError, ValueError):
        raise PageError(400, "web.error.bad_form") from None
    next_path = safe_next(fields.get("next"))
    if not csrf_matches(request.cookies.get(SIGNIN_CSRF_COOKIE, ""), fields.get("csrf")):
        raise PageError(403, "web.error.csrf")
    client = request.client.host if request.client else "?"
    now = time.time()
    if THROTTLE.blocked(client, now):
        return _sign_in_page(request, next_path, "web.signin.throttled", status=429)
    token = fields.get("token", "").strip()
    principal = store_of(request).authenticate_api_token(token) if 0 < len(token) <= 200 else None
    if principal is None:
        THROTTLE.failed(client, now)
        return _sign_in_page(request, next_path, "web.signin.invalid", status=401)
    session_id, _session = sessions_of(request).create(principal)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        SESSION_COOKIE, session_id, httponly=True, samesite="strict", secure=_secure(request), path="/"
    )
    response.delete_cookie(SIGNIN_CSRF_COOKIE, path="/sign-in")
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    from collector.web.frame import form

    await form(request)  # CSRF: another site cannot sign you out either
    sessions_of(request).end(request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/sign-in", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/lang/{lang}")
def set_language(lang: str, request: Request, next: str | None = None) -> Response:
    """Remember the reader's language (a cookie; nothing else changes), then go back."""
    if lang not in LANGS:
        raise PageError(404, "web.error.not_found")
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax", secure=_secure(request), path="/"
    )
    return response
