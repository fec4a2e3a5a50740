"""Customer sign-off of service records over real HTTP and a real store (SQLite and PostgreSQL):
the whole flow, then each way a link must fail (expired, reused, forged, another record, a
changed record) and each role and another customer's people on the API."""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from collector.http.app import create_app
from collector.store import Store
from collector.store.records import RecordRepo
from collector.store.schema_inspections import reports
from collector.store.schema_records import record_signoffs
from collector.store.tokens import hash_token
from tests.collector.people import auth, open_case, role_tokens

Tokens = dict[str, str]


@pytest.fixture
def setup(store: Store) -> tuple[TestClient, Tokens]:
    open_case(store, "acme", "db1")
    open_case(store, "globex", "erp1")
    tokens = role_tokens(store)
    return TestClient(create_app(store, public_url="https://diag.example.com")), tokens


def fault_record(client: TestClient, token: str, case: str = "C-acme-1", lang: str = "en") -> int:
    """The case's fault-analysis report, rendered and stored by the real endpoint."""
    response = client.get(f"/api/v1/reports/fault/{case}?format=html&lang={lang}", headers=auth(token))
    assert response.status_code == 200, response.text
    return int(response.headers["X-Report-Id"])


def make_link(client: TestClient, token: str, record: int, **body: Any) -> Any:
    return client.post(
        f"/api/v1/records/{record}/signoff", headers=auth(token), json={"contact": "Wang Fang", **body}
    )


def link_token(client: TestClient, token: str, record: int, **body: Any) -> tuple[str, dict[str, Any]]:
    response = make_link(client, token, record, **body)
    assert response.status_code == 201, response.text
    out: dict[str, Any] = response.json()
    return out["token"], out


def form(record: int, sha256: str, **extra: str) -> dict[str, str]:
    return {"record": str(record), "sha256": sha256, "confirm": "yes", **extra}


def signed_rows(store: Store) -> list[Any]:
    with store.engine.connect() as conn:
        return list(conn.execute(sa.select(record_signoffs).where(record_signoffs.c.signed_at.is_not(None))))


def test_a_contact_signs_a_fault_report_once(setup: tuple[TestClient, Tokens], store: Store) -> None:
    client, t = setup
    record = fault_record(client, t["engineer"])
    token, link = link_token(client, t["engineer"], record, contact_email="wang@acme.example")
    assert link["url"] == f"https://diag.example.com/sign/{token}" and link["state"] == "pending"
    assert re.fullmatch(r"dgs_[A-Za-z0-9_-]{43}", token)
    with store.engine.connect() as conn:  # only the token's hash is stored
        stored = conn.execute(sa.select(record_signoffs.c.token_hash)).scalar_one()
    assert stored == hash_token(token) and token not in stored

    page = client.get(f"/sign/{token}")
    assert page.status_code == 200
    assert "<script" not in page.text.lower()
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store"
    assert "Wang Fang" in page.text and link["record_sha256"] in page.text
    shown = client.get(f"/sign/{token}/record")
    content = client.get(f"/api/v1/records/{record}/content", headers=auth(t["engineer"]))
    assert shown.status_code == 200 and shown.content == content.content
    assert "sandbox" in shown.headers["Content-Security-Policy"]

    unconfirmed = client.post(f"/sign/{token}", data={"record": str(record), "sha256": link["record_sha256"]})
    assert unconfirmed.status_code == 422 and "Tick the box" in unconfirmed.text
    assert signed_rows(store) == []

    done = client.post(
        f"/sign/{token}", data=form(record, link["record_sha256"]), headers={"User-Agent": "Firefox/140"}
    )
    assert done.status_code == 200, done.text
    assert "You signed record" in done.text
    detail = client.get(f"/api/v1/records/{record}", headers=auth(t["acme viewer"])).json()
    assert detail["signed"] is True
    (signed,) = detail["signoffs"]
    assert signed["state"] == "signed" and signed["contact"] == "Wang Fang"
    assert signed["client_addr"] == "testclient" and signed["user_agent"] == "Firefox/140"
    assert signed["statement"].startswith("I, Wang Fang, have read the Fault-analysis report")
    assert link["record_sha256"] in signed["statement"] and "token" not in signed

    # reused: refused, and nothing about the signature changes
    again = client.post(
        f"/sign/{token}", data=form(record, link["record_sha256"]), headers={"User-Agent": "x"}
    )
    assert again.status_code == 409 and "already signed" in again.text
    assert client.get(f"/sign/{token}").status_code == 409
    (row,) = signed_rows(store)
    assert row.user_agent == "Firefox/140"
    listed = client.get("/api/v1/records?kind=fault", headers=auth(t["acme admin"])).json()
    assert [(r["id"], r["signed"]) for r in listed] == [(record, True)]


