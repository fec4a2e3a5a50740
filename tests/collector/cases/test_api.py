"""The cases API and ``diagctl cases`` over a real store (SQLite and PostgreSQL) and real HTTP."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from collector.emergency.case_content import case_content
from collector.http.app import create_app
from collector.incidents import IncidentEngine, Signal
from collector.store import Scope, Store
from collector.store.cases import CaseRepo
from diagctl.main import main
from tests.collector.http_server import serving
from tests.collector.people import T0, auth, open_case

__all__ = ["T0", "auth", "diagctl", "open_case", "server"]


@pytest.fixture
def client(store: Store) -> TestClient:
    return TestClient(create_app(store))


@pytest.fixture
def tokens(store: Store) -> dict[str, str]:
    open_case(store, "acme", "db1")
    open_case(store, "globex", "erp1", T0 + 60)
    return {
        "engineer": store.create_api_token("eng", "engineer"),
        "admin": store.create_api_token("acme-admin", "customer_admin", customer="acme"),
        "viewer": store.create_api_token("acme-viewer", "viewer", customer="acme"),
    }


def test_list_and_show_are_scoped_by_customer(client: TestClient, tokens: dict[str, str]) -> None:
    everything = client.get("/api/v1/cases", headers=auth(tokens["engineer"])).json()
    assert [c["id"] for c in everything] == ["C-globex-1", "C-acme-1"]
    mine = client.get("/api/v1/cases", headers=auth(tokens["viewer"])).json()
    assert [c["id"] for c in mine] == ["C-acme-1"]
    assert mine[0]["probable_cause"] and mine[0]["hosts"] == ["db1"]
    shown = client.get("/api/v1/cases/C-acme-1", headers=auth(tokens["admin"])).json()
    assert shown["causes"][0]["layer"] == "storage"
    assert shown["members"][0]["series"] == "check:storage.filesystem[/var]"
    assert [e["kind"] for e in shown["events"]] == ["opened"]
    # another customer's case is indistinguishable from a missing one
    other = client.get("/api/v1/cases/C-globex-1", headers=auth(tokens["admin"]))
    missing = client.get("/api/v1/cases/C-acme-99", headers=auth(tokens["admin"]))
    assert other.status_code == missing.status_code == 404
    assert client.get("/api/v1/cases?customer=globex", headers=auth(tokens["admin"])).status_code == 403
    assert client.get("/api/v1/cases").status_code == 401


def test_state_machine_with_owner_notes_and_conflicts(client: TestClient, tokens: dict[str, str]) -> None:
    h = auth(tokens["engineer"])
    assert client.post("/api/v1/cases/C-acme-1/close", headers=h).status_code == 409
    acked = client.post("/api/v1/cases/C-acme-1/ack", headers=h).json()
    assert (acked["state"], acked["owner"], acked["first_responder"]) == ("acknowledged", "eng", "eng")
    again = client.post("/api/v1/cases/C-acme-1/ack", headers=h, json={"owner": "bob"})
    assert again.status_code == 409 and "already" in again.json()["detail"]
    admin = auth(tokens["admin"])  # a customer admin adds notes
    noted = client.post("/api/v1/cases/C-acme-1/notes", headers=admin, json={"text": "disk replaced"}).json()
    assert noted["events"][-1] == {
        **noted["events"][-1],
        "kind": "note",
        "actor": "acme-admin",
        "text": "disk replaced",
    }
    assert client.post("/api/v1/cases/C-acme-1/notes", headers=h, json={"text": ""}).status_code == 422
    resolved = client.post("/api/v1/cases/C-acme-1/resolve", headers=h, json={"note": "new disk"}).json()
    assert resolved["state"] == "resolved" and resolved["resolved_at"]
    conflict = client.post("/api/v1/cases/C-acme-1/resolve", headers=h)
    assert (
        conflict.status_code == 409
        and "resolve is allowed only from new, acknowledged" in conflict.json()["detail"]
    )
    closed = client.post("/api/v1/cases/C-acme-1/close", headers=h).json()
    assert closed["state"] == "closed"
    assert [e["kind"] for e in closed["events"]] == ["opened", "acknowledged", "note", "resolved", "closed"]
    assert [c["id"] for c in client.get("/api/v1/cases?active=true", headers=admin).json()] == []
    assert [c["id"] for c in client.get("/api/v1/cases?state=closed", headers=h).json()] == ["C-acme-1"]


def test_viewers_read_only_and_foreign_admins_see_nothing(client: TestClient, tokens: dict[str, str]) -> None:
    viewer = client.post("/api/v1/cases/C-acme-1/ack", headers=auth(tokens["viewer"]))
    assert viewer.status_code == 403
    for step in ("ack", "resolve", "close"):  # the vendor's engineers work cases, not the customer
        admin = client.post(f"/api/v1/cases/C-acme-1/{step}", headers=auth(tokens["admin"]))
        assert admin.status_code == 403 and "engineers and service managers" in admin.json()["detail"]
    foreign = client.post("/api/v1/cases/C-globex-1/ack", headers=auth(tokens["admin"]))
    assert foreign.status_code == 404
    assert (
        client.post(
            "/api/v1/cases/C-acme-1/ack", headers=auth(tokens["engineer"]), json={"owner": "li"}
        ).json()["owner"]
        == "li"
    )


def test_case_numbers_count_per_customer_and_opening_is_idempotent(store: Store) -> None:
    store.enroll_agent("acme", "db1", "acme-db1")
    repo = CaseRepo(store)
    ids = []
    for host in ("db1", "db2"):  # two unrelated incidents
        engine = IncidentEngine(clock=lambda: T0)
        (incident,) = engine.feed(Signal.check_crit("acme", host, "storage.filesystem", "FS_FULL", ts=T0))
        ids.append(repo.open_case(case_content(incident), now=T0))
        assert repo.open_case(case_content(incident), now=T0) == ids[-1]  # a retry
    assert ids == ["C-acme-1", "C-acme-2"]
    assert len(repo.list(Scope.of("acme"))) == 2


# --------------------------------------------------------------------------- diagctl


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Store]]:
    store = Store.open(f"sqlite:///{tmp_path / 'c.db'}")
    with serving(create_app(store)) as url:
        yield url, store
    store.close()


def diagctl(url: str, token: str, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(["--server", url, "--token", token, *args], out=out)
    return code, out.getvalue()


def test_diagctl_cases_commands(server: tuple[str, Store], capsys: pytest.CaptureFixture[str]) -> None:
    url, store = server
    open_case(store, "acme", "db1")
    token = store.create_api_token("li", "engineer")
    code, text = diagctl(url, token, "cases", "list")
    assert code == 0
    assert text.splitlines()[0].split() == [
        "CASE", "SEVERITY", "STATE", "TYPE", "CHANNEL", "OWNER", "OPENED", "HOSTS", "TITLE",
    ]  # fmt: skip
    assert "C-acme-1" in text and "CRIT" in text and "db1" in text
    code, text = diagctl(url, token, "cases", "list", "--format", "json")
    assert code == 0 and [c["id"] for c in json.loads(text)] == ["C-acme-1"]
    code, text = diagctl(url, token, "cases", "show", "C-acme-1")
    assert code == 0 and "PROBABLE CAUSES" in text and "storage" in text and "TIMELINE" in text
    assert diagctl(url, token, "cases", "ack", "C-acme-1")[1].startswith("C-acme-1: acknowledged")
    assert diagctl(url, token, "cases", "note", "C-acme-1", "looking at sdb")[0] == 0
    assert diagctl(url, token, "cases", "close", "C-acme-1")[0] == 1
    assert "resolve it first" in capsys.readouterr().err
    code, text = diagctl(url, token, "cases", "resolve", "C-acme-1", "--note", "replaced", "--format", "json")
    assert code == 0 and json.loads(text)["state"] == "resolved"
    assert diagctl(url, token, "cases", "close", "C-acme-1")[0] == 0
    code, text = diagctl(url, token, "cases", "show", "C-acme-1", "--format", "json")
    assert [e["kind"] for e in json.loads(text)["events"]] == [
        "opened",
        "acknowledged",
        "note",
        "resolved",
        "closed",
    ]
    assert diagctl(url, token, "cases", "show", "C-nope-1")[0] == 1


def test_ack_and_resolve_queue_notifications(
    client: TestClient, store: Store, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from collector.emergency import service
    from collector.notify import CaseEvent, Notifier, NotifyConfig

    config = NotifyConfig.model_validate(
        {
            "customers": {
                "acme": {"webhooks": [{"name": "ops", "url": "http://127.0.0.1:9/x", "secret": "s" * 16}]}
            }
        }
    )
    notifier = Notifier.from_config(store, config)
    monkeypatch.setattr(service, "_notifier", notifier)
    try:
        h = auth(tokens["engineer"])
        client.post("/api/v1/cases/C-acme-1/ack", headers=h)
        client.post("/api/v1/cases/C-acme-1/resolve", headers=h, json={"note": "new disk"})
        rows = notifier.outbox.entries()
        events = [CaseEvent.model_validate_json(r.payload) for r in rows]
        assert [(e.event, e.actor, r.target) for e, r in zip(events, rows, strict=True)] == [
            ("acknowledged", "eng", "ops"),
            ("resolved", "eng", "ops"),
        ]
        assert events[1].note == "new disk" and events[1].case_id == "C-acme-1"
    finally:
        notifier.close()


def test_incidents_are_listed_per_scope(client: TestClient, store: Store, tokens: dict[str, str]) -> None:
    engine = IncidentEngine(clock=lambda: T0)
    (incident,) = engine.feed(Signal.check_crit("globex", "erp1", "application.http", "HTTP_DOWN", ts=T0))
    CaseRepo(store).save_incident(incident.to_dict(), now=T0)
    everything = client.get("/api/v1/incidents", headers=auth(tokens["engineer"])).json()
    assert [(i["customer"], i["kind"], i["case_id"]) for i in everything] == [("globex", "DEGRADATION", None)]
    assert everything[0]["timeline"][0]["key"] == "INCIDENT_OPENED"
    assert client.get("/api/v1/incidents", headers=auth(tokens["viewer"])).json() == []
