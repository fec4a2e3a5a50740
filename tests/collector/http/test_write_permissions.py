"""Every write endpoint of every router refuses read-only callers (issue 13, "Tests that let a bug through").

Table-driven over the app's own routes (its OpenAPI document): each POST, PUT, PATCH
and DELETE must have a sample request in :data:`WRITES`, so a new write endpoint
fails :func:`test_every_write_route_has_a_sample_request` until it is covered here.
Each sample is a valid request for customer acme's own objects; it is sent by

- acme's viewer: must get 403 (read-only tokens never write);
- globex's viewer and globex's customer_admin: 403 or 404 (another customer's
  objects are forbidden or invisible);
- acme's customer_admin and an engineer (the control): must get past the role check
  (2xx, or 409 when the object's state forbids the step), which shows the request
  itself is valid, so the refusals above are the role's doing. Steps only the vendor's
  people take (``staff``: working a case) are refused to acme's customer_admin (403) and
  pass for a service manager instead.

A real store (SQLite and PostgreSQL) behind the real FastAPI app.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pytest
from fastapi.testclient import TestClient

from collector.http.app import create_app
from collector.inspections.plan import parse_plan
from collector.inspections.service import service_for
from collector.store import Scope, Store
from collector.store.customer_file import CustomerFileRepo
from collector.store.documents import DocumentRepo
from collector.store.reports import ReportRepo
from collector.store.schema_sessions import sessions
from collector.store.sessions import SessionRepo
from tests.collector.cases.test_api import open_case
from tests.collector.sessions.conftest import KEY
from tests.collector.store.conftest import pg_store_session, pg_url, store

__all__ = ["pg_store_session", "pg_url", "store"]

WRITE_METHODS = {"post", "put", "patch", "delete"}
SID = "s-00000000000000a1"
"""acme's session (requested), seeded with this id."""


@dataclass(frozen=True)
class Write:
    """One valid write request on acme's objects."""

    path: str
    body: dict[str, Any] | None = None
    params: dict[str, str] = field(default_factory=dict)
    staff: bool = False
    """Engineers and service managers only (a customer_admin gets 403)."""
    allowed: tuple[str, ...] = ()
    """Who gets past the role check (the control), when not the default for ``staff``."""
    content: bytes | None = None
    """A raw body (a document upload) instead of JSON."""


