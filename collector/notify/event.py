"""What a notification is about: a :class:`CaseEvent`, and its versioned webhook payload.

The wiring session maps the collector's real cases onto this small, typed record; the
notification code never reads the store. ``event_at`` is when the case changed state
(opened, acknowledged, ...); together with the case id and the event it identifies the
notification, so enqueueing the same transition twice sends it once.

Webhook payload, schema version 1 (``PAYLOAD_VERSION``); times are ISO 8601 UTC::

    {
      "version": 1,
      "id": "5b0c…",                 # notification id: same on every retry, dedup on it
      "event": "case.opened",        # case.opened|acknowledged|resolved|reopened|sla_breach
      "event_at": "2023-11-14T22:13:20Z",
      "case": {
        "id": "C-2023-0042",
        "url": "https://diag.example.com/cases/C-2023-0042",
        "customer": "acme",
        "title": "Application latency up 8x on db1",
        "severity": "CRIT",          # WARN|CRIT|UNKNOWN (checks.api.Severity)
        "hosts": ["db1", "app1"],
        "probable_cause": "storage latency on db1 rose first (sdb await 120 ms)",
        "opened_at": "2023-11-14T22:10:00Z",
        "actor": null,               # who acknowledged/resolved, when known
        "note": null                 # resolution or acknowledgement note, or which SLA target was breached
      }
    }

>>> ev = CaseEvent(event="opened", case_id="C-1", customer="acme", title="Disk latency",
...                severity=Severity.CRIT, hosts=("db1",), probable_cause="storage",
...                opened_at=1_700_000_000.0, event_at=1_700_000_000.0,
...                url="https://diag.example.com/cases/C-1")
>>> p = webhook_payload(ev, "n1")
>>> p["version"], p["event"], p["case"]["severity"], p["case"]["opened_at"]
(1, 'case.opened', 'CRIT', '2023-11-14T22:13:20Z')
>>> CaseEvent.model_validate_json(ev.model_dump_json()) == ev
True
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from checks.api import Severity

__all__ = [
    "CASE_TRANSITIONS",
    "EVENT_KINDS",
    "ID_NAMESPACE",
    "PAYLOAD_VERSION",
    "CaseEvent",
    "EventKind",
    "case_identity",
    "iso_utc",
    "notification_id",
    "payload_bytes",
    "webhook_payload",
]

PAYLOAD_VERSION: Final = 1
"""Version of the webhook payload schema; bumped on any incompatible change."""

EventKind = Literal["opened", "acknowledged", "resolved", "reopened", "survey", "fault_report", "sla_breach"]
EVENT_KINDS: Final[tuple[EventKind, ...]] = (
    "opened",
    "acknowledged",
    "resolved",
    "reopened",
    "survey",
    "sla_breach",
)
"""Every case event that can be notified, in lifecycle order; ``survey`` is the follow-up's
satisfaction survey to the case's contact (:mod:`collector.notify.survey`). ``fault_report``
(a resolved emergency case's report, :mod:`collector.records.fault_mail`) goes only to
destinations that list it."""
CASE_TRANSITIONS: Final[tuple[EventKind, ...]] = ("opened", "acknowledged", "resolved", "reopened")
"""The case transitions: what a webhook receives unless its ``events`` say otherwise."""

ID_NAMESPACE: Final = uuid.UUID("6f1c2b9e-1d7a-5c3e-9a41-8e2f0d3b7c55")
"""Namespace for deterministic notification ids (uuid5), fixed forever: receivers dedup on them."""


def iso_utc(ts: float) -> str:
    """Unix seconds as ISO 8601 UTC with a ``Z``, whole seconds.

    >>> iso_utc(0.0)
    '1970-01-01T00:00:00Z'
    """
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class CaseEvent(BaseModel):
    """One state change of an emergency case, as told to a customer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event: EventKind
    """Which transition happened."""
    case_id: str = Field(min_length=1, max_length=200)
    """The case's stable id, as shown in diagctl and the dashboard."""
    customer: str = Field(min_length=1, max_length=200)
    """Customer id: selects the notification configuration."""
    title: str = Field(min_length=1, max_length=500)
    """One-line case title (line breaks are folded to spaces)."""
    severity: Severity
    """Case severity (normally WARN or CRIT)."""
    hosts: tuple[str, ...] = ()
    """Hosts involved, most relevant first."""
    probable_cause: str = Field(default="", max_length=2000)
    """Summary of the top-ranked probable cause; empty while unknown."""
    opened_at: float = Field(ge=0)
    """When the case was opened (Unix seconds)."""
    event_at: float = Field(ge=0)
    """When this transition happened (Unix seconds); part of the notification's identity."""
    url: str = Field(default="", max_length=2000)
    """Link to the case in the dashboard; empty when the collector has no public URL."""
    actor: str | None = Field(default=None, max_length=200)
    """Who acknowledged, resolved or reopened the case, when known."""
    note: str | None = Field(default=None, max_length=2000)
    """Acknowledgement or resolution note, when given."""

    @field_validator("title", "case_id", "customer", "actor")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        # These end up in e-mail headers: a line break there would inject headers.
        return None if value is None else " ".join(value.split())


def notification_id(event: CaseEvent, channel: str, target: str) -> str:
    """The id of one notification (event x destination): deterministic, so duplicates collapse.

    >>> ev = CaseEvent(event="opened", case_id="C-1", customer="acme", title="t",
    ...                severity=Severity.WARN, opened_at=1.0, event_at=1.0)
    >>> notification_id(ev, "email", "email") == notification_id(ev, "email", "email")
    True
    >>> notification_id(ev, "email", "email") == notification_id(ev, "webhook", "w")
    False
    """
    return uuid.uuid5(ID_NAMESPACE, "\x1f".join((case_identity(event), channel, target))).hex


def case_identity(event: CaseEvent) -> str:
    """What makes two case events the same notification: customer, case, transition and its time."""
    return "\x1f".join((event.customer, event.case_id, event.event, repr(event.event_at)))


def webhook_payload(event: CaseEvent, notification: str) -> dict[str, Any]:
    """The webhook JSON document (schema in the module docstring) for one notification."""
    return {
        "version": PAYLOAD_VERSION,
        "id": notification,
        "event": f"case.{event.event}",
        "event_at": iso_utc(event.event_at),
        "case": {
            "id": event.case_id,
            "url": event.url,
            "customer": event.customer,
            "title": event.title,
            "severity": event.severity.value,
            "hosts": list(event.hosts),
            "probable_cause": event.probable_cause,
            "opened_at": iso_utc(event.opened_at),
            "actor": event.actor,
            "note": event.note,
        },
    }


def payload_bytes(payload: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON (non-ASCII kept as is): the exact bytes that are signed and sent."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
