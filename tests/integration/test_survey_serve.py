"""The follow-up step end to end: a real ``diag-collector serve`` (SQLite), a real SMTP
server on loopback, ``diagctl`` and plain HTTP. Resolving a case e-mails a one-time survey
link to the case's contact (and to no one else); the contact answers it through the page
(no JavaScript: a GET and a form POST); the answer is on the case, in ``diagctl surveys``,
on /metrics; the link then answers 410; closing draws the case for a callback, which the
engineer records with ``diagctl cases callback``."""

from __future__ import annotations

import email
import io
import json
import re
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import httpx
import pytest

from collector.store.store import Store
from diagctl.main import main as diagctl
from tests.collector.notify.servers import smtp_server
from tests.integration.harness import free_port, spawn, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

QUESTIONS = ("response_speed", "professional_skill", "attitude", "problem_solved", "overall")


def run(server: str, token: str, *args: str) -> str:
    out = io.StringIO()
    code = diagctl(["--server", server, "--token", token, *args], out=out)
    assert code == 0, out.getvalue()
    return out.getvalue()


def as_json(server: str, token: str, *args: str) -> Any:
    return json.loads(run(server, token, "--format", "json", *args))


def test_a_contact_answers_the_survey_of_a_resolved_case(tmp_path: Path) -> None:
    db = tmp_path / "collector.db"
    store = Store.open(f"sqlite:///{db}")
    store.enroll_agent("acme", "db1", "acme-db1")
    token = store.create_api_token("li", "engineer")
    store.close()
    http_port = free_port()
    base = f"http://127.0.0.1:{http_port}"
    with smtp_server() as smtp:
        config = tmp_path / "collector.yaml"
        config.write_text(
            f"""
state_dir: {tmp_path / "state"}
emergency:
  notify_poll_s: 0.2
  notify:
    customers:
      acme:
        language: zh-CN
        email: {{smtp_host: 127.0.0.1, smtp_port: {smtp.port}, starttls: false,
                 from: diag@vendor.example, to: [ops@acme.example]}}
surveys:
  public_url: {base}
  callback_fraction: 1.0
"""
        )
        proc = spawn(
            ["-m", "collector.cli", "serve", "--config", str(config), "--store", f"sqlite:///{db}",
             "--grpc-listen", f"127.0.0.1:{free_port()}", "--http-listen", f"127.0.0.1:{http_port}"],
            tmp_path / "serve.log",
        )  # fmt: skip
        try:
            assert wait_for(lambda: "Ctrl-C stops" in proc.output(), 60), proc.output()
            case = as_json(
                base, token, "cases", "open", "--customer", "acme", "--type", "consultation", "--channel",
                "hotline", "--title", "报表很慢", "--contact", "Wang Wei <wang@acme.example>",
            )  # fmt: skip
            resolved = as_json(base, token, "cases", "resolve", case["id"], "--note", "index added")
            assert resolved["state"] == "follow_up"

            def survey_mail() -> EmailMessage | None:
                for m in smtp.messages:
                    msg = email.message_from_bytes(m.data, policy=default)
                    if msg["X-Diag-Event"] == "case.survey":
                        assert m.rcpt_to == ["wang@acme.example"], m.rcpt_to  # the contact, nobody else
                        return msg
                return None

            assert wait_for(lambda: survey_mail() is not None, 30, interval=0.2), proc.output()
            mail = survey_mail()
            assert mail is not None and "请评价我们的服务" in str(mail["Subject"])
            body = mail.get_body(("plain",))
            assert body is not None
            match = re.search(rf"{re.escape(base)}/survey/[A-Za-z0-9_\-]+", body.get_content())
            assert match, body.get_content()
            link = match.group(0)

            with httpx.Client(timeout=10) as http:
                page = http.get(link)
                assert page.status_code == 200 and "服务质量评价表" in page.text
                assert "<script" not in page.text.lower()
                nonce = re.search(r'name="nonce" value="([^"]+)"', page.text)
                assert nonce
                form = {"nonce": nonce.group(1), "comment": "很好", **{f"q_{q}": "5" for q in QUESTIONS}}
                answered = http.post(link, data=form)
                assert answered.status_code == 200 and "感谢您的评价" in answered.text
                assert http.post(link, data=form).status_code == 410
                metrics = http.get(f"{base}/metrics").text
                assert 'diag_surveys{state="answered"} 1.0' in metrics

            (listed,) = as_json(base, token, "surveys", "list", "--customer", "acme")
            assert (listed["state"], listed["mean"], listed["comment"]) == ("answered", 5.0, "很好")
            shown = run(base, token, "surveys", "show", str(listed["id"]))
            assert "answered" in shown and "overall" in shown and "很好" in shown
            table = run(base, token, "surveys", "list")
            assert table.splitlines()[0].split()[:3] == ["ID", "CASE", "STATE"] and "5.0/5" in table

            events = [e["kind"] for e in as_json(base, token, "cases", "show", case["id"])["events"]]
            assert events[-3:] == ["follow_up", "survey_sent", "survey_answered"]
            run(base, token, "cases", "close", case["id"])
            overview_token = _manager_token(db)
            assert as_json(base, overview_token, "cases", "overview")["callbacks_due"] == [case["id"]]
            overview = run(base, overview_token, "cases", "overview")
            assert (
                f"surveys unanswered: 0 open, 0 expired; callbacks due: {case['id']} (0 not answered)"
                in overview
            )
            out = run(base, token, "cases", "callback", case["id"], "--result", "reached", "--satisfied", "4",
                      "--note", "all good")  # fmt: skip
            assert f"{case['id']}: callback reached, satisfied 4/5 (by li)" in out
            assert as_json(base, overview_token, "cases", "overview")["callbacks_due"] == []
            bad = io.StringIO()
            assert diagctl(["--server", base, "--token", token, "cases", "callback", case["id"], "--result",
                            "reached", "--satisfied", "9"], out=bad) != 0  # fmt: skip
        finally:
            proc.terminate()


def _manager_token(db: Path) -> str:
    store = Store.open(f"sqlite:///{db}")
    try:
        return store.create_api_token("mgr", "service_manager")
    finally:
        store.close()