def test_the_page_and_the_statement_in_chinese(setup: tuple[TestClient, Tokens], store: Store) -> None:
    client, t = setup
    record = fault_record(client, t["engineer"], lang="zh-CN")
    token, link = link_token(client, t["manager"], record, lang="zh-CN")
    page = client.get(f"/sign/{token}")
    assert (
        page.status_code == 200
        and "签署服务记录" in page.text
        and "本人 Wang Fang 已阅读事故分析报告" in page.text
    )
    assert "Sign off a service record" in client.get(f"/sign/{token}?lang=en").text
    done = client.post(f"/sign/{token}", data=form(record, link["record_sha256"], lang="zh-CN"))
    assert done.status_code == 200 and "谢谢" in done.text
    assert signed_rows(store)[0].statement.startswith("本人 Wang Fang 已阅读事故分析报告")


def test_an_expired_link_signs_nothing(setup: tuple[TestClient, Tokens], store: Store) -> None:
    client, t = setup
    record = fault_record(client, t["engineer"])
    token, link = link_token(client, t["engineer"], record)
    with store.engine.begin() as conn:
        conn.execute(record_signoffs.update().values(expires_at=time.time() - 1))
    assert client.get(f"/sign/{token}").status_code == 410
    assert client.get(f"/sign/{token}/record").status_code == 410
    late = client.post(f"/sign/{token}", data=form(record, link["record_sha256"]))
    assert late.status_code == 410 and "expired" in late.text
    assert signed_rows(store) == []
    shown = client.get(f"/api/v1/records/{record}/signoffs", headers=auth(t["engineer"])).json()
    assert shown[0]["state"] == "expired"


def test_forged_and_malformed_tokens(setup: tuple[TestClient, Tokens], store: Store) -> None:
    client, t = setup
    record = fault_record(client, t["engineer"])
    _, link = link_token(client, t["engineer"], record)
    forged = f"dgs_{secrets.token_urlsafe(32)}"
    for token in (forged, "dgs_short", "x" * 300, "dgt_" + forged[4:]):
        page = client.get(f"/sign/{token}")
        assert page.status_code == 404 and "not valid" in page.text
        assert client.get(f"/sign/{token}/record").status_code == 404
        assert client.post(f"/sign/{token}", data=form(record, link["record_sha256"])).status_code == 404
    assert signed_rows(store) == []


def test_a_link_signs_only_its_own_record_and_version(setup: tuple[TestClient, Tokens], store: Store) -> None:
    client, t = setup
    first = fault_record(client, t["engineer"])
    other = fault_record(client, t["engineer"], lang="zh-CN")
    token, link = link_token(client, t["engineer"], first)
    _, other_link = link_token(client, t["engineer"], other)
    # the form of another record (or another version of it) is refused
    wrong = client.post(f"/sign/{token}", data=form(other, other_link["record_sha256"]))
    assert wrong.status_code == 409 and "another record" in wrong.text
    stale = client.post(f"/sign/{token}", data=form(first, "0" * 64))
    assert stale.status_code == 409
    assert signed_rows(store) == []
    # the record's bytes changed behind the collector's back: nothing can be signed
    with store.engine.begin() as conn:
        conn.execute(reports.update().where(reports.c.id == first).values(content=b"<html>forged</html>"))
    changed = client.post(f"/sign/{token}", data=form(first, link["record_sha256"]))
    assert changed.status_code == 409 and "changed" in changed.text
    assert signed_rows(store) == []
    # and no new link is made for an altered record
    assert make_link(client, t["engineer"], first).status_code == 409


