"""End to end: ``diag-collector serve`` + a real ``diag-agent run``; the agent is killed with -9.

The collector (detection in its ingest worker process, short silent timeout from the
config) opens an agent-silent emergency case, ``diagctl cases list --format json`` shows
it, and a local webhook receiver gets the signed JSON from the serving process.
"""

from __future__ import annotations

import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from checks.registry import all_checks
from collector.notify import SIGNATURE_HEADER, verify
from collector.store import Scope
from collector.store.fleet import FleetRepo
from collector.store.store import Store
from diagctl.main import main as diagctl
from tests.integration.harness import free_port, spawn, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SECRET = "e2e-webhook-secret-0123456789"


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # the http.server API
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.received.append(({k: v for k, v in self.headers.items()}, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return


def test_killed_agent_opens_an_agent_silent_case_and_a_signed_webhook(tmp_path: Path) -> None:
    _Receiver.received = []
    hook = HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    url = f"sqlite:///{tmp_path / 'c.db'}"
    store = Store.open(url)
    _, token = store.enroll_agent("acme", "web1", "web1")
    api_token = store.create_api_token("oncall", "engineer")
    grpc_addr, http_port = f"127.0.0.1:{free_port()}", free_port()
    server = f"http://127.0.0.1:{http_port}"
    (tmp_path / "collector.yaml").write_text(
        f"""
state_dir: {tmp_path / "state"}
emergency:
  detection: {{silent_after_s: 3, roster_refresh_s: 1}}
  engine: {{silent_settle_s: 1}}
  notify_poll_s: 0.3
  public_url: https://diag.example.com
  notify:
    customers:
      acme:
        webhooks:
          - {{name: ops, url: "http://127.0.0.1:{hook.server_port}/hook", secret: {SECRET}}}
"""
    )
    # one cheap check that is OK everywhere, every second: the case must come from the kill alone
    only = {name: {"enabled": False} for name, check in all_checks().items() if check.default_enabled}
    only["host.uptime"] = {"enabled": True}
    agent_cfg = {
        "agent": {"id": "web1", "customer": "acme", "interval_s": 1},
        "collector": {"address": grpc_addr, "token": token},
        "checks": only,
    }
    (tmp_path / "agent.yaml").write_text(yaml.safe_dump(agent_cfg))
    collector = spawn(
        ["-m", "collector.cli", "serve", "--config", str(tmp_path / "collector.yaml"), "--store", url,
         "--grpc-listen", grpc_addr, "--http-listen", f"127.0.0.1:{http_port}"],
        tmp_path / "serve.log",
    )  # fmt: skip
    agent = None
    try:
        assert wait_for(lambda: "Ctrl-C stops" in collector.output(), 30), collector.output()
        agent = spawn(
            ["-m", "agent.cli", "run", "--config", str(tmp_path / "agent.yaml"), "--state-dir",
             str(tmp_path / "agent")],
            tmp_path / "agent.log",
        )  # fmt: skip

        def agent_reported() -> bool:
            return any(a.max_seq >= 3 for a in FleetRepo(store).agents(Scope.everything()))

        assert wait_for(agent_reported, 30), agent.output()
        time.sleep(1.0)  # a few more cycles
        agent.kill9()

        def cases() -> list[dict[str, Any]]:
            out = io.StringIO()
            code = diagctl(
                ["--server", server, "--token", api_token, "cases", "list", "--format", "json"], out=out
            )
            assert code == 0
            data: list[dict[str, Any]] = json.loads(out.getvalue())
            return data

        assert wait_for(lambda: bool(cases()), 30, interval=0.3), collector.output()
        (case,) = cases()
        assert (case["customer"], case["kind"], case["hosts"], case["state"]) == (
            "acme",
            "AGENT_SILENT",
            ["web1"],
            "new",
        )
        assert wait_for(lambda: bool(_Receiver.received), 20, interval=0.2), collector.output()
        headers, body = _Receiver.received[0]
        assert verify(SECRET.encode(), body, headers[SIGNATURE_HEADER], now=time.time())
        payload = json.loads(body)
        assert payload["event"] == "case.opened"
        assert payload["case"]["id"] == case["id"]
        assert payload["case"]["url"] == f"https://diag.example.com/cases/{case['id']}"
        assert payload["case"]["hosts"] == ["web1"] and payload["case"]["severity"] == "CRIT"
        assert SECRET not in collector.output()
    finally:
        if agent is not None:
            agent.kill9()
        collector.terminate()
        hook.shutdown()
        store.close()


CHECK_DUMMY = Path("/usr/lib/nagios/plugins/check_dummy")
FLIP = Path(__file__).parents[1] / "fixtures" / "app-nagios" / "flip.sh"


@pytest.mark.skipif(not CHECK_DUMMY.exists(), reason="needs monitoring-plugins (check_dummy)")
def test_a_plugin_critical_once_opens_no_case_critical_for_good_opens_one(tmp_path: Path) -> None:
    """A real agent runs the real check_dummy plugin every 2 s: a single CRITICAL among OKs is a
    soft state (no case); CRITICAL for good is confirmed and opens exactly one case within 20 s."""
    from collector.store.cases import CaseRepo

    url = f"sqlite:///{tmp_path / 'c.db'}"
    store = Store.open(url)
    _, token = store.enroll_agent("acme", "web1", "web1")
    grpc_addr = f"127.0.0.1:{free_port()}"
    (tmp_path / "collector.yaml").write_text(f"state_dir: {tmp_path / 'state'}\n")
    state = tmp_path / "plugin-state"
    state.write_text("ok\n")
    only: dict[str, Any] = {
        name: {"enabled": False} for name, check in all_checks().items() if check.default_enabled
    }
    only["application.nagios"] = {
        "interval_s": 2,
        "params": {"plugins": [{"name": "db", "command": [str(FLIP), str(state)]}]},
    }
    agent_cfg = {
        "agent": {"id": "web1", "customer": "acme", "interval_s": 2},
        "collector": {"address": grpc_addr, "token": token},
        "checks": only,
    }
    (tmp_path / "agent.yaml").write_text(yaml.safe_dump(agent_cfg))
    collector = spawn(
        ["-m", "collector.cli", "serve", "--config", str(tmp_path / "collector.yaml"), "--store", url,
         "--grpc-listen", grpc_addr, "--http-listen", f"127.0.0.1:{free_port()}"],
        tmp_path / "serve.log",
    )  # fmt: skip
    agent = None
    repo = CaseRepo(store)

    def stored() -> list[Any]:
        return FleetRepo(store).results(Scope.everything(), "web1", check="application.nagios", limit=1000)

    def stored_after(n: int) -> bool:
        return len(stored()) >= n

    try:
        assert wait_for(lambda: "Ctrl-C stops" in collector.output(), 30), collector.output()
        agent = spawn(
            ["-m", "agent.cli", "run", "--config", str(tmp_path / "agent.yaml"), "--state-dir",
             str(tmp_path / "agent")],
            tmp_path / "agent.log",
        )  # fmt: skip
        assert wait_for(lambda: stored_after(2), 30), agent.output()
        state.write_text("once\n")
        assert wait_for(lambda: state.read_text().strip() == "ok", 10), agent.output()
        seen = len(stored())
        assert wait_for(lambda: stored_after(seen + 3), 20), agent.output()  # the CRIT and OKs after it
        severities = [r.severity for r in stored()]
        assert severities.count("CRIT") == 1, severities
        assert repo.list(Scope.everything()) == [], collector.output()

        state.write_text("always\n")
        started = time.monotonic()
        assert wait_for(lambda: bool(repo.list(Scope.everything())), 20, interval=0.2), collector.output()
        assert time.monotonic() - started <= 20
        (case,) = repo.list(Scope.everything())
        assert (case.customer, case.hosts, case.severity) == ("acme", ("web1",), "CRIT")
        assert case.members[0]["series"] == "check:application.nagios[db]"
        seen = len(stored())
        assert wait_for(lambda: stored_after(seen + 3), 20), agent.output()
        assert len(repo.list(Scope.everything())) == 1  # still one case, not one per result
    finally:
        if agent is not None:
            agent.kill9()
        collector.terminate()
        store.close()
