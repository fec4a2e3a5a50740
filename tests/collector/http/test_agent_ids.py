"""Agent ids and customers (issue 13, Low #12): a customer's people choose ids only inside
their customer's namespace, so they can neither learn whether another customer's id
exists (409 against 201) nor squat it. Real SQLite store, the real app."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from collector.http.app import create_app
from collector.store import Store, StoreError


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path / 'c.db'}")
    yield s
    s.close()


@pytest.fixture
def client(store: Store) -> TestClient:
    return TestClient(create_app(store, CollectorRegistry(), grpc_address="collector.example:50051"))


def _token(store: Store, role: str, customer: str | None) -> dict[str, str]:
    token = store.create_api_token(f"{role}-{customer}", role, customer=customer)
    return {"Authorization": f"Bearer {token}"}


def _enroll(client: TestClient, headers: dict[str, str], customer: str, agent_id: str) -> tuple[int, str]:
    answer = client.post(
        "/api/v1/agents", json={"customer": customer, "host": "db-01", "agent_id": agent_id}, headers=headers
    )
    return answer.status_code, answer.json().get("agent_id", "")


def test_a_customer_cannot_probe_or_squat_another_customers_agent_id(
    client: TestClient, store: Store
) -> None:
    acme_admin = _token(store, "customer_admin", "acme")
    globex_admin = _token(store, "customer_admin", "globex")
    engineer = _token(store, "engineer", None)
    assert _enroll(client, acme_admin, "acme", "db-01") == (201, "acme.db-01")
    # The same chosen id for another customer is neither refused (which would tell that it
    # exists) nor the same agent: it lands in globex's own namespace.
    assert _enroll(client, globex_admin, "globex", "db-01") == (201, "globex.db-01")
    # A vendor-chosen id without '.' cannot be probed or squatted by a customer either.
    assert _enroll(client, engineer, "initech", "db-01") == (201, "db-01")
    assert _enroll(client, globex_admin, "globex", "db-01")[0] == 409  # its own: told, as it may be
    assert _enroll(client, acme_admin, "acme", "globex.db-01") == (201, "acme.globex.db-01")
    # Within its own namespace a customer sees its own duplicates, as before.
    assert _enroll(client, acme_admin, "acme", "acme.db-01")[0] == 409
    assert store.agent_customer("acme.db-01") == "acme"
    assert store.agent_customer("globex.db-01") == "globex"


def test_nobody_enrolls_an_id_in_another_customers_namespace(client: TestClient, store: Store) -> None:
    engineer = _token(store, "engineer", None)
    status, _ = _enroll(client, engineer, "globex", "acme.db-01")
    assert status in (400, 422)
    assert store.agent_customer("acme.db-01") is None
    with pytest.raises(StoreError, match="must start with its customer"):
        store.enroll_agent("globex", host="h", agent_id="acme.h")
    # Engineers may use the customer's namespace explicitly.
    assert _enroll(client, engineer, "acme", "acme.db-02") == (201, "acme.db-02")
