"""Inspections end to end: plan files → run over real gRPC → stored result → reports via API and diagctl.

The collector side is real (grpc.aio server, SQLite store, the FastAPI app under uvicorn on
the same event loop, as ``serve`` runs them); the agents are raw gRPC clients following the
inspection contract (tests/collector/inspections/fleet.py). Numbers in the reports are
checked against counts computed straight from the store's tables.
"""

# full-width punctuation is correct in Chinese text
from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn

from collector.http.app import create_app
from collector.ingest.grpc_service import GrpcSettings
from collector.inspections.failure import PUBLIC_INTERNAL_ERROR
from collector.inspections.runner import RunnerSettings
from collector.inspections.service import InspectionService, attach
from collector.store import Scope, Store
from collector.store.cases import CaseContent, CaseRepo
from collector.store.schema import check_results, customers, gaps, hosts
from diagctl.main import main as diagctl
from tests.collector.inspections.fleet import FakeAgent, enroll_fleet, seed_history, tagged_counts
from tests.integration.harness import InProcessCollector, free_port

PNG_1X1 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
PLAN = """\
name: weekly
customer: acme
timezone: Asia/Shanghai
schedule: "0 3 * * 1"
hosts: {labels: {env: prod}}
layers: [host, storage]
language: zh-CN
answer_deadline: 3s
thresholds: {MEMORY_GROWING: {warn: 31}}
"""
NOMATCH = """\
name: nomatch
customer: acme
timezone: UTC
schedule: "@daily"
hosts: {names: ["mail*"]}
checks: [storage.filesystem]
"""
BAD_CRON = 'name: bad-cron\ncustomer: acme\ntimezone: UTC\nschedule: "61 * * * *"\n'
BAD_CHECK = (
    'name: bad-check\ncustomer: acme\ntimezone: UTC\nschedule: "@daily"\nchecks: [storage.filesytem]\n'
)


@contextlib.contextmanager
def _no_signals() -> Iterator[None]:
    yield


class _Server(uvicorn.Server):
    # uvicorn runs on the collector's loop thread here: it must not touch signal handlers.
    def capture_signals(self) -> contextlib._GeneratorContextManager[None, None, None]:
        return _no_signals()


@dataclass
class Site:
    store: Store
    collector: InProcessCollector
    service: InspectionService
    url: str
    tokens: dict[str, str]
    agents: list[FakeAgent]
    tmp: Path

    def diagctl(self, *args: str, token: str = "engineer") -> tuple[int, str]:
        out = io.StringIO()
        rc = diagctl(["--server", self.url, "--token", self.tokens[token], *args], out=out)
        return rc, out.getvalue()

    def api(self, path: str, token: str = "engineer", **params: Any) -> httpx.Response:
        return httpx.get(
            self.url + path,
            params=params,
            headers={"Authorization": f"Bearer {self.tokens[token]}"},
            timeout=120,
        )


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    monkeypatch.setenv("DIAGCTL_CONFIG", str(tmp_path / "none.yaml"))
    store = Store.open(f"sqlite:///{tmp_path / 'c.db'}")
    fleet = enroll_fleet(store, "acme", ["db1", "db2", "web1", "db3"])
    enroll_fleet(store, "globex", ["app1"])
    seed_history(store, fleet["db1"][0], time.time())
    plans = tmp_path / "plans"
    plans.mkdir()
    for name, text in (
        ("weekly", PLAN),
        ("nomatch", NOMATCH),
        ("bad-cron", BAD_CRON),
        ("bad-check", BAD_CHECK),
    ):
        (plans / f"{name}.yaml").write_text(text)
    collector = InProcessCollector(store, GrpcSettings(listen="127.0.0.1:0"))
    agents = [
        FakeAgent(collector.address, fleet[name][1], f"acme-{name}", name, {"env": "prod"})
        for name in ("db1", "db2", "web1")
    ]
    # db3 carries the label too but never connects: selected, asked nothing, offline.
    with store.engine.begin() as conn:
        conn.execute(hosts.update().where(hosts.c.name == "db3").values(labels={"env": "prod"}))
    service = InspectionService(
        store,
        collector.service,
        RunnerSettings(poll_s=0.05, reports_dir=tmp_path / "reports", organisation="Example Vendor"),
        plans_dir=plans,
    )
    service.load_plans()
    attach(store, service)
    port = free_port()
    app = create_app(store, None, grpc_service=collector.service)
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    serving = asyncio.run_coroutine_threadsafe(server.serve(), collector.loop)
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    tokens = {
        "engineer": store.create_api_token("eng", "engineer"),
        "acme": store.create_api_token("acme-admin", "customer_admin", customer="acme"),
        "viewer": store.create_api_token("acme-viewer", "viewer", customer="acme"),
        "globex": store.create_api_token("globex-admin", "customer_admin", customer="globex"),
    }
    yield Site(store, collector, service, f"http://127.0.0.1:{port}", tokens, agents, tmp_path)
    server.should_exit = True
    serving.result(15)
    collector.call(service.cancel_runs())
    for agent in agents:
        agent.close()
    collector.stop()
    store.close()


