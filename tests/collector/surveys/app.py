"""An app with the follow-up step on, its notifier on the real store outbox (no SMTP: the
tests read the queued ``survey`` notification, as delivery would)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from fastapi.testclient import TestClient

from collector.desk.followup import FollowUp, SurveyConfig
from collector.http.app import create_app
from collector.notify import Notifier, NotifyConfig
from collector.store import Store
from collector.store.outbox import OutboxRepo
from tests.collector.people import role_tokens

SECRET = b"survey-test-secret-0123456789abcdef"
PUBLIC = "https://diag.vendor.example"


@dataclass
class Desk:
    client: TestClient
    store: Store
    tokens: dict[str, str]
    followup: FollowUp


def notify_config(*customers: str, language: str = "zh-CN") -> NotifyConfig:
    email = {"smtp_host": "127.0.0.1", "smtp_port": 2525, "starttls": False, "from": "diag@vendor.example"}
    return NotifyConfig.model_validate(
        {
            "customers": {
                c: {"language": language, "email": {**email, "to": [f"ops@{c}.example"]}} for c in customers
            }
        }
    )


def make_desk(store: Store, config: SurveyConfig | None = None) -> Desk:
    notify = notify_config("acme", "globex")
    notifier = Notifier.from_config(store, notify)
    followup = FollowUp(
        config or SurveyConfig(), secret=SECRET, public_url=PUBLIC, notify=notify, notifier=lambda: notifier
    )
    tokens = role_tokens(store)
    return Desk(TestClient(create_app(store, followup=followup)), store, tokens, followup)


def survey_links(store: Store) -> dict[str, str]:
    """Case id → the survey link waiting in the outbox (what the e-mail will carry)."""
    links = {}
    for row in OutboxRepo(store).entries():
        if row.kind == "survey":
            payload = json.loads(row.payload)
            links[payload["case_id"]] = payload["link"]
    return links


def token_of(link: str) -> str:
    match = re.fullmatch(rf"{re.escape(PUBLIC)}/survey/([A-Za-z0-9_\-]+)", link)
    assert match, link
    return match.group(1)


def nonce_in(html: str) -> str:
    match = re.search(r'name="nonce" value="([^"]+)"', html)
    assert match, html
    return match.group(1)
