"""API tokens: list, create with an expiry, revoke (issue 13 #9), through the API, diagctl and
``diag-collector token``; every role, and another customer's people, against a real store."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from collector.http.app import create_app
from collector.store import Store
from diagctl.main import main as diagctl
from tests.collector.http_server import serving
from tests.integration.harness import REPO, python_env


@pytest.fixture
def tokens(store: Store) -> dict[str, str]:
    store.enroll_agent("acme", host="web1")
    store.enroll_agent("globex", host="app1")
    return {
        "engineer": store.create_api_token("eng", "engineer"),
        "admin": store.create_api_token("acme-admin", "customer_admin", customer="acme"),
        "viewer": store.create_api_token("acme-viewer", "viewer", customer="acme"),
        "other": store.create_api_token("globex-admin", "customer_admin", customer="globex"),
    }


@pytest.fixture
def client(store: Store) -> TestClient:
    return TestClient(create_app(store, None))


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _ids(client: TestClient, token: str) -> dict[str, int]:
    rows = client.get("/api/v1/tokens", headers=auth(token)).json()
    return {t["name"]: t["id"] for t in rows}


def test_listing_is_scoped_and_never_shows_a_secret(
    client: TestClient, tokens: dict[str, str], store: Store
) -> None:
    everything = client.get("/api/v1/tokens", headers=auth(tokens["engineer"]))
    assert everything.status_code == 200
    names = [t["name"] for t in everything.json()]
    assert names == ["globex-admin", "acme-viewer", "acme-admin", "eng"]  # newest first
    acme = client.get("/api/v1/tokens", headers=auth(tokens["admin"])).json()
    assert [t["name"] for t in acme] == ["acme-viewer", "acme-admin"]
    assert all(t["state"] == "active" and t["prefix"] == tokens["admin"][:8] for t in acme[1:])
    text = everything.text + json.dumps(acme)
    for token in tokens.values():
        assert token not in text and token[8:20] not in text
    from collector.store.tokens import hash_token

    assert all(hash_token(t) not in text for t in tokens.values())
    assert client.get("/api/v1/tokens", headers=auth(tokens["viewer"])).status_code == 403
    assert client.get("/api/v1/tokens?customer=globex", headers=auth(tokens["admin"])).status_code == 403


def test_revoked_tokens_are_refused_and_others_cannot_revoke(
    client: TestClient, tokens: dict[str, str]
) -> None:
    ids = _ids(client, tokens["engineer"])
    viewer_id = ids["acme-viewer"]
    # A viewer may not revoke, not even itself; another customer's admin sees 404.
    denied = client.post(f"/api/v1/tokens/{viewer_id}/revoke", headers=auth(tokens["viewer"]))
    assert denied.status_code == 403 and denied.headers["content-type"] == "application/problem+json"
    other = client.post(f"/api/v1/tokens/{viewer_id}/revoke", headers=auth(tokens["other"]))
    assert other.status_code == 404 and "no API token" in other.json()["detail"]
    # The customer admin cannot touch an engineer's token either (404, not 403: not its to know).
    assert (
        client.post(f"/api/v1/tokens/{ids['eng']}/revoke", headers=auth(tokens["admin"])).status_code == 404
    )
    assert client.get("/api/v1/hosts", headers=auth(tokens["viewer"])).status_code == 200
    done = client.post(f"/api/v1/tokens/{viewer_id}/revoke", headers=auth(tokens["admin"]))
    assert done.status_code == 200 and done.json()["revoked"] is True and done.json()["state"] == "revoked"
    assert client.get("/api/v1/hosts", headers=auth(tokens["viewer"])).status_code == 401
    again = client.post(f"/api/v1/tokens/{viewer_id}/revoke", headers=auth(tokens["engineer"]))
    assert again.json()["revoked"] is False
    for bad in ("0", "-1", "9223372036854775808", "x"):
        assert (
            client.post(f"/api/v1/tokens/{bad}/revoke", headers=auth(tokens["engineer"])).status_code == 422
        )


def test_create_with_an_expiry_by_role(client: TestClient, tokens: dict[str, str], store: Store) -> None:
    body = {"name": "ci", "role": "viewer", "customer": "acme", "expires_in_days": 30}
    assert client.post("/api/v1/tokens", json=body, headers=auth(tokens["viewer"])).status_code == 403
    assert client.post("/api/v1/tokens", json=body, headers=auth(tokens["other"])).status_code == 403
    engineer = {"name": "root", "role": "engineer"}
    assert client.post("/api/v1/tokens", json=engineer, headers=auth(tokens["admin"])).status_code == 403
    made = client.post("/api/v1/tokens", json=body, headers=auth(tokens["admin"]))
    assert made.status_code == 201, made.text
    doc = made.json()
    assert doc["token"].startswith("dgt_") and doc["prefix"] == doc["token"][:8]
    assert doc["customer"] == "acme" and doc["role"] == "viewer" and doc["expires_at"] is not None
    assert client.get("/api/v1/hosts", headers=auth(doc["token"])).status_code == 200
    listed = client.get("/api/v1/tokens", headers=auth(tokens["admin"])).json()
    assert doc["token"] not in json.dumps(listed) and listed[0]["name"] == "ci"
    bad = {"name": "x", "role": "viewer", "customer": "acme", "expires_in_days": 0}
    assert client.post("/api/v1/tokens", json=bad, headers=auth(tokens["admin"])).status_code == 422


def test_expired_tokens_are_refused(tmp_path: Path) -> None:
    now = [1_700_000_000.0]
    opened = Store.open(f"sqlite:///{tmp_path / 'c.db'}")
    store = Store(opened.engine, clock=lambda: now[0])
    token = store.create_api_token("short", "engineer", expires_at=now[0] + 3600)
    assert store.authenticate_api_token(token) is not None
    now[0] += 3600
    assert store.authenticate_api_token(token) is None
    client = TestClient(create_app(store, None))
    refused = client.get("/api/v1/hosts", headers=auth(token))
    assert refused.status_code == 401 and "expired" in refused.json()["detail"]
    # Before any body is read, too.
    body = client.put("/api/v1/customers/acme/profile", headers=auth(token), json={"name": "x"})
    assert body.status_code == 401
    opened.close()


def test_diagctl_tokens_list_create_revoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIAGCTL_CONFIG", str(tmp_path / "none.yaml"))
    store = Store.open(f"sqlite:///{tmp_path / 'c.db'}")
    store.enroll_agent("acme", host="web1")
    engineer = store.create_api_token("eng", "engineer")
    with serving(create_app(store, None)) as url:

        def run(*args: str) -> tuple[int, str]:
            out = io.StringIO()
            return diagctl(["--server", url, "--token", engineer, *args], out=out), out.getvalue()

        rc, out = run("tokens", "create", "--name", "ci", "--customer", "acme", "--expires-days", "7")
        assert rc == 0, out
        token = out.strip().splitlines()[-1]
        assert token.startswith("dgt_") and "expires" in out
        rc, out = run("tokens", "list")
        assert rc == 0 and token not in out
        header, *lines = out.splitlines()
        assert header.split() == [
            "ID",
            "NAME",
            "ROLE",
            "CUSTOMER",
            "TOKEN",
            "STATE",
            "EXPIRES",
            "LAST",
            "USED",
        ]
        ci = next(line for line in lines if " ci " in line)
        assert "viewer" in ci and "acme" in ci and token[:8] + "…" in ci and "active" in ci
        rc, out = run("--format", "json", "tokens", "list")
        ci_id = next(t["id"] for t in json.loads(out) if t["name"] == "ci")
        rc, out = run("tokens", "revoke", str(ci_id))
        assert rc == 0 and f"API token {ci_id} 'ci' ({token[:8]}…) revoked" in out
        rc, _ = run("tokens", "revoke", "999")
        assert rc == 1
    store.close()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "collector.cli", *args],
        cwd=REPO, env=python_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_diag_collector_token_list_and_revoke(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    made = _cli("token", "create", "--store", url, "--name", "ops", "--expires", "12h")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    assert "expires" in made.stderr  # the description; stdout carries only the token
    listed = _cli("token", "list", "--store", url)
    assert listed.returncode == 0 and token not in listed.stdout
    assert "ops" in listed.stdout and "active" in listed.stdout and token[:8] in listed.stdout
    doc = json.loads(_cli("token", "list", "--store", url, "--format", "json").stdout)
    assert doc[0]["name"] == "ops" and doc[0]["expires_at"] is not None
    revoked = _cli("token", "revoke", "--store", url, str(doc[0]["id"]))
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    store = Store.open(url)
    assert store.authenticate_api_token(token) is None
    store.close()
    missing = _cli("token", "revoke", "--store", url, "42")
    assert missing.returncode == 2 and "no API token 42" in missing.stderr
    bad = _cli("token", "create", "--store", url, "--name", "x", "--expires", "soon")
    assert bad.returncode == 2 and "12h, 90d or 2w" in bad.stderr
