"""Notifications: signed JSON webhooks and bilingual e-mail, through the store's leased outbox.

Typical wiring::

    notifier = Notifier.from_config(store, cfg.notify, metrics=PrometheusNotifyMetrics(reg))
    notifier.start()
    ...
    notifier.notify(CaseEvent(event="opened", case_id=..., customer=..., ...))
    ...
    notifier.close()

See :mod:`collector.notify.event` for the payload schema, :mod:`collector.notify.notifier`
for retry and outbox semantics, :mod:`collector.notify.kinds` for adding a kind of
notification, :mod:`collector.notify.signing` for the signature header.
"""

from collector.notify.config import (
    CustomerNotifyConfig,
    DeliveryPolicy,
    EmailTarget,
    Language,
    NotifyConfig,
    WebhookTarget,
    redact_url,
)
from collector.notify.errors import DeliveryError
from collector.notify.event import (
    EVENT_KINDS,
    PAYLOAD_VERSION,
    CaseEvent,
    EventKind,
    notification_id,
    payload_bytes,
    webhook_payload,
)
from collector.notify.kinds import KINDS, NoticeKind, kind_of, notice_id, register
from collector.notify.mail import render_email, send_email
from collector.notify.metrics import NotifyMetrics, NullNotifyMetrics, PrometheusNotifyMetrics
from collector.notify.notifier import CustomerLookup, Notifier, PassReport, backoff_delay
from collector.notify.signing import SIGNATURE_HEADER, sign, verify
from collector.notify.survey import SURVEY, SurveyNotice
from collector.notify.webhook import send_webhook

__all__ = [
    "EVENT_KINDS",
    "KINDS",
    "PAYLOAD_VERSION",
    "SIGNATURE_HEADER",
    "SURVEY",
    "CaseEvent",
    "CustomerLookup",
    "CustomerNotifyConfig",
    "DeliveryError",
    "DeliveryPolicy",
    "EmailTarget",
    "EventKind",
    "Language",
    "NoticeKind",
    "Notifier",
    "NotifyConfig",
    "NotifyMetrics",
    "NullNotifyMetrics",
    "PassReport",
    "PrometheusNotifyMetrics",
    "SurveyNotice",
    "WebhookTarget",
    "backoff_delay",
    "kind_of",
    "notice_id",
    "notification_id",
    "payload_bytes",
    "redact_url",
    "register",
    "render_email",
    "send_email",
    "send_webhook",
    "sign",
    "verify",
    "webhook_payload",
]
