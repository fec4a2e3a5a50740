"""Pages: the service desk on cases (issue 14): open a case by hand, and the desk's forms on
a case (steps, transfer, time, product decision and release, complaint steps).

``GET/POST /cases/new`` opens a case; ``POST /cases/{id}/steps`` (``action``: one of
:func:`~collector.store.case_states.allowed_actions` for the case's state),
``/transfer``, ``/time``, ``/decision``, ``/release``, ``/complaint`` work it. The case
page itself (and the list's filters) is :mod:`collector.web.cases`.

Threat model (every byte is hostile; four roles, many customers):

- *Another customer's people*: every action looks the case up in the session's scope first
  and answers the same 404 page as a missing case, before any role check, so a 403 never
  confirms that an id exists. Opening a case for a customer outside the scope is the same
  404 as an unknown customer.
- *Roles* are the API's, read from the one place they live
  (:class:`~collector.store.ApiPrincipal`: ``is_staff``, ``may_open_case``): engineers and
  service managers work cases; a customer admin opens cases for its own customer through
  ``remote`` or ``email`` only; a viewer changes nothing (403 page naming who may).
- *Forged state*: a step is carried out by the store inside its write transaction against
  the case's current state (a stale page or a concurrent step gets the 409 page naming
  what is allowed now); forms carry the session's CSRF token.
- *Bad input*: bounded one-line fields without control characters, enums checked by the
  store (its error names the field): a 422 page, never a 5xx, nothing half-written.
"""

# No `from __future__ import annotations` here: FastAPI resolves the endpoints' annotations
# at runtime.

import datetime as dt
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from collector.emergency import service
from collector.store import Conflict, NotFound, StoreError
from collector.store.case_states import (
    CASE_TYPES,
    CHANNELS,
    COMPLAINT_STEPS,
    ROUTINE_SUBTYPES,
    allowed_actions,
    label,
)
from collector.store.cases import CaseRecord, CaseRepo
from collector.store.desk_cases import DECISIONS, DESK_STEPS, SEVERITIES, DeskRepo, NewCase
from collector.store.principal import CUSTOMER_CHANNELS
from collector.web.frame import FormDep, PageError, WebUser, WebUserDep, render, store_of

__all__ = ["OPEN_CHANNELS", "router"]

router = APIRouter(include_in_schema=False)

OPEN_CHANNELS = tuple(c for c in CHANNELS if c != "automatic")
"""Channels a person opens a case through (``automatic`` is detection's)."""
TIME_MODES = ("remote", "onsite")


# --------------------------------------------------------------------------- input


def text_field(
    fields: dict[str, str], name: str, *, limit: int, required: bool = True, lines: bool = False
) -> str:
    """A stripped form field of at most ``limit`` characters without control characters
    (newlines allowed when ``lines``); 422 page naming the field otherwise."""
    value = fields.get(name, "").strip()
    if required and not value:
        raise PageError(422, "web.error.required", field=name)
    if len(value) > limit:
        raise PageError(422, "web.error.too_long", field=name, n=limit)
    allowed = "\n\r\t" if lines else ""
    if any((ord(c) < 0x20 and c not in allowed) or ord(c) == 0x7F for c in value):
        raise PageError(422, "web.error.control_chars", field=name)
    return value


def choice_field(fields: dict[str, str], name: str, options: tuple[str, ...]) -> str:
    value = fields.get(name, "")
    if value not in options:
        raise PageError(422, "web.error.choose", field=name, options=", ".join(options))
    return value


@contextmanager
def store_pages(case_id: str) -> Iterator[None]:
    """Store errors as pages: 404 (no such case here), 409 (not now), 422 (bad value)."""
    try:
        yield
    except NotFound:
        raise PageError(404, "web.error.no_case", case=case_id) from None
    except Conflict as exc:
        raise PageError(409, "web.error.conflict", detail=str(exc)) from None
    except StoreError as exc:
        raise PageError(422, "web.error.invalid", detail=str(exc)) from None


def staff_case(request: Request, user: WebUser, case_id: str) -> CaseRecord:
    """The case in the session's scope (404 page otherwise), then 403 unless staff works it."""
    with store_pages(case_id):
        case = CaseRepo(store_of(request)).get(user.principal.scope, case_id)
    if user.principal.role == "viewer":
        raise PageError(403, "web.error.read_only")
    if not user.principal.is_staff:
        raise PageError(403, "web.error.staff_only")
    return case


