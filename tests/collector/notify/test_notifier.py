"""Notifier end to end: the store's outbox (SQLite here; PostgreSQL and leases in
tests/collector/store/test_outbox.py), retries, backoff, metrics, logs, worker thread, real servers."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import json
import logging
import time

import pytest

from collector.notify import (
    KINDS,
    SIGNATURE_HEADER,
    CustomerNotifyConfig,
    DeliveryPolicy,
    Notifier,
    NotifyConfig,
    PassReport,
    PrometheusNotifyMetrics,
    verify,
)
from collector.store import Store
from tests.collector.notify.factories import (
    SECRET,
    SMTP_PASSWORD,
    T0,
    case_event,
    customer,
    mail_target,
    webhook,
)
from tests.collector.notify.servers import http_receiver, make_cert, server_tls_context, smtp_server

NO_JITTER = DeliveryPolicy(backoff_initial_s=30, backoff_max_s=600, jitter=0.0, max_attempts=4)


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path):
    s = Store.open(f"sqlite:///{tmp_path / 'collector.db'}")
    yield s
    s.close()


def _notifier(store: Store, configs: dict[str, CustomerNotifyConfig], policy=NO_JITTER, clock=None):
    metrics = PrometheusNotifyMetrics()
    n = Notifier(store, configs.get, policy=policy, metrics=metrics, clock=clock or Clock())
    return n, metrics


def _count(metrics: PrometheusNotifyMetrics, channel: str, outcome: str) -> float:
    value = metrics.registry.get_sample_value(
        "diag_notify_deliveries_total", {"channel": channel, "outcome": outcome}
    )
    assert value is not None
    return value


@pytest.fixture(autouse=True)
def _no_secret_in_logs(caplog):
    caplog.set_level(logging.DEBUG, logger="collector.notify")
    yield
    for record in caplog.records:
        text = record.getMessage()
        assert SECRET not in text and SMTP_PASSWORD not in text, text
        assert "/hook" not in text, text  # webhook URL paths are secret-ish: never logged


def test_webhook_delivered_signed_and_removed(store):
    with http_receiver() as rx:
        n, metrics = _notifier(store, {"acme": customer(webhooks=[webhook(rx.url())])})
        ids = n.notify(case_event())
        assert len(ids) == 1 and n.outbox.count() == 1
        assert n.deliver_due() == PassReport(sent=1)
    [req] = rx.requests
    assert verify(SECRET.encode(), req.body, req.headers[SIGNATURE_HEADER], now=T0)
    body = json.loads(req.body)
    assert body["id"] == ids[0] == req.headers["X-Diag-Delivery"]
    assert (body["version"], body["event"]) == (1, "case.opened")
    assert n.outbox.count() == 0
    assert _count(metrics, "webhook", "sent") == 1
    assert metrics.registry.get_sample_value("diag_notify_outbox_entries") == 0
    n.close()


def test_500_then_success_is_retried_after_backoff_with_the_same_id(store):
    clock = Clock()
    with http_receiver([500]) as rx:
        n, metrics = _notifier(store, {"acme": customer(webhooks=[webhook(rx.url())])}, clock=clock)
        n.notify(case_event())
        assert n.deliver_due() == PassReport(retried=1)
        [entry] = n.outbox.entries()
        assert (entry.attempts, entry.next_at) == (1, T0 + 30)
        assert entry.last_error is not None and "HTTP 500" in entry.last_error
        assert n.deliver_due(T0 + 29) == PassReport()  # not due yet
        clock.now = T0 + 30
        assert n.deliver_due() == PassReport(sent=1)
    first, second = rx.requests
    assert first.headers["X-Diag-Delivery"] == second.headers["X-Diag-Delivery"]
    assert first.body == second.body
    assert verify(SECRET.encode(), second.body, second.headers[SIGNATURE_HEADER], now=T0 + 30)
    assert (_count(metrics, "webhook", "retried"), _count(metrics, "webhook", "sent")) == (1, 1)
    n.close()


def test_backoff_doubles_then_gives_up_after_max_attempts(store, caplog):
    clock = Clock()
    with http_receiver([503] * 10) as rx:
        n, metrics = _notifier(store, {"acme": customer(webhooks=[webhook(rx.url())])}, clock=clock)
        n.notify(case_event())
        delays = []
        for _ in range(3):
            n.deliver_due()
            [entry] = n.outbox.entries()
            delays.append(entry.next_at - clock.now)
            clock.now = entry.next_at
        assert delays == [30, 60, 120]
        assert n.deliver_due() == PassReport(failed=1)
    assert len(rx.requests) == 4 and n.outbox.count() == 0
    assert _count(metrics, "webhook", "failed") == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("giving up after 4 attempt(s)" in e and "case C-2023-0042" in e for e in errors)
    n.close()


def test_permanent_error_fails_at_once(store):
    with http_receiver([410]) as rx:
        n, metrics = _notifier(store, {"acme": customer(webhooks=[webhook(rx.url())])})
        n.notify(case_event())
        assert n.deliver_due() == PassReport(failed=1)
    assert n.outbox.count() == 0 and _count(metrics, "webhook", "failed") == 1
    n.close()


def test_retry_after_sets_the_minimum_delay(store):
    with http_receiver([429], extra_headers={"Retry-After": "300"}) as rx:
        n, _ = _notifier(store, {"acme": customer(webhooks=[webhook(rx.url())])})
        n.notify(case_event())
        n.deliver_due()
    [entry] = n.outbox.entries()
    assert entry.next_at == T0 + 300
    n.close()


def test_hanging_webhook_times_out_and_stays_queued(store):
    with http_receiver() as rx:
        rx.hang.set()
        n, metrics = _notifier(store, {"acme": customer(webhooks=[webhook(rx.url(), timeout_s=0.3)])})
        n.notify(case_event())
        start = time.monotonic()
        assert n.deliver_due() == PassReport(retried=1)
        assert time.monotonic() - start < 2.0
    [entry] = n.outbox.entries()
    assert entry.last_error is not None and "timed out after 0.3s" in entry.last_error
    assert _count(metrics, "webhook", "retried") == 1
    n.close()


def test_old_entries_are_given_up_after_max_age(store):
    clock = Clock()
    policy = DeliveryPolicy(backoff_initial_s=30, jitter=0.0, max_age_s=100, max_attempts=50)
    with http_receiver([500, 500]) as rx:
        n, _ = _notifier(store, {"acme": customer(webhooks=[webhook(rx.url())])}, policy, clock)
        n.notify(case_event())
        assert n.deliver_due() == PassReport(retried=1)
        clock.now = T0 + 100
        assert n.deliver_due() == PassReport(failed=1)
    n.close()


def test_pending_notifications_survive_a_restart(store):
    with http_receiver() as rx:
        configs = {"acme": customer(webhooks=[webhook(rx.url())])}
        n, _ = _notifier(store, configs)
        n.notify(case_event())
        n.close()  # collector stops before delivering
        assert rx.requests == []
        again, _ = _notifier(store, configs)
        assert again.deliver_due() == PassReport(sent=1)
    assert len(rx.requests) == 1
    again.close()


def test_duplicate_notify_queues_once_and_events_filter(store):
    with smtp_server() as srv:
        cfg = customer(email=mail_target(srv.port, events=["opened", "resolved"]))
        n, _ = _notifier(store, {"acme": cfg})
        assert len(n.notify(case_event())) == 1
        assert n.notify(case_event()) == []
        assert n.notify(case_event(event="acknowledged", event_at=T0 + 5)) == []
        assert n.notify(case_event(customer="unknown-customer")) == []
        assert n.deliver_due() == PassReport(sent=1)
    assert len(srv.messages) == 1
    n.close()


def test_bounded_outbox_drops_oldest_and_counts(store):
    policy = DeliveryPolicy(max_outbox_entries=2)
    with http_receiver() as rx:
        n, metrics = _notifier(store, {"acme": customer(webhooks=[webhook(rx.url())])}, policy)
        for i in range(4):
            n.notify(case_event(case_id=f"C-{i}"))
        assert [e.subject for e in n.outbox.entries()] == ["C-2", "C-3"]
        assert _count(metrics, "webhook", "dropped") == 2
    n.close()


def test_removed_destination_is_unroutable(store):
    configs = {"acme": customer(webhooks=[webhook("http://127.0.0.1:9/hook")], email=mail_target(9))}
    n, metrics = _notifier(store, configs)
    n.notify(case_event())
    configs["acme"] = customer()  # config reloaded without destinations
    assert n.deliver_due() == PassReport(unroutable=2)
    assert _count(metrics, "webhook", "unroutable") == 1 and _count(metrics, "email", "unroutable") == 1
    n.close()


def test_email_with_starttls_auth_and_a_temporary_failure(store, tmp_path):
    cert, key = make_cert(tmp_path)
    clock = Clock()
    mail = mail_target(0, starttls=True, ca_file=str(cert), username="diag", password=SMTP_PASSWORD)
    with smtp_server(
        tls=server_tls_context(cert, key),
        credentials=("diag", SMTP_PASSWORD),
        data_replies=["452 4.3.1 full"],
    ) as srv:
        mail["smtp_port"] = srv.port
        n, metrics = _notifier(store, {"acme": customer(language="zh-CN", email=mail)}, clock=clock)
        n.notify(case_event())
        assert n.deliver_due() == PassReport(retried=1)
        clock.now += 30
        assert n.deliver_due() == PassReport(sent=1)
    [got] = srv.messages
    assert got.tls and got.user == "diag"
    msg = email.message_from_bytes(got.data, policy=email.policy.default)
    assert msg["Subject"].startswith("【应急维护】紧急事件已创建 [严重] C-2023-0042")
    assert (_count(metrics, "email", "retried"), _count(metrics, "email", "sent")) == (1, 1)
    n.close()


def test_unexpected_error_is_retried_and_logged_without_details(store, monkeypatch, caplog):
    # A rendering bug cannot be produced with valid input: simulate one.
    def broken(*args, **kwargs):
        raise RuntimeError(f"boom {SMTP_PASSWORD}")

    monkeypatch.setitem(KINDS, "case", dataclasses.replace(KINDS["case"], render_email=broken))
    n, _ = _notifier(store, {"acme": customer(email=mail_target(9))})
    n.notify(case_event())
    assert n.deliver_due() == PassReport(retried=1)
    [entry] = n.outbox.entries()
    assert entry.last_error == "internal error RuntimeError"
    n.close()


def test_background_thread_delivers_promptly_and_stops(store):
    with http_receiver() as rx:
        n = Notifier.from_config(
            store, NotifyConfig.model_validate({"customers": {"acme": {"webhooks": [webhook(rx.url())]}}})
        )
        n.start()
        n.start()  # idempotent
        n.notify(case_event())
        deadline = time.monotonic() + 5.0
        while not rx.requests and time.monotonic() < deadline:
            time.sleep(0.02)
        n.close()
    assert len(rx.requests) == 1
    assert n.outbox.count() == 0


def test_rows_hold_no_secret_and_no_url(store):
    with http_receiver() as rx:
        cfg = customer(
            webhooks=[webhook(rx.url())], email=mail_target(9, password=SMTP_PASSWORD, username="u")
        )
        n, _ = _notifier(store, {"acme": cfg})
        assert len(n.notify(case_event())) == 2
        for row in n.outbox.entries():
            stored = repr(row)
            assert SECRET not in stored and SMTP_PASSWORD not in stored and rx.url() not in stored
            assert row.target in ("ops", "email")
    n.close()


def test_unreadable_rows_are_discarded_counted_and_do_not_block(store):
    from collector.store.outbox import OutboxRow

    with http_receiver() as rx:
        n, metrics = _notifier(store, {"acme": customer(webhooks=[webhook(rx.url())])})
        bad = [
            OutboxRow("x1", "case", "acme", "webhook", "ops", "C-9", '{"event": "exploded"', T0, next_at=T0),
            OutboxRow("x2", "no-such-kind", "acme", "webhook", "ops", "C-9", "{}", T0, next_at=T0),
        ]
        n.outbox.add(bad, max_entries=10)
        n.notify(case_event())
        assert n.deliver_due() == PassReport(sent=1, failed=2)
    assert len(rx.requests) == 1 and n.outbox.count() == 0
    assert _count(metrics, "webhook", "failed") == 2
    n.close()


def test_a_local_outbox_file_is_imported_and_delivered_with_its_id(store, tmp_path):
    from collector.notify import notification_id
    from tests.collector.store.test_outbox import legacy_outbox

    ev = case_event()
    nid = notification_id(ev, "webhook", "ops")
    legacy_outbox(
        tmp_path / "notify",
        [(nid, "acme", "webhook", "ops", ev.case_id, ev.model_dump_json(), T0, 1, T0, "HTTP 500")],
    )
    with http_receiver() as rx:
        n, _ = _notifier(store, {"acme": customer(webhooks=[webhook(rx.url())])})
        assert n.import_local_outbox(tmp_path / "notify") == 1
        assert n.import_local_outbox(tmp_path / "notify") is None
        assert n.notify(ev) == []  # the imported entry is that very notification
        assert n.deliver_due() == PassReport(sent=1)
    [req] = rx.requests
    assert req.headers["X-Diag-Delivery"] == nid == json.loads(req.body)["id"]
    n.close()


def test_a_lease_shorter_than_an_attempt_is_refused():
    with pytest.raises(
        ValueError, match=r"customers.acme: webhook ops timeout_s \(30\) must be shorter than"
    ):
        NotifyConfig.model_validate(
            {
                "delivery": {"lease_s": 30},
                "customers": {"acme": {"webhooks": [webhook("http://127.0.0.1:9/h", timeout_s=30)]}},
            }
        )
