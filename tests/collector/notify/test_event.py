from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from collector.notify import PAYLOAD_VERSION, notification_id, payload_bytes, webhook_payload
from tests.collector.notify.factories import T0, case_event


def test_payload_schema_v1_is_complete_and_stable():
    ev = case_event(event="resolved", event_at=T0 + 3600, actor="li.wei", note="disk replaced")
    payload = webhook_payload(ev, "abc")
    assert payload == {
        "version": PAYLOAD_VERSION,
        "id": "abc",
        "event": "case.resolved",
        "event_at": "2023-11-14T23:13:20Z",
        "case": {
            "id": "C-2023-0042",
            "url": "https://diag.example.com/cases/C-2023-0042",
            "customer": "acme",
            "title": "Application latency up 8x on app1",
            "severity": "CRIT",
            "hosts": ["db1", "app1"],
            "probable_cause": "storage latency on db1 rose first",
            "opened_at": "2023-11-14T22:13:20Z",
            "actor": "li.wei",
            "note": "disk replaced",
        },
    }
    assert PAYLOAD_VERSION == 1


def test_payload_bytes_are_compact_utf8_json_and_deterministic():
    ev = case_event(title="数据库响应变慢")
    body = payload_bytes(webhook_payload(ev, "n"))
    assert "数据库响应变慢".encode() in body
    assert body == payload_bytes(webhook_payload(ev, "n"))
    assert json.loads(body)["case"]["title"] == "数据库响应变慢"
    assert b'": ' not in body and b', "' not in body  # compact separators


def test_notification_id_depends_on_transition_and_destination():
    ev = case_event()
    same = notification_id(case_event(), "webhook", "ops")
    assert notification_id(ev, "webhook", "ops") == same
    assert notification_id(case_event(event="acknowledged"), "webhook", "ops") != same
    assert notification_id(case_event(event_at=T0 + 1), "webhook", "ops") != same
    assert notification_id(ev, "webhook", "other") != same
    assert notification_id(case_event(customer="globex"), "webhook", "ops") != same


def test_line_breaks_in_header_fields_are_folded():
    ev = case_event(title="disk\r\nBcc: evil@example.com", case_id="C-1\n")
    assert ev.title == "disk Bcc: evil@example.com"
    assert ev.case_id == "C-1"


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"event": "closed"}, id="unknown event"),
        pytest.param({"severity": "FATAL"}, id="unknown severity"),
        pytest.param({"case_id": ""}, id="empty case id"),
        pytest.param({"opened_at": -1.0}, id="negative time"),
        pytest.param({"colour": "red"}, id="unknown field"),
    ],
)
def test_bad_events_are_rejected(overrides):
    with pytest.raises(ValidationError):
        case_event(**overrides)