WRITES: dict[tuple[str, str], Write] = {
    ("POST", "/api/v1/agents"): Write(
        "/api/v1/agents", {"customer": "acme", "host": "new1", "agent_id": "acme-new1"}
    ),
    ("POST", "/api/v1/agents/{agent_id}/revoke"): Write("/api/v1/agents/acme-db1/revoke"),
    ("POST", "/api/v1/cases/{case_id}/ack"): Write("/api/v1/cases/C-acme-1/ack", {"owner": "x"}, staff=True),
    ("POST", "/api/v1/cases/{case_id}/notes"): Write("/api/v1/cases/C-acme-1/notes", {"text": "a note"}),
    ("POST", "/api/v1/cases/{case_id}/resolve"): Write(
        "/api/v1/cases/C-acme-1/resolve", {"note": "fixed"}, staff=True
    ),
    ("POST", "/api/v1/cases/{case_id}/close"): Write("/api/v1/cases/C-acme-1/close", staff=True),
    ("POST", "/api/v1/sessions"): Write(
        "/api/v1/sessions",
        {"host": "db1", "case": "C-acme-1", "reason": "disk", "public_key": KEY, "duration_s": 600},
        allowed=("engineer",),
    ),
    ("POST", "/api/v1/sessions/{session_id}/approve"): Write(
        f"/api/v1/sessions/{SID}/approve", allowed=("acme admin",)
    ),
    ("POST", "/api/v1/sessions/{session_id}/deny"): Write(
        f"/api/v1/sessions/{SID}/deny", allowed=("acme admin",)
    ),
    ("POST", "/api/v1/sessions/{session_id}/revoke"): Write(
        f"/api/v1/sessions/{SID}/revoke", allowed=("manager", "acme admin", "engineer")
    ),
    ("POST", "/api/v1/cases"): Write(
        "/api/v1/cases", {"customer": "acme", "type": "consultation", "channel": "email", "title": "how?"}
    ),
    **{
        ("POST", f"/api/v1/cases/{{case_id}}/{step}"): Write(f"/api/v1/cases/C-acme-1/{step}", staff=True)
        for step in ("take", "start", "wait", "resume", "follow-up", "reopen")
    },
    ("POST", "/api/v1/cases/{case_id}/transfer"): Write(
        "/api/v1/cases/C-acme-1/transfer", {"to": "zhang", "reason": "DBA work"}, staff=True
    ),
    ("POST", "/api/v1/cases/{case_id}/time"): Write(
        "/api/v1/cases/C-acme-1/time", {"minutes": 30, "activity": "analysis"}, staff=True
    ),
    ("POST", "/api/v1/cases/{case_id}/decision"): Write(
        "/api/v1/cases/C-acme-1/decision", {"decision": "deferred", "text": "next year"}, staff=True
    ),
    ("POST", "/api/v1/cases/{case_id}/release"): Write(
        "/api/v1/cases/C-acme-1/release", {"release": "5.3"}, staff=True
    ),
    ("POST", "/api/v1/cases/{case_id}/callback"): Write(
        "/api/v1/cases/C-acme-1/callback", {"result": "no_answer"}, staff=True
    ),
    ("POST", "/api/v1/cases/{case_id}/complaint-steps"): Write(
        "/api/v1/cases/C-acme-1/complaint-steps", {"step": "supervised", "text": "daily"}, staff=True
    ),
    ("POST", "/api/v1/inspections/plans/{name}/runs"): Write("/api/v1/inspections/plans/weekly/runs"),
    ("POST", "/api/v1/tokens"): Write("/api/v1/tokens", {"name": "ci", "role": "viewer", "customer": "acme"}),
    # Token 7 is acme's spare viewer token (see seeded); ids 1-6 are the callers' own.
    ("POST", "/api/v1/tokens/{token_id}/revoke"): Write("/api/v1/tokens/7/revoke"),
    # Report 1 is acme's stored fault report of C-acme-1 (see seeded).
    ("POST", "/api/v1/reports/{report_id}/render"): Write("/api/v1/reports/1/render"),
    ("PUT", "/api/v1/customers/{customer}/profile"): Write(
        "/api/v1/customers/acme/profile", {"name": "Acme Trading Co."}
    ),
    # Contract 1 and contact 1 are acme's (see seeded).
    ("POST", "/api/v1/customers/{customer}/contracts"): Write(
        "/api/v1/customers/acme/contracts",
        {"name": "new", "starts_on": "2025-01-01", "ends_on": "2025-12-31"},
        staff=True,
    ),
    ("PATCH", "/api/v1/customers/{customer}/contracts/{contract_id}"): Write(
        "/api/v1/customers/acme/contracts/1", {"tier": "gold"}, staff=True
    ),
    ("POST", "/api/v1/customers/{customer}/contacts"): Write(
        "/api/v1/customers/acme/contacts", {"name": "Li Na", "role": "DBA", "email": "li@acme.example"}
    ),
    ("PATCH", "/api/v1/customers/{customer}/contacts/{contact_id}"): Write(
        "/api/v1/customers/acme/contacts/1", {"language": "en"}
    ),
    ("DELETE", "/api/v1/customers/{customer}/contacts/{contact_id}"): Write(
        "/api/v1/customers/acme/contacts/1"
    ),
    # Service records (collector.http.records, documents): record 1 as above, document 1 (seeded).
    ("POST", "/api/v1/records"): Write(
        "/api/v1/records", {"kind": "emergency", "case": "C-acme-1"}, staff=True
    ),
    ("POST", "/api/v1/records/{record_id}/signoff"): Write(
        "/api/v1/records/1/signoff", {"contact": "Wang Fang"}, staff=True
    ),
    ("POST", "/api/v1/customers/{customer}/documents"): Write(
        "/api/v1/customers/acme/documents", params={"name": "notes.txt"}, content=b"disk grown\n"
    ),
    ("DELETE", "/api/v1/documents/{document_id}"): Write("/api/v1/documents/1"),
}
"""(method, route path) -> a valid request for acme's objects."""

REFUSED_ALWAYS = {"acme viewer": {403}}
REFUSED_OTHER_CUSTOMER = {"globex viewer": {403, 404}, "globex admin": {403, 404}}
ALLOWED = ("acme admin", "engineer")
ONE_SHOT = {
    "/api/v1/agents",
    "/api/v1/documents/{document_id}",
    "/api/v1/customers/{customer}/contacts",
    "/api/v1/customers/{customer}/contacts/{contact_id}",
}


