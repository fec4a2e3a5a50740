"""HTTP API against a real SQLite store: auth, roles, scoping, hostile input, metrics."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Counter

from collector.http.app import create_app
from collector.ingest.decode import decode_logged
from collector.store import IngestBatch, PointRow, ResultRow, Store

T0 = 1_700_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path / 'c.db'}", log_decoder=decode_logged)
    yield s
    s.close()


@pytest.fixture
def client(store: Store) -> TestClient:
    registry = CollectorRegistry()
    Counter("diag_ingest_batches", "Batches ingested", registry=registry).inc(3)
    return TestClient(create_app(store, registry, grpc_address="collector.example:50051"))


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def seed(store: Store) -> None:
    for customer, host in (("acme", "web1"), ("acme", "db1"), ("globex", "app1")):
        agent, _ = store.enroll_agent(customer, host=host, agent_id=f"{customer}-{host}")
        rows = [
            ResultRow(1, T0, "host.load", "host", "WARN", "LOAD_HIGH", "Load 3.1", 1.0, "[]", None),
            ResultRow(2, T0 + 60, "storage.filesystem", "storage", "OK", "OK", "fine", 2.0, "[]", None),
            ResultRow(
                3, T0 + 120, "host.load", "host", "OK", "OK", "Load 0.4", 1.0, json.dumps([{"k": 1}]), None
            ),
        ]
        points = [PointRow(1, T0, "host.load", "load_ratio", "ratio", (), 3.1)]
        store.ingest(agent, IngestBatch(3, 1, rows, points, [], []))


@pytest.fixture
def tokens(store: Store) -> dict[str, str]:
    seed(store)
    return {
        "engineer": store.create_api_token("eng", "engineer"),
        "admin": store.create_api_token("acme-admin", "customer_admin", customer="acme"),
        "viewer": store.create_api_token("acme-viewer", "viewer", customer="acme"),
    }


def test_healthz_and_metrics(client: TestClient, store: Store) -> None:
    health = client.get("/healthz").json()
    assert health["status"] == "ok"
    # The fixture's batches were stored directly (small groups, empty log): no backlog.
    assert health["ingest_log"] == {
        "pending_batches": 0,
        "pending_points": 0,
        "lag_seconds": 0.0,
        "quarantined_batches": 0,
    }
    store.enroll_agent("acme", host="web1")
    text = client.get("/metrics").text
    assert "diag_ingest_batches_total 3.0" in text
    assert "diag_store_up 1.0" in text
    assert 'diag_store_agents{state="active"} 1.0' in text


def test_healthz_reports_an_unreachable_store(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'c.db'}")
    client = TestClient(create_app(store, None))
    (tmp_path / "c.db").unlink()
    (tmp_path / "c.db").mkdir()  # the file is now a directory: SQLite cannot open it
    store.engine.dispose()
    response = client.get("/healthz")
    assert response.status_code == 503
    assert "diag_store_up 0.0" in client.get("/metrics").text


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        pytest.param({}, "missing API token", id="no token"),
        pytest.param({"Authorization": "Bearer dgt_nope"}, "invalid or revoked API token", id="bad token"),
        pytest.param({"Authorization": "Basic dXNlcjpwdw=="}, "missing API token", id="not bearer"),
    ],
)
def test_401_without_a_valid_token(client: TestClient, headers: dict[str, str], detail: str) -> None:
    response = client.get("/api/v1/hosts", headers=headers)
    assert response.status_code == 401
    assert response.json()["detail"].startswith(detail)


def test_agent_tokens_are_not_api_tokens(client: TestClient, store: Store) -> None:
    _, agent_token = store.enroll_agent("acme")
    assert client.get("/api/v1/hosts", headers=auth(agent_token)).status_code == 401


def test_hosts_are_scoped_by_customer(client: TestClient, tokens: dict[str, str]) -> None:
    everything = client.get("/api/v1/hosts", headers=auth(tokens["engineer"])).json()
    assert [(h["customer"], h["name"]) for h in everything] == [
        ("acme", "db1"),
        ("acme", "web1"),
        ("globex", "app1"),
    ]
    mine = client.get("/api/v1/hosts", headers=auth(tokens["viewer"])).json()
    assert [h["name"] for h in mine] == ["db1", "web1"]
    assert mine[1]["worst_severity"] == "OK" and mine[1]["severity_counts"] == {"OK": 2}
    only = client.get("/api/v1/hosts?customer=globex", headers=auth(tokens["engineer"])).json()
    assert [h["name"] for h in only] == ["app1"]
    assert client.get("/api/v1/hosts?customer=globex", headers=auth(tokens["viewer"])).status_code == 403


def test_host_detail_groups_latest_by_layer(client: TestClient, tokens: dict[str, str]) -> None:
    body = client.get("/api/v1/hosts/web1", headers=auth(tokens["viewer"])).json()
    assert list(body["layers"]) == ["host", "storage"]
    assert [(r["check"], r["seq"], r["severity"]) for r in body["layers"]["host"]] == [("host.load", 3, "OK")]
    assert body["layers"]["host"][0]["findings"] == [{"k": 1}]


def test_other_customers_hosts_are_404_not_403(client: TestClient, tokens: dict[str, str]) -> None:
    for path in ("/api/v1/hosts/app1", "/api/v1/results?host=app1", "/api/v1/gaps?host=app1"):
        response = client.get(path, headers=auth(tokens["viewer"]))
        assert response.status_code == 404, path
        assert "no host 'app1'" in response.json()["detail"]
    assert client.get("/api/v1/hosts/nosuch", headers=auth(tokens["viewer"])).status_code == 404


def test_results_filters(client: TestClient, tokens: dict[str, str]) -> None:
    h = auth(tokens["engineer"])
    rows = client.get("/api/v1/results?host=web1&customer=acme", headers=h).json()
    assert [r["seq"] for r in rows] == [3, 2, 1]
    rows = client.get("/api/v1/results?host=web1&customer=acme&check=host.load&limit=1", headers=h).json()
    assert [r["seq"] for r in rows] == [3]
    rows = client.get("/api/v1/results?host=web1&customer=acme&since=2023-11-14T22:14:20Z", headers=h).json()
    assert [r["seq"] for r in rows] == [3, 2]
    assert rows[0]["ts"] == "2023-11-14T22:15:20Z"


def test_engineer_gets_409_for_an_ambiguous_host_name(
    client: TestClient, store: Store, tokens: dict[str, str]
) -> None:
    store.enroll_agent("globex", host="web1")
    response = client.get("/api/v1/hosts/web1", headers=auth(tokens["engineer"]))
    assert response.status_code == 409
    assert "name the customer" in response.json()["detail"]


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        pytest.param("host=web1&since=yesterday", "since", "datetime", id="bad since"),
        pytest.param("host=web1&limit=100000000", "limit", "less than or equal to 1000", id="huge limit"),
        pytest.param("host=web1&limit=-1", "limit", "greater than or equal to 1", id="negative limit"),
        pytest.param("host=web1&sinse=1h", "sinse", "Extra inputs are not permitted", id="unknown param"),
        pytest.param("check=host.load", "host", "Field required", id="no host"),
    ],
)
def test_hostile_query_input_is_422(
    client: TestClient, tokens: dict[str, str], query: str, field: str, message: str
) -> None:
    response = client.get(f"/api/v1/results?{query}", headers=auth(tokens["viewer"]))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422 and f"{field}: " in problem["detail"]  # the sentence diagctl prints
    assert any(e["loc"].split(".")[-1] == field and message in e["msg"] for e in problem["errors"]), problem


def test_unknown_params_rejected_everywhere(client: TestClient, tokens: dict[str, str]) -> None:
    for path in (
        "/api/v1/hosts?x=1",
        "/api/v1/agents?x=1",
        "/api/v1/upgrades?x=1",
        "/api/v1/hosts/web1?x=1",
        "/api/v1/ingest/quarantine?x=1",
        "/api/v1/ingest/quarantine?host=" + "h" * 254,
        "/api/v1/ingest/quarantine?limit=1001",
    ):
        assert client.get(path, headers=auth(tokens["engineer"])).status_code == 422, path


def test_enroll_roles(client: TestClient, store: Store, tokens: dict[str, str]) -> None:
    created = client.post(
        "/api/v1/agents", json={"customer": "acme", "host": "web9"}, headers=auth(tokens["admin"])
    )
    assert created.status_code == 201
    body = created.json()
    assert body["customer"] == "acme" and body["host"] == "web9"
    config = yaml.safe_load(body["config"])
    assert config["collector"] == {"address": "collector.example:50051", "token": body["token"]}
    assert config["agent"] == {"id": body["agent_id"], "customer": "acme"}
    assert body["token"] not in body["command"]  # the token travels in the file only
    assert created.headers["cache-control"] == "no-store"
    assert store.authenticate_agent(body["token"]) is not None
    other = client.post("/api/v1/agents", json={"customer": "globex"}, headers=auth(tokens["admin"]))
    assert other.status_code == 403
    viewer = client.post("/api/v1/agents", json={"customer": "acme"}, headers=auth(tokens["viewer"]))
    assert viewer.status_code == 403
    bad = client.post("/api/v1/agents", json={"customer": "Not A Slug"}, headers=auth(tokens["engineer"]))
    assert bad.status_code == 422 and "slug" in bad.json()["detail"]
    extra = client.post(
        "/api/v1/agents", json={"customer": "acme", "evil": 1}, headers=auth(tokens["engineer"])
    )
    assert extra.status_code == 422
    dup = client.post(
        "/api/v1/agents", json={"customer": "acme", "agent_id": "acme-web1"}, headers=auth(tokens["engineer"])
    )
    assert dup.status_code == 409


def test_revoke_roles_and_scoping(client: TestClient, store: Store, tokens: dict[str, str]) -> None:
    assert client.post("/api/v1/agents/globex-app1/revoke", headers=auth(tokens["admin"])).status_code == 404
    assert client.post("/api/v1/agents/acme-web1/revoke", headers=auth(tokens["viewer"])).status_code == 403
    done = client.post("/api/v1/agents/acme-web1/revoke", headers=auth(tokens["admin"]))
    assert done.json() == {"agent_id": "acme-web1", "revoked": True}
    again = client.post("/api/v1/agents/acme-web1/revoke", headers=auth(tokens["engineer"]))
    assert again.json() == {"agent_id": "acme-web1", "revoked": False}
    agents = client.get("/api/v1/agents", headers=auth(tokens["viewer"])).json()
    assert {a["agent_id"]: a["revoked_at"] is not None for a in agents} == {
        "acme-db1": False,
        "acme-web1": True,
    }
    assert all(len(a["token_prefix"]) == 8 for a in agents)


def test_gaps_and_upgrades_are_scoped(client: TestClient, store: Store, tokens: dict[str, str]) -> None:
    from collector.store import GapRow, InventoryRow

    agent = store.authenticate_agent(store.enroll_agent("globex", host="g2")[1])
    assert agent is not None
    store.record_gaps(agent, [GapRow(1, 5, 5, "spool_full", T0)])
    for seq, version in ((1, "1.0"), (2, "2.0")):
        inv = InventoryRow(seq, T0 + seq, {"products": {"erp": version}}, str(seq) * 64)
        store.ingest(agent, IngestBatch(seq, seq, [], [], [inv], []))
    engineer = client.get("/api/v1/gaps", headers=auth(tokens["engineer"])).json()
    assert [(g["host"], g["count"]) for g in engineer] == [("g2", 5)]
    assert client.get("/api/v1/gaps", headers=auth(tokens["viewer"])).json() == []
    ups = client.get("/api/v1/upgrades?host=g2", headers=auth(tokens["engineer"])).json()
    assert [(u["product"], u["from_version"], u["to_version"]) for u in ups] == [("erp", "1.0", "2.0")]
    assert client.get("/api/v1/upgrades", headers=auth(tokens["admin"])).json() == []


def test_the_ingest_quarantine_is_for_engineers(
    client: TestClient, store: Store, tokens: dict[str, str]
) -> None:
    from tests.collector.store.test_ingest_log import quarantine

    agent, _ = store.enroll_agent("globex", host="g3")
    log_id = quarantine(store, agent, [1, 2])
    rows = client.get("/api/v1/ingest/quarantine", headers=auth(tokens["engineer"])).json()
    assert [(q["log_id"], q["host"], q["first_seq"], q["last_seq"]) for q in rows] == [(log_id, "g3", 1, 2)]
    assert "EntryBatch" in rows[0]["error"]
    assert (
        client.get("/api/v1/ingest/quarantine?customer=acme", headers=auth(tokens["engineer"])).json() == []
    )
    for role in ("admin", "viewer"):  # the reason is the collector's own error: not for customers
        denied = client.get("/api/v1/ingest/quarantine", headers=auth(tokens[role]))
        assert denied.status_code == 403 and "engineers" in denied.json()["detail"]
    assert (
        client.get("/api/v1/ingest/quarantine?limit=0", headers=auth(tokens["engineer"])).status_code == 422
    )
    health = client.get("/healthz").json()
    assert health["ingest_log"]["quarantined_batches"] == 1


def test_openapi_is_served(client: TestClient) -> None:
    spec = client.get("/api/v1/openapi.json").json()
    assert {"/api/v1/hosts", "/api/v1/hosts/{name}", "/api/v1/results", "/api/v1/agents"} <= set(
        spec["paths"]
    )
    assert "HostDetailOut" in spec["components"]["schemas"]


def test_healthz_shows_the_ingest_log_backlog(tmp_path: Path) -> None:
    from tests.collector.store.test_ingest_log import append

    store = Store.open(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        agent, _ = store.enroll_agent("acme", host="db1")
        append(store, agent, [1, 2, 3])  # acknowledged, not yet materialised
        health = TestClient(create_app(store, None)).get("/healthz").json()
        assert health["status"] == "ok"
        backlog = health["ingest_log"]
        assert (backlog["pending_batches"], backlog["quarantined_batches"]) == (1, 0)
        assert backlog["pending_points"] > 0 and backlog["lag_seconds"] >= 0
    finally:
        store.close()
