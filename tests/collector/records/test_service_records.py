"""Service records built from the case and the store over real HTTP and a real store (SQLite
and PostgreSQL): emergency and repair service reports, the routine operations report and the
product upgrade record, in HTML, PDF and JSON, en and zh-CN, versioned like the reports."""

from __future__ import annotations

import datetime as dt
import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from collector.http.app import create_app
from collector.records.analysis import Rates
from collector.records.build import parse_period
from collector.records.stored import contract_rates
from collector.store import IngestBatch, Scope, Store
from collector.store.cases import CaseRepo
from collector.store.customer_file import CustomerFileRepo
from collector.store.desk_cases import DeskRepo, NewCase
from collector.store.fleet import FleetRepo
from collector.store.sessions import SessionRepo
from collector.store.types import InventoryRow
from diagctl.main import main
from tests.collector.http_server import serving
from tests.collector.people import T0, auth, open_case, role_tokens
from tests.collector.sessions.conftest import KEY

ALL = Scope.everything()
PERIOD = "2023-11"  # T0 is 2023-11-14


def upgrade(store: Store, customer: str, host: str) -> int:
    """A version change as agents report it: two inventories, 5.1.0 then 5.2.0."""
    agent, _ = store.enroll_agent(customer, host, f"{customer}-{host}")
    for seq, version in ((1, "5.1.0"), (2, "5.2.0")):
        doc = {"os": "debian", "products": {"erp": version}}
        store.ingest(
            agent, IngestBatch(seq, seq, [], [], [InventoryRow(seq, T0 + seq, doc, f"{seq:064x}")], [])
        )
    (change,) = FleetRepo(store).upgrades(Scope.of(customer))
    return change.row_id


@pytest.fixture
def world(store: Store) -> tuple[TestClient, dict[str, str]]:
    cases = CaseRepo(store)
    desk = DeskRepo(store)
    emergency = open_case(store, "acme", "db1")  # C-acme-1
    cases.acknowledge(ALL, emergency, actor="li", now=T0 + 300, action="take")
    desk.log_time(ALL, emergency, minutes=90, activity="grew /var, cleaned old logs", mode="remote",
                  work_date=dt.date(2023, 11, 14), engineer="li", actor="li", now=T0 + 400)  # fmt: skip
    cases.resolve(ALL, emergency, actor="li", now=T0 + 3600, note="disk grown")
    row = upgrade(store, "acme", "app1")
    perfective = desk.open(
        ALL,
        NewCase("acme", "perfective", "email", "export to Excel", contact="Wang Fang"),
        actor="li",
        now=T0,
    ).id  # C-acme-2
    desk.decide(ALL, perfective, decision="accepted", text="in 5.2", actor="pm", now=T0 + 10)
    desk.set_release(ALL, perfective, release="5.2.0", upgrade_id=row, actor="li", now=T0 + 20)
    desk.log_time(ALL, perfective, minutes=240, activity="installed 5.2.0", mode="onsite",
                  work_date=dt.date(2023, 11, 15), engineer="zhang", actor="li", now=T0 + 30)  # fmt: skip
    open_case(store, "globex", "erp1")
    tokens = role_tokens(store, "engineer", "manager", "acme admin", "acme viewer", "globex admin")
    return TestClient(create_app(store)), tokens


def build(client: TestClient, token: str, **body: Any) -> Any:
    return client.post("/api/v1/records", headers=auth(token), json=body)


def content(client: TestClient, token: str, record: dict[str, Any]) -> bytes:
    response = client.get(f"/api/v1/records/{record['id']}/content", headers=auth(token))
    assert response.status_code == 200
    data: bytes = response.content
    return data