def write_routes(app: Any) -> set[tuple[str, str]]:
    paths: dict[str, dict[str, Any]] = app.openapi()["paths"]
    return {
        (method.upper(), path) for path, ops in paths.items() for method in ops if method in WRITE_METHODS
    }


@pytest.fixture
def seeded(store: Store) -> tuple[TestClient, dict[str, str]]:
    open_case(store, "acme", "db1")  # C-acme-1, agent acme-db1
    open_case(store, "globex", "erp1")
    service_for(store).add_plan(
        parse_plan({"name": "weekly", "customer": "acme", "timezone": "UTC", "schedule": "@weekly"})
    )
    tokens = {
        "engineer": store.create_api_token("eng", "engineer"),
        "acme admin": store.create_api_token("acme-admin", "customer_admin", customer="acme"),
        "acme viewer": store.create_api_token("acme-viewer", "viewer", customer="acme"),
        "globex admin": store.create_api_token("globex-admin", "customer_admin", customer="globex"),
        "globex viewer": store.create_api_token("globex-viewer", "viewer", customer="globex"),
    }
    manager = store.create_api_token("manager", "service_manager")
    store.create_api_token("acme-spare", "viewer", customer="acme")  # id 7: for the revoke route
    tokens["manager"] = manager
    s = SessionRepo(store).request(
        Scope.everything(),
        engineer="eng",
        host="db1",
        case_id="C-acme-1",
        reason="disk",
        mode="shell",
        public_key=KEY,
        duration_s=600,
        now=time.time(),
    )
    with store.engine.begin() as conn:
        conn.execute(sessions.update().where(sessions.c.id == s.id).values(id=SID))
    # Report 1: a stored fault report of acme's case, for the render-again route.
    ReportRepo(store).add_report("acme", "fault", "C-acme-1", "en", "html", b"<html></html>")
    desk = CustomerFileRepo(store)
    desk.add_contract(
        Scope.everything(),
        "acme",
        {
            "name": "2025",
            "tier": "standard",
            "starts_on": date(2025, 1, 1),
            "ends_on": date(2025, 12, 31),
            "targets": {},
            "rate_onsite": 0,
            "rate_remote": 0,
            "currency": "CNY",
            "calendar": {},
        },
        now=0.0,
    )
    desk.add_contact(
        Scope.everything(), "acme", {"name": "Wang", "role": "IT", "email": "w@acme.example"}, now=0.0
    )
    # Document 1: acme's, for the delete route.
    DocumentRepo(store).add(Scope.everything(), "acme", name="a.pdf", media_type="application/pdf",
                            content=b"%PDF-1.4", uploaded_by="eng")  # fmt: skip
    return TestClient(create_app(store)), tokens


def send(client: TestClient, method: str, write: Write, token: str) -> Any:
    if write.content is not None:
        return client.request(
            method, write.path, content=write.content, params=write.params,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"},
        )  # fmt: skip
    return client.request(
        method,
        write.path,
        json=write.body,
        params=write.params,
        headers={"Authorization": f"Bearer {token}"},
    )


def test_every_write_route_has_a_sample_request(tmp_path: Any) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        routes = write_routes(create_app(store))
    finally:
        store.close()
    missing = routes - set(WRITES)
    assert not missing, f"add a sample request to WRITES for each new write route: {sorted(missing)}"
    assert set(WRITES) <= routes, f"WRITES names routes that are gone: {sorted(set(WRITES) - routes)}"


@pytest.mark.parametrize("route", sorted(WRITES), ids=lambda r: f"{r[0]} {r[1]}")
def test_read_only_and_foreign_callers_are_refused_every_write(
    seeded: tuple[TestClient, dict[str, str]], route: tuple[str, str]
) -> None:
    client, tokens = seeded
    method, _ = route
    write = WRITES[route]
    refused = {**REFUSED_ALWAYS, **REFUSED_OTHER_CUSTOMER}
    for who, expected in refused.items():
        response = send(client, method, write, tokens[who])
        assert response.status_code in expected, (who, response.status_code, response.text)
    if write.staff:
        response = send(client, method, write, tokens["acme admin"])
        assert response.status_code == 403, ("acme admin", response.text)
    # The control, after the refusals (which must have changed nothing it depends on).
    for who in write.allowed or (("manager", "engineer") if write.staff else ALLOWED):
        response = send(client, method, write, tokens[who])
        assert response.status_code < 300 or response.status_code == 409, (who, response.text)
        if method in ("POST", "DELETE") and route[1] in ONE_SHOT:
            break  # the object now exists (or is gone): a second try is a 409 (404) by design