def _store_truth(store: Store, customer: str, run_id: str) -> dict[str, Any]:
    """Coverage computed from the tables, independently of the inspection code."""
    with store.engine.connect() as conn:
        selected = sorted(
            r.name
            for r in conn.execute(
                sa.select(hosts.c.name, hosts.c.labels)
                .join(customers, customers.c.id == hosts.c.customer_id)
                .where(customers.c.slug == customer)
            )
            if (r.labels if isinstance(r.labels, dict) else json.loads(r.labels)).get("env") == "prod"
        )
        answered = sorted(
            r.name
            for r in conn.execute(
                sa.select(hosts.c.name)
                .distinct()
                .join(check_results, check_results.c.host_id == hosts.c.id)
                .where(check_results.c.inspection_id == run_id, check_results.c.check == "application.agent")
            )
        )
    return {"selected": selected, "answered": answered, "offline": sorted(set(selected) - set(answered))}


def test_run_with_wait_stores_result_and_reports_whose_numbers_match_the_store(site: Site) -> None:
    rc, out = site.diagctl("inspections", "run", "weekly", "--wait")
    assert rc == 0, out
    assert "coverage: 3/4 hosts answered (75.0%)" in out
    assert "offline: db3" in out
    run = site.api("/api/v1/inspections/runs", plan="weekly").json()[0]
    assert run["state"] == "done" and run["trigger"] == "manual" and run["requested_by"] == "eng"
    # Every connected agent got one request tagged with the run id; db3 was never asked.
    assert [a.requests[0].inspection_id for a in site.agents] == [run["id"]] * 3
    assert set(site.agents[0].requests[0].layers) == {"host", "storage"}

    truth = _store_truth(site.store, "acme", run["id"])
    assert truth == {
        "selected": ["db1", "db2", "db3", "web1"],
        "answered": ["db1", "db2", "web1"],
        "offline": ["db3"],
    }
    rc, out = site.diagctl(
        "reports",
        "inspection",
        run["id"],
        "--format",
        "json",
        "--lang",
        "zh-CN",
        "-o",
        str(site.tmp / "r.json"),
    )
    assert rc == 0, out
    report = json.loads((site.tmp / "r.json").read_text())
    assert report["coverage"]["selected"] == len(truth["selected"])
    assert report["coverage"]["answered"] == len(truth["answered"])
    assert [h["name"] for h in report["coverage"]["offline"]] == truth["offline"]
    assert run["hosts_selected"] == 4 and run["hosts_answered"] == 3

    # Findings: every non-OK tagged result is one instance; every offline host one more.
    instances = [(f["key"], i["host"]) for f in report["findings"] for i in f["instances"]]
    from_results = [pair for pair in instances if pair[0] != "HOST_NOT_ANSWERING"]
    tagged = tagged_counts(site.store, "acme", run["id"])
    assert len(from_results) == sum(tagged.values()) == 3
    assert sorted(h for k, h in instances if k == "HOST_NOT_ANSWERING") == truth["offline"]
    severities = {f["key"]: f["severity"] for f in report["findings"]}
    assert severities["FS_NEARLY_FULL"] == "CRIT"  # db1 CRIT, db2 WARN: the worst
    # The thresholds used, the plan's override marked (a growth rule: no history, no finding).
    used = {t["rule"]: t for t in report["thresholds"]}
    assert (
        used["MEMORY_GROWING"]["overridden"]
        and used["MEMORY_GROWING"]["described"] == "warn <= 31, crit <= 7"
    )
    assert not used["CPU_SATURATED"]["overridden"] and "CERT_EXPIRING" not in used  # not a host/storage rule
    rc, out = site.diagctl("inspections", "show", "weekly")
    assert rc == 0 and "thresholds MEMORY_GROWING: warn=31 (overrides the rule's defaults)" in out, out
    assert sum(1 for f in report["findings"] if f["severity"] == "CRIT") == run["counts"]["CRIT"] == 1
    with_findings = {h for _, h in instances}
    assert sum(1 for h in report["hosts"] if h["crit"] or h["warn"] or h["unknown"]) == len(with_findings)

    # Stored service records: HTML + JSON in the plan's language, written out too.
    records = site.api("/api/v1/reports", subject=run["id"]).json()
    assert sorted((r["format"], r["lang"]) for r in records) == [("html", "zh-CN"), ("json", "zh-CN")]
    assert all(Path(r["path"]).is_file() for r in records)