def test_emergency_service_report_from_the_case(
    world: tuple[TestClient, dict[str, str]], store: Store
) -> None:
    client, t = world
    made = build(client, t["engineer"], kind="emergency", case="C-acme-1")
    assert made.status_code == 201, made.text
    record = made.json()
    assert (record["kind"], record["subject"], record["customer"], record["signed"]) == (
        "emergency", "C-acme-1", "acme", False,
    )  # fmt: skip
    html = content(client, t["acme viewer"], record).decode()
    assert "Emergency service report" in html and "grew /var, cleaned old logs" in html
    assert "Time to respond" in html and "5 min" in html and "1.5" in html  # 300 s, 90 minutes
    assert "<script" not in html.lower()
    zh = build(client, t["engineer"], kind="emergency", case="C-acme-1", lang="zh-CN").json()
    zh_html = content(client, t["engineer"], zh).decode()
    assert "应急服务报告" in zh_html and "响应用时" in zh_html and "远程" in zh_html
    doc = json.loads(
        content(
            client,
            t["engineer"],
            build(client, t["engineer"], kind="emergency", case="C-acme-1", format="json").json(),
        )
    )
    assert doc["report"] == "emergency" and doc["figures"]["minutes"]["total"] == 90
    assert doc["figures"]["response_s"] == 300
    assert "Remote sessions" in html and "No remote session was opened for this case." in html
    # unchanged case: the stored record; a change that shows (a note): a new version
    again = build(client, t["engineer"], kind="emergency", case="C-acme-1").json()
    assert again["id"] == record["id"]
    CaseRepo(store).add_note(ALL, "C-acme-1", actor="li", text="customer confirmed", now=T0 + 4000)
    newer = build(client, t["engineer"], kind="emergency", case="C-acme-1").json()
    assert newer["id"] != record["id"] and newer["sha256"] != record["sha256"]
    assert "customer confirmed" in content(client, t["engineer"], newer).decode()
    # the old version is still there, byte for byte
    assert content(client, t["engineer"], record).decode() == html


def test_repair_report_and_kind_rules(world: tuple[TestClient, dict[str, str]]) -> None:
    client, t = world
    repair = build(client, t["manager"], kind="repair", case="C-acme-2", lang="zh-CN")
    assert repair.status_code == 201, repair.text
    html = content(client, t["engineer"], repair.json()).decode()
    assert "维修服务报告" in html and "完善性改进" in html and "5.2.0" in html and "Wang Fang" in html
    wrong = build(client, t["engineer"], kind="emergency", case="C-acme-2")
    assert wrong.status_code == 422 and "emergency case" in wrong.json()["detail"]
    wrong = build(client, t["engineer"], kind="repair", case="C-acme-1")
    assert wrong.status_code == 422 and "repair service report is for" in wrong.json()["detail"]
    no_case = build(client, t["engineer"], kind="repair")
    assert no_case.status_code == 422 and "give case" in no_case.json()["detail"]


def test_routine_report_and_upgrade_record_of_a_period(world: tuple[TestClient, dict[str, str]]) -> None:
    client, t = world
    routine = build(client, t["engineer"], kind="routine", customer="acme", period=PERIOD, format="json")
    assert routine.status_code == 201, routine.text
    doc = json.loads(content(client, t["engineer"], routine.json()))
    assert doc["figures"] == {
        "opened": 2, "resolved": 1, "inspections": 0, "version_changes": 1, "minutes": 330,
    }  # fmt: skip
    html = content(
        client,
        t["engineer"],
        build(client, t["engineer"], kind="routine", customer="acme", period=PERIOD).json(),
    ).decode()
    assert "C-acme-1" in html and "C-acme-2" in html and "C-globex-1" not in html
    empty = json.loads(
        content(
            client,
            t["engineer"],
            build(
                client, t["engineer"], kind="routine", customer="acme", period="2023-Q3", format="json"
            ).json(),
        )
    )
    assert empty["figures"]["opened"] == 0
    up = build(client, t["engineer"], kind="upgrade", customer="acme", period=PERIOD, lang="zh-CN").json()
    up_html = content(client, t["engineer"], up).decode()
    assert "产品升级记录" in up_html and "5.1.0" in up_html and "5.2.0" in up_html and "C-acme-2" in up_html
    by_case = build(client, t["engineer"], kind="upgrade", case="C-acme-2", format="json").json()
    assert by_case["subject"] == "C-acme-2"
    assert json.loads(content(client, t["engineer"], by_case))["figures"] == {"changes": 1, "hosts": 1}
    bad = build(client, t["engineer"], kind="routine", customer="acme", period="2023-13")
    assert bad.status_code == 422 and "period" in bad.text
    missing = build(client, t["engineer"], kind="routine", customer="acme")
    assert missing.status_code == 422 and "give customer and period" in missing.json()["detail"]


