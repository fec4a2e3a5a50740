"""The customer's sign-off page: ``/sign/<token>`` (no account, no JavaScript).

- ``GET  /sign/{token}``         the record's details, the record in a sandboxed frame, the
  statement and a form (``?lang=en|zh-CN``; default: the link's language)
- ``GET  /sign/{token}/record``  the record's bytes (while the link is pending or signed)
- ``POST /sign/{token}``         sign: ``record``, ``sha256`` (what the page showed) and
  ``confirm=yes``, urlencoded

The threat model is in :mod:`collector.records.signoff`.
"""

from __future__ import annotations

import time
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse

from collector.http.deps import StoreDep
from collector.http.reports import CONTENT_TYPES
from collector.inspections.service import service_for
from collector.records import signoff
from collector.reports.model import Lang
from collector.store import NotFound, Scope, Store
from collector.store.records import RecordRepo, SignoffRecord
from collector.store.reports import ReportRecord, ReportRepo

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

LangQuery = Annotated[str | None, Query(max_length=8)]


def _vendor(request: Request, store: Store) -> str:
    settings = service_for(store, getattr(request.app.state, "grpc", None)).runner.settings
    return settings.organisation or settings.prepared_by


def _page(request: Request, store: Store, outcome: signoff.SignOutcome, lang: Lang) -> HTMLResponse:
    html = signoff.render_page(outcome.template, lang, vendor=_vendor(request, store), **outcome.context)
    return HTMLResponse(html, status_code=outcome.status, headers=signoff.PAGE_HEADERS)


def _lookup(store: Store, token: str) -> tuple[str | None, SignoffRecord | None, ReportRecord | None]:
    hashed = signoff.token_hash(token)
    link = RecordRepo(store).link(hashed) if hashed is not None else None
    if link is None:
        return hashed, None, None
    try:
        record = ReportRepo(store).report(Scope.of(link.customer), link.report_id)
    except NotFound:  # the record is gone: the link cannot be used (verify reports it)
        return hashed, None, None
    return hashed, link, record


def _form_page(
    request: Request, store: Store, token: str, link: SignoffRecord, record: ReportRecord, lang: Lang
) -> signoff.SignOutcome:
    return signoff.SignOutcome(
        200,
        "sign.html",
        {
            "link": link,
            "record": record,
            "statement": signoff.statement(record, link, lang),
            "record_url": f"/sign/{token}/record",
            "form_url": f"/sign/{token}",
            "must_confirm": False,
        },
    )


@router.get("/sign/{token}", response_class=HTMLResponse)
def sign_page(token: str, request: Request, store: StoreDep, lang: LangQuery = None) -> HTMLResponse:
    _, link, record = _lookup(store, token)
    chosen = signoff.page_lang(lang, link)
    if link is None or record is None:
        return _page(request, store, signoff.unknown_link(), chosen)
    problem = signoff.link_problem(link, time.time(), chosen)
    if problem is not None:
        return _page(request, store, problem, chosen)
    return _page(request, store, _form_page(request, store, token, link, record, chosen), chosen)


@router.get("/sign/{token}/record")
def sign_record(token: str, request: Request, store: StoreDep) -> Response:
    _, link, record = _lookup(store, token)
    chosen = signoff.page_lang(None, link)
    if link is None or record is None:
        return _page(request, store, signoff.unknown_link(), chosen)
    if link.state(time.time()) == "expired":  # a signed record stays readable through its link
        return _page(
            request, store, signoff.link_problem(link, time.time(), chosen) or signoff.unknown_link(), chosen
        )
    _, content = ReportRepo(store).report_content(Scope.of(link.customer), record.id)
    return Response(content, media_type=CONTENT_TYPES[record.format], headers=signoff.RECORD_HEADERS)


@router.post("/sign/{token}", response_class=HTMLResponse)
async def sign_submit(token: str, request: Request, store: StoreDep) -> HTMLResponse:
    # Outside /api/ (no body limit there): read at most FORM_MAX_BYTES + 1, never the whole body.
    body = b""
    declared = request.headers.get("content-length", "")
    if not (declared.isdigit() and int(declared) > signoff.FORM_MAX_BYTES):
        async for chunk in request.stream():
            body += chunk
            if len(body) > signoff.FORM_MAX_BYTES:
                break
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    fields: dict[str, str] | None = None
    if body and len(body) <= signoff.FORM_MAX_BYTES and ctype == "application/x-www-form-urlencoded":
        try:
            fields = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=10))
        except (UnicodeDecodeError, ValueError):
            fields = None
    # The store is synchronous: the rest runs off the event loop.
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(_submit, token, request, store, fields)


def _submit(token: str, request: Request, store: Store, fields: dict[str, str] | None) -> HTMLResponse:
    hashed, link, record = _lookup(store, token)
    lang = signoff.page_lang((fields or {}).get("lang"), link)
    now = time.time()
    if hashed is None or link is None or record is None:
        return _page(request, store, signoff.unknown_link(), lang)
    if fields is None:
        return _page(request, store, signoff.bad_form(), lang)
    outcome = signoff.sign(
        RecordRepo(store),
        hashed,
        link,
        record,
        fields,
        lang=lang,
        client_addr=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
        now=now,
    )
    if outcome.template == "sign.html":  # not confirmed: the form again, with the reason
        again = _form_page(request, store, token, link, record, lang)
        outcome = signoff.SignOutcome(outcome.status, "sign.html", {**again.context, **outcome.context})
    return _page(request, store, outcome, lang)
