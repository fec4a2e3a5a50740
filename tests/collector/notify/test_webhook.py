"""send_webhook against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import time

import pytest

from collector.notify import (
    SIGNATURE_HEADER,
    DeliveryError,
    WebhookTarget,
    payload_bytes,
    send_webhook,
    verify,
    webhook_payload,
)
from tests.collector.notify.factories import SECRET, T0, case_event, webhook
from tests.collector.notify.servers import http_receiver


def _target(url: str, **extra) -> WebhookTarget:
    return WebhookTarget.model_validate(webhook(url, **extra))


def test_signed_post_reaches_the_receiver():
    body = payload_bytes(webhook_payload(case_event(), "n-1"))
    with http_receiver() as rx:
        status = send_webhook(_target(rx.url()), body, event="case.opened", delivery="n-1", now=T0)
    assert status == 200
    [req] = rx.requests
    assert req.path == "/hook"
    assert req.body == body
    assert req.headers["Content-Type"] == "application/json; charset=utf-8"
    assert req.headers["X-Diag-Event"] == "case.opened"
    assert req.headers["X-Diag-Delivery"] == "n-1"
    assert verify(SECRET.encode(), req.body, req.headers[SIGNATURE_HEADER], now=T0)
    assert not verify(b"not-the-secret-0000", req.body, req.headers[SIGNATURE_HEADER], now=T0)
    assert json.loads(req.body)["case"]["id"] == "C-2023-0042"


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        pytest.param(500, True, id="500 retryable"),
        pytest.param(503, True, id="503 retryable"),
        pytest.param(429, True, id="429 retryable"),
        pytest.param(408, True, id="408 retryable"),
        pytest.param(400, False, id="400 permanent"),
        pytest.param(401, False, id="401 permanent"),
        pytest.param(404, False, id="404 permanent"),
        pytest.param(301, False, id="redirect not followed"),
    ],
)
def test_status_classification(status, retryable):
    with http_receiver([status]) as rx, pytest.raises(DeliveryError) as info:
        send_webhook(_target(rx.url("/secret-path")), b"{}", event="case.opened", delivery="d", now=T0)
    assert info.value.retryable is retryable
    assert f"HTTP {status}" in str(info.value)
    assert "secret-path" not in str(info.value)
    assert len(rx.requests) == 1


def test_retry_after_is_reported():
    server = http_receiver([429], extra_headers={"Retry-After": "120"})
    with server as rx, pytest.raises(DeliveryError) as info:
        send_webhook(_target(rx.url()), b"{}", event="case.opened", delivery="d", now=T0)
    assert info.value.retry_after_s == 120.0


def test_hanging_server_times_out_quickly():
    with http_receiver() as rx:
        rx.hang.set()
        start = time.monotonic()
        with pytest.raises(DeliveryError) as info:
            send_webhook(_target(rx.url(), timeout_s=0.3), b"{}", event="case.opened", delivery="d", now=T0)
        elapsed = time.monotonic() - start
    assert info.value.retryable
    assert "timed out after 0.3s" in str(info.value)
    assert elapsed < 2.0


def test_connection_refused_is_retryable_and_secret_free():
    with http_receiver() as rx:
        url = rx.url("/tok3n")
    # The server is closed now: nothing listens on that port.
    with pytest.raises(DeliveryError) as info:
        send_webhook(_target(url), b"{}", event="case.opened", delivery="d", now=T0)
    assert info.value.retryable
    assert "tok3n" not in str(info.value)
    assert SECRET not in str(info.value)
