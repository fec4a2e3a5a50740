"""render_email and send_email against a real asyncio SMTP server on 127.0.0.1."""

# ruff: noqa: RUF001

from __future__ import annotations

import email
import email.policy
import time

import pytest

from checks.api import Severity
from collector.notify import DeliveryError, EmailTarget, render_email, send_email
from tests.collector.notify.factories import SMTP_PASSWORD, T0, case_event, customer, mail_target
from tests.collector.notify.servers import make_cert, server_tls_context, smtp_server


def _parse(data: bytes) -> email.message.EmailMessage:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    return msg


def _part(msg: email.message.EmailMessage, kind: str) -> str:
    part = msg.get_body((kind,))
    assert part is not None, kind
    content = part.get_content()
    assert isinstance(content, str)
    return content


def _send(port: int, event=None, language: str = "en", **extra) -> None:
    target = EmailTarget.model_validate(mail_target(port, **extra))
    cfg = customer(language=language, timezone="Asia/Shanghai")
    send_email(target, render_email(event or case_event(), cfg, target, "n-1"))


def test_chinese_message_arrives_as_multipart_text_and_html():
    ev = case_event(title="数据库响应变慢", probable_cause="存储延迟先升高 (db1)")
    with smtp_server() as srv:
        _send(srv.port, ev, language="zh-CN")
    [got] = srv.messages
    assert got.mail_from == "diag@vendor.example"
    assert got.rcpt_to == ["ops@acme.example", "cto@acme.example"]
    assert not got.tls
    msg = _parse(got.data)
    assert msg["Subject"] == "【应急维护】紧急事件已创建 [严重] C-2023-0042：数据库响应变慢（acme）"
    assert msg["Message-ID"] == "<n-1@remote-diag.invalid>"
    assert msg["X-Diag-Event"] == "case.opened"
    assert msg["Content-Language"] == "zh-CN"
    assert msg.get_content_type() == "multipart/alternative"
    text = _part(msg, "plain")
    html = _part(msg, "html")
    for needle in (
        "已创建应急维护紧急事件",
        "事件编号: C-2023-0042",
        "严重程度: 严重",
        "涉及主机: db1, app1",
    ):
        assert needle in text
    assert "可能原因: 存储延迟先升高 (db1)" in text
    assert "发生时间: 2023-11-15 06:13:20 CST (UTC+0800)" in text
    assert "查看紧急事件: https://diag.example.com/cases/C-2023-0042" in text
    assert '<html lang="zh-CN">' in html and "数据库响应变慢" in html


def test_english_acknowledgement_has_actor_and_escaped_html():
    ev = case_event(
        event="acknowledged",
        title="Latency <script>alert(1)</script>",
        actor="li.wei",
        event_at=T0 + 600,
        severity=Severity.WARN,
        probable_cause="",
    )
    with smtp_server() as srv:
        _send(srv.port, ev)
    msg = _parse(srv.messages[0].data)
    assert msg["Subject"].startswith("[Emergency maintenance] Case acknowledged [Warning] C-2023-0042")
    text = _part(msg, "plain")
    html = _part(msg, "html")
    assert "By: li.wei" in text
    assert "Probable cause: under analysis" in text
    assert "Updated at: 2023-11-15 06:23:20 CST" in text
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_messages_of_one_case_share_a_thread_reference():
    target = EmailTarget.model_validate(mail_target(25))
    cfg = customer()
    first = render_email(case_event(), cfg, target, "a")
    later = render_email(case_event(event="resolved", event_at=T0 + 60), cfg, target, "b")
    other = render_email(case_event(case_id="C-9"), cfg, target, "c")
    assert first["References"] == later["References"] != other["References"]
    assert first["Message-ID"] != later["Message-ID"]


def test_starttls_and_auth_with_a_private_ca(tmp_path):
    cert, key = make_cert(tmp_path)
    with smtp_server(tls=server_tls_context(cert, key), credentials=("diag", SMTP_PASSWORD)) as srv:
        _send(srv.port, starttls=True, ca_file=str(cert), username="diag", password=SMTP_PASSWORD)
    [got] = srv.messages
    assert got.tls and got.user == "diag"
    assert srv.commands[:3] == ["EHLO", "STARTTLS", "EHLO"]


def test_untrusted_certificate_is_a_retryable_tls_error(tmp_path):
    cert, key = make_cert(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    other_ca, _ = make_cert(other)
    with smtp_server(tls=server_tls_context(cert, key)) as srv, pytest.raises(DeliveryError) as info:
        _send(srv.port, starttls=True, ca_file=str(other_ca))
    assert info.value.retryable
    assert "TLS error" in str(info.value)
    assert srv.messages == []


def test_wrong_password_is_permanent_and_never_quoted(tmp_path):
    cert, key = make_cert(tmp_path)
    server = smtp_server(tls=server_tls_context(cert, key), credentials=("diag", "the-right-one"))
    with server as srv, pytest.raises(DeliveryError) as info:
        _send(srv.port, starttls=True, ca_file=str(cert), username="diag", password=SMTP_PASSWORD)
    assert not info.value.retryable
    assert "535" in str(info.value)
    assert SMTP_PASSWORD not in str(info.value)


def test_missing_starttls_is_permanent():
    with smtp_server() as srv, pytest.raises(DeliveryError) as info:
        _send(srv.port, starttls=True)
    assert not info.value.retryable
    assert "STARTTLS" in str(info.value)


@pytest.mark.parametrize(
    ("reply", "retryable"),
    [
        pytest.param("451 4.3.0 try again later", True, id="4xx temporary"),
        pytest.param("554 5.7.1 message rejected", False, id="5xx permanent"),
    ],
)
def test_data_replies_are_classified(reply, retryable):
    with smtp_server(data_replies=[reply]) as srv, pytest.raises(DeliveryError) as info:
        _send(srv.port)
    assert info.value.retryable is retryable
    assert reply[:3] in str(info.value)


def test_all_recipients_refused_is_permanent_but_partial_refusal_is_sent():
    server = smtp_server(reject_rcpt={"ops@acme.example", "cto@acme.example"})
    with server as srv, pytest.raises(DeliveryError) as info:
        _send(srv.port)
    assert not info.value.retryable and "recipients refused" in str(info.value)
    with smtp_server(reject_rcpt={"cto@acme.example"}) as srv:
        _send(srv.port)
    assert srv.messages[0].rcpt_to == ["ops@acme.example"]


def test_silent_server_times_out():
    with smtp_server(greet=False) as srv:
        start = time.monotonic()
        with pytest.raises(DeliveryError) as info:
            _send(srv.port, timeout_s=0.3)
        elapsed = time.monotonic() - start
    assert info.value.retryable and "timed out" in str(info.value)
    assert elapsed < 2.0


def test_nothing_listening_is_retryable():
    with smtp_server() as srv:
        port = srv.port
    with pytest.raises(DeliveryError) as info:
        _send(port)
    assert info.value.retryable
