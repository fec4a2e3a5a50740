# ruff: noqa: RUF001  # full-width punctuation is correct in Chinese text
"""A resolved emergency case's fault-analysis report goes to the customer through the real
outbox and a real SMTP server (on 127.0.0.1), resolved over the real HTTP API."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from collector.emergency import service
from collector.http.app import create_app
from collector.notify import Notifier, PassReport
from collector.store import Scope, Store
from collector.store.desk_cases import DeskRepo, NewCase
from collector.store.records import RecordRepo
from tests.collector.cases.test_api import T0, auth, open_case
from tests.collector.notify.factories import customer, mail_target
from tests.collector.notify.servers import smtp_server


@pytest.fixture
def notifying(store: Store) -> Iterator[tuple[TestClient, str, Notifier, Any]]:
    open_case(store, "acme", "db1")
    DeskRepo(store).open(
        Scope.everything(), NewCase("acme", "consultation", "email", "how?"), actor="li", now=T0
    )
    with smtp_server() as srv:
        configs = {
            "acme": customer(
                language="zh-CN",
                timezone="Asia/Shanghai",
                email=mail_target(srv.port, events=["resolved", "fault_report"]),
            ),
        }
        notifier = Notifier(store, configs.get)
        client = TestClient(create_app(store))  # installs the records' hook
        before = service._notifier
        service._notifier = notifier  # as serve's start() sets it
        try:
            yield client, store.create_api_token("li", "engineer"), notifier, srv
        finally:
            service._notifier = before
            notifier.close()


def test_resolving_an_emergency_case_mails_its_fault_report(
    notifying: tuple[TestClient, str, Notifier, Any], store: Store
) -> None:
    client, token, notifier, srv = notifying
    resolved = client.post("/api/v1/cases/C-acme-1/resolve", headers=auth(token), json={"note": "disk grown"})
    assert resolved.status_code == 200, resolved.text
    assert notifier.deliver_due() == PassReport(sent=2)  # the case event and the report
    mails = [email.message_from_bytes(m.data, policy=email.policy.default) for m in srv.messages]
    (report,) = [m for m in mails if m["X-Diag-Event"] == "record.fault_report"]
    assert report["Subject"].startswith("[remote-diag] 事故分析报告：C-acme-1")
    assert report["To"] == "ops@acme.example, cto@acme.example"
    files = {part.get_filename(): part.get_content() for part in report.iter_attachments()}
    assert list(files) == ["fault-C-acme-1.zh-CN.html", "fault-C-acme-1.en.html"]  # the mail's language first
    assert (
        "事故分析报告" in files["fault-C-acme-1.zh-CN.html"]
        and "Fault Analysis Report" in files["fault-C-acme-1.en.html"]
    )
    # the attachments are the stored service records, byte for byte
    records = {r["lang"]: r for r in client.get("/api/v1/records?kind=fault", headers=auth(token)).json()}
    assert set(records) == {"en", "zh-CN"}
    plain = report.get_body(("plain",))
    assert plain is not None
    body = plain.get_content()
    assert records["en"]["sha256"] in body and records["zh-CN"]["sha256"] in body
    content = client.get(records["en"]["download"].replace("reports", "records"), headers=auth(token))
    assert content.text.rstrip("\n") == files["fault-C-acme-1.en.html"].rstrip(
        "\n"
    )  # mail ends text with a newline
    assert RecordRepo(store).verify(Scope.everything()).problems == ()


def test_other_cases_and_repeats_send_no_report(
    notifying: tuple[TestClient, str, Notifier, Any], store: Store
) -> None:
    client, token, notifier, srv = notifying
    for step in ("take", "start", "resolve"):  # a consultation: the desk's, not an emergency
        assert client.post(f"/api/v1/cases/C-acme-2/{step}", headers=auth(token)).status_code == 200
    notifier.deliver_due()
    assert [m for m in srv.messages if b"record.fault_report" in m.data] == []
    # an emergency case: one report when resolved, none when reopened, a new version when
    # resolved again (the timeline changed); the same version is never queued twice
    assert client.post("/api/v1/cases/C-acme-1/resolve", headers=auth(token)).status_code == 200
    assert client.post("/api/v1/cases/C-acme-1/reopen", headers=auth(token)).status_code == 200
    notifier.deliver_due()
    assert len([m for m in srv.messages if b"record.fault_report" in m.data]) == 1
    assert client.post("/api/v1/cases/C-acme-1/resolve", headers=auth(token)).status_code == 200
    from collector.inspections.service import service_for
    from collector.records.fault_mail import send_fault_report
    from collector.store.cases import CaseRepo

    case = CaseRepo(store).get(Scope.everything(), "C-acme-1")
    assert send_fault_report(service_for(store).runner, notifier, case) == []  # already queued
    notifier.deliver_due()
    assert len([m for m in srv.messages if b"record.fault_report" in m.data]) == 2
