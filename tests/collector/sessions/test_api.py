"""The sessions API per role and for another customer's people (real store: SQLite and
PostgreSQL; FastAPI's TestClient, no gRPC: grants wait for the agent's next connect)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from collector.http.app import create_app
from collector.store import Store
from tests.collector.sessions.conftest import KEY, open_case


def h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def client(store: Store) -> TestClient:
    return TestClient(create_app(store))


@pytest.fixture
def t(store: Store) -> dict[str, str]:
    tokens = {"case": open_case(store, "acme", "db1"), "gcase": open_case(store, "globex", "erp1")}
    tokens["eng"] = store.create_api_token("eng", "engineer")
    tokens["eng2"] = store.create_api_token("eng2", "engineer")
    tokens["admin"] = store.create_api_token("acme-admin", "customer_admin", customer="acme")
    tokens["viewer"] = store.create_api_token("acme-viewer", "viewer", customer="acme")
    tokens["gadmin"] = store.create_api_token("globex-admin", "customer_admin", customer="globex")
    tokens["gviewer"] = store.create_api_token("globex-viewer", "viewer", customer="globex")
    return tokens


def _body(t: dict[str, str], **kw: object) -> dict[str, object]:
    body: dict[str, object] = {
        "host": "db1",
        "case": t["case"],
        "reason": "disk full",
        "public_key": KEY,
        "duration_s": 1800,
    }
    body.update(kw)
    return body


def test_only_engineers_request_and_input_is_checked(client: TestClient, t: dict[str, str]) -> None:
    for who in ("admin", "viewer", "gadmin"):
        r = client.post("/api/v1/sessions", headers=h(t[who]), json=_body(t))
        assert r.status_code == 403 and "engineer" in r.json()["detail"]
    assert client.post("/api/v1/sessions", json=_body(t)).status_code == 401
    bad: list[tuple[dict[str, object], str]] = [
        ({"public_key": "ssh-ed25519 AAAA"}, "public_key"),
        ({"public_key": KEY.replace("ssh-ed25519", "ssh-rsa")}, "public_key"),
        ({"mode": "root"}, "mode"),
        ({"duration_s": 10}, "duration_s"),
        ({"extra": 1}, "extra"),
    ]
    for change, field in bad:
        r = client.post("/api/v1/sessions", headers=h(t["eng"]), json=_body(t, **change))
        assert r.status_code == 422, (change, r.text)
        assert field in r.json()["errors"][0]["loc"], r.json()
    nul = client.post("/api/v1/sessions", headers=h(t["eng"]), json=_body(t, reason="a\x00b"))
    assert nul.status_code == 400 and "NUL" in nul.json()["detail"]
    r = client.post("/api/v1/sessions", headers=h(t["eng"]), json=_body(t, host="erp1"))
    assert r.status_code == 404 and "acme" in r.json()["detail"]
    r = client.post("/api/v1/sessions", headers=h(t["eng"]), json=_body(t))
    assert r.status_code == 201
    s = r.json()
    assert (s["state"], s["engineer"], s["mode"], s["connectable"], s["ssh_command"]) == (
        "requested",
        "eng",
        "diagnostic",
        False,
        None,
    )


def test_approve_deny_revoke_by_role_and_customer(client: TestClient, t: dict[str, str]) -> None:
    sid = client.post("/api/v1/sessions", headers=h(t["eng"]), json=_body(t)).json()["id"]
    # another customer's people: 404, as for a session that does not exist
    for who in ("gadmin", "gviewer"):
        for path in ("", "/approve", "/deny", "/revoke", "/recording"):
            method = client.get if path in ("", "/recording") else client.post
            assert method(f"/api/v1/sessions/{sid}{path}", headers=h(t[who])).status_code == 404, (who, path)
        assert client.get("/api/v1/sessions", headers=h(t[who])).json() == []
        assert client.get(f"/api/v1/sessions/audit?session={sid}", headers=h(t[who])).status_code == 404
    assert client.get("/api/v1/sessions/s-0000000000000000", headers=h(t["eng"])).status_code == 404
    assert client.get("/api/v1/sessions/..%2Fetc", headers=h(t["eng"])).status_code == 404
    # engineers (the requester above all) and viewers cannot approve or deny
    for who in ("eng", "eng2", "viewer"):
        assert client.post(f"/api/v1/sessions/{sid}/approve", headers=h(t[who])).status_code == 403
        assert client.post(f"/api/v1/sessions/{sid}/deny", headers=h(t[who])).status_code == 403
    assert client.post(f"/api/v1/sessions/{sid}/revoke", headers=h(t["viewer"])).status_code == 403
    assert client.get(f"/api/v1/sessions/{sid}", headers=h(t["viewer"])).json()["id"] == sid
    r = client.post(f"/api/v1/sessions/{sid}/approve", headers=h(t["admin"]))
    assert r.status_code == 200 and (r.json()["approval"], r.json()["approved_by"]) == (
        "customer_admin",
        "acme-admin",
    )
    assert client.post(f"/api/v1/sessions/{sid}/approve", headers=h(t["admin"])).status_code == 409
    assert client.post(f"/api/v1/sessions/{sid}/deny", headers=h(t["admin"])).status_code == 409
    r = client.post(f"/api/v1/sessions/{sid}/revoke", headers=h(t["eng2"]), json={"reason": "done"})
    assert r.status_code == 200 and (r.json()["state"], r.json()["end_reason"]) == ("revoked", "done")
    assert client.post(f"/api/v1/sessions/{sid}/revoke", headers=h(t["admin"])).status_code == 409
    # a second request, denied by the admin
    sid2 = client.post("/api/v1/sessions", headers=h(t["eng"]), json=_body(t)).json()["id"]
    r = client.post(
        f"/api/v1/sessions/{sid2}/deny", headers=h(t["admin"]), json={"reason": "not during business hours"}
    )
    assert r.status_code == 200 and r.json()["state"] == "denied"
    listed = client.get(f"/api/v1/sessions?case={t['case']}", headers=h(t["viewer"])).json()
    assert [s["id"] for s in listed] == [sid2, sid]


def test_audit_and_verify_are_scoped_and_recordings_need_a_role(
    client: TestClient, t: dict[str, str]
) -> None:
    sid = client.post("/api/v1/sessions", headers=h(t["eng"]), json=_body(t)).json()["id"]
    gsid = client.post(
        "/api/v1/sessions", headers=h(t["eng"]), json=_body(t, host="erp1", case=t["gcase"])
    ).json()["id"]
    rows = client.get("/api/v1/sessions/audit", headers=h(t["viewer"])).json()
    assert [(r["session_id"], r["event"], r["seq"]) for r in rows] == [(sid, "requested", 1)]
    everything = client.get("/api/v1/sessions/audit", headers=h(t["eng"])).json()
    assert {r["session_id"] for r in everything} == {sid, gsid}
    verdicts = client.get("/api/v1/sessions/audit/verify", headers=h(t["gadmin"])).json()
    assert verdicts == [{"customer": "globex", "rows": 1, "ok": True, "first_bad_seq": None}]
    assert client.get(f"/api/v1/sessions/{sid}/recording", headers=h(t["viewer"])).status_code == 403
    r = client.get(f"/api/v1/sessions/{sid}/recording", headers=h(t["admin"]))
    assert r.status_code == 404 and "no recording yet" in r.json()["detail"]
