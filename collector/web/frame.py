"""The dashboard's frame: who is signed in, language, CSRF, the nav registry, rendering.

Every page declares ``user: WebUserDep`` (a page without a session redirects to the
sign-in page and back) and renders with :func:`render`. Forms post ``csrf`` (the session's
token, from :attr:`WebUser.csrf`); :func:`form` refuses a POST without it (403).

Roles and scope are the API's: the session holds the :class:`~collector.store.ApiPrincipal`
of the token it was opened with (``principal.scope`` filters every query in SQL,
``principal.can_write`` gates every change); the token is re-checked on every request.

The nav registry (:func:`register_nav`) lets later packages (service desk, sessions) add
their pages to the navigation without editing the layout.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Annotated, Any, get_args
from urllib.parse import parse_qsl, quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from checks.api import Layer, Severity
from collector.reports.i18n import Formatter, catalogue
from collector.reports.model import Lang
from collector.store import ApiPrincipal, Store
from collector.store.dashboard import DashboardRepo
from collector.web.sessions import Session, Sessions, csrf_matches

__all__ = [
    "LANG_COOKIE",
    "SESSION_COOKIE",
    "NavItem",
    "PageError",
    "SignInRequired",
    "WebFormatter",
    "WebUser",
    "WebUserDep",
    "form",
    "nav_items",
    "register_nav",
    "render",
    "safe_next",
]

SESSION_COOKIE = "diag_session"
LANG_COOKIE = "diag_lang"
LANGS: tuple[Lang, ...] = get_args(Lang)
FORM_MAX_BYTES = 64 * 1024


# --------------------------------------------------------------------------- language


@cache
def web_catalogue(lang: Lang) -> dict[str, str]:
    """The reports' catalogue with the dashboard's own labels (``web.*``) on top."""
    import json

    text = resources.files("collector.web").joinpath("i18n", f"{lang}.json").read_text("utf-8")
    return {**catalogue(lang), **json.loads(text)}


class WebFormatter(Formatter):
    """The reports' :class:`Formatter` (dates, units, durations) with the dashboard's labels."""

    def __init__(self, lang: Lang, timezone: str = "UTC") -> None:
        super().__init__(lang, timezone)
        self.messages = web_catalogue(lang)

    def ts(self, seconds: float | None) -> str:
        from datetime import UTC, datetime

        return self.dt(None if seconds is None else datetime.fromtimestamp(seconds, UTC))

    def ago(self, seconds: float | None) -> str:
        if seconds is None:
            return self.t("web.never")
        return self.t("web.ago", d=self.duration(max(0.0, time.time() - seconds)))


def language_of(request: Request) -> Lang:
    """The cookie's language, else the browser's (zh → zh-CN), else English."""
    chosen = request.cookies.get(LANG_COOKIE)
    for lang in LANGS:
        if chosen == lang:
            return lang
    accept = request.headers.get("accept-language", "").lower()
    first = accept.split(",")[0].strip()
    return "zh-CN" if first.startswith("zh") else "en"


# --------------------------------------------------------------------------- errors


class SignInRequired(Exception):
    """No live session: the handler redirects to the sign-in page, then back to ``next``."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class PageError(Exception):
    """An error page (HTML, in the reader's language) with ``status`` and a message key."""

    def __init__(self, status: int, key: str, **params: Any) -> None:
        super().__init__(key)
        self.status, self.key, self.params = status, key, params


def safe_next(value: str | None) -> str:
    """A local path to return to after sign-in (never another site: ``//x``, ``/\\x``, schemes)."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")) or len(value) > 2000:
        return "/fleet"
    if any(ord(c) < 0x20 for c in value):
        return "/fleet"
    return value


def sign_in_redirect(next_path: str) -> RedirectResponse:
    return RedirectResponse(f"/sign-in?next={quote(safe_next(next_path), safe='/')}", status_code=303)


# --------------------------------------------------------------------------- who


@dataclass(frozen=True, slots=True)
class WebUser:
    principal: ApiPrincipal
    session: Session
    lang: Lang
    f: WebFormatter

    @property
    def csrf(self) -> str:
        return self.session.csrf

    @property
    def can_write(self) -> bool:
        return self.principal.can_write


def sessions_of(request: Request) -> Sessions:
    sessions: Sessions = request.app.state.web_sessions
    return sessions


def store_of(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def current_user(request: Request) -> WebUser:
    """The signed-in user, else :class:`SignInRequired` (back to this page after sign-in)."""
    sessions = sessions_of(request)
    session_id = request.cookies.get(SESSION_COOKIE)
    session = sessions.get(session_id)
    next_path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if session is None:
        raise SignInRequired(next_path if request.method == "GET" else "/fleet")
    if not DashboardRepo(store_of(request)).token_active(session.principal.token_id, time.time()):
        sessions.end(session_id)
        raise SignInRequired(next_path if request.method == "GET" else "/fleet")
    lang = language_of(request)
    return WebUser(session.principal, session, lang, WebFormatter(lang))


WebUserDep = Annotated[WebUser, Depends(current_user)]


def require_write(user: WebUser) -> None:
    if not user.can_write:
        raise PageError(403, "web.error.read_only")


async def form(request: Request) -> dict[str, str]:
    """The posted form (urlencoded, at most 64 KiB); 403 unless its ``csrf`` is the session's."""
    body = await request.body()
    if len(body) > FORM_MAX_BYTES:
        raise PageError(413, "web.error.too_large")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if body and ctype != "application/x-www-form-urlencoded":
        raise PageError(415, "web.error.form_type")
    try:
        fields = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=50))
    except (UnicodeDecodeError, ValueError):
        raise PageError(400, "web.error.bad_form") from None
    session = sessions_of(request).get(request.cookies.get(SESSION_COOKIE))
    if session is None or not csrf_matches(session.csrf, fields.get("csrf")):
        raise PageError(403, "web.error.csrf")
    return fields


FormDep = Annotated[dict[str, str], Depends(form)]


# --------------------------------------------------------------------------- navigation


@dataclass(frozen=True, slots=True)
class NavItem:
    key: str
    """Its label is the message ``web.nav.<key>``."""
    path: str
    order: int = 100
    visible: Callable[[ApiPrincipal], bool] = lambda _who: True


_NAV: dict[str, NavItem] = {}


def register_nav(item: NavItem) -> None:
    """Add (or replace) a page in the navigation; its label is ``web.nav.<key>`` in both catalogues."""
    _NAV[item.key] = item


def nav_items(who: ApiPrincipal) -> list[NavItem]:
    return sorted((i for i in _NAV.values() if i.visible(who)), key=lambda i: (i.order, i.key))


for _item in (
    NavItem("fleet", "/fleet", 10),
    NavItem("cases", "/cases", 20),
    NavItem("inspections", "/inspections", 30),
    NavItem("reports", "/reports", 40),
):
    register_nav(_item)


# --------------------------------------------------------------------------- rendering


@cache
def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("collector.web", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(Layer=Layer, Severity=Severity, LANGS=LANGS, quote=quote)
    env.filters["seg"] = lambda value: quote(str(value), safe="")  # one URL path segment or query value
    return env


def render(
    request: Request,
    template: str,
    *,
    user: WebUser | None = None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    lang = user.lang if user is not None else language_of(request)
    f = user.f if user is not None else WebFormatter(lang)
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    html = (
        _env()
        .get_template(template)
        .render(
            f=f,
            lang=lang,
            user=user,
            nav=nav_items(user.principal) if user is not None else [],
            here=here,
            active=context.pop("active", ""),
            **context,
        )
    )
    return HTMLResponse(html, status_code=status)
