"""The service desk over real HTTP and a real store (SQLite and PostgreSQL): each role and
another customer's people on every desk endpoint; ``diagctl cases`` against a serving
collector."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from collector.http.app import create_app
from collector.store import Store
from collector.store.case_states import CASE_STATES
from diagconfig.terminal import display_width
from tests.collector.cases.test_api import diagctl, server
from tests.collector.people import auth, open_case, role_tokens

__all__ = ["server"]

ROLES = ("engineer", "manager", "acme admin", "acme viewer", "globex admin", "globex viewer")


@pytest.fixture
def desk(store: Store) -> tuple[TestClient, dict[str, str]]:
    open_case(store, "acme", "db1")  # C-acme-1 (emergency, automatic)
    open_case(store, "globex", "erp1")
    tokens = role_tokens(store)
    return TestClient(create_app(store)), tokens


def post(client: TestClient, token: str, path: str, body: dict[str, Any] | None = None) -> Any:
    return client.post(path, headers=auth(token), json=body)


def opened(client: TestClient, token: str, **fields: Any) -> dict[str, Any]:
    body = {
        "customer": "acme",
        "type": "complaint",
        "channel": "hotline",
        "title": "reports are slow",
        **fields,
    }
    response = post(client, token, "/api/v1/cases", body)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


def test_who_may_open_a_case(desk: tuple[TestClient, dict[str, str]]) -> None:
    client, t = desk
    case = opened(client, t["engineer"], host="db1", contact="Wang", description="since Monday")
    assert (case["id"], case["state"], case["type"], case["channel"]) == (
        "C-acme-2",
        "new",
        "complaint",
        "hotline",
    )
    assert case["labels"]["type"] == {"en": "complaint", "zh-CN": "投诉"}
    assert case["events"][0]["data"]["to"] == "new" and case["events"][0]["actor"] == "li"
    assert opened(client, t["manager"], customer="globex")["id"] == "C-globex-2"
    mine = opened(client, t["acme admin"], channel="email", type="consultation")
    assert mine["customer"] == "acme"
    # a customer admin comes in through remote or email only, and only for its own customer
    body = {
        "customer": "acme",
        "type": "routine",
        "subtype": "data_error",
        "channel": "hotline",
        "title": "x",
    }
    hotline = post(client, t["acme admin"], "/api/v1/cases", body)
    assert hotline.status_code == 403 and "channel" in hotline.json()["detail"]
    for who in ("globex admin", "globex viewer", "acme viewer"):
        response = post(client, t[who], "/api/v1/cases", {"customer": "acme", "type": "consultation",
                                                          "channel": "email", "title": "x"})  # fmt: skip
        assert response.status_code == 403, who
    # bad input: 422 naming the field, nothing written
    bad: tuple[tuple[dict[str, Any], str], ...] = (
        ({"type": "outage"}, "type"),
        ({"channel": "automatic"}, "channel"),
        ({"type": "routine"}, "subtype"),
        ({"subtype": "data_error"}, "subtype"),
        ({"customer": "nobody"}, "customer"),
        ({"host": "erp1"}, "host"),
        ({"title": "a\x1b]0;pwned\x07"}, "title"),
        ({"severity": "BAD"}, "severity"),
        ({"extra": 1}, "extra"),
    )
    for body, field in bad:
        full = {"customer": "acme", "type": "consultation", "channel": "hotline", "title": "x", **body}
        response = post(client, t["engineer"], "/api/v1/cases", full)
        assert response.status_code == 422 and field in response.text, (body, response.text)
    ids = [c["id"] for c in client.get("/api/v1/cases?customer=acme", headers=auth(t["engineer"])).json()]
    assert ids == ["C-acme-3", "C-acme-2", "C-acme-1"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("take", None),
        ("start", None),
        ("transfer", {"to": "zhang", "reason": "DBA"}),
        ("time", {"minutes": 30, "activity": "analysis"}),
        ("complaint-steps", {"step": "supervised", "text": "watching"}),
        ("resolve", None),
    ],
)
def test_working_a_case_is_for_engineers_and_service_managers(
    desk: tuple[TestClient, dict[str, str]], path: str, body: dict[str, Any] | None
) -> None:
    client, t = desk
    case_id = opened(client, t["engineer"])["id"]
    if path == "start":
        post(client, t["engineer"], f"/api/v1/cases/{case_id}/take")
    expected = {"acme admin": 403, "acme viewer": 403, "globex admin": 404, "globex viewer": 404}
    for who, status in expected.items():
        response = post(client, t[who], f"/api/v1/cases/{case_id}/{path}", body)
        assert response.status_code == status, (who, response.text)
    for who in ("manager", "engineer"):
        response = post(client, t[who], f"/api/v1/cases/{case_id}/{path}", body)
        assert response.status_code in (200, 201, 409), (who, response.text)
    assert client.get(f"/api/v1/cases/{case_id}", headers=auth(t["globex admin"])).status_code == 404


def test_notes_and_reads_per_role(desk: tuple[TestClient, dict[str, str]]) -> None:
    client, t = desk
    case_id = opened(client, t["engineer"])["id"]
    assert (
        post(client, t["acme admin"], f"/api/v1/cases/{case_id}/notes", {"text": "still slow"}).status_code
        == 200
    )
    assert (
        post(client, t["manager"], f"/api/v1/cases/{case_id}/notes", {"text": "chasing"}).status_code == 200
    )
    assert post(client, t["acme viewer"], f"/api/v1/cases/{case_id}/notes", {"text": "x"}).status_code == 403
    assert post(client, t["globex admin"], f"/api/v1/cases/{case_id}/notes", {"text": "x"}).status_code == 404
    for who in ("acme viewer", "acme admin", "manager", "engineer"):
        assert client.get(f"/api/v1/cases/{case_id}/time", headers=auth(t[who])).status_code == 200, who
    for who in ("globex viewer", "globex admin"):
        assert client.get(f"/api/v1/cases/{case_id}/time", headers=auth(t[who])).status_code == 404, who
        listed = client.get("/api/v1/cases?type=complaint", headers=auth(t[who])).json()
        assert listed == [], who
    overview = client.get("/api/v1/desk/overview", headers=auth(t["manager"]))
    assert overview.status_code == 200 and overview.json()["complaints_open"] == [case_id]
    assert overview.json()["unassigned"] == ["C-acme-1", "C-globex-1", case_id]
    for who in ("engineer", "acme admin", "acme viewer"):
        assert client.get("/api/v1/desk/overview", headers=auth(t[who])).status_code == 403, who
    # a service manager works cases but does not manage tokens
    assert client.get("/api/v1/tokens", headers=auth(t["manager"])).status_code == 403


def test_a_hotline_complaint_end_to_end(desk: tuple[TestClient, dict[str, str]]) -> None:
    client, t = desk
    eng, mgr = t["engineer"], t["manager"]
    case_id = opened(client, eng, contact="Wang")["id"]
    assert (
        post(client, mgr, f"/api/v1/cases/{case_id}/start")
        .json()["detail"]
        .endswith("allowed now: ack, take, resolve")
    )
    assert post(client, eng, f"/api/v1/cases/{case_id}/take").json()["first_responder"] == "li"
    post(client, eng, f"/api/v1/cases/{case_id}/start")
    post(client, eng, f"/api/v1/cases/{case_id}/wait", {"note": "asked for the slow report's name"})
    post(client, eng, f"/api/v1/cases/{case_id}/resume")
    moved = post(
        client, mgr, f"/api/v1/cases/{case_id}/transfer", {"to": "zhang", "reason": "DBA work"}
    ).json()
    assert (moved["assignee"], moved["owner"], moved["first_responder"]) == ("zhang", "zhang", "li")
    steps: list[dict[str, str | None]] = [
        {"step": "handed_over", "text": "to the DBA team", "team": "DBA"},
        {"step": "supervised", "text": "daily check", "team": None},
        {"step": "outcome", "text": "index rebuilt", "summary": "report back to 2 s"},
    ]
    for step in steps:
        assert post(client, mgr, f"/api/v1/cases/{case_id}/complaint-steps",
                    {k: v for k, v in step.items() if v}).status_code == 200  # fmt: skip
    log = post(
        client,
        eng,
        f"/api/v1/cases/{case_id}/time",
        {"minutes": 120, "activity": "rebuild", "mode": "onsite"},
    )
    assert log.status_code == 201 and log.json()["engineer"] == "li"
    assert post(client, eng, f"/api/v1/cases/{case_id}/resolve", {"note": "index rebuilt"}).status_code == 200
    post(client, eng, f"/api/v1/cases/{case_id}/follow-up")
    refused = post(client, eng, f"/api/v1/cases/{case_id}/close")
    assert refused.status_code == 409 and "callback" in refused.json()["detail"]
    post(
        client,
        eng,
        f"/api/v1/cases/{case_id}/complaint-steps",
        {"step": "callback", "text": "Wang is satisfied"},
    )
    closed = post(client, eng, f"/api/v1/cases/{case_id}/close").json()
    assert closed["state"] == "closed" and closed["allowed_actions"] == ["reopen"]
    history = [(e["data"]["from"], e["data"]["to"]) for e in closed["events"] if "to" in e["data"]]
    assert history == [
        (None, "new"), ("new", "acknowledged"), ("acknowledged", "in_progress"),
        ("in_progress", "waiting_on_customer"), ("waiting_on_customer", "in_progress"),
        ("in_progress", "resolved"), ("resolved", "follow_up"), ("follow_up", "closed"),
    ]  # fmt: skip
    assert {to for _, to in history} == set(CASE_STATES)
    reopened = post(client, eng, f"/api/v1/cases/{case_id}/reopen", {"note": "slow again"}).json()
    assert (reopened["state"], reopened["reopened"], reopened["first_responder"]) == ("in_progress", 1, "li")


def test_decisions_and_list_filters(desk: tuple[TestClient, dict[str, str]]) -> None:
    client, t = desk
    case_id = opened(client, t["engineer"], type="adaptive", title="follow the new tax rule")["id"]
    assert (
        post(client, t["engineer"], f"/api/v1/cases/{case_id}/release", {"release": "5.3"}).status_code == 409
    )
    decided = post(client, t["manager"], f"/api/v1/cases/{case_id}/decision",
                   {"decision": "accepted", "text": "law requires it"}).json()  # fmt: skip
    assert decided["decision"] == "accepted"
    released = post(client, t["engineer"], f"/api/v1/cases/{case_id}/release", {"release": "5.3"}).json()
    assert released["release"] == "5.3" and released["upgrade_id"] is None
    bad = post(
        client, t["engineer"], f"/api/v1/cases/{case_id}/release", {"release": "5.3", "upgrade_id": 999}
    )
    assert bad.status_code == 422 and "upgrade_id" in bad.json()["detail"]
    eng = auth(t["engineer"])
    assert [c["id"] for c in client.get("/api/v1/cases?type=adaptive", headers=eng).json()] == [case_id]
    assert [
        c["id"] for c in client.get("/api/v1/cases?channel=automatic&customer=acme", headers=eng).json()
    ] == ["C-acme-1"]
    assert client.get("/api/v1/cases?state=open", headers=eng).status_code == 422
    paged = client.get("/api/v1/cases?limit=1", headers=eng)
    assert len(paged.json()) == 1 and 'rel="next"' in paged.headers["Link"]


def test_diagctl_desk_commands(server: tuple[str, Store], capsys: pytest.CaptureFixture[str]) -> None:
    url, store = server
    store.enroll_agent("acme", "db1", "acme-db1")
    token = store.create_api_token("li", "engineer")
    code, text = diagctl(url, token, "cases", "open", "--customer", "acme", "--type", "routine", "--subtype",
                         "data_error", "--channel", "hotline", "--title", "报表数据不对", "--host", "db1",
                         "--contact", "王经理")  # fmt: skip
    assert code == 0 and text.startswith("C-acme-1: new (routine, hotline)")
    assert diagctl(url, token, "cases", "take", "C-acme-1")[1].startswith("C-acme-1: acknowledged")
    assert diagctl(url, token, "cases", "wait", "C-acme-1")[0] == 1
    assert "allowed now: start, resolve" in capsys.readouterr().err
    assert diagctl(url, token, "cases", "start", "C-acme-1")[0] == 0
    code, text = diagctl(
        url, token, "cases", "log-time", "C-acme-1", "--minutes", "45", "--activity", "查数据", "--onsite",
        "--date", "2023-11-14",
    )  # fmt: skip
    assert code == 0 and "45 min onsite on 2023-11-14" in text
    code, text = diagctl(url, token, "cases", "time", "C-acme-1")
    assert text.splitlines()[0].split() == ["DATE", "ENGINEER", "MINUTES", "MODE", "ACTIVITY"]
    assert "total 45 min (on-site 45, remote 0)" in text
    code, text = diagctl(url, token, "cases", "transfer", "C-acme-1", "--to", "zhang", "--reason", "DBA")
    assert code == 0 and "transferred from li to zhang" in text
    code, text = diagctl(url, token, "cases", "list", "--lang", "zh-CN", "--type", "routine")
    header, row = text.splitlines()
    assert header.split() == [
        "CASE",
        "SEVERITY",
        "STATE",
        "TYPE",
        "CHANNEL",
        "OWNER",
        "OPENED",
        "HOSTS",
        "TITLE",
    ]
    assert "处理中" in row and "日常" in row and "热线" in row
    # columns line up by display width: a Chinese character takes two columns
    assert display_width(row[: row.index("日常")]) == header.index("TYPE")
    assert display_width(row[: row.index("热线")]) == header.index("CHANNEL")
    code, text = diagctl(url, token, "cases", "show", "C-acme-1", "--format", "json")
    data = json.loads(text)
    assert (data["first_responder"], data["assignee"], data["contact"]) == ("li", "zhang", "王经理")
    assert diagctl(url, token, "cases", "decide", "C-acme-1", "--decision", "accepted", "--text", "x")[0] == 1
    assert "only adaptive and perfective" in capsys.readouterr().err
    assert diagctl(url, token, "cases", "open", "--customer", "acme", "--type", "routine", "--channel",
                   "email", "--title", "x")[0] == 1  # fmt: skip
    assert "subtype" in capsys.readouterr().err