def test_who_may_build_records(world: tuple[TestClient, dict[str, str]]) -> None:
    client, t = world
    assert build(client, t["acme admin"], kind="emergency", case="C-acme-1").status_code == 403
    assert build(client, t["acme viewer"], kind="emergency", case="C-acme-1").status_code == 403
    assert build(client, t["globex admin"], kind="routine", customer="acme", period=PERIOD).status_code == 403
    assert build(client, t["engineer"], kind="emergency", case="C-acme-99").status_code == 404
    made = build(client, t["engineer"], kind="emergency", case="C-acme-1").json()
    assert client.get(f"/api/v1/records/{made['id']}", headers=auth(t["globex admin"])).status_code == 404
    assert client.get(f"/api/v1/records/{made['id']}", headers=auth(t["acme admin"])).status_code == 200


def test_a_zh_cn_pdf_renders(world: tuple[TestClient, dict[str, str]]) -> None:
    client, t = world
    made = build(client, t["engineer"], kind="repair", case="C-acme-2", lang="zh-CN", format="pdf")
    if made.status_code == 409:  # the render refused: a font is missing (says which)
        pytest.fail(made.json()["detail"])
    assert made.status_code == 201, made.text
    assert content(client, t["engineer"], made.json()).startswith(b"%PDF-")


def test_periods() -> None:
    nov = parse_period("2026-11", "Asia/Shanghai")
    assert dt.datetime.fromtimestamp(nov.start, dt.UTC).isoformat() == "2026-10-31T16:00:00+00:00"
    assert nov.previous().name == "2026-10"
    assert parse_period("2026-01", "UTC").previous().name == "2025-12"
    q1 = parse_period("2026-Q1", "UTC")
    assert (q1.end - q1.start) / 86400 == 90 and q1.previous().name == "2025-Q4"
    with pytest.raises(ValueError, match="month"):
        parse_period("2026-Q5", "UTC")


