"""A real ``diag-collector serve`` builds the scheduled analysis of the month that ended."""

from __future__ import annotations

import datetime as dt
import json
import signal
import time
from pathlib import Path

import pytest
import yaml

from collector.store import Scope
from collector.store.reports import ReportRecord, ReportRepo
from collector.store.store import Store
from tests.collector.cases.test_api import open_case
from tests.integration.harness import free_port, spawn

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def test_serve_builds_the_analysis_of_the_month_that_ended(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    store = Store.open(url)
    first_of_month = dt.datetime.now(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    last_month = first_of_month - dt.timedelta(days=10)
    open_case(store, "acme", "db1", at=last_month.timestamp())
    config = tmp_path / "collector.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "store": {"url": url},
                "grpc": {"listen": f"127.0.0.1:{free_port()}"},
                "http": {"listen": f"127.0.0.1:{free_port()}"},
                "records": {"analysis": [{"customer": "acme", "languages": ["en"], "formats": ["json"]}]},
            }
        )
    )
    proc = spawn(["-m", "collector.cli", "serve", "--config", str(config)], tmp_path / "serve.log")
    try:
        deadline = time.monotonic() + 45
        found: list[ReportRecord] = []
        while not found and time.monotonic() < deadline:
            assert proc.popen.poll() is None, proc.output()
            found = ReportRepo(store).reports(Scope.of("acme"), kind="analysis")
            time.sleep(0.2)
        assert found, proc.output()
        (record,) = found
        assert record.subject == last_month.strftime("%Y-%m") and (record.lang, record.format) == (
            "en",
            "json",
        )
        doc = json.loads(ReportRepo(store).report_content(Scope.of("acme"), record.id)[1])
        assert doc["figures"]["cases"] == 1
        proc.popen.send_signal(signal.SIGTERM)
        assert proc.popen.wait(15) == 0, proc.output()
    finally:
        proc.kill9()
        store.close()
