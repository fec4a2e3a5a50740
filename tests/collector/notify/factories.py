"""Builders shared by the notification tests."""

from __future__ import annotations

from typing import Any

from checks.api import Severity
from collector.notify import CaseEvent, CustomerNotifyConfig

T0 = 1_700_000_000.0
SECRET = "whsec-0123456789abcdef"
SMTP_PASSWORD = "smtp-pa55-word-x9"


def case_event(**overrides: Any) -> CaseEvent:
    fields: dict[str, Any] = {
        "event": "opened",
        "case_id": "C-2023-0042",
        "customer": "acme",
        "title": "Application latency up 8x on app1",
        "severity": Severity.CRIT,
        "hosts": ("db1", "app1"),
        "probable_cause": "storage latency on db1 rose first",
        "opened_at": T0,
        "event_at": T0,
        "url": "https://diag.example.com/cases/C-2023-0042",
    }
    fields.update(overrides)
    return CaseEvent(**fields)


def customer(**data: Any) -> CustomerNotifyConfig:
    return CustomerNotifyConfig.model_validate(data)


def webhook(url: str, **extra: Any) -> dict[str, Any]:
    return {"url": url, "secret": SECRET, "name": "ops", "timeout_s": 2.0, **extra}


def mail_target(port: int, **extra: Any) -> dict[str, Any]:
    return {
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "starttls": False,
        "from": "remote-diag <diag@vendor.example>",
        "to": ["ops@acme.example", "cto@acme.example"],
        "timeout_s": 2.0,
        **extra,
    }
