"""The service manager's desk overview shows cases whose SLA is breached or at risk, from the
real sweep over a real store (SQLite and PostgreSQL), scoped by ``?customer=``."""

from __future__ import annotations

import io
import json
from pathlib import Path

from fastapi.testclient import TestClient

from collector.desk.sweep import SlaSweep
from collector.http.app import create_app
from collector.store import Scope, Store
from collector.store.customer_file import CustomerFileRepo
from collector.store.sla import SlaRepo
from diagctl.main import main
from tests.collector.cases.test_api import auth, open_case
from tests.collector.desk.test_sweep import CONTRACT, MON_9
from tests.collector.http_server import serving
from tests.collector.store.conftest import pg_store_session, pg_url, store

__all__ = ["pg_store_session", "pg_url", "store"]

MINUTE = 60.0


def test_the_overview_lists_breached_and_at_risk_cases(store: Store) -> None:
    late = open_case(store, "acme", "db1", at=MON_9)  # first response due after 60 business minutes
    risky = open_case(store, "acme", "db2", at=MON_9 + 15 * MINUTE)
    fresh = open_case(store, "acme", "db3", at=MON_9 + 50 * MINUTE)
    other = open_case(store, "globex", "erp1", at=MON_9)
    CustomerFileRepo(store).add_contract(Scope.everything(), "acme", CONTRACT, now=MON_9)
    CustomerFileRepo(store).add_contract(Scope.everything(), "globex", CONTRACT, now=MON_9)
    report = SlaSweep(SlaRepo(store), CustomerFileRepo(store)).run(MON_9 + 65 * MINUTE)
    assert report.breaches >= 2  # late (acme) and other (globex)

    client = TestClient(create_app(store))
    manager = store.create_api_token("mgr", "service_manager")
    everything = client.get("/api/v1/desk/overview", headers=auth(manager))
    assert everything.status_code == 200, everything.text
    body = everything.json()
    assert sorted(body["sla_breached"]) == sorted([late, other])
    assert body["sla_at_risk"] == [risky]  # 50 of 60 minutes; fresh is at 15 of 60
    assert fresh not in body["sla_breached"] + body["sla_at_risk"]

    acme = client.get("/api/v1/desk/overview?customer=acme", headers=auth(manager)).json()
    assert (acme["sla_breached"], acme["sla_at_risk"]) == ([late], [risky])
    globex = client.get("/api/v1/desk/overview?customer=globex", headers=auth(manager)).json()
    assert (globex["sla_breached"], globex["sla_at_risk"]) == ([other], [])

    # Resolving stops the clocks: the case leaves both lists at the next pass.
    engineer = store.create_api_token("eng", "engineer")
    assert client.post(f"/api/v1/cases/{late}/resolve", headers=auth(engineer)).status_code == 200
    SlaSweep(SlaRepo(store), CustomerFileRepo(store)).run(MON_9 + 66 * MINUTE)
    acme = client.get("/api/v1/desk/overview?customer=acme", headers=auth(manager)).json()
    assert late not in acme["sla_breached"] + acme["sla_at_risk"]

    for role, customer in (("customer_admin", "acme"), ("viewer", "acme"), ("engineer", None)):
        token = store.create_api_token(f"x-{role}", role, customer=customer)
        assert client.get("/api/v1/desk/overview", headers=auth(token)).status_code == 403, role


def test_diagctl_cases_overview_shows_the_sla_lists(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        late = open_case(store, "acme", "db1", at=MON_9)
        CustomerFileRepo(store).add_contract(Scope.everything(), "acme", CONTRACT, now=MON_9)
        SlaSweep(SlaRepo(store), CustomerFileRepo(store)).run(MON_9 + 65 * MINUTE)
        token = store.create_api_token("mgr", "service_manager")
        with serving(create_app(store)) as url:
            out = io.StringIO()
            assert main(["--server", url, "--token", token, "cases", "overview"], out=out) == 0
            assert f"SLA breached: {late}" in out.getvalue() and "SLA at risk: -" in out.getvalue()
            out = io.StringIO()
            args = ["--server", url, "--token", token, "--format", "json", "cases", "overview"]
            assert main(args, out=out) == 0
            assert json.loads(out.getvalue())["sla_breached"] == [late]
    finally:
        store.close()
