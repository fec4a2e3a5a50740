"""diagctl customers show|contracts|contacts and diagctl sla against a real collector HTTP server."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from collector.desk.sweep import SlaSweep
from collector.http.app import create_app
from collector.ingest.decode import decode_logged
from collector.store import Scope, Store
from collector.store.customer_file import CustomerFileRepo
from collector.store.sla import SlaRepo
from diagctl.main import main
from tests.collector.cases.test_api import open_case
from tests.collector.http_server import serving

MON_9 = datetime(2024, 1, 8, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Store, str]]:
    for name in ("DIAG_SERVER", "DIAG_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DIAGCTL_CONFIG", str(tmp_path / "no-config.yaml"))
    store = Store.open(f"sqlite:///{tmp_path / 'c.db'}", log_decoder=decode_logged)
    open_case(store, "acme", "db1", at=MON_9)
    with serving(create_app(store, None)) as url:
        monkeypatch.setenv("DIAG_SERVER", url)
        monkeypatch.setenv("DIAG_TOKEN", store.create_api_token("eng", "engineer"))
        yield store, url
    store.close()


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def test_contracts_contacts_and_the_customer_file(server, tmp_path: Path):
    store, _ = server
    calendar = tmp_path / "acme.yaml"
    calendar.write_text(
        "timezone: Asia/Shanghai\ncountry: CN\nhours:\n  mon: ['09:00-12:00', '13:30-18:00']\n"
    )
    code, out = run(
        "customers",
        "contracts",
        "add",
        "acme",
        "--name",
        "2024",
        "--tier",
        "gold",
        "--from",
        "2024-01-01",
        "--to",
        "2024-12-31",
        "--target",
        "emergency:30:240:960",
        "--target",
        "complaint:-:-:2400",
        "--rate-onsite",
        "1500",
        "--rate-remote",
        "900.50",
        "--calendar",
        str(calendar),
    )
    assert code == 0 and "contract 1 2024 added for acme" in out
    code, out = run("customers", "contracts", "list", "acme")
    assert "gold" in out and "Asia/Shanghai CN" in out and "emergency 30m/4h00m/16h00m" in out
    assert "complaint -/-/40h00m" in out
    code, out = run(
        "customers",
        "contacts",
        "add",
        "acme",
        "--name",
        "王伟",
        "--role",
        "IT manager",
        "--email",
        "wang@acme.example",
    )
    assert code == 0
    code, out = run("customers", "contacts", "set", "acme", "1", "--language", "en")
    assert "updated" in out
    code, out = run("customers", "show", "acme")
    assert "1 open cases" in out and "hosts: db1" in out and "王伟" in out and "en" in out
    code, out = run("customers", "show", "acme", "--format", "json")
    data = json.loads(out)
    assert data["contracts"][0]["targets"]["complaint"] == {"resolve": 2400}
    assert data["contacts"][0]["language"] == "en"
    code, out = run("customers", "contacts", "remove", "acme", "1")
    assert "contact 1 removed" in out
    assert CustomerFileRepo(store).contacts(Scope.everything()) == []


def test_errors_say_what_to_do(server, capsys):
    code, _ = run(
        "customers", "contracts", "add", "acme", "--name", "x", "--from", "2024-01-01", "--to", "2023-01-01"
    )
    assert code != 0 and "ends_on" in capsys.readouterr().err
    code, _ = run(
        "customers",
        "contracts",
        "add",
        "acme",
        "--name",
        "x",
        "--from",
        "2024-01-01",
        "--to",
        "2024-12-31",
        "--target",
        "emergency:soon",
    )
    assert code == 2 and "whole business minutes" in capsys.readouterr().err
    code, _ = run("customers", "contracts", "set", "acme", "1")
    assert code == 2 and "nothing to change" in capsys.readouterr().err
    code, _ = run("customers", "show", "nobody")
    assert code != 0 and "nobody" in capsys.readouterr().err


def test_sla_lists_breached_clocks(server, tmp_path: Path):
    store, _ = server
    calendar = tmp_path / "cal.yaml"
    calendar.write_text("timezone: Asia/Shanghai\n")
    code, out = run("sla")
    assert code == 0 and "no SLA clocks at risk or breached" in out
    code, _ = run(
        "customers",
        "contracts",
        "add",
        "acme",
        "--name",
        "2024",
        "--from",
        "2024-01-01",
        "--to",
        "2024-12-31",
        "--target",
        "emergency:30",
        "--calendar",
        str(calendar),
    )
    assert code == 0
    sweep = SlaSweep(SlaRepo(store), CustomerFileRepo(store))
    sweep.run(MON_9 + 60)
    sweep.run(MON_9 + 40 * 60)
    code, out = run("sla")
    assert "BREACHED" in out and "C-acme-1" in out and "first_response" in out
    code, out = run("sla", "--format", "json")
    rows = json.loads(out)
    assert rows[0]["state"] == "breached" and rows[0]["target_minutes"] == 30.0