def desk_actions(state: str) -> list[str]:
    """The steps the case page offers in ``state`` (``take`` stands for ``ack``)."""
    return [a for a in allowed_actions(state) if a != "ack"]


def desk_label(user: WebUser) -> Callable[[str | None], str]:
    """The reader's name of a case type, subtype, channel, state or complaint step
    (:data:`~collector.store.case_states.LABELS`)."""

    def name(value: str | None) -> str:
        found = label(value)
        return user.f.t("label.dash") if found is None else found[user.lang]

    return name


def complaint_steps_of(case: CaseRecord) -> set[str]:
    """The complaint steps on a case's timeline."""
    return {str(e.data.get("step")) for e in case.events if e.kind == "complaint_step"}


def _back(case_id: str, anchor: str = "") -> Response:
    return RedirectResponse(f"/cases/{case_id}{anchor}", status_code=303)


# --------------------------------------------------------------------------- opening


def _open_form(
    request: Request, user: WebUser, values: dict[str, str], error: str = "", status: int = 200
) -> Response:
    who = user.principal
    return render(
        request,
        "case_new.html",
        user=user,
        status=status,
        active="cases",
        types=CASE_TYPES,
        subtypes=ROUTINE_SUBTYPES,
        channels=OPEN_CHANNELS if who.is_staff else CUSTOMER_CHANNELS,
        severities=SEVERITIES,
        v=values,
        error=error,
        desk_label=desk_label(user),
    )


def _may_open(user: WebUser) -> None:
    if not any(user.principal.may_open_case(c) for c in OPEN_CHANNELS):
        raise PageError(403, "web.error.read_only")


@router.get("/cases/new")
def new_case_form(request: Request, user: WebUserDep) -> Response:
    _may_open(user)
    return _open_form(request, user, {"customer": user.principal.customer or "", "severity": "WARN"})


@router.post("/cases/new")
def open_case(request: Request, user: WebUserDep, fields: FormDep) -> Response:
    _may_open(user)
    who = user.principal
    values = {k: v for k, v in fields.items() if k != "csrf"}
    try:
        customer = who.customer or text_field(fields, "customer", limit=63)
        channel = choice_field(fields, "channel", OPEN_CHANNELS)
        if not who.may_open_case(channel):
            raise PageError(403, "web.error.channel", channels=", ".join(CUSTOMER_CHANNELS))
        new = NewCase(
            customer=customer,
            type=choice_field(fields, "type", CASE_TYPES),
            channel=channel,
            title=text_field(fields, "title", limit=500),
            subtype=fields.get("subtype") or None,
            description=text_field(fields, "description", limit=10_000, required=False, lines=True) or None,
            host=text_field(fields, "host", limit=253, required=False) or None,
            contact=text_field(fields, "contact", limit=200, required=False) or None,
            severity=choice_field(fields, "severity", SEVERITIES),
        )
        case = DeskRepo(store_of(request)).open(who.scope, new, actor=who.name, now=time.time())
    except PageError as exc:
        if exc.status == 403:
            raise
        return _open_form(request, user, values, user.f.t(exc.key, **exc.params), exc.status)
    except NotFound:  # a customer outside the scope is the same as an unknown one
        return _open_form(request, user, values, user.f.t("web.error.no_customer", customer=customer), 404)
    except StoreError as exc:
        return _open_form(request, user, values, user.f.t("web.error.invalid", detail=str(exc)), 422)
    service.notify_case(case, "opened", actor=who.name)
    return _back(case.id)


# --------------------------------------------------------------------------- steps


@router.post("/cases/{case_id}/steps")
def step(case_id: str, request: Request, user: WebUserDep, fields: FormDep) -> Response:
    """One of the steps the case's state allows (take, start, wait, resume, resolve,
    follow-up, close, reopen)."""
    case = staff_case(request, user, case_id)
    action = fields.get("action", "")
    if action not in allowed_actions(case.state) or action == "ack":
        raise PageError(
            409, "web.error.step", action=action[:20], allowed=", ".join(desk_actions(case.state)) or "-"
        )
    note = text_field(fields, "note", limit=10_000, required=False, lines=True) or None
    who, now = user.principal, time.time()
    store = store_of(request)
    with store_pages(case_id):
        if action == "take":
            case = CaseRepo(store).acknowledge(who.scope, case_id, actor=who.name, now=now, action="take")
            service.notify_case(case, "acknowledged", actor=who.name)
        elif action == "resolve":
            case = CaseRepo(store).resolve(who.scope, case_id, actor=who.name, note=note, now=now)
            service.notify_case(case, "resolved", actor=who.name, note=note)
        elif action == "close":
            CaseRepo(store).close(who.scope, case_id, actor=who.name, now=now)
        elif action in DESK_STEPS:
            DeskRepo(store).step(who.scope, case_id, action, actor=who.name, now=now, note=note)
    return _back(case_id)


