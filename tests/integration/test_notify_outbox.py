"""Two real ``diag-collector serve`` processes on one PostgreSQL store share the notification
outbox: every case event reaches a real webhook receiver, none twice per lease, and a
collector killed with -9 in the middle of a delivery loses that notification to the
other once its lease runs out (sent again with the same id: at least once, deduped).

The first collector also imports the local outbox file an earlier collector left in its
state directory.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from collector.notify import SIGNATURE_HEADER, notification_id, verify
from collector.store.outbox import LEGACY_OUTBOX_FILE, OutboxRepo
from collector.store.store import Store
from diagctl.main import main as diagctl
from tests.collector.cases.test_api import open_case
from tests.collector.notify.factories import case_event
from tests.collector.store.pg import SKIP_REASON, fresh_database, pg_listening
from tests.collector.store.test_outbox import legacy_outbox
from tests.integration.harness import Proc, free_port, spawn, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SECRET = "two-collectors-webhook-secret"
LEASE_S = 4.0


class Receiver:
    """A webhook endpoint: records every request; while ``hang`` is set it holds requests open."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.hang = threading.Event()
        self.hung = threading.Event()
        self.release = threading.Event()
        self.bad_signatures = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if not verify(SECRET.encode(), body, self.headers[SIGNATURE_HEADER], now=time.time()):
                    receiver.bad_signatures += 1
                payload = json.loads(body)
                with receiver._lock:
                    receiver.received.append((self.headers["X-Diag-Delivery"], payload))
                    hold = receiver.hang.is_set() and not receiver.hung.is_set()
                    if hold:
                        receiver.hung.set()
                if hold:  # the sender is killed while it waits here
                    receiver.release.wait(30)
                    return
                time.sleep(0.05)  # slow enough that both collectors deliver at once
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def ids(self) -> Counter[str]:
        with self._lock:
            return Counter(i for i, _ in self.received)

    def events(self) -> set[tuple[str, str]]:
        with self._lock:
            return {(p["case"]["id"], p["event"]) for _, p in self.received}

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def pg_url() -> Iterator[str]:
    if not pg_listening():
        pytest.skip(SKIP_REASON)
    with fresh_database() as url:
        yield url


def _config(path: Path, state: Path, hook_port: int) -> Path:
    path.write_text(
        f"""
state_dir: {state}
emergency:
  notify_poll_s: 0.2
  notify:
    delivery: {{lease_s: {LEASE_S}, backoff_initial_s: 1, jitter: 0}}
    customers:
      acme:
        webhooks:
          - {{name: ops, url: "http://127.0.0.1:{hook_port}/hook", secret: {SECRET}, timeout_s: 3,
             events: [opened, acknowledged, resolved, reopened]}}
"""
    )
    return path


def _serve(tmp_path: Path, name: str, url: str, hook_port: int, run: int = 1) -> tuple[Proc, str]:
    config = _config(tmp_path / f"{name}.yaml", tmp_path / name, hook_port)
    http_port = free_port()
    proc = spawn(
        ["-m", "collector.cli", "serve", "--config", str(config), "--store", url,
         "--grpc-listen", f"127.0.0.1:{free_port()}", "--http-listen", f"127.0.0.1:{http_port}"],
        tmp_path / f"{name}-{run}.log",
    )  # fmt: skip
    assert wait_for(lambda: "Ctrl-C stops" in proc.output(), 60), proc.output()
    return proc, f"http://127.0.0.1:{http_port}"


def _case(server: str, token: str, *args: str) -> None:
    out = io.StringIO()
    assert diagctl(["--server", server, "--token", token, "cases", *args], out=out) == 0, out.getvalue()


def test_two_collectors_share_the_outbox_and_survive_a_kill(tmp_path: Path, pg_url: str) -> None:
    store = Store.open(pg_url)
    cases = [open_case(store, "acme", f"db{n}") for n in range(6)]
    token = store.create_api_token("oncall", "engineer")
    # An earlier collector left a notification in its local outbox file.
    old = case_event(case_id=cases[0], customer="acme")
    old_id = notification_id(old, "webhook", "ops")
    legacy = legacy_outbox(
        tmp_path / "a" / "notify",
        [(old_id, "acme", "webhook", "ops", old.case_id, old.model_dump_json(), time.time(), 0, 0.0, None)],
    )
    hook = Receiver()
    procs: list[Proc] = []
    try:
        # 1. Collector A alone: its first delivery hangs at the receiver, and A is killed there.
        hook.hang.set()
        a, a_url = _serve(tmp_path, "a", pg_url, hook.port)
        procs.append(a)
        for case in cases[:3]:
            _case(a_url, token, "ack", case)
        assert hook.hung.wait(30), a.output()
        a.kill9()
        (in_flight,) = hook.ids()
        assert not legacy.exists() and legacy.with_name(LEGACY_OUTBOX_FILE + ".imported").exists()

        # 2. Collector B takes over; A comes back; both serve the API and deliver at once.
        b, b_url = _serve(tmp_path, "b", pg_url, hook.port)
        procs.append(b)
        a2, a2_url = _serve(tmp_path, "a", pg_url, hook.port, run=2)
        procs.append(a2)
        for n, case in enumerate(cases):
            server = (a2_url, b_url)[n % 2]
            if n >= 3:
                _case(server, token, "ack", case)
            _case(server, token, "resolve", case, "--note", "fixed")

        expected = {(old.case_id, "case.opened")}
        expected |= {(c, "case.acknowledged") for c in cases} | {(c, "case.resolved") for c in cases}
        outbox = OutboxRepo(store)

        def all_delivered() -> bool:
            return hook.events() == expected and outbox.count() == 0

        assert wait_for(all_delivered, 60, interval=0.2), (hook.events() ^ expected, b.output(), a2.output())
        ids = hook.ids()
        assert len(ids) == len(expected) == 13  # one notification id per event
        assert old_id in ids  # the imported entry, sent with the id it always had
        # None twice, except the one whose sender was killed mid-delivery: sent again, same id.
        assert {i for i, n in ids.items() if n > 1} == {in_flight}
        assert ids[in_flight] == 2
        assert hook.bad_signatures == 0
        for proc in procs:
            assert SECRET not in proc.output()
    finally:
        for proc in procs:
            proc.kill9()
        hook.close()
        store.close()
