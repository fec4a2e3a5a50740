"""The public survey page of the follow-up step: ``GET|POST /survey/{token}`` (issue 14).

A contact opens the link from the survey e-mail (:mod:`collector.notify.survey`), rates
each question of the service-quality form 1 to 5 and may comment; the answer is stored on
the case (a ``survey_answered`` timeline event and the survey row). The page is plain
HTML (Jinja2, autoescaped) in English or Simplified Chinese (``?lang=``, else the
contact's language), with no script and no external reference; it works without
JavaScript.

Threat model: the visitor is anonymous and hostile; the token in the URL is the only
credential, bound to one case and one contact.

- *Guessing tokens*: 256 random bits; only the SHA-256 is stored (a database reader cannot
  turn a row back into a link); unknown tokens and bad forms are counted per client
  address: more than ``MAX_FAILURES`` in ``FAILURE_WINDOW_S`` answers 429 before any lookup.
- *Expired, used, forged or unknown links*: 410 (expired, used) or 404 (unknown) pages in
  the visitor's language, nothing stored; the answer is one conditional UPDATE, so two
  concurrent submissions cannot both count.
- *Cross-site forgery / another link's form*: the POST must carry a nonce issued when this
  link's page was rendered (HMAC of the token's hash and the render time under the
  collector's secret, valid a day); a form of another case's link, or none, is refused
  (403) and nothing is stored.
- *Leaking the token*: ``Referrer-Policy: no-referrer`` and no external references (so no
  third party sees the URL), ``Cache-Control: no-store``; the page shows the case's number
  and title only, never other cases, hosts or people; framing is refused (CSP
  ``frame-ancestors 'none'``).
- *Bad input*: the body is bounded (``FORM_MAX_BYTES``), ratings must be 1..5 for every
  configured question (else the form again with a message, 422), the comment is cut to
  4000 characters without control characters; unknown fields are ignored. Never a 5xx or a traceback.
"""

# No `from __future__ import annotations` here: FastAPI resolves the endpoints' annotations
# at runtime.

import asyncio
import json
import re
import time
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, quote

import jinja2
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from collector.desk.followup import FollowUp, hash_token, issue_nonce, nonce_valid
from collector.store import Store
from collector.store.surveys import LinkRefused, SurveyRecord, SurveyRepo
from collector.web.throttle import Throttle

__all__ = ["FAILURE_WINDOW_S", "MAX_FAILURES", "THROTTLE", "router"]

router = APIRouter(include_in_schema=False)

FORM_MAX_BYTES = 16 * 1024
MAX_FAILURES = 20
FAILURE_WINDOW_S = 300.0
LANGS = ("en", "zh-CN")
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
"""Control characters other than line breaks and tabs: dropped from the comment."""
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


THROTTLE = Throttle(MAX_FAILURES, FAILURE_WINDOW_S)


@cache
def _words(lang: str) -> dict[str, str]:
    text = resources.files("collector.desk").joinpath("i18n", f"{lang}.json").read_text("utf-8")
    words: dict[str, str] = json.loads(text)
    return words


@cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("collector.desk", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template("survey.html")


def _lang(request: Request, fallback: str | None) -> str:
    asked = request.query_params.get("lang")
    if asked in LANGS:
        return str(asked)
    if fallback in LANGS:
        return str(fallback)
    accept = request.headers.get("accept-language", "").lower()
    return "zh-CN" if accept.startswith("zh") else "en"


def _page(request: Request, lang: str, status: int, view: str, **fields: Any) -> HTMLResponse:
    other = "en" if lang == "zh-CN" else "zh-CN"
    switch = f"{quote(request.url.path)}?lang={other}" if view == "form" else None
    context = {
        "lang": lang, "t": _words(lang).__getitem__, "view": view, "switch_href": switch, "error": None,
        "case_id": "", "case_title": "", "questions": (), "chosen": {}, "comment": "", "nonce": "",
        "action": quote(request.url.path), **fields,
    }  # fmt: skip
    return HTMLResponse(_template().render(context), status_code=status, headers=HEADERS)


def _followup(request: Request) -> FollowUp | None:
    return getattr(request.app.state, "followup", None)


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"


def _refused(request: Request, lang: str, reason: str) -> HTMLResponse:
    status = 404 if reason == "unknown" else 410
    return _page(request, lang, status, "error", error=f"error.{reason}")


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _link(token: str, request: Request, now: float) -> tuple[FollowUp, SurveyRecord, str] | HTMLResponse:
    """The follow-up config, survey and token hash of a link, or the page refusing it
    (429 throttled, 404 unknown; an unknown link counts as a failure of the client)."""
    client = _client(request)
    if THROTTLE.blocked(client, now):
        return _page(request, _lang(request, None), 429, "error", error="error.throttled")
    followup = _followup(request)
    token_hash = hash_token(token)
    survey = None
    if followup is not None and len(token) <= 100:
        survey = SurveyRepo(_store(request)).by_token(token_hash)
    if followup is None or survey is None:
        THROTTLE.failed(client, now)
        return _refused(request, _lang(request, None), "unknown")
    return followup, survey, token_hash


@router.get("/survey/{token}", response_class=HTMLResponse)
def survey_form(token: str, request: Request) -> Response:
    """The form of one survey link (or why it cannot be used)."""
    now = time.time()
    found = _link(token, request, now)
    if isinstance(found, HTMLResponse):
        return found
    followup, survey, token_hash = found
    lang = _lang(request, survey.language)
    state = survey.state(now)
    if state != "open":
        return _refused(request, lang, "used" if state == "answered" else "expired")
    return _page(
        request, lang, 200, "form", case_id=survey.case_id, case_title=survey.case_title,
        questions=followup.config.questions, nonce=issue_nonce(followup.secret, token_hash, now),
    )  # fmt: skip


@router.post("/survey/{token}", response_class=HTMLResponse)
async def survey_answer(token: str, request: Request) -> Response:
    """Store the answer of one survey link, once."""
    body = await request.body()  # the body limits middleware bounds it first
    return await asyncio.to_thread(_answer, token, request, body)


def _answer(token: str, request: Request, body: bytes) -> Response:
    now = time.time()
    found = _link(token, request, now)
    if isinstance(found, HTMLResponse):
        return found
    followup, survey, token_hash = found
    client = _client(request)
    try:
        if len(body) > FORM_MAX_BYTES:
            raise ValueError("too large")
        fields = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=50))
    except (UnicodeDecodeError, ValueError):
        THROTTLE.failed(client, now)
        return _page(request, _lang(request, survey.language), 400, "error", error="error.bad_form")
    asked = fields.get("lang")
    lang = asked if asked in LANGS and asked is not None else _lang(request, survey.language)
    state = survey.state(now)
    if state != "open":
        return _refused(request, lang, "used" if state == "answered" else "expired")
    if not nonce_valid(followup.secret, token_hash, fields.get("nonce", ""), now):
        THROTTLE.failed(client, now)
        return _page(request, lang, 403, "error", error="error.nonce")
    ratings: dict[str, int] = {}
    for q in followup.config.questions:
        value = fields.get(f"q_{q.key}", "")
        if value in ("1", "2", "3", "4", "5"):
            ratings[q.key] = int(value)
    comment = _CONTROLS.sub("", fields.get("comment", ""))[:4000]
    if len(ratings) != len(followup.config.questions):
        return _page(
            request, lang, 422, "form", error="error.missing", case_id=survey.case_id,
            case_title=survey.case_title, questions=followup.config.questions, chosen=ratings,
            comment=comment, nonce=issue_nonce(followup.secret, token_hash, now),
        )  # fmt: skip
    try:
        SurveyRepo(_store(request)).answer(token_hash, ratings=ratings, comment=comment, now=now)
    except LinkRefused as exc:
        return _refused(request, lang, exc.reason)
    return _page(request, lang, 200, "thanks")