def test_bad_forms_are_refused_with_a_page(setup: tuple[TestClient, Tokens], store: Store) -> None:
    client, t = setup
    record = fault_record(client, t["engineer"])
    token, link = link_token(client, t["engineer"], record)
    as_json = client.post(f"/sign/{token}", json=form(record, link["record_sha256"]))
    assert as_json.status_code == 400 and "could not be read" in as_json.text
    huge = client.post(f"/sign/{token}", data={**form(record, link["record_sha256"]), "pad": "x" * 5000})
    assert huge.status_code == 400
    streamed = client.post(  # a chunked body of 1 MiB: read up to the limit, then refused
        f"/sign/{token}",
        content=iter([b"record=1&" + b"x" * 65536] * 16),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert streamed.status_code == 400
    assert signed_rows(store) == []


def test_who_may_ask_for_a_signature(setup: tuple[TestClient, Tokens]) -> None:
    client, t = setup
    record = fault_record(client, t["engineer"])
    assert make_link(client, t["engineer"], record).status_code == 201
    assert make_link(client, t["manager"], record).status_code == 201
    admin = make_link(client, t["acme admin"], record)
    assert admin.status_code == 403 and "engineers and service managers" in admin.json()["detail"]
    assert make_link(client, t["acme viewer"], record).status_code == 403
    # another customer's people: the record does not exist for them
    for who in ("globex admin", "globex viewer"):
        assert make_link(client, t[who], record).status_code == 404
        assert client.get(f"/api/v1/records/{record}", headers=auth(t[who])).status_code == 404
        assert client.get(f"/api/v1/records/{record}/signoffs", headers=auth(t[who])).status_code == 404
        assert client.get(f"/api/v1/records/{record}/content", headers=auth(t[who])).status_code == 404
        assert client.get("/api/v1/records", headers=auth(t[who])).json() == []
        assert client.get("/api/v1/records?customer=acme", headers=auth(t[who])).status_code == 403
    missing = make_link(client, t["engineer"], 999_999)
    assert missing.status_code == 404
    bad = client.post(
        f"/api/v1/records/{record}/signoff", headers=auth(t["engineer"]), json={"contact": " ", "x": 1}
    )
    assert bad.status_code == 422
    too_long = make_link(client, t["engineer"], record, expires_in_hours=24 * 31)
    assert too_long.status_code == 422 and "expires_in_hours" in too_long.text
    assert client.post(f"/api/v1/records/{record}/signoff", json={"contact": "x"}).status_code == 401


def test_two_submissions_of_one_link_sign_once(store: Store) -> None:
    """The compare-and-set itself, on both engines."""
    client = TestClient(create_app(store))
    open_case(store, "acme", "db1")
    record = fault_record(client, store.create_api_token("li", "engineer"))
    repo = RecordRepo(store)
    from collector.records.signoff import make_link as new_link
    from collector.store import Scope

    link, token = new_link(
        repo,
        Scope.everything(),
        record,
        contact="Wang",
        contact_email=None,
        lang="en",
        actor="li",
        now=time.time(),
    )
    first = repo.sign(
        hash_token(token),
        report_id=record,
        report_sha256=link.report_sha256,
        client_addr="a",
        user_agent="u",
        statement="s",
    )
    second = repo.sign(
        hash_token(token),
        report_id=record,
        report_sha256=link.report_sha256,
        client_addr="b",
        user_agent="v",
        statement="t",
    )
    assert first is not None and first.client_addr == "a" and second is None


def test_verify_finds_altered_and_missing_records(
    setup: tuple[TestClient, Tokens], store: Store, tmp_path: Any
) -> None:
    client, t = setup
    signed = fault_record(client, t["engineer"])
    token, link = link_token(client, t["engineer"], signed)
    assert client.post(f"/sign/{token}", data=form(signed, link["record_sha256"])).status_code == 200
    kept = fault_record(client, t["engineer"], lang="zh-CN")
    theirs = fault_record(client, t["engineer"], case="C-globex-1")
    copy = tmp_path / "kept.html"
    copy.write_bytes(client.get(f"/api/v1/records/{kept}/content", headers=auth(t["engineer"])).content)
    with store.engine.begin() as conn:
        conn.execute(reports.update().where(reports.c.id == kept).values(path=str(copy)))
    clean = client.get("/api/v1/records/verify", headers=auth(t["engineer"])).json()
    assert clean == {"ok": True, "checked": 3, "signatures": 1, "problems": []}

    # altered behind the collector's back (bytes and hash rewritten together: the signature catches it)
    forged = b"<html>all fine</html>"
    with store.engine.begin() as conn:
        conn.execute(
            reports.update()
            .where(reports.c.id == signed)
            .values(content=forged, sha256=hashlib.sha256(forged).hexdigest())
        )
    copy.write_bytes(b"changed on disk")
    found = client.get("/api/v1/records/verify", headers=auth(t["acme viewer"])).json()
    assert found["ok"] is False and found["checked"] == 2  # a viewer verifies its own customer's records
    assert sorted((p["record"], p["problem"]) for p in found["problems"]) == [
        (signed, "altered"), (kept, "file_altered"),
    ]  # fmt: skip
    assert "Wang Fang signed" in found["problems"][0]["detail"]
    # missing: a signed record deleted
    with store.engine.begin() as conn:
        conn.execute(reports.delete().where(reports.c.id == signed))
    copy.unlink()
    found = client.get("/api/v1/records/verify?customer=acme", headers=auth(t["engineer"])).json()
    assert sorted((p["record"], p["problem"]) for p in found["problems"]) == [
        (signed, "missing"), (kept, "file_missing"),
    ]  # fmt: skip
    assert client.get(f"/sign/{token}").status_code == 404  # its link cannot show what is gone
    # another customer's people see only their own records, which are fine
    theirs_only = client.get("/api/v1/records/verify", headers=auth(t["globex admin"])).json()
    assert theirs_only == {"ok": True, "checked": 1, "signatures": 0, "problems": []} and theirs
    assert (
        client.get("/api/v1/records/verify?customer=acme", headers=auth(t["globex admin"])).status_code == 403
    )


def test_diagctl_verify_exits_non_zero_on_a_problem(tmp_path: Any) -> None:
    from tests.collector.http_server import serving
    from tests.collector.records.test_service_records import diagctl

    store = Store.open(f"sqlite:///{tmp_path / 'c.db'}")
    open_case(store, "acme", "db1")
    token = store.create_api_token("li", "engineer")
    try:
        with serving(create_app(store)) as url:
            client_record = fault_record(TestClient(create_app(store)), token)
            assert diagctl(url, token, "records", "verify")[0] == 0
            with store.engine.begin() as conn:
                conn.execute(reports.update().where(reports.c.id == client_record).values(content=b"x"))
            code, text = diagctl(url, token, "records", "verify")
            assert code == 1 and "altered" in text and "C-acme-1" in text
    finally:
        store.close()