def test_reports_in_both_languages_and_pdf_are_stored_once(site: Site) -> None:
    run = site.collector.call(_run(site, "weekly"))
    en = site.api("/api/v1/reports/inspection", plan="weekly", lang="en")
    assert en.status_code == 200 and en.headers["content-type"].startswith("text/html")
    assert "Inspection Report" in en.text and "(3/4)" in en.text
    zh = site.api("/api/v1/reports/inspection", run=run.id, lang="zh-CN")
    assert "巡检报告" in zh.text
    again = site.api("/api/v1/reports/inspection", run=run.id, lang="en")
    assert again.headers["x-report-id"] == en.headers["x-report-id"]  # served from the store

    pdf = site.api("/api/v1/reports/inspection", run=run.id, format="pdf", lang="zh-CN")
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    path = site.tmp / "r.pdf"
    path.write_bytes(pdf.content)
    pages = int(
        next(
            line.split()[-1]
            for line in subprocess.run(
                ["pdfinfo", str(path)], capture_output=True, text=True, check=True
            ).stdout.splitlines()
            if line.startswith("Pages:")
        )
    )
    for page in range(1, pages + 1):
        text = subprocess.run(
            ["pdftotext", "-f", str(page), "-l", str(page), "-enc", "UTF-8", str(path), "-"],
            capture_output=True,
            check=True,
        ).stdout.decode()
        assert text.strip(), f"page {page} has no text"
    rc, out = site.diagctl("reports", "get", pdf.headers["x-report-id"], "-o", str(site.tmp / "copy.pdf"))
    assert rc == 0 and (site.tmp / "copy.pdf").read_bytes() == pdf.content
    rc, out = site.diagctl("reports", "list", "--kind", "inspection")
    # The eager HTML + JSON in the plan's language, then one record per new (lang, format).
    assert rc == 0 and out.count(run.id) == 4
    listed = site.api("/api/v1/reports", subject=run.id).json()
    assert sorted((r["lang"], r["format"]) for r in listed) == [
        ("en", "html"),
        ("zh-CN", "html"),
        ("zh-CN", "json"),
        ("zh-CN", "pdf"),
    ]


async def _run(site: Site, plan_name: str) -> Any:
    plan = site.service.plan(Scope.everything(), plan_name)
    record = await site.service.launch(plan, requested_by="test")
    await site.service.wait_idle()
    return site.service.repo.run(Scope.everything(), record.id)


def test_customers_see_only_their_own_runs_and_reports(site: Site) -> None:
    run = site.collector.call(_run(site, "weekly"))
    assert site.api(f"/api/v1/inspections/runs/{run.id}", token="acme").status_code == 200
    assert site.api(f"/api/v1/inspections/runs/{run.id}", token="globex").status_code == 404
    assert site.api("/api/v1/inspections/runs", token="globex").json() == []
    assert site.api("/api/v1/reports", token="globex").json() == []
    assert site.api("/api/v1/inspections/plans", token="globex").json() == []
    assert site.api("/api/v1/reports/inspection", token="globex", run=run.id).status_code == 404
    report_id = site.api("/api/v1/reports", token="acme").json()[0]["id"]
    assert site.api(f"/api/v1/reports/{report_id}/content", token="globex").status_code == 404
    viewer = httpx.post(
        site.url + "/api/v1/inspections/plans/weekly/runs",
        headers={"Authorization": f"Bearer {site.tokens['viewer']}"},
    )
    assert viewer.status_code == 403
    assert site.api("/api/v1/inspections/plan-errors", token="acme").status_code == 403


