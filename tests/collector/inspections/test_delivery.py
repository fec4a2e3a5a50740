# ruff: noqa: RUF001  # full-width punctuation is correct in Chinese text
"""Inspection reports e-mailed to the plan's recipients: a real run, a real SMTP server on loopback.

The run is real (store, runner, rules, rendering); its one host has no connected agent, so
it is offline and the report says 0/1: the mail is about the report, not the agents. The
SMTP server is the loopback one of the notification tests (tests/collector/notify/servers.py).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import io
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from collector.http.app import create_app
from collector.inspections.delivery import LEASE_S, ReportMailer
from collector.inspections.plan import InspectionPlan, parse_plan
from collector.inspections.runner import Runner
from collector.notify.config import DeliveryPolicy, EmailTarget
from collector.store import Scope, Store
from collector.store.reports import ReportRepo
from diagctl.inspections import _print_run
from tests.collector.notify.servers import smtp_server
from tests.collector.store.pg import SKIP_REASON, fresh_database, pg_listening


def plan(recipients: list[str], language: str = "zh-CN") -> InspectionPlan:
    doc = {
        "name": "weekly",
        "customer": "acme",
        "timezone": "Asia/Shanghai",
        "schedule": "0 2 * * 1",
        "recipients": recipients,
        "language": language,
    }
    return parse_plan(doc, "weekly.yaml")


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        opened = Store.open(f"sqlite:///{tmp_path / 'c.db'}")
        opened.enroll_agent("acme", host="db1")
        yield opened
        opened.close()
        return
    if not pg_listening():
        pytest.skip(SKIP_REASON)
    with fresh_database() as url:
        opened = Store.open(url)
        opened.enroll_agent("acme", host="db1")
        yield opened
        opened.close()


def finished_run(runner: Runner, the_plan: InspectionPlan) -> str:
    record = runner.create(the_plan, "manual")
    done = asyncio.run(runner.execute(the_plan, record.id))
    assert done.state == "done", done.error
    return done.id


def target(port: int) -> EmailTarget:
    return EmailTarget.model_validate(
        {
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "starttls": False,
            "from": "diag@vendor.example",
            "to": ["cases@acme.example"],
            "timeout_s": 5,
        }
    )


def test_a_finished_run_mails_its_report_once_to_the_plan_recipients(store: Store) -> None:
    runner = Runner(store, None)
    run_id = finished_run(runner, plan(["ops@acme.example", "cio@acme.example"]))
    repo = ReportRepo(store)
    [queued] = repo.deliveries(Scope.of("acme"), run_id)
    assert (queued.state, queued.recipients, queued.lang) == (
        "pending",
        ("ops@acme.example", "cio@acme.example"),
        "zh-CN",
    )
    with smtp_server() as smtp:
        mailer = ReportMailer(runner, lambda customer: target(smtp.port) if customer == "acme" else None)
        [sent] = mailer.deliver_due()
        assert mailer.deliver_due() == []  # sent once, never again
    assert (sent.state, sent.attempts, sent.last_error) == ("sent", 1, None)
    [message] = smtp.messages
    assert sorted(message.rcpt_to) == ["cio@acme.example", "ops@acme.example"]  # the plan's, not `to`
    mail = email.message_from_bytes(message.data, policy=email.policy.default)
    assert mail["Subject"].startswith("巡检报告：weekly")
    body = mail.get_body(("plain",))
    assert body is not None and "覆盖率：1 台主机中 0 台已响应" in body.get_content()
    [attachment] = list(mail.iter_attachments())
    assert attachment.get_filename() == f"inspection-{run_id}.zh-CN.pdf"
    content = attachment.get_content()
    assert content.startswith(b"%PDF")
    # The attachment is the stored service record, byte for byte.
    [stored] = repo.reports(Scope.of("acme"), kind="inspection", subject=run_id, lang="zh-CN", fmt="pdf")
    assert repo.report_content(Scope.of("acme"), stored.id)[1] == content


def test_no_recipients_queue_nothing(store: Store) -> None:
    runner = Runner(store, None)
    run_id = finished_run(runner, plan([]))
    assert ReportRepo(store).deliveries(Scope.everything(), run_id) == []


def test_a_customer_without_smtp_settings_fails_with_what_to_configure(store: Store) -> None:
    runner = Runner(store, None)
    run_id = finished_run(runner, plan(["ops@acme.example"]))
    [failed] = ReportMailer(runner, lambda customer: None).deliver_due()
    assert (failed.run_id, failed.state) == (run_id, "failed")
    assert failed.last_error is not None
    assert "emergency.notify.customers.acme.email" in failed.last_error


def test_a_temporary_refusal_is_retried_and_a_permanent_one_gives_up(store: Store) -> None:
    clock = [time.time() + 10]  # the store stamps the queued delivery with the real time
    runner = Runner(store, None, clock=lambda: clock[0])
    policy = DeliveryPolicy(backoff_initial_s=60, jitter=0)
    with smtp_server(data_replies=["451 4.3.0 try later", "554 5.7.1 rejected by policy"]) as smtp:
        mailer = ReportMailer(runner, lambda _c: target(smtp.port), policy, clock=lambda: clock[0])
        run_id = finished_run(runner, plan(["ops@acme.example"], language="en"))
        [first] = mailer.deliver_due()
        assert (first.state, first.attempts, first.next_at) == ("pending", 1, clock[0] + 60)
        assert first.last_error is not None and "451" in first.last_error
        assert mailer.deliver_due() == []  # not due yet
        clock[0] += 61
        [second] = mailer.deliver_due()
        assert (second.run_id, second.state, second.attempts) == (run_id, "failed", 2)
        assert second.last_error is not None and "554" in second.last_error
        assert smtp.messages == []


def test_two_collectors_send_a_report_once(store: Store) -> None:
    runner = Runner(store, None)
    finished_run(runner, plan(["ops@acme.example"], language="en"))
    repo = ReportRepo(store)
    now = repo.deliveries(Scope.everything())[0].next_at
    first = repo.claim_deliveries(now, LEASE_S)
    second = repo.claim_deliveries(now, LEASE_S)  # another collector, same moment
    assert len(first) == 1 and second == []
    assert len(repo.claim_deliveries(now + LEASE_S + 1, LEASE_S)) == 1  # the first died: lease over


def test_the_api_and_diagctl_show_what_became_of_the_mail(store: Store) -> None:
    runner = Runner(store, None)
    run_id = finished_run(runner, plan(["ops@acme.example"], language="en"))
    ReportMailer(runner, lambda _c: None).deliver_due()
    client = TestClient(create_app(store))
    token = store.create_api_token("viewer", "viewer", customer="acme")
    got = client.get(f"/api/v1/inspections/runs/{run_id}", headers={"Authorization": f"Bearer {token}"})
    assert got.status_code == 200
    [delivery] = got.json()["deliveries"]
    assert (delivery["recipients"], delivery["state"], delivery["attempts"]) == (
        ["ops@acme.example"],
        "failed",
        1,
    )
    out = io.StringIO()
    _print_run(got.json(), out)
    assert "report e-mail to ops@acme.example FAILED after 1 attempt(s): no e-mail settings" in out.getvalue()
    other = store.create_api_token("other", "viewer", customer="globex")
    hidden = client.get(f"/api/v1/inspections/runs/{run_id}", headers={"Authorization": f"Bearer {other}"})
    assert hidden.status_code == 404
