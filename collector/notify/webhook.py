"""Webhook delivery: one signed JSON POST per notification, with httpx.

Headers: ``Content-Type: application/json``, ``X-Diag-Event: case.opened``,
``X-Diag-Delivery: <notification id>`` (the same on every retry: receivers dedup on it),
``X-Diag-Signature: t=...,v1=...`` (see :mod:`collector.notify.signing`).

Outcomes: any 2xx is delivered. 408, 425, 429 and 5xx, timeouts and connection errors are
retryable (``Retry-After`` in seconds is honoured as a minimum delay). Other statuses,
redirects included, are permanent: following a redirect would hand the signed payload to a
URL nobody configured. Proxy settings from the environment are ignored for the same reason.
"""

from __future__ import annotations

import httpx

from collector.notify.config import WebhookTarget
from collector.notify.errors import DeliveryError
from collector.notify.signing import SIGNATURE_HEADER, sign

__all__ = ["USER_AGENT", "send_webhook"]

USER_AGENT = "remote-diag-notify/1"
_RETRYABLE_STATUS = frozenset({408, 425, 429})


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    # Only the delta-seconds form; an HTTP date is rare from webhook receivers.
    return float(value) if value.isdigit() else None


def send_webhook(target: WebhookTarget, body: bytes, *, event: str, delivery: str, now: float) -> int:
    """POST ``body`` to ``target`` signed at ``now``; returns the 2xx status or raises DeliveryError."""
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": USER_AGENT,
        "X-Diag-Event": event,
        "X-Diag-Delivery": delivery,
        SIGNATURE_HEADER: sign(target.secret.get_secret_value().encode(), body, int(now)),
    }
    where = target.label
    try:
        with httpx.Client(timeout=target.timeout_s, follow_redirects=False, trust_env=False) as client:
            response = client.post(target.url, content=body, headers=headers)
    except httpx.TimeoutException:
        raise DeliveryError(
            f"webhook {where}: timed out after {target.timeout_s:g}s", retryable=True
        ) from None
    except httpx.HTTPError as exc:
        # The exception text may quote the URL (a secret): name only its type.
        raise DeliveryError(f"webhook {where}: {type(exc).__name__}", retryable=True) from None
    status = response.status_code
    if 200 <= status < 300:
        return status
    retryable = status >= 500 or status in _RETRYABLE_STATUS
    raise DeliveryError(
        f"webhook {where}: HTTP {status}", retryable=retryable, retry_after_s=_retry_after(response)
    )
