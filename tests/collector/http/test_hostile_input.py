"""Hostile input answers a clear 4xx problem, never a 500 (issue 13, Low #11): NUL bytes in
paths, query strings and JSON bodies (PostgreSQL cannot store NUL in text), a report id past
2^63, a ``since`` in year 1. On SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from collector.http.app import create_app
from collector.store import Store

ENDPOINTS = [
    pytest.param("GET", "/api/v1/hosts?customer=ac%00me", None, id="hosts customer"),
    pytest.param("GET", "/api/v1/hosts/web%001", None, id="host path"),
    pytest.param("GET", "/api/v1/results?host=web%001", None, id="results host"),
    pytest.param("GET", "/api/v1/results?host=web1&check=a%00", None, id="results check"),
    pytest.param("GET", "/api/v1/gaps?host=web%001", None, id="gaps"),
    pytest.param("GET", "/api/v1/upgrades?host=web%001", None, id="upgrades"),
    pytest.param("GET", "/api/v1/cases?customer=a%00", None, id="cases list"),
    pytest.param("GET", "/api/v1/cases/C%001", None, id="case path"),
    pytest.param("GET", "/api/v1/inspections/runs?plan=w%00", None, id="runs plan"),
    pytest.param("GET", "/api/v1/inspections/runs/r%001", None, id="run path"),
    pytest.param("GET", "/api/v1/reports?subject=a%00", None, id="reports subject"),
    pytest.param("GET", "/api/v1/reports/fault/C%001", None, id="fault report path"),
    pytest.param("GET", "/api/v1/customers/ac%00me/profile", None, id="profile path"),
    pytest.param("POST", "/api/v1/agents/a%00/revoke", None, id="revoke path"),
    pytest.param("POST", "/api/v1/cases/C-1/notes", {"text": "a\u0000b"}, id="note body"),
    pytest.param("POST", "/api/v1/cases/C-1/ack", {"owner": "wang\u0000"}, id="ack body"),
    pytest.param("PUT", "/api/v1/customers/acme/profile", {"name": "Ac\u0000me"}, id="profile body"),
    pytest.param("POST", "/api/v1/agents", {"customer": "acme", "host": "w\u0000"}, id="enroll body"),
    pytest.param("POST", "/api/v1/tokens", {"name": "x\u0000", "role": "engineer"}, id="token body"),
]


@pytest.fixture
def client(store: Store) -> tuple[TestClient, str]:
    store.enroll_agent("acme", host="web1", agent_id="acme-web1")
    token = store.create_api_token("eng", "engineer")
    return TestClient(create_app(store, None), raise_server_exceptions=False), token


@pytest.mark.parametrize(("method", "url", "body"), ENDPOINTS)
def test_nul_bytes_are_400_not_500(
    client: tuple[TestClient, str], method: str, url: str, body: object
) -> None:
    http, token = client
    response = http.request(method, url, json=body, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 400 and "NUL character" in problem["detail"]
    assert "Traceback" not in response.text and "psycopg" not in response.text


@pytest.mark.parametrize(
    ("url", "field"),
    [
        pytest.param("/api/v1/reports/9223372036854775808", "report_id", id="report id past 2^63"),
        pytest.param("/api/v1/reports/9223372036854775808/content", "report_id", id="content id past 2^63"),
        pytest.param("/api/v1/reports/0", "report_id", id="report id 0"),
        pytest.param("/api/v1/results?host=web1&since=0001-01-01", "since", id="since in year 1"),
        pytest.param("/api/v1/results?host=web1&since=1969-12-31T23:59:59Z", "since", id="since before 1970"),
    ],
)
def test_out_of_range_numbers_and_dates_are_422(client: tuple[TestClient, str], url: str, field: str) -> None:
    http, token = client
    response = http.get(url, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 422, response.text
    problem = response.json()
    assert any(e["loc"].endswith(field) for e in problem["errors"]), problem
    assert problem["detail"].startswith(f"{field}: ")


def test_a_text_with_a_percent_sign_is_not_taken_for_a_nul(client: tuple[TestClient, str]) -> None:
    http, token = client
    response = http.put(
        "/api/v1/customers/acme/profile",
        json={"name": "Acme 100%00"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200 and response.json()["name"] == "Acme 100%00"
