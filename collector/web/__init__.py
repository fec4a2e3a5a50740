"""The web dashboard: pages over the same repositories and roles as the JSON API.

:func:`install` mounts it on the collector's FastAPI app (``create_app`` calls it): the
sign-in page, the fleet, hosts, cases (with the service desk's forms), inspections,
reports and remote sessions pages, their small JSON
endpoints for live updates, and ``/static`` (CSS and one script; nothing external).

Threat model (every byte reaching the collector is hostile):

- *Who is signed in*: an API token (from ``diag-collector token create`` or the
  quickstart) is exchanged for a server-side session (:mod:`.sessions`): random id in an
  HttpOnly, SameSite=Strict cookie (``Secure`` when the page arrived over HTTPS or the
  collector's public URL is https), idle and absolute expiry, token re-checked on every
  request. A wrong token is refused without saying why beyond "invalid"; sign-in attempts
  are throttled per client address.
- *What they see*: the token's role and customer, as in the API: every query is filtered
  by ``principal.scope`` in SQL, so another customer's host, case, run or report answers 404
  exactly like one that does not exist; viewers cannot change anything (403 page).
- *CSRF*: every POST carries the session's CSRF token (constant-time compare), cookies are
  SameSite=Strict, and there is no state change on GET (switching the language only sets
  a cookie).
- *XSS / clickjacking*: Jinja2 autoescaping everywhere; no inline script (CSP
  ``script-src 'self'``), ``frame-ancestors 'none'``, ``nosniff``, ``Referrer-Policy``.
  Stored reports are served with their own CSP (``sandbox``, no scripts).
- *Open redirects*: the ``next`` of the sign-in page is a local path only (:func:`.frame.safe_next`).
- *Leaks*: pages are ``Cache-Control: no-store``; the token is never echoed or logged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles

from collector.web.frame import PageError, SignInRequired, render, sign_in_redirect
from collector.web.sessions import Sessions

__all__ = ["install"]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def install(app: FastAPI, *, public_url: str = "", sessions: Sessions | None = None) -> None:
    """Mount the dashboard on ``app`` (after the API's routers)."""
    from collector.web.auth import router as auth_router
    from collector.web.cases import router as cases_router
    from collector.web.desk import router as desk_router
    from collector.web.fleet import router as fleet_router
    from collector.web.inspections import router as inspections_router
    from collector.web.remote import router as remote_router

    app.state.web_sessions = sessions or Sessions()
    app.state.web_secure_cookies = public_url.startswith("https://")
    # desk before cases: /cases/new is not a case id
    for router in (auth_router, fleet_router, desk_router, cases_router, inspections_router, remote_router):
        app.include_router(router)
    static = Path(str(resources.files("collector.web").joinpath("static")))
    app.mount("/static", StaticFiles(directory=static), name="static")

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        return sign_in_redirect(exc.next_path)

    @app.exception_handler(PageError)
    async def _page_error(request: Request, exc: PageError) -> Response:
        return render(request, "error.html", status=exc.status, key=exc.key, params=exc.params)

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        if request.url.path.startswith("/api/"):
            return response
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CSP)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin")
        if not request.url.path.startswith("/static/"):
            headers.setdefault("Cache-Control", "no-store")
        return response
