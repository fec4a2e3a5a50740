"""The case vocabulary and state machine, shared by emergency and service-desk cases.

One case object serves every request, whatever its origin (issue 14). This module holds
what a case can be (types, routine subtypes, channels, states), what each person's step
does to its state (:data:`ACTIONS`), and the one function that carries a step out inside a
write transaction (:func:`transition`). Both :class:`~collector.store.cases.CaseRepo`
(emergency cases from detection) and :class:`~collector.store.desk_cases.DeskRepo` use it.

States (fixed names: the SLA clocks read them from ``case_events``)::

    new ─take/ack─► acknowledged ─start─► in_progress ⇄ waiting_on_customer (wait, resume)
     │                  │                    │                 │
     └──────────────────┴──────resolve───────┴─────────────────┴─► resolved
    resolved ─follow-up─► follow_up ─close─► closed     (close also straight from resolved)
    resolved / follow_up / closed ─reopen─► in_progress  (people)
    resolved / closed ─automatic reopen─► new             (a new incident, as before)

Every state change is a ``case_events`` row whose ``data`` holds ``{"from": old, "to":
new}``; a step the state does not allow raises :class:`~collector.store.errors.Conflict`
naming the steps that are allowed now.

Wording people read comes in English and Simplified Chinese (:data:`LABELS`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

import sqlalchemy as sa

from collector.store.errors import Conflict
from collector.store.schema_cases import case_events, cases

__all__ = [
    "ACTIONS",
    "ACTIVE_STATES",
    "CASE_STATES",
    "CASE_TYPES",
    "CHANNELS",
    "COMPLAINT_REQUIRED",
    "COMPLAINT_STEPS",
    "LABELS",
    "ROUTINE_SUBTYPES",
    "Action",
    "CaseState",
    "CaseType",
    "Channel",
    "Step",
    "allowed_actions",
    "conflict_message",
    "label",
    "record_event",
    "recorded_complaint_steps",
    "transition",
]

CaseState = Literal[
    "new", "acknowledged", "in_progress", "waiting_on_customer", "resolved", "follow_up", "closed"
]
CASE_STATES: tuple[CaseState, ...] = get_args(CaseState)
ACTIVE_STATES: tuple[CaseState, ...] = ("new", "acknowledged", "in_progress", "waiting_on_customer")
"""States in which the service owes the customer work (``?active=true``)."""

CaseType = Literal["emergency", "routine", "adaptive", "perfective", "complaint", "consultation", "onsite"]
CASE_TYPES: tuple[CaseType, ...] = get_args(CaseType)
ROUTINE_SUBTYPES = ("operation_error", "data_error", "defect_l3", "user_training")
"""A routine case's subtype (required for routine cases, refused for the others)."""

Channel = Literal["hotline", "email", "remote", "onsite", "automatic"]
CHANNELS: tuple[Channel, ...] = get_args(Channel)

COMPLAINT_STEPS = ("handed_over", "supervised", "outcome", "callback")
"""A complaint's handling, as the service description orders it: passed to the responsible
team, supervised, its outcome recorded and summarised, a callback to the customer."""
COMPLAINT_REQUIRED = ("outcome", "callback")
"""Steps a complaint needs on its timeline before it may be closed."""

Action = Literal["ack", "take", "start", "wait", "resume", "resolve", "follow-up", "close", "reopen"]


@dataclass(frozen=True, slots=True)
class Step:
    """One person's step: the states it starts from and the state it leads to."""

    sources: tuple[CaseState, ...]
    target: CaseState
    event: str
    """The timeline event's kind."""


ACTIONS: Mapping[Action, Step] = {
    "ack": Step(("new",), "acknowledged", "acknowledged"),
    "take": Step(("new",), "acknowledged", "acknowledged"),
    "start": Step(("acknowledged",), "in_progress", "started"),
    "wait": Step(("in_progress",), "waiting_on_customer", "waiting"),
    "resume": Step(("waiting_on_customer",), "in_progress", "resumed"),
    "resolve": Step(ACTIVE_STATES, "resolved", "resolved"),
    "follow-up": Step(("resolved",), "follow_up", "follow_up"),
    "close": Step(("resolved", "follow_up"), "closed", "closed"),
    "reopen": Step(("resolved", "follow_up", "closed"), "in_progress", "reopened"),
}
"""What each step (the last part of ``POST /api/v1/cases/{id}/{action}``) does."""

