"""Case notifications: signed JSON webhooks and bilingual e-mail, through a durable outbox.

Typical wiring::

    notifier = Notifier.from_config(state_dir / "notify", cfg.notify, metrics=PrometheusNotifyMetrics(reg))
    notifier.start()
    ...
    notifier.notify(CaseEvent(event="opened", case_id=..., customer=..., ...))
    ...
    notifier.close()

See :mod:`collector.notify.event` for the payload schema, :mod:`collector.notify.notifier`
for retry and outbox semantics, :mod:`collector.notify.signing` for the signature header.
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
from collector.notify.mail import render_email, send_email
from collector.notify.metrics import NotifyMetrics, NullNotifyMetrics, PrometheusNotifyMetrics
from collector.notify.notifier import CustomerLookup, Notifier, PassReport, backoff_delay
from collector.notify.outbox import Outbox, OutboxEntry, OutboxError
from collector.notify.signing import SIGNATURE_HEADER, sign, verify
from collector.notify.webhook import send_webhook

__all__ = [
    "EVENT_KINDS",
    "PAYLOAD_VERSION",
    "SIGNATURE_HEADER",
    "CaseEvent",
    "CustomerLookup",
    "CustomerNotifyConfig",
    "DeliveryError",
    "DeliveryPolicy",
    "EmailTarget",
    "EventKind",
    "Language",
    "Notifier",
    "NotifyConfig",
    "NotifyMetrics",
    "NullNotifyMetrics",
    "Outbox",
    "OutboxEntry",
    "OutboxError",
    "PassReport",
    "PrometheusNotifyMetrics",
    "WebhookTarget",
    "backoff_delay",
    "notification_id",
    "payload_bytes",
    "redact_url",
    "render_email",
    "send_email",
    "send_webhook",
    "sign",
    "verify",
    "webhook_payload",
]
