"""The API against its own OpenAPI document, fuzzed by schemathesis with every check.

A scratch collector: a fresh SQLite store in a temp directory with seeded customers,
hosts, results, gaps, a case and tokens; never a real store (the write endpoints enroll
and revoke agents and tokens, and start runs). Every generated request must be answered
without a 5xx, with a status the document lists for that operation, a body matching the
documented schema (problem+json for errors) and a matching content type.

Bounded (``max_examples``) so the suite stays fast; ``DIAG_CONTRACT_EXAMPLES`` raises it
for a deeper run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from collector.http.app import create_app
from collector.store import IngestBatch, PointRow, ResultRow, Store
from collector.store.cases import CaseContent, CaseRepo
from collector.store.types import GapRow
from tests.collector.http_server import serving

T0 = 1_700_000_000.0
EXAMPLES = int(os.environ.get("DIAG_CONTRACT_EXAMPLES", "10"))


def _seed(store: Store) -> dict[str, str]:
    for customer, host in (("acme", "web1"), ("acme", "db1"), ("globex", "app1")):
        agent, _ = store.enroll_agent(customer, host=host, agent_id=f"{customer}-{host}")
        rows = [
            ResultRow(1, T0, "host.load", "host", "WARN", "LOAD_HIGH", "Load 3.1", 1.0, "[]", None),
            ResultRow(2, T0 + 60, "host.load", "host", "OK", "OK", "fine", 1.0, json.dumps([{"k": 1}]), None),
        ]
        points = [PointRow(1, T0, "host.load", "load_ratio", "ratio", (), 3.1)]
        store.ingest(agent, IngestBatch(2, 1, rows, points, [], []))
        store.record_gaps(agent, [GapRow(10, 12, 3, "spool_full", T0)])
    content = CaseContent(
        "inc-1", "acme", "DEGRADATION", "Storage on db1 degraded", "CRIT", ("db1",), [], [], {}, T0, T0 + 60
    )
    CaseRepo(store).open_case(content, now=T0 + 120)
    return {
        "engineer": store.create_api_token("eng", "engineer"),
        "viewer": store.create_api_token("acme-viewer", "viewer", customer="acme"),
    }


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FastAPI, dict[str, str]]]:
    path: Path = tmp_path_factory.mktemp("contract") / "scratch.db"
    store = Store.open(f"sqlite:///{path}")
    tokens = _seed(store)
    yield create_app(store, None), tokens
    store.close()


def _schemathesis(url: str, token: str, report: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which("schemathesis")
    if cli is None:
        pytest.skip("schemathesis is not installed (pip install -e '.[dev]')")
    return subprocess.run(
        [
            cli, "--config-file", str(Path(__file__).with_name("schemathesis.toml")),
            "run", f"{url}/api/v1/openapi.json",
            "--checks", "all",
            "--max-examples", str(EXAMPLES),
            "--generation-deterministic",
            "--header", f"Authorization: Bearer {token}",
            "--report", "junit", "--report-junit-path", str(report),
            "--no-color",
            # The stateful phase would revoke the very token it runs with (which the API
            # allows): every later request is then 401. test_tokens.py covers revocation.
            "--exclude-path", "/api/v1/tokens/{token_id}/revoke",
            # Any NUL answers 400 before routing (test_hostile_input.py covers every endpoint);
            # generated NULs would only exercise that one guard.
            "--generation-allow-x00", "false",
            *extra,
        ],
        capture_output=True, text=True, timeout=1200,
        cwd=report.parent,  # its example cache (.schemathesis/) lands there, not in the checkout
    )  # fmt: skip


@pytest.mark.integration
@pytest.mark.timeout(1300)
@pytest.mark.parametrize("role", ["engineer", "viewer"])
def test_every_operation_keeps_its_contract(
    role: str, scratch: tuple[FastAPI, dict[str, str]], tmp_path: Path
) -> None:
    """schemathesis --checks all (examples, coverage, fuzzing and stateful phases) over loopback."""
    app, tokens = scratch
    with serving(app) as url:
        done = _schemathesis(url, tokens[role], tmp_path / "junit.xml")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "No issues found" in done.stdout or "passed" in done.stdout, done.stdout[-3000:]


def test_the_document_lists_the_error_statuses(scratch: tuple[FastAPI, dict[str, str]]) -> None:
    app, _ = scratch
    doc = app.openapi()
    results = doc["paths"]["/api/v1/results"]["get"]["responses"]
    assert {"200", "400", "401", "403", "404", "409", "422"} <= set(results)
    assert "413" in doc["paths"]["/api/v1/customers/{customer}/profile"]["put"]["responses"]
    assert "503" in doc["paths"]["/api/v1/reports/fault/{case_id}"]["get"]["responses"]
    for path, operations in doc["paths"].items():
        if not path.startswith("/api/"):
            continue
        for method, operation in operations.items():
            for code, response in operation["responses"].items():
                if code.startswith(("4", "5")):
                    content = response["content"]
                    assert list(content) == ["application/problem+json"], (method, path, code)
    token_id = next(p for p in doc["paths"]["/api/v1/tokens/{token_id}/revoke"]["post"]["parameters"])
    assert token_id["schema"]["maximum"] == 2**63 - 1 and token_id["schema"]["minimum"] == 1