LABELS: Mapping[str, tuple[str, str]] = {
    # states
    "new": ("new", "新建"),
    "acknowledged": ("acknowledged", "已受理"),
    "in_progress": ("in progress", "处理中"),
    "waiting_on_customer": ("waiting on customer", "等待客户"),
    "resolved": ("resolved", "已解决"),
    "follow_up": ("follow-up", "回访中"),
    "closed": ("closed", "已关闭"),
    # types
    "emergency": ("emergency", "应急"),
    "routine": ("routine", "日常"),
    "adaptive": ("adaptive change", "适应性改进"),
    "perfective": ("perfective change", "完善性改进"),
    "complaint": ("complaint", "投诉"),
    "consultation": ("consultation", "咨询"),
    "onsite": ("on-site visit", "现场服务"),
    # routine subtypes
    "operation_error": ("operation error", "操作错误"),
    "data_error": ("data error", "数据错误"),
    "defect_l3": ("level-3 defect", "三级缺陷"),
    "user_training": ("user training", "用户培训"),
    # complaint steps
    "handed_over": ("passed to the responsible team", "转交责任部门"),
    "supervised": ("supervised", "督办"),
    "outcome": ("outcome recorded", "处理结果"),
    "callback": ("callback to the customer", "回访客户"),
    # channels
    "hotline": ("hotline", "热线"),
    "email": ("e-mail", "电子邮件"),
    "remote": ("remote", "远程"),
    "automatic": ("automatic", "自动"),
}
"""English and Simplified Chinese names of states, types, subtypes and channels
(``onsite`` serves both the type and the channel)."""


def label(value: str | None) -> dict[str, str] | None:
    """``{"en": ..., "zh-CN": ...}`` for a state, type, subtype or channel (None for None).

    >>> label("waiting_on_customer")
    {'en': 'waiting on customer', 'zh-CN': '等待客户'}
    """
    if value is None:
        return None
    en, zh = LABELS.get(value, (value, value))
    return {"en": en, "zh-CN": zh}


def allowed_actions(state: str) -> list[str]:
    """The steps a case in ``state`` allows, in a stable order.

    >>> allowed_actions("in_progress")
    ['wait', 'resolve']
    """
    return [name for name, step in ACTIONS.items() if state in step.sources]


def conflict_message(case_id: str, state: str, action: str) -> str:
    """Why ``action`` is refused in ``state``, and what is allowed instead.

    >>> print(conflict_message("C-acme-1", "new", "close").replace("; ", ";\n"))
    case C-acme-1 is new (resolve it first): close is allowed only from resolved or follow_up;
    allowed now: ack, take, resolve
    """
    step = ACTIONS[action]  # type: ignore[index]
    hint = ""
    if state == step.target:
        hint = " (it already is)"
    elif action == "close" and state in ACTIVE_STATES:
        hint = " (resolve it first)"
    sources = " or ".join(step.sources) if len(step.sources) < 3 else ", ".join(step.sources)
    allowed = ", ".join(allowed_actions(state)) or "none"
    return f"case {case_id} is {state}{hint}: {action} is allowed only from {sources}; allowed now: {allowed}"


def recorded_complaint_steps(conn: sa.Connection, case_id: str) -> set[str]:
    """The complaint steps on a case's timeline (inside the caller's transaction)."""
    rows = conn.execute(
        sa.select(case_events.c.data).where(
            case_events.c.case_id == case_id, case_events.c.kind == "complaint_step"
        )
    ).scalars()
    return {str((json.loads(d) if isinstance(d, str | bytes) else d).get("step")) for d in rows}


def record_event(
    conn: sa.Connection,
    case_id: str,
    ts: float,
    kind: str,
    actor: str | None,
    text: str,
    data: Mapping[str, Any],
    *,
    max_text: int = 10_000,
) -> None:
    """Add one timeline row (inside the caller's transaction)."""
    conn.execute(
        case_events.insert().values(
            case_id=case_id, ts=ts, kind=kind, actor=actor, text=text[:max_text], data=dict(data)
        )
    )


def transition(
    conn: sa.Connection,
    case_id: str,
    state: str,
    action: Action,
    *,
    actor: str | None,
    now: float,
    text: str,
    values: Mapping[str, Any] | None = None,
    data: Mapping[str, Any] | None = None,
) -> CaseState:
    """Carry out ``action`` on a case now in ``state`` (read in this transaction): update the
    row (state, ``values``, ``updated_at``) and add the timeline event with ``{"from", "to"}``.

    Raises Conflict, naming what is allowed, when ``state`` does not allow ``action``.
    """
    step = ACTIONS[action]
    if state not in step.sources:
        raise Conflict(conflict_message(case_id, state, action))
    changed = conn.execute(
        cases.update()
        .where(cases.c.id == case_id, cases.c.state == state)  # a concurrent step loses, never both
        .values(state=step.target, updated_at=now, **dict(values or {}))
    ).rowcount
    if changed != 1:
        raise Conflict(f"case {case_id} changed while {action} was being applied: read it again")
    record_event(
        conn, case_id, now, step.event, actor, text, {**dict(data or {}), "from": state, "to": step.target}
    )
    return step.target
