"""Per-customer notification settings, validated like every other config (unknown keys are errors).

A customer may have any number of webhooks and one e-mail destination, each with the case
events it wants. Secrets (webhook HMAC secrets, the SMTP password) are ``SecretStr``: they
print as ``**********`` and never reach a log line or an error message.

>>> cfg = CustomerNotifyConfig.model_validate({
...     "language": "zh-CN",
...     "webhooks": [{"url": "https://hooks.example.com/diag", "secret": "0123456789abcdef"}],
...     "email": {"smtp_host": "mail.example.com", "from": "diag@vendor.example",
...               "to": ["ops@customer.example"], "username": "diag", "password": "pw",
...               "events": ["opened", "resolved"]},
... })
>>> cfg.webhooks[0].key, cfg.email.events if cfg.email else None
('webhook-hooks.example.com-2835d7', ('opened', 'resolved'))
>>> "0123456789abcdef" in repr(cfg) or "pw'" in repr(cfg)
False
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from email.headerregistry import Address
from email.utils import parseaddr
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from collector.notify.event import CASE_TRANSITIONS, EVENT_KINDS, EventKind

__all__ = [
    "CustomerNotifyConfig",
    "DeliveryPolicy",
    "EmailTarget",
    "Language",
    "NotifyConfig",
    "WebhookTarget",
    "redact_url",
]

Language = Literal["en", "zh-CN"]
"""Report languages: English and Simplified Chinese."""

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def redact_url(url: str) -> str:
    """``scheme://host[:port]/…``: a URL with its path and query hidden (they often hold tokens).

    >>> redact_url("https://hooks.example.com:8443/services/T000/B000/XXXX?token=abc")
    'https://hooks.example.com:8443/…'
    """
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/…"


def _events(value: tuple[EventKind, ...]) -> tuple[EventKind, ...]:
    if not value:
        raise ValueError(f"expected at least one of {', '.join(EVENT_KINDS)}")
    if len(set(value)) != len(value):
        raise ValueError("duplicate event")
    return value


def _address(value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError("expected one e-mail address on one line")
    _, addr = parseaddr(value)
    local, sep, domain = addr.rpartition("@")
    if not sep or not local or not domain:
        raise ValueError("expected an e-mail address like ops@example.com")
    Address(addr_spec=addr)  # raises ValueError on what the e-mail package cannot emit
    return value.strip()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        # A DNS name other than localhost: not known to be loopback.
        return False


class WebhookTarget(_Model):
    """An HTTP(S) endpoint that receives the JSON payload, signed with HMAC-SHA256."""

    url: str
    """Endpoint URL (http or https). Treated as a secret: logs show only scheme and host."""
    secret: SecretStr = Field(min_length=16)
    """Shared secret for the ``X-Diag-Signature`` header (at least 16 characters)."""
    name: str | None = None
    """Label used in logs, metrics and the outbox; derived from the host when omitted."""
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    """Connect and read timeout of one attempt."""
    events: tuple[EventKind, ...] = (*CASE_TRANSITIONS, "sla_breach")
    """Case events sent to this endpoint (default: the transitions and SLA breaches; add
    ``survey`` to hear of surveys sent, without their link)."""

    _v_events = field_validator("events")(_events)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected an http:// or https:// URL with a host")
        if parts.username or parts.password:
            raise ValueError("credentials in the URL are not allowed; the payload is signed instead")
        try:
            _ = parts.port
        except ValueError:
            raise ValueError("expected a port 0-65535") from None
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not _NAME_RE.match(value):
            raise ValueError("expected 1-64 characters: letters, digits, '_', '.', '-'")
        return value

    @property
    def key(self) -> str:
        """Stable, secret-free identity of this endpoint (its ``name``, or host + URL digest)."""
        if self.name:
            return self.name
        digest = hashlib.sha256(self.url.encode()).hexdigest()[:6]
        return f"webhook-{urlsplit(self.url).hostname}-{digest}"

    @property
    def label(self) -> str:
        """How logs name this endpoint: its key and redacted URL."""
        return f"{self.key} ({redact_url(self.url)})"


class EmailTarget(_Model):
    """SMTP delivery: one multipart (text + HTML) message per event to all ``to`` addresses."""

    smtp_host: str = Field(min_length=1)
    """SMTP server (relay) host name or address."""
    smtp_port: int = Field(default=587, ge=1, le=65535)
    """SMTP port; 587 (submission) with STARTTLS by default."""
    starttls: bool = True
    """Upgrade the connection with STARTTLS (certificate verified) before anything else."""
    ca_file: Path | None = None
    """CA bundle that signs the server's certificate, for private CAs; system CAs otherwise."""
    username: str | None = None
    """SMTP AUTH user; omit for an unauthenticated relay."""
    password: SecretStr | None = None
    """SMTP AUTH password (required with ``username``)."""
    from_: str = Field(alias="from")
    """Sender address, e.g. ``remote-diag <diag@vendor.example>``."""
    to: tuple[str, ...] = Field(min_length=1)
    """Recipients."""
    timeout_s: float = Field(default=30.0, gt=0, le=300)
    """Socket timeout of each SMTP step."""
    events: tuple[EventKind, ...] = EVENT_KINDS
    """Case events sent by e-mail; ``survey`` (the follow-up's survey link) goes to the case's
    contact, not to ``to``."""

    _v_events = field_validator("events")(_events)

    @field_validator("from_")
    @classmethod
    def _from(cls, value: str) -> str:
        return _address(value)

    @field_validator("to")
    @classmethod
    def _to(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_address(v) for v in value)

    @model_validator(mode="after")
    def _credentials(self) -> EmailTarget:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        if self.username is not None and not self.starttls and not _is_loopback(self.smtp_host):
            raise ValueError("SMTP credentials need starttls: true (they would cross the network in clear)")
        return self


