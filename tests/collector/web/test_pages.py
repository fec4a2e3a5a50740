"""The dashboard over plain HTTP against a real store (SQLite and PostgreSQL): sign-in,
sessions, CSRF, roles, customer scoping, security headers, language, charts."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from collector.http.app import create_app
from collector.store import Scope, Store
from collector.store.api_tokens import ApiTokenRepo
from collector.store.cases import CaseRepo
from collector.store.dashboard import DashboardRepo
from collector.web.frame import safe_next
from collector.web.sessions import Sessions
from tests.collector.web.seed import seed


@pytest.fixture
def site(store: Store) -> Iterator[tuple[Store, dict[str, str]]]:
    yield store, seed(store)


def client_for(store: Store, public_url: str = "") -> TestClient:
    # Secure cookies come back only over https: the client speaks https when the site does.
    base = "https://testserver" if public_url.startswith("https") else "http://testserver"
    return TestClient(create_app(store, public_url=public_url), base_url=base)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field in the page"
    return found.group(1)


def signed_in(store: Store, token: str, public_url: str = "") -> TestClient:
    client = client_for(store, public_url)
    page = client.get("/sign-in")
    response = client.post(
        "/sign-in",
        data={"csrf": csrf_of(page.text), "token": token, "next": "/fleet"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return client


def test_root_and_a_case_link_go_through_sign_in_and_back(site) -> None:
    store, tokens = site
    client = client_for(store)
    assert client.get("/", follow_redirects=False).headers["location"] == "/sign-in"
    case_url = f"/cases/{tokens['case']}"
    first = client.get(case_url, follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == f"/sign-in?next={case_url}"
    form = client.get(first.headers["location"])
    assert f'name="next" value="{case_url}"' in form.text
    landed = client.post(
        "/sign-in", data={"csrf": csrf_of(form.text), "token": tokens["engineer"], "next": case_url}
    )
    assert landed.status_code == 200 and tokens["case"] in landed.text and "FS_FULL" not in landed.url.path
    assert str(landed.url).endswith(case_url)
    assert client.get("/", follow_redirects=False).headers["location"] == "/fleet"


def test_sign_in_refuses_bad_tokens_and_forms_without_csrf(site) -> None:
    store, tokens = site
    client = client_for(store)
    page = client.get("/sign-in")
    bad = client.post("/sign-in", data={"csrf": csrf_of(page.text), "token": "nope", "next": "/fleet"})
    assert (
        bad.status_code == 401
        and "invalid" in bad.text
        and "diag_session" not in bad.headers.get("set-cookie", "")
    )
    fresh = client_for(store)  # no sign-in CSRF cookie: login CSRF from another site
    refused = fresh.post("/sign-in", data={"csrf": "x", "token": tokens["engineer"]}, follow_redirects=False)
    assert refused.status_code == 403 and "diag_session" not in refused.headers.get("set-cookie", "")
    assert "security token" in refused.text


def test_session_cookie_flags_and_security_headers(site) -> None:
    store, tokens = site
    client = client_for(store)
    page = client.get("/sign-in")
    response = client.post(
        "/sign-in", data={"csrf": csrf_of(page.text), "token": tokens["viewer"]}, follow_redirects=False
    )
    cookie = response.headers["set-cookie"].lower()
    assert "diag_session=" in cookie and "httponly" in cookie and "samesite=strict" in cookie
    assert "secure" not in cookie.split("diag_signin_csrf")[0]
    tls = client_for(store, public_url="https://diag.example.com")
    page = tls.get("/sign-in")
    cookie = tls.post(
        "/sign-in", data={"csrf": csrf_of(page.text), "token": tokens["viewer"]}, follow_redirects=False
    ).headers["set-cookie"]
    assert "; secure" in cookie.lower()
    fleet = client.get("/fleet")
    csp = fleet.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert fleet.headers["x-content-type-options"] == "nosniff"
    assert fleet.headers["referrer-policy"] == "same-origin"
    assert fleet.headers["cache-control"] == "no-store"
    assert "<script>" not in fleet.text  # no inline script anywhere
    assert "content-security-policy" not in client.get("/api/v1/docs").headers  # Swagger UI keeps working


def test_fleet_is_scoped_and_puts_the_customer_needing_attention_first(site) -> None:
    store, tokens = site
    engineer = signed_in(store, tokens["engineer"])
    data = engineer.get("/fleet.json").json()["customers"]
    assert [c["customer"] for c in data] == ["acme", "globex"]
    acme = data[0]
    assert acme["worst"] == "CRIT" and acme["cases_active"] == 1 and acme["hosts"] == 2
    assert acme["layers"]["storage"] == {"worst": "CRIT", "counts": {"CRIT": 1, "OK": 1}}
    assert acme["layers"]["host"]["counts"] == {"WARN": 1, "OK": 1}
    page = engineer.get("/fleet").text
    assert page.index(">acme<") < page.index(">globex<")
    assert 'class="cell sev-bg-crit" data-layer="storage"' in page
    admin = signed_in(store, tokens["admin"])
    assert [c["customer"] for c in admin.get("/fleet.json").json()["customers"]] == ["acme"]
    assert "globex" not in admin.get("/fleet").text


@pytest.mark.parametrize(
    "path",
    ["/hosts/globex/app1", "/fleet/globex", "/cases/C-globex-1", "/inspections/runs/nope", "/reports/1/view"],
)
def test_another_customers_things_by_url_are_404_like_missing_ones(site, path: str) -> None:
    store, tokens = site
    admin = signed_in(store, tokens["admin"])
    other = admin.get(path)
    assert other.status_code == 404
    missing = admin.get(path.replace("globex", "nosuch").replace("app1", "nohost"))
    assert missing.status_code == 404
    assert "app1" not in other.text or "No host app1" in other.text  # nothing but the name asked for


def test_host_page_shows_results_charts_with_band_and_anomalies_and_its_case(site) -> None:
    store, tokens = site
    page = signed_in(store, tokens["admin"]).get("/hosts/acme/db1").text
    assert "storage.filesystem" in page and "/data is 97% full" in page
    assert 'class="envelope"' in page and 'class="anomaly"' in page
    assert "<title>host_load_ratio</title>" in page and "<desc>" in page
    assert "1 anomalies" in page  # the spike, and only it
    assert f'href="/cases/{tokens["case"]}"' in page


def test_posts_without_csrf_are_refused_and_change_nothing(site) -> None:
    store, tokens = site
    admin = signed_in(store, tokens["admin"])
    case_id = tokens["case"]
    for body in ({}, {"csrf": "forged"}):
        refused = admin.post(f"/cases/{case_id}/ack", data=body)
        assert refused.status_code == 403
    assert CaseRepo(store).get(Scope.everything(), case_id).state == "new"
    anonymous = client_for(store).post(f"/cases/{case_id}/ack", data={"csrf": "x"}, follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/sign-in")
    assert CaseRepo(store).get(Scope.everything(), case_id).state == "new"


def test_acknowledge_note_resolve_and_close_with_the_forms(site) -> None:
    store, tokens = site
    case_id = tokens["case"]
    # The customer's admin adds notes but does not work the case (as in the API): 403, no forms.
    admin = signed_in(store, tokens["admin"])
    page_for_admin = admin.get(f"/cases/{case_id}").text
    assert f'action="/cases/{case_id}/ack"' not in page_for_admin
    admin_csrf = csrf_of(page_for_admin)
    assert admin.post(f"/cases/{case_id}/ack", data={"csrf": admin_csrf}).status_code == 403
    page = admin.post(f"/cases/{case_id}/notes", data={"csrf": admin_csrf, "note": "<b>disk</b> cleaned"})
    assert "&lt;b&gt;disk&lt;/b&gt; cleaned" in page.text  # escaped, never markup
    engineer = signed_in(store, tokens["engineer"])
    token = csrf_of(engineer.get(f"/cases/{case_id}").text)
    assert engineer.post(f"/cases/{case_id}/ack", data={"csrf": token, "owner": "li"}).status_code == 200
    assert engineer.post(f"/cases/{case_id}/resolve", data={"csrf": token, "note": "done"}).status_code == 200
    again = engineer.post(f"/cases/{case_id}/ack", data={"csrf": token})
    assert again.status_code == 409
    assert engineer.post(f"/cases/{case_id}/close", data={"csrf": token}).status_code == 200
    case = CaseRepo(store).get(Scope.everything(), case_id)
    assert case.state == "closed" and case.owner == "li"
    assert [e.kind for e in case.events][-4:] == ["note", "acknowledged", "resolved", "closed"]
    assert [e.actor for e in case.events[-4:]] == ["acme-admin", "eng", "eng", "eng"]


def test_viewers_and_other_customers_cannot_change_a_case(site) -> None:
    store, tokens = site
    case_id = tokens["case"]
    viewer = signed_in(store, tokens["viewer"])
    page = viewer.get(f"/cases/{case_id}").text
    assert f'action="/cases/{case_id}/ack"' not in page  # no forms for a read-only role
    token = csrf_of(page)  # the sign-out form's
    assert viewer.post(f"/cases/{case_id}/ack", data={"csrf": token}).status_code == 403
    globex = signed_in(store, tokens["globex"])
    token = csrf_of(globex.get("/fleet").text)
    assert globex.post(f"/cases/{case_id}/ack", data={"csrf": token}).status_code == 404
    assert CaseRepo(store).get(Scope.everything(), case_id).state == "new"


def test_sign_out_and_token_revocation_end_the_session(site) -> None:
    store, tokens = site
    admin = signed_in(store, tokens["admin"])
    cookie = admin.cookies.get("diag_session")
    token = csrf_of(admin.get("/fleet").text)
    assert admin.post("/sign-out", data={"csrf": token}, follow_redirects=False).status_code == 303
    replay = client_for(store)
    replay.app = admin.app  # the same server: the old cookie no longer opens anything
    replay.cookies.set("diag_session", cookie or "")
    assert replay.get("/fleet", follow_redirects=False).status_code == 303
    engineer = signed_in(store, tokens["engineer"])
    assert engineer.get("/fleet").status_code == 200
    eng_id = next(t.id for t in ApiTokenRepo(store).list(Scope.everything()) if t.name == "eng")
    store.revoke_api_token(eng_id)
    assert not DashboardRepo(store).token_active(eng_id, 0.0)
    assert engineer.get("/fleet", follow_redirects=False).status_code == 303


def test_language_is_switchable_and_remembered(site) -> None:
    store, tokens = site
    admin = signed_in(store, tokens["admin"])
    assert "<h1>Cases</h1>" in admin.get("/cases").text
    switched = admin.get("/lang/zh-CN?next=/cases")
    assert (
        switched.status_code == 200
        and "<h1>工单</h1>" in switched.text
        and '<html lang="zh-CN">' in switched.text
    )
    assert "<h1>工单</h1>" in admin.get("/cases").text
    assert admin.get("/lang/xx").status_code == 404
    evil = admin.get("/lang/en?next=//evil.example.com", follow_redirects=False)
    assert evil.headers["location"] == "/fleet"


def test_safe_next_keeps_only_local_paths() -> None:
    assert safe_next("/cases/C-acme-1") == "/cases/C-acme-1"
    for bad in ("https://evil.example.com", "//evil.example.com", "/\\evil.example.com", "", None, "/a\nb"):
        assert safe_next(bad) == "/fleet"


def test_sessions_expire_idle_and_absolute() -> None:
    now = [1000.0]
    sessions = Sessions(idle_s=60, absolute_s=300, clock=lambda: now[0])
    from collector.store import ApiPrincipal

    who = ApiPrincipal(1, "eng", "engineer", None)
    sid, session = sessions.create(who)
    assert sid not in repr(sessions._by_digest)  # kept as a digest only
    for _ in range(4):  # used every 50 s: idle never reached ...
        now[0] += 50
        assert sessions.get(sid) is session
    now[0] += 50
    assert sessions.get(sid) is session
    now[0] += 60  # ... idle now
    assert sessions.get(sid) is None
    sid, _ = sessions.create(who)
    for _ in range(6):
        now[0] += 50
    assert sessions.get(sid) is None  # 300 s absolute, however busy
    assert sessions.get("made-up") is None and sessions.get("x" * 500) is None
