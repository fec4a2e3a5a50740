"""Kinds of notification: what the outbox needs to store, route and deliver each one.

Every notification goes through the one outbox in the store
(:mod:`collector.store.outbox`) and the one :class:`~collector.notify.Notifier`; a *kind*
says how its event is stored (a pydantic model, as JSON), which destinations want it
(its event name, matched against a destination's ``events``), and what it looks like as
a webhook and as an e-mail. Case transitions are the kind ``case``.

Adding a kind (an SLA breach, say) takes one model and one registration::

    class SlaBreach(BaseModel):                  # frozen pydantic model, JSON round-trip
        customer: str
        ticket: str
        ...

    SLA = register(NoticeKind(
        name="sla",                              # stored in notify_outbox.kind: never change it
        model=SlaBreach,
        event=lambda n: "sla_breached",          # destinations whose ``events`` list it get it
        customer=lambda n: n.customer,
        subject=lambda n: n.ticket,              # for logs and listings
        identity=lambda n: f"{n.customer}\\x1f{n.ticket}\\x1f...",  # same event, same id
        webhook_event=lambda n: "sla.breached",  # X-Diag-Event and the payload's ``event``
        webhook_payload=lambda n, nid: {...},    # include ``"id": nid`` (receivers dedup on it)
        render_email=lambda n, cfg, target, nid: ...,  # EmailMessage in cfg.language
    ))

then add its event name to ``EventKind`` and :data:`collector.notify.event.EVENT_KINDS` (so destinations
may list it) and call ``notifier.notify(SlaBreach(...))``. Retries, backoff, the bound,
leases, dedup and metrics come with the outbox.

>>> from checks.api import Severity
>>> ev = CaseEvent(event="opened", case_id="C-1", customer="acme", title="t",
...                severity=Severity.CRIT, opened_at=1.0, event_at=1.0)
>>> kind = kind_of(ev)
>>> kind.name, kind.event(ev), kind.webhook_event(ev), kind.subject(ev)
('case', 'opened', 'case.opened', 'C-1')
>>> from collector.notify.event import notification_id  # the ids case notifications always had
>>> notice_id(ev, "email", "email") == notification_id(ev, "email", "email")
True
>>> KINDS["case"].model.model_validate_json(ev.model_dump_json()) == ev
True
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Final

from pydantic import BaseModel

from collector.notify.config import CustomerNotifyConfig, EmailTarget
from collector.notify.event import ID_NAMESPACE, CaseEvent, case_identity, webhook_payload
from collector.notify.mail import render_email

__all__ = ["CASE", "KINDS", "NoticeKind", "kind_of", "notice_id", "register"]


@dataclass(frozen=True, slots=True)
class NoticeKind:
    """How one kind of notification is stored, routed and rendered (see the module docstring)."""

    name: str
    model: type[BaseModel]
    event: Callable[[Any], str]
    customer: Callable[[Any], str]
    subject: Callable[[Any], str]
    identity: Callable[[Any], str]
    webhook_event: Callable[[Any], str]
    webhook_payload: Callable[[Any, str], dict[str, Any]]
    render_email: Callable[[Any, CustomerNotifyConfig, EmailTarget, str], EmailMessage]
    email_to: Callable[[Any], tuple[str, ...]] | None = None
    """Recipients named by the notification itself (a survey's contact) instead of the
    customer's configured ``to``; the SMTP server and sender stay the configured ones."""


KINDS: Final[dict[str, NoticeKind]] = {}
"""Every registered kind by name (the ``kind`` stored with each outbox row)."""
_BY_MODEL: Final[dict[type[BaseModel], NoticeKind]] = {}


def register(kind: NoticeKind) -> NoticeKind:
    """Make ``kind`` known to the notifier; names and models are unique."""
    if kind.name in KINDS or kind.model in _BY_MODEL:
        raise ValueError(f"notification kind {kind.name!r} ({kind.model.__name__}) is already registered")
    KINDS[kind.name] = kind
    _BY_MODEL[kind.model] = kind
    return kind


def kind_of(notice: BaseModel) -> NoticeKind:
    """The kind of a notification (a registered model's instance)."""
    try:
        return _BY_MODEL[type(notice)]
    except KeyError:
        raise TypeError(f"{type(notice).__name__} is not a registered notification kind") from None


def notice_id(notice: BaseModel, channel: str, target: str) -> str:
    """The id of one notification (event x destination): deterministic, so duplicates collapse."""
    name = "\x1f".join((kind_of(notice).identity(notice), channel, target))
    return uuid.uuid5(ID_NAMESPACE, name).hex


CASE: Final = register(
    NoticeKind(
        name="case",
        model=CaseEvent,
        event=lambda n: str(n.event),
        customer=lambda n: str(n.customer),
        subject=lambda n: str(n.case_id),
        identity=case_identity,
        webhook_event=lambda n: f"case.{n.event}",
        webhook_payload=webhook_payload,
        render_email=render_email,
    )
)
"""Transitions of emergency cases (:class:`~collector.notify.event.CaseEvent`)."""
