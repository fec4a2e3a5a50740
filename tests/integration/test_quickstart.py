"""The README's first command: a collector plus a local agent, real processes on loopback."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Every line a first run prints is one of ours: our log lines (logger names of our packages),
# our daemons' own lines, or quickstart's. Third-party libraries (fontTools, WeasyPrint,
# Alembic, uvicorn) stay quiet unless --log-level debug.
OUR_LOG_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) "
    r"(agent|diag_agent|checks|collector|diagconfig)(\.[\w.]+)?: "
)
QUICKSTART_LINES = re.compile(
    r"^(state directory: |diag-collector: |collector: gRPC |waiting for the local agent|first results stored "
    r"|running an inspection |inspection |remote-diag is running|In another terminal:$"
    r"|  export DIAG_SERVER=|  \.venv/bin/diagctl "
    r"|Press Ctrl-C|stopped\.$|$)"
)


def run_quickstart(state: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "collector.cli",
            "quickstart",
            "--state-dir",
            str(state),
            "--grpc-port",
            "0",
            "--http-port",
            "0",
            "--exit-after-first-results",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_quickstart_streams_local_results_and_reuses_its_credentials(tmp_path):
    state = tmp_path / "qs"
    first = run_quickstart(state)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "first results stored for" in first.stdout
    assert "export DIAG_SERVER=http://127.0.0.1:" in first.stdout
    assert "stopped." in first.stdout
    # One inspection of the local host ran, over the real agent's stream; its report is a
    # file in the state directory.
    lines = first.stdout.splitlines()
    html = Path(
        next(line for line in lines if line.startswith("inspection report (HTML): ")).split(": ", 1)[1]
    )
    assert html.is_file() and html.parent.parent == state / "reports"
    assert "Inspection Report" in html.read_text(encoding="utf-8")
    # The real local agent answered the InspectionRequest (its tagged results and marker).
    assert "1/1 host(s) answered" in first.stdout
    for line in first.stdout.splitlines():
        assert QUICKSTART_LINES.match(line), f"not one of quickstart's lines: {line!r}"
    for line in first.stderr.splitlines():
        assert OUR_LOG_LINE.match(line), f"not one of our log lines: {line!r}"
    creds = json.loads((state / "credentials.json").read_text())
    # Secrets stay private to the user who ran it.
    assert (state / "credentials.json").stat().st_mode & 0o077 == 0
    assert (state / "agent.yaml").stat().st_mode & 0o077 == 0
    # The agent token never reaches the logs; the engineer token is printed once, on purpose.
    assert creds["agent_token"] not in first.stdout + first.stderr

    second = run_quickstart(state)
    assert second.returncode == 0, second.stderr[-2000:]
    assert json.loads((state / "credentials.json").read_text()) == creds


def test_quickstart_prints_the_dashboard_and_its_engineer_token_signs_in(tmp_path: Path) -> None:
    """The README's first command: the banner names the dashboard and the API docs, and the
    engineer token it prints signs in to the dashboard of the store it left behind."""
    from collector.store import Store
    from tests.collector.web.test_pages import signed_in

    state = tmp_path / "qs"
    run = run_quickstart(state)
    assert run.returncode == 0, run.stderr[-2000:]
    dashboard = re.search(r"Dashboard: (http://127\.0\.0\.1:\d+)/", run.stdout)
    assert dashboard, run.stdout[-2000:]
    assert "/api/v1/docs" in run.stdout and "/docs " not in run.stdout.replace("/api/v1/docs", "")
    token = re.search(r"DIAG_TOKEN=(\S+)", run.stdout)
    assert token, run.stdout[-2000:]
    store = Store.open(f"sqlite:///{state / 'collector.db'}")
    try:
        client = signed_in(store, token.group(1))
        fleet = client.get("/fleet")
        assert fleet.status_code == 200 and 'href="/fleet/local"' in fleet.text, fleet.text[-1000:]
        assert client.get("/api/v1/docs").status_code == 200
    finally:
        store.close()
