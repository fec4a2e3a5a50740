"""A breach found by the sweep goes out through the real notification outbox to a real webhook
receiver (loopback HTTP) and renders as e-mail in both languages."""

from __future__ import annotations

import json

from checks.api import Severity
from collector.desk.service import escalation
from collector.desk.sweep import SlaSweep
from collector.notify import CaseEvent, Notifier, PassReport
from collector.notify.mail import render_email
from collector.store import Scope, Store
from collector.store.customer_file import CustomerFileRepo
from collector.store.sla import SlaRepo
from tests.collector.cases.test_api import open_case
from tests.collector.desk.test_sweep import CONTRACT, MON_9
from tests.collector.notify.factories import customer, mail_target, webhook
from tests.collector.notify.servers import http_receiver
from tests.collector.store.conftest import pg_store_session, pg_url, store

__all__ = ["pg_store_session", "pg_url", "store"]


def test_a_breach_is_escalated_once_through_the_outbox(store: Store, tmp_path):
    case_id = open_case(store, "acme", "db1", at=MON_9)
    CustomerFileRepo(store).add_contract(Scope.everything(), "acme", CONTRACT, now=MON_9)
    with http_receiver() as rx:
        configs = {"acme": customer(webhooks=[webhook(rx.url())])}
        notifier = Notifier(store, configs.get, clock=lambda: MON_9 + 3601)
        sweep = SlaSweep(
            SlaRepo(store), CustomerFileRepo(store), escalate=escalation(notifier, "https://diag.example")
        )
        sweep.run(MON_9 + 60)
        assert sweep.run(MON_9 + 3601).breaches == 1
        assert sweep.run(MON_9 + 3700).breaches == 0
        assert notifier.deliver_due() == PassReport(sent=1)
        notifier.close()
    [request] = rx.requests
    body = json.loads(request.body)
    assert body["event"] == "case.sla_breach"
    assert body["case"]["id"] == case_id and body["case"]["url"] == f"https://diag.example/cases/{case_id}"
    assert "first response" in body["case"]["note"]


def test_breach_mail_in_both_languages():
    event = CaseEvent(
        event="sla_breach",
        case_id="C-acme-1",
        customer="acme",
        title="数据库响应变慢",
        severity=Severity.CRIT,
        opened_at=MON_9,
        event_at=MON_9 + 3600,
        note="SLA breached: first response target of 1h00m business time passed",
    )
    for language, words in (("en", "breached its SLA"), ("zh-CN", "已超出服务时限")):
        cfg = customer(language=language, email=mail_target(25))
        assert cfg.email is not None
        msg = render_email(event, cfg, cfg.email, "n1")
        assert words in msg["Subject"]
        assert msg["X-Diag-Event"] == "case.sla_breach"