def test_bad_plans_are_skipped_with_clear_errors_and_a_selector_matching_nothing_fails_the_run(
    site: Site,
) -> None:
    rc, out = site.diagctl("inspections", "errors")
    assert rc == 0
    assert "bad-cron.yaml: schedule: expected" in out and "61" in out
    assert "bad-check.yaml: checks.storage.filesytem: unknown check 'storage.filesytem'; did you mean" in out
    rc, listing = site.diagctl("inspections", "list")
    assert "weekly" in listing and "nomatch" in listing and "bad-cron" not in listing

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc, out = site.diagctl("inspections", "run", "nomatch", "--wait")
    assert rc == 1
    assert "host selector (names=mail*) matches no host of customer 'acme'" in err.getvalue()
    assert "db1, db2, db3, web1" in err.getvalue()


def test_a_scheduled_run_starts_from_the_scheduler_tick(site: Site) -> None:
    # First sight records each plan's latest due time; a week later each plan is due again
    # (weekly once, daily once however many days passed) and starts exactly one run.
    service = site.service
    first = time.time()
    assert site.collector.call(service.tick(first)) == []
    started = site.collector.call(service.tick(first + 7 * 86400))
    assert sorted(r.plan for r in started) == ["nomatch", "weekly"]
    site.collector.call(service.wait_idle())
    runs = {r.plan: service.repo.run(Scope.everything(), r.id) for r in started}
    assert runs["weekly"].trigger == "scheduled" and runs["weekly"].state == "done"
    assert runs["weekly"].due_at is not None and runs["weekly"].due_at <= first + 7 * 86400
    assert runs["nomatch"].state == "failed" and "matches no host" in (runs["nomatch"].error or "")
    assert site.collector.call(service.tick(first + 7 * 86400 + 60)) == []


def test_fault_report_of_a_case_from_the_store(site: Site) -> None:
    now = time.time()
    onset = now - 2 * 86400 + 3600  # inside the seeded filesystem history of db1
    repo = CaseRepo(site.store)
    cause = {
        "kind": "layer",
        "layer": "storage",
        "host": "db1",
        "confidence": 0.8,
        "reason": "storage on db1 went bad first",
        "reason_key": "CAUSE_LAYER_FIRST",
        "params": {
            "layer": "storage",
            "host": "db1",
            "onset": "2026-01-01T00:00:00+00:00",
            "what": "fs",
            "explains": 1,
        },
        "evidence": [],
    }
    member = {
        "host": "db1",
        "metric": "storage_fs_used_percent",
        "labels": {"mountpoint": "/data"},
        "layer": "storage",
        "baseline": 80.0,
        "observed": 95.0,
        "score": 0.9,
        "onset_ts": onset,
        "recovered_ts": onset + 1800,
    }
    case_id = repo.open_case(
        CaseContent(
            "inc-1",
            "acme",
            "DEGRADATION",
            "Storage on db1 degraded",
            "CRIT",
            ("db1",),
            [cause],
            [member],
            {},
            onset,
            onset + 120,
        ),
        now=onset + 180,
    )
    repo.acknowledge(Scope.everything(), case_id, actor="wang", now=onset + 300)
    repo.add_note(Scope.everything(), case_id, actor="wang", text="Freed 20 GB on /data", now=onset + 900)

    zh = site.api(f"/api/v1/reports/fault/{case_id}", lang="zh-CN", format="json")
    assert zh.status_code == 200, zh.text
    doc = zh.json()
    assert doc["case"]["case_id"] == case_id
    assert doc["impact"]["hosts"] == ["db1"] and doc["impact"]["hosts_total"] == 4
    assert len(doc["evidence"]) == 1 and doc["evidence"][0]["metric"] == "storage_fs_used_percent"
    assert "存储" in json.dumps(doc["cause"], ensure_ascii=False)
    assert [a["author"] for a in doc["actions"]] == ["wang"]
    pdf = site.api(f"/api/v1/reports/fault/{case_id}", lang="zh-CN", format="pdf")
    assert pdf.headers["content-type"] == "application/pdf"
    (site.tmp / "f.pdf").write_bytes(pdf.content)
    text = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(site.tmp / "f.pdf"), "-"], capture_output=True, check=True
    )
    assert "事故分析报告" in text.stdout.decode() and case_id in text.stdout.decode()
    en = site.api(f"/api/v1/reports/fault/{case_id}", lang="en")
    assert "Freed 20 GB on /data" in en.text
    same = site.api(f"/api/v1/reports/fault/{case_id}", lang="en")
    assert same.headers["x-report-id"] == en.headers["x-report-id"]
    repo.add_note(
        Scope.everything(), case_id, actor="wang", text="Added an alert on /data", now=time.time() + 1
    )
    newer = site.api(f"/api/v1/reports/fault/{case_id}", lang="en")
    assert newer.headers["x-report-id"] != en.headers["x-report-id"] and "Added an alert" in newer.text
    assert site.api(f"/api/v1/reports/fault/{case_id}", token="globex").status_code == 404

    rc, out = site.diagctl(
        "customers", "profile", "acme", "--name", "Acme Trading Co.", "--timezone", "Asia/Shanghai"
    )
    assert rc == 0 and "Acme Trading Co. (Asia/Shanghai)" in out
    logo = site.tmp / "logo.png"
    logo.write_bytes(base64.b64decode(PNG_1X1))
    rc, out = site.diagctl("customers", "profile", "acme", "--logo", str(logo))
    assert rc == 0 and "logo 70 bytes" in out
    rc, out = site.diagctl("reports", "fault", case_id, "--lang", "en", "-o", str(site.tmp / "f.html"))
    html = (site.tmp / "f.html").read_text()
    assert rc == 0 and "Acme Trading Co." in html and "data:image/png;base64," in html
    rc, out = site.diagctl("customers", "profile", "acme", "--logo", str(site.tmp / "f.html"))
    assert rc == 1  # not an image: refused with the reason