def diagctl(url: str, token: str, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(["--server", url, "--token", token, *args], out=out)
    return code, out.getvalue()


def test_diagctl_records(tmp_path: Path) -> None:
    """build, list, show, download, sign and verify against a serving collector."""
    store = Store.open(f"sqlite:///{tmp_path / 'c.db'}")
    open_case(store, "acme", "db1")
    token = store.create_api_token("li", "engineer")
    try:
        with serving(create_app(store)) as url:
            code, text = diagctl(url, token, "records", "build", "emergency", "--case", "C-acme-1")
            assert code == 0 and "record 1: emergency C-acme-1" in text
            code, text = diagctl(url, token, "records", "list")
            assert code == 0 and text.split("\n")[0].split() == [
                "ID", "CUSTOMER", "KIND", "SUBJECT", "LANG", "FORMAT", "BYTES", "CREATED", "SIGNED",
            ]  # fmt: skip
            assert "C-acme-1" in text and " no" in text
            target = tmp_path / "r.html"
            code, text = diagctl(url, token, "records", "download", "1", "-o", str(target))
            assert code == 0 and "Emergency service report" in target.read_text()
            code, text = diagctl(url, token, "records", "sign", "1", "--contact", "Wang Fang")
            assert code == 0 and "/sign/dgs_" in text
            assert text.strip().splitlines()[-1].startswith(f"{url}/sign/dgs_")
            code, text = diagctl(url, token, "records", "show", "1")
            assert code == 0 and "Wang Fang" in text and "pending" in text
            code, text = diagctl(url, token, "records", "verify", "--format", "json")
            assert code == 0 and json.loads(text)["ok"] is True
            code, text = diagctl(url, token, "records", "verify")
            assert code == 0 and "1 records and 0 signatures checked" in text
            code, _ = diagctl(url, token, "records", "build", "routine", "--customer", "acme")
            assert code == 1
            target = tmp_path / "analysis.json"
            code, text = diagctl(
                url, token, "analysis", "build", "--customer", "acme", "--period", PERIOD,
                "--format", "json", "--lang", "zh-CN", "-o", str(target),
            )  # fmt: skip
            assert code == 0 and "wrote" in text
            assert json.loads(target.read_text())["title"] == "服务运行分析报告"
    finally:
        store.close()


def more_case(store: Store, customer: str, host: str, *, at: float, item: str) -> str:
    """Another case of an enrolled host, opened the way the live observer opens one."""
    from collector.emergency.case_content import case_content
    from collector.incidents import IncidentEngine, Signal

    (incident,) = IncidentEngine(clock=lambda: at).feed(
        Signal.check_crit(customer, host, "storage.filesystem", "FS_FULL", ts=at, item=item)
    )
    return CaseRepo(store).open_case(case_content(incident), now=at)


def test_service_operation_analysis(world: tuple[TestClient, dict[str, str]], store: Store) -> None:
    client, t = world
    # More cases on db1 this month than before: growth, a host's share, a layer's share.
    for i in range(2, 6):
        more_case(store, "acme", "db1", at=T0 + i * 86400, item=f"/data{i}")
    made = build(client, t["engineer"], kind="analysis", customer="acme", period=PERIOD, format="json")
    assert made.status_code == 201, made.text
    doc = json.loads(content(client, t["engineer"], made.json()))
    figures = doc["figures"]
    assert figures["cases"] == 6  # C-acme-1, C-acme-2 and four more db1 cases
    assert figures["by_type"] == {"emergency": 5, "perfective": 1}
    assert figures["history"][0] == {"period": PERIOD, "opened": 6, "resolved": 1}
    assert [h["period"] for h in figures["history"]] == ["2023-11", "2023-10", "2023-09", "2023-08"]
    assert figures["minutes"] == {"onsite": 240, "remote": 90}
    assert figures["cost"] is None and figures["surveys"] is None
    titles = [s["title"] for s in doc["sections"]]
    assert "Customer satisfaction" in titles and "Service cost" in titles
    satisfaction = doc["sections"][titles.index("Customer satisfaction")]
    assert satisfaction["text"] == [
        "No satisfaction surveys are recorded yet, so there are no results or trends to show."
    ]
    advice = doc["sections"][titles.index("Recommendations")]["text"]
    assert any("Host db1 was involved in" in a for a in advice), advice
    html = content(
        client,
        t["engineer"],
        build(client, t["engineer"], kind="analysis", customer="acme", period=PERIOD, lang="zh-CN").json(),
    ).decode()
    assert "服务运行分析报告" in html and "尚未记录满意度调查" in html and "<svg" in html
    assert "主机 db1 涉及" in html


def test_analysis_recommendations_cite_their_numbers() -> None:
    from collector.records.analysis import THRESHOLDS, _recommendations, version_rates
    from collector.store.service_data import CaseFacts, PeriodCounts

    period = parse_period("2026-11", "UTC")

    def case(i: int, host: str, layer: str | None = "storage", kind: str = "emergency") -> CaseFacts:
        return CaseFacts(
            f"C-a-{i}",
            kind,
            None,
            "CRIT",
            "resolved",
            (host,),
            layer,
            period.start + i,
            None,
            period.start + i + 60,
        )

    cases = [case(i, "db1") for i in range(6)] + [case(6, "web1", "network")]
    history = [("2026-11", PeriodCounts(7, 7, 7, 0, 0))] + [
        (f"p{i}", PeriodCounts(2, 2, 2, 0, 0)) for i in range(3)
    ]
    products = {
        "db1": {"erp": "5.1"},
        "db2": {"erp": "5.1"},
        "web1": {"erp": "5.2"},
        "web2": {"erp": "5.2"},
        "web3": {"erp": "5.2"},
    }
    advice = [
        a.en for a in _recommendations(cases, history, version_rates(cases, products), period, THRESHOLDS)
    ]
    assert any(a.startswith("Cases rose to 7 from an average of 2.0") and "+250%" in a for a in advice), (
        advice
    )
    assert any("Host db1 was involved in 6 of 7 cases (86%" in a for a in advice)
    assert any("storage layer caused 6 of 7" in a for a in advice)
    assert any("erp 5.1 had 3.00 cases per host (6 cases, 2 hosts), against 0.33" in a for a in advice)
    # below every threshold: nothing to recommend
    calm = [case(0, "db1", None), case(1, "web1", None)]
    steady = [("2026-11", PeriodCounts(2, 2, 2, 0, 0)), ("p", PeriodCounts(2, 2, 2, 0, 0))]
    assert _recommendations(calm, steady, [], period, THRESHOLDS) == []


def _contract(store: Store, name: str, first: dt.date, last: dt.date, onsite: str, remote: str) -> None:
    values = {
        "name": name, "tier": "standard", "starts_on": first, "ends_on": last, "targets": {},
        "rate_onsite": Decimal(onsite), "rate_remote": Decimal(remote), "currency": "CNY", "calendar": {},
    }  # fmt: skip
    CustomerFileRepo(store).add_contract(Scope.everything(), "acme", values, now=T0)


def test_the_analysis_costs_the_time_at_the_contracts_hourly_rates(
    world: tuple[TestClient, dict[str, str]], store: Store
) -> None:
    client, t = world
    _contract(store, "2022", dt.date(2022, 1, 1), dt.date(2022, 12, 31), "9999", "9999")  # not in force
    _contract(store, "2023", dt.date(2023, 1, 1), dt.date(2023, 12, 31), "1500", "900")
    made = build(client, t["engineer"], kind="analysis", customer="acme", period=PERIOD, format="json")
    assert made.status_code == 201, made.text
    doc = json.loads(content(client, t["engineer"], made.json()))
    assert doc["figures"]["minutes"] == {"onsite": 240, "remote": 90}
    assert doc["figures"]["cost"] == "7350.00 CNY"  # 4 h at 1500 + 1.5 h at 900
    cost = doc["sections"][[s["title"] for s in doc["sections"]].index("Service cost")]
    assert cost["text"] == []


def test_contract_rates_pick_the_contract_in_force(store: Store) -> None:
    store.enroll_agent("acme", "db1", "acme-db1")
    repo = CustomerFileRepo(store)
    november = parse_period(PERIOD, "Asia/Shanghai")
    assert contract_rates(repo, Scope.everything(), "acme", november) is None  # no contract
    _contract(store, "free", dt.date(2023, 1, 1), dt.date(2023, 6, 30), "0", "0")
    _contract(store, "from-dec", dt.date(2023, 12, 1), dt.date(2024, 11, 30), "800", "500")
    assert contract_rates(repo, Scope.everything(), "acme", november) is None  # none covers November
    _contract(store, "h2", dt.date(2023, 7, 1), dt.date(2023, 11, 1), "1200", "600")  # covers 1 November
    assert contract_rates(repo, Scope.everything(), "acme", november) == Rates(
        onsite=Decimal("1200"), remote=Decimal("600"), currency="CNY"
    )
    december = parse_period("2023-12", "Asia/Shanghai")
    assert contract_rates(repo, Scope.everything(), "acme", december) == Rates(
        onsite=Decimal("800"), remote=Decimal("500"), currency="CNY"
    )
    assert contract_rates(repo, Scope.of("globex"), "acme", november) is None  # another customer's scope


def test_a_case_record_lists_the_remote_sessions_of_its_case(
    world: tuple[TestClient, dict[str, str]], store: Store
) -> None:
    client, t = world
    sessions = SessionRepo(store)
    asked = sessions.request(ALL, engineer="li", host="db1", case_id="C-acme-1", reason="disk full",
                             mode="shell", public_key=KEY, duration_s=600, now=T0 + 500)  # fmt: skip
    sessions.approve(Scope.of("acme"), asked.id, actor="acme-admin", now=T0 + 600)
    html = content(
        client, t["engineer"], build(client, t["engineer"], kind="emergency", case="C-acme-1").json()
    )
    page = html.decode()
    section = page[page.index("Remote sessions") :]
    assert asked.id in section and "acme-admin" in section and "db1" in section
    zh = build(client, t["engineer"], kind="emergency", case="C-acme-1", lang="zh-CN").json()
    assert "远程会话" in content(client, t["engineer"], zh).decode()
