"""The customer file and SLA API over the real app and store (SQLite and PostgreSQL), per role.

Roles: an engineer; acme's customer_admin and viewer; globex's customer_admin and viewer
(another customer's people). Contracts: engineers write, acme's people read. Contacts:
acme's admin writes too. Anything of acme answers 404 to globex, like something that
does not exist.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from collector.desk.sweep import SlaSweep
from collector.http.app import create_app
from collector.store import Scope, Store
from collector.store.customer_file import CustomerFileRepo
from collector.store.sla import SlaRepo
from tests.collector.cases.test_api import auth, open_case
from tests.collector.store.conftest import pg_store_session, pg_url, store

__all__ = ["pg_store_session", "pg_url", "store"]

MON_9 = datetime(2024, 1, 8, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()

CONTRACT = {
    "name": "2024 维护合同",
    "tier": "gold",
    "starts_on": "2024-01-01",
    "ends_on": "2024-12-31",
    "targets": {"emergency": {"first_response": 30, "restore": 240, "resolve": 960}},
    "rate_onsite": "1500.00",
    "rate_remote": "900.50",
    "currency": "CNY",
    "calendar": {
        "timezone": "Asia/Shanghai",
        "country": "CN",
        "hours": {"mon": ["09:00-12:00", "13:30-18:00"]},
    },
}
CONTACT = {
    "name": "王伟",
    "role": "IT manager",
    "email": "wang.wei@acme.example",
    "phone": "+86 10 1234 5678",
    "language": "zh-CN",
}


@pytest.fixture
def world(store: Store) -> tuple[TestClient, dict[str, str]]:
    open_case(store, "acme", "db1", at=MON_9)
    open_case(store, "globex", "erp1", at=MON_9)
    tokens = {
        "engineer": store.create_api_token("eng", "engineer"),
        "acme admin": store.create_api_token("acme-admin", "customer_admin", customer="acme"),
        "acme viewer": store.create_api_token("acme-viewer", "viewer", customer="acme"),
        "globex admin": store.create_api_token("globex-admin", "customer_admin", customer="globex"),
        "globex viewer": store.create_api_token("globex-viewer", "viewer", customer="globex"),
    }
    return TestClient(create_app(store)), tokens


def test_contracts_are_written_by_engineers_and_read_by_the_customer(world):
    client, tokens = world
    for who in ("acme admin", "acme viewer"):
        refused = client.post("/api/v1/customers/acme/contracts", json=CONTRACT, headers=auth(tokens[who]))
        assert refused.status_code == 403, who
    for who in ("globex admin", "globex viewer"):
        hidden = client.post("/api/v1/customers/acme/contracts", json=CONTRACT, headers=auth(tokens[who]))
        assert hidden.status_code == 404, who
    made = client.post("/api/v1/customers/acme/contracts", json=CONTRACT, headers=auth(tokens["engineer"]))
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["rate_remote"] == "900.50" and body["calendar"]["country"] == "CN"
    assert body["targets"]["emergency"] == {"first_response": 30, "restore": 240, "resolve": 960}
    for who in ("acme admin", "acme viewer", "engineer"):
        listed = client.get("/api/v1/customers/acme/contracts", headers=auth(tokens[who]))
        assert [c["name"] for c in listed.json()] == ["2024 维护合同"], who
    for who in ("globex admin", "globex viewer"):
        assert client.get("/api/v1/customers/acme/contracts", headers=auth(tokens[who])).status_code == 404
        path = f"/api/v1/customers/acme/contracts/{body['id']}"
        assert client.patch(path, json={"tier": "standard"}, headers=auth(tokens[who])).status_code == 404
    path = f"/api/v1/customers/acme/contracts/{body['id']}"
    assert (
        client.patch(path, json={"tier": "standard"}, headers=auth(tokens["acme admin"])).status_code == 403
    )
    changed = client.patch(path, json={"tier": "standard"}, headers=auth(tokens["engineer"]))
    assert changed.json()["tier"] == "standard" and changed.json()["rate_remote"] == "900.50"
    again = client.post("/api/v1/customers/acme/contracts", json=CONTRACT, headers=auth(tokens["engineer"]))
    assert again.status_code == 409 and "already has a contract" in again.json()["detail"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"ends_on": "2023-12-31"}, "ends_on"),
        ({"targets": {"hotline": {"first_response": 5}}}, "hotline"),
        ({"targets": {"emergency": {"first_response": 0}}}, "first_response"),
        ({"rate_onsite": "12.345"}, "rate_onsite"),
        ({"currency": "yuan"}, "currency"),
        ({"calendar": {"timezone": "Asia/Beijing"}}, "timezone"),
        ({"calendar": {"hours": {"mon": ["18:00-09:00"]}}}, "mon"),
        ({"calendar": {"country": "ZZ"}}, "country"),
        ({"starts_on": "yesterday"}, "starts_on"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_contracts_are_422_naming_the_field_and_write_nothing(world, store, change, field):
    client, tokens = world
    response = client.post(
        "/api/v1/customers/acme/contracts", json={**CONTRACT, **change}, headers=auth(tokens["engineer"])
    )
    assert response.status_code == 422, response.text
    assert field in response.text
    assert CustomerFileRepo(store).contracts(Scope.everything()) == []


def test_contacts_are_managed_by_the_customers_admin(world):
    client, tokens = world
    for who in ("globex admin", "globex viewer"):
        assert (
            client.post(
                "/api/v1/customers/acme/contacts", json=CONTACT, headers=auth(tokens[who])
            ).status_code
            == 404
        )
    assert (
        client.post(
            "/api/v1/customers/acme/contacts", json=CONTACT, headers=auth(tokens["acme viewer"])
        ).status_code
        == 403
    )
    made = client.post("/api/v1/customers/acme/contacts", json=CONTACT, headers=auth(tokens["acme admin"]))
    assert made.status_code == 201, made.text
    contact = made.json()
    path = f"/api/v1/customers/acme/contacts/{contact['id']}"
    assert (
        client.patch(path, json={"language": "en"}, headers=auth(tokens["acme admin"])).json()["language"]
        == "en"
    )
    assert client.patch(path, json={"language": "fr"}, headers=auth(tokens["acme admin"])).status_code == 422
    assert (
        client.patch(path, json={"email": "not-an-address"}, headers=auth(tokens["engineer"])).status_code
        == 422
    )
    assert client.patch(path, json={"phone": "call me"}, headers=auth(tokens["engineer"])).status_code == 422
    for who in ("globex admin", "globex viewer"):
        assert client.get("/api/v1/customers/acme/contacts", headers=auth(tokens[who])).status_code == 404
        assert client.delete(path, headers=auth(tokens[who])).status_code == 404
    assert client.delete(path, headers=auth(tokens["acme viewer"])).status_code == 403
    unreachable = client.post(
        "/api/v1/customers/acme/contacts", json={"name": "x", "role": "y"}, headers=auth(tokens["engineer"])
    )
    assert unreachable.status_code == 422 and "email or a phone" in unreachable.text
    assert client.delete(path, headers=auth(tokens["acme admin"])).status_code == 204
    assert client.get("/api/v1/customers/acme/contacts", headers=auth(tokens["acme viewer"])).json() == []


def test_customer_file_and_the_sla_view_are_scoped(world, store):
    client, tokens = world
    engineer = auth(tokens["engineer"])
    client.post("/api/v1/customers/acme/contracts", json=CONTRACT, headers=engineer)
    client.post("/api/v1/customers/acme/contacts", json=CONTACT, headers=engineer)
    shown = client.get("/api/v1/customers/acme", headers=auth(tokens["acme viewer"])).json()
    assert (shown["hosts"], shown["open_cases"], len(shown["contracts"]), shown["contacts"][0]["name"]) == (
        ["db1"],
        1,
        1,
        "王伟",
    )
    assert client.get("/api/v1/customers/acme", headers=auth(tokens["globex admin"])).status_code == 404
    assert client.get("/api/v1/customers/nobody", headers=engineer).status_code == 404

    sweep = SlaSweep(SlaRepo(store), CustomerFileRepo(store))
    sweep.run(MON_9 + 60)
    assert 'diag_sla_breached_cases{customer="acme"} 0.0' in client.get("/metrics").text
    # acme: 30 min from 09:00 Shanghai; globex has no contract: UTC 09:00-18:00, not begun yet
    assert sweep.run(MON_9 + 31 * 60).breaches == 1
    acme = client.get("/api/v1/sla", headers=auth(tokens["acme viewer"])).json()
    assert [(r["case_id"], r["target"], r["state"]) for r in acme] == [
        ("C-acme-1", "first_response", "breached")
    ]
    assert client.get("/api/v1/sla", headers=auth(tokens["globex viewer"])).json() == []
    assert sweep.run(MON_9 + 8 * 3600 + 31 * 60).breaches == 2  # globex at 09:31 UTC; acme's restore (4 h)
    globex = client.get("/api/v1/sla", headers=auth(tokens["globex viewer"])).json()
    assert [(r["case_id"], r["target"]) for r in globex] == [("C-globex-1", "first_response")]
    everyone = client.get("/api/v1/sla", headers=engineer).json()
    assert {r["customer"] for r in everyone} == {"acme", "globex"}
    assert (
        client.get(
            "/api/v1/sla", params={"customer": "acme"}, headers=auth(tokens["globex viewer"])
        ).status_code
        == 404
    )
    metrics = client.get("/metrics").text
    assert 'diag_sla_clocks{customer="acme",state="breached"} 2.0' in metrics
    assert 'diag_sla_clocks{customer="_all",state="breached"} 3.0' in metrics
    assert 'diag_sla_breached_cases{customer="acme"} 1.0' in metrics  # one case, two clocks
    assert 'diag_sla_breached_cases{customer="globex"} 1.0' in metrics
    # Resolved cases are not open any more (collector.store.case_states.ACTIVE_STATES).
    assert client.post("/api/v1/cases/C-acme-1/resolve", headers=engineer).status_code == 200
    assert client.get("/api/v1/customers/acme", headers=engineer).json()["open_cases"] == 0
    assert "diag_sla_breaches_total 3.0" in metrics


def test_null_fields_never_reach_the_database(world):
    client, tokens = world
    engineer = auth(tokens["engineer"])
    made = client.post("/api/v1/customers/acme/contacts", json=CONTACT, headers=engineer).json()
    path = f"/api/v1/customers/acme/contacts/{made['id']}"
    kept = client.patch(
        path, json={"name": None, "role": None, "language": None, "phone": None}, headers=engineer
    )
    assert kept.status_code == 200, kept.text
    assert (kept.json()["name"], kept.json()["phone"]) == ("王伟", None)
    contract = client.post("/api/v1/customers/acme/contracts", json=CONTRACT, headers=engineer).json()
    path = f"/api/v1/customers/acme/contracts/{contract['id']}"
    assert client.patch(path, json={"name": None, "targets": None}, headers=engineer).status_code == 200
    assert client.patch(path, json={"ends_on": "2023-01-01"}, headers=engineer).status_code == 422
    huge = f"/api/v1/customers/acme/contracts/{2**64}"
    assert client.patch(huge, json={"tier": "gold"}, headers=engineer).status_code == 422


def test_breached_cases_name_the_busiest_customers_and_sum_the_rest():
    from collector.desk.metrics import MAX_CUSTOMERS, _breached_cases

    rows = [(f"c{i:02d}", i) for i in range(MAX_CUSTOMERS + 5)]
    samples = {s.labels["customer"]: s.value for s in _breached_cases(rows).samples}
    assert len(samples) == MAX_CUSTOMERS + 1
    assert samples["_other"] == sum(range(5))  # c00..c04, the five with the fewest
    assert samples[f"c{MAX_CUSTOMERS + 4:02d}"] == MAX_CUSTOMERS + 4 and "c04" not in samples