def test_gap_counts_near_2_63_do_not_fail_the_customers_inspections(site: Site) -> None:
    """Gaps stored before counts were bounded at ingest: their sum overflowed SQLite's integers."""
    now = time.time()
    with site.store.engine.begin() as conn:
        conn.execute(
            gaps.insert(),
            [
                {
                    "agent_id": "acme-db1",
                    "first_seq": first,
                    "last_seq": 2**63 - 1,
                    "count": 2**62,
                    "reason": "spool_full",
                    "dropped_at": now - 3600,
                    "recorded_at": now,
                }
                for first in (1, 2, 3)
            ],
        )
    run = site.collector.call(_run(site, "weekly"))
    assert (run.state, run.error) == ("done", None)
    body = site.api(f"/api/v1/inspections/runs/{run.id}", token="viewer", result="true").json()
    assert body["state"] == "done" and body["error"] is None


def test_a_failed_run_shows_no_internal_error_text_to_the_customers_people(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    # A real internal failure: a table the run reads is gone, so the database answers with
    # an error naming the SQL. That text must stay in the log.
    with site.store.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE gaps"))
    with caplog.at_level("ERROR", logger="collector.inspections.runner"):
        run = site.collector.call(_run(site, "weekly"))
    assert run.state == "failed"
    logged = [r for r in caplog.records if "log reference" in r.getMessage()]
    assert logged and logged[0].exc_info is not None and "gaps" in str(logged[0].exc_info[1])
    reference = logged[0].getMessage().rsplit(" ", 1)[-1].rstrip(")")
    for token in ("acme", "viewer"):
        shown = site.api(f"/api/v1/inspections/runs/{run.id}", token=token).json()["error"]
        assert shown == PUBLIC_INTERNAL_ERROR
        listed = site.api("/api/v1/inspections/runs", token=token).json()
        assert [r["error"] for r in listed if r["id"] == run.id] == [PUBLIC_INTERNAL_ERROR]
        rc, out = site.diagctl("inspections", "show", run.id, token=token)
        assert rc == 0 and PUBLIC_INTERNAL_ERROR in out
        assert "gaps" not in out and "SELECT" not in out and reference not in out
    engineer = site.api(f"/api/v1/inspections/runs/{run.id}").json()["error"]
    assert engineer == f"internal error (log reference {reference})"