@router.post("/cases/{case_id}/transfer")
def transfer(case_id: str, request: Request, user: WebUserDep, fields: FormDep) -> Response:
    staff_case(request, user, case_id)
    to = text_field(fields, "to", limit=200)
    reason = text_field(fields, "reason", limit=10_000, lines=True)
    who = user.principal
    with store_pages(case_id):
        DeskRepo(store_of(request)).transfer(
            who.scope, case_id, to=to, reason=reason, actor=who.name, now=time.time()
        )
    return _back(case_id)


@router.post("/cases/{case_id}/time")
def log_time(case_id: str, request: Request, user: WebUserDep, fields: FormDep) -> Response:
    staff_case(request, user, case_id)
    raw = fields.get("minutes", "").strip()
    if not raw.isdigit() or not 1 <= int(raw) <= 1440:
        raise PageError(422, "web.error.minutes")
    activity = text_field(fields, "activity", limit=500)
    mode = choice_field(fields, "mode", TIME_MODES)
    now = time.time()
    day = fields.get("work_date", "").strip()
    try:
        work_date = dt.date.fromisoformat(day) if day else dt.datetime.fromtimestamp(now, dt.UTC).date()
    except ValueError:
        raise PageError(422, "web.error.work_date") from None
    who = user.principal
    with store_pages(case_id):
        DeskRepo(store_of(request)).log_time(
            who.scope, case_id, minutes=int(raw), activity=activity, mode=mode, work_date=work_date,
            engineer=who.name, actor=who.name, now=now,
        )  # fmt: skip
    return _back(case_id, "#h-time")


def _product_step(
    request: Request, user: WebUser, case_id: str, write: Callable[[DeskRepo], object]
) -> Response:
    with store_pages(case_id):
        write(DeskRepo(store_of(request)))
    return _back(case_id)


@router.post("/cases/{case_id}/decision")
def decide(case_id: str, request: Request, user: WebUserDep, fields: FormDep) -> Response:
    staff_case(request, user, case_id)
    decision = choice_field(fields, "decision", DECISIONS)
    text = text_field(fields, "text", limit=10_000, lines=True)
    who = user.principal
    return _product_step(
        request, user, case_id,
        lambda repo: repo.decide(
            who.scope, case_id, decision=decision, text=text, actor=who.name, now=time.time()
        ),
    )  # fmt: skip


@router.post("/cases/{case_id}/release")
def release(case_id: str, request: Request, user: WebUserDep, fields: FormDep) -> Response:
    staff_case(request, user, case_id)
    name = text_field(fields, "release", limit=200)
    raw = fields.get("upgrade_id", "").strip()
    if raw and not (raw.isdigit() and len(raw) < 12):
        raise PageError(422, "web.error.upgrade_id")
    who = user.principal
    return _product_step(
        request, user, case_id,
        lambda repo: repo.set_release(
            who.scope, case_id, release=name, upgrade_id=int(raw) if raw else None, actor=who.name,
            now=time.time(),
        ),
    )  # fmt: skip


@router.post("/cases/{case_id}/complaint")
def complaint_step(case_id: str, request: Request, user: WebUserDep, fields: FormDep) -> Response:
    staff_case(request, user, case_id)
    step_name = choice_field(fields, "step", COMPLAINT_STEPS)
    text = text_field(fields, "text", limit=10_000, lines=True)
    team = text_field(fields, "team", limit=200, required=False) or None
    summary = text_field(fields, "summary", limit=10_000, required=False, lines=True) or None
    who = user.principal
    return _product_step(
        request, user, case_id,
        lambda repo: repo.complaint_step(
            who.scope, case_id, step=step_name, text=text, actor=who.name, now=time.time(), team=team,
            summary=summary,
        ),
    )  # fmt: skip