class CustomerNotifyConfig(_Model):
    """Where and how one customer is told about its emergency cases."""

    language: Language = "en"
    """Language of e-mail subjects and bodies (the customer's report language)."""
    timezone: str = "UTC"
    """IANA time zone used for times in e-mails, e.g. ``Asia/Shanghai``."""
    webhooks: tuple[WebhookTarget, ...] = ()
    """Webhook endpoints."""
    email: EmailTarget | None = None
    """E-mail destination, if any."""

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("expected an IANA time zone such as UTC or Asia/Shanghai") from None
        return value

    @model_validator(mode="after")
    def _unique_keys(self) -> CustomerNotifyConfig:
        keys = [w.key for w in self.webhooks]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise ValueError(f"webhooks must have distinct names (duplicate: {', '.join(dupes)})")
        return self


class DeliveryPolicy(_Model):
    """Retries, backoff and the outbox bound, shared by all customers."""

    max_attempts: int = Field(default=10, ge=1, le=100)
    """Attempts per notification before it is given up (counted as ``failed``)."""
    backoff_initial_s: float = Field(default=30.0, gt=0)
    """Delay after the first failed attempt; doubles after each further failure."""
    backoff_max_s: float = Field(default=3600.0, gt=0)
    """Longest delay between two attempts."""
    jitter: float = Field(default=0.2, ge=0, le=1)
    """Each delay is scaled by a random factor in [1 - jitter, 1 + jitter]."""
    max_age_s: float = Field(default=48 * 3600.0, gt=0)
    """A notification still undelivered this long after it was queued is given up."""
    max_outbox_entries: int = Field(default=10_000, ge=1)
    """Outbox bound: when full, the oldest entry is dropped (counted as ``dropped``)."""
    batch: int = Field(default=50, ge=1, le=10_000)
    """Most notifications attempted in one delivery pass."""
    lease_s: float = Field(default=300.0, ge=1, le=86_400)
    """How long a collector holds a notification it is delivering before another collector
    sharing the store may take it over (it died mid-delivery); longer than one attempt."""

    @model_validator(mode="after")
    def _order(self) -> DeliveryPolicy:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s must be at least backoff_initial_s")
        return self


class NotifyConfig(_Model):
    """The ``notify`` section: delivery policy plus per-customer destinations."""

    delivery: DeliveryPolicy = DeliveryPolicy()
    """Retry and outbox policy."""
    customers: dict[str, CustomerNotifyConfig] = {}
    """Destinations by customer id; a customer without an entry is not notified."""

    @model_validator(mode="after")
    def _lease_outlasts_attempts(self) -> NotifyConfig:
        lease = self.delivery.lease_s
        for name, cfg in self.customers.items():
            for hook in cfg.webhooks:
                if hook.timeout_s >= lease:
                    raise ValueError(
                        f"customers.{name}: webhook {hook.key} timeout_s ({hook.timeout_s:g}) must be "
                        f"shorter than delivery.lease_s ({lease:g}), or another collector may send it again"
                    )
            if cfg.email is not None and cfg.email.timeout_s >= lease:
                raise ValueError(
                    f"customers.{name}: email timeout_s ({cfg.email.timeout_s:g}) must be shorter "
                    f"than delivery.lease_s ({lease:g}), or another collector may send it again"
                )
        return self

    def for_customer(self, customer: str) -> CustomerNotifyConfig | None:
        """The customer's settings, or None when it has none."""
        return self.customers.get(customer)
