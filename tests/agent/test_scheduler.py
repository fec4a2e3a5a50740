from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from agent.config import load_text
from agent.records import CheckRecord
from agent.runner import AgentProbe
from agent.scheduler import CheckSchedule, Scheduler, start_offset
from agent.sink import MemorySink
from agent.spool import KIND_HEALTH, KIND_INVENTORY, KIND_RESULT, Spool, decode_json, decode_record
from agent.state import StateStore
from tests.agent import fakes
from tests.agent.conftest import REPO, agent_cmd, agent_env


def make_scheduler(text: str, sink: Any, **kwargs: Any) -> Scheduler:
    loaded = load_text(text, "test.yaml", registry=fakes.ALL)
    agent = loaded.config.agent
    options: dict[str, Any] = {
        "probe": AgentProbe(),
        "state": StateStore(None),
        "sink": sink,
        "agent_id": agent.id,
        "base_interval_s": agent.interval_s,
        "jitter_s": agent.effective_jitter_s,
        "max_workers": agent.max_workers,
    }
    options.update(kwargs)
    return Scheduler(loaded.plans, **options)


def run_for(scheduler: Scheduler, seconds: float) -> float:
    timer = threading.Timer(seconds, scheduler.request_stop)
    timer.start()
    started = time.monotonic()
    try:
        scheduler.run()
    finally:
        timer.cancel()
    return time.monotonic() - started


def test_offsets_are_deterministic_spread_and_bounded():
    offsets = [start_offset(f"agent-{i}", "host.load", 6.0) for i in range(200)]
    assert offsets == [start_offset(f"agent-{i}", "host.load", 6.0) for i in range(200)]
    assert all(0 <= o < 6.0 for o in offsets)
    assert min(offsets) < 1.0 and max(offsets) > 5.0  # a fleet covers the window
    assert start_offset("a", "host.load", 0) == 0


def test_slots_are_anchored_so_late_wakeups_do_not_drift():
    plan = load_text("", registry=fakes.ALL).plans[0]  # interval 60
    sched = CheckSchedule(plan, anchor=100.0, next_due=100.0)
    sched.advance(100.7)  # woke 0.7 s late
    assert sched.next_due == 160.0
    sched.advance(160.0)
    assert sched.next_due == 220.0
    sched.advance(400.5)  # the loop was stalled: skip missed slots, stay on the grid
    assert sched.next_due == 460.0


def test_intervals_are_honoured_and_a_hung_check_does_not_stop_the_others():
    sink = MemorySink()
    scheduler = make_scheduler(
        "agent: {id: t1, interval_s: 0.2, jitter_s: 0.02, max_workers: 2}\n"
        "checks: {network.test_hang: {timeout_s: 0.3}}\n",
        sink,
    )
    elapsed = run_for(scheduler, 2.1)
    assert elapsed < 2.1 + 1.0
    counts = Counter(r.check for r in sink.records)
    # 0.2 s interval over ~2.1 s: about 10-11 runs each; allow scheduling noise on a busy machine
    for name in ("host.test_metrics", "storage.test_raise", "platform.test_permission"):
        assert 8 <= counts[name] <= 12, (name, counts[name])
    # the hung check: one timeout, then never restarted while its thread is stuck
    hang = [r for r in sink.records if r.check == "network.test_hang"]
    assert [(r.severity, r.key) for r in hang] == [("UNKNOWN", "CHECK_TIMEOUT")]
    stats = scheduler.schedules["network.test_hang"]
    assert stats.missed >= 7 and stats.timeouts == 1
    assert scheduler.pool.abandoned_total == 1
    # skips produce no record but are counted
    assert counts["application.test_skip"] == 0
    assert scheduler.schedules["application.test_skip"].skips >= 8
    # metrics check's store persisted across runs
    runs = [r for r in sink.records if r.check == "host.test_metrics"]
    assert runs[-1].summary == f"run {len(runs)}"
    # records are batched, not written one by one
    assert sink.batches < len(sink.records) / 2


class CountingProbe(AgentProbe):
    """Counts cycles (memoised-data resets)."""

    cycles = 0

    def new_cycle(self) -> None:
        self.cycles += 1
        super().new_cycle()


def test_checks_of_one_cycle_share_one_snapshot():
    probe = CountingProbe()
    scheduler = make_scheduler("agent: {id: t6, interval_s: 0.5, jitter_s: 0.2}\n", MemorySink(), probe=probe)
    run_for(scheduler, 2.2)
    cycles = scheduler.schedules["host.test_metrics"].runs
    # five checks started in up to three waves per cycle, but one snapshot per cycle
    assert cycles >= 4 and cycles <= probe.cycles <= cycles + 1  # +1: a stall on a busy machine


def test_a_check_returning_after_abandonment_is_scheduled_again():
    sink = MemorySink()
    scheduler = make_scheduler(
        "agent: {id: t2, interval_s: 0.2, jitter_s: 0}\nchecks:\n  network.test_hang: {timeout_s: 0.2}\n",
        sink,
    )
    threading.Timer(0.7, fakes.RELEASE.set).start()  # the hung thread returns after ~0.7 s
    run_for(scheduler, 1.6)
    hang = [r for r in sink.records if r.check == "network.test_hang"]
    assert hang[0].key == "CHECK_TIMEOUT"
    assert "OK" in [r.key for r in hang[1:]], "runs again once its thread returned"


def test_once_runs_every_enabled_check_once_and_writes_health():
    sink = MemorySink()
    scheduler = make_scheduler("agent: {id: t3, interval_s: 60}\n", sink, inventory=lambda: {"os": "test"})
    started = time.monotonic()
    scheduler.run(once=True)
    assert time.monotonic() - started < fakes.HANG.timeout_s + 1.0
    assert sorted(r.check for r in sink.records) == sorted(
        [
            "host.test_metrics",
            "network.test_hang",
            "storage.test_raise",
            "platform.test_permission",
            "application.test_undeclared",
        ]
    )
    assert sink.inventory == [{"os": "test"}]
    (health,) = sink.health
    assert health["agent_id"] == "t3"
    assert health["rss_bytes"] > 1_000_000 and health["cpu_seconds_total"] > 0
    assert health["spool_depth"] == 0 and health["dropped_total"] == 0  # as it was before this write
    assert health["check_duration_ms"]["host.test_metrics"] >= 0
    assert health["check_cpu_ms"]["host.test_metrics"] >= 0
    assert health["check_problems"]["network.test_hang"] == {"timeouts": 1, "errors": 0, "missed": 0}
    assert health["check_problems"]["storage.test_raise"] == {"timeouts": 0, "errors": 1, "missed": 0}
    assert "host.test_metrics" not in health["check_problems"]
    assert health["abandoned_total"] == 1 and health["abandoned_threads"] == 1
    assert health["cycle_cpu_seconds"] > 0 and health["runs_total"] == 6


class FlakySink(MemorySink):
    """Fails its first write, as a full disk would."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0

    def write(
        self,
        records: Sequence[CheckRecord],
        health: Mapping[str, Any] | None = None,
        payloads: Sequence[bytes | None] | None = None,
    ) -> None:
        if self.failures == 0 and records:
            self.failures += 1
            raise OSError(28, "No space left on device")
        super().write(records, health, payloads)


def test_a_failing_sink_keeps_records_and_retries():
    sink = FlakySink()
    # 2 s interval: the first wave's write fails, the second wave's write carries both
    scheduler = make_scheduler("agent: {id: t4, interval_s: 2, jitter_s: 0}\n", sink)
    run_for(scheduler, 2.6)
    assert sink.failures == 1
    runs = [r.summary for r in sink.records if r.check == "host.test_metrics"]
    assert runs == ["run 1", "run 2"], "the batch that failed was written later"
    assert sink.batches == 1


def test_state_is_saved_at_shutdown(tmp_path):
    scheduler = make_scheduler("agent: {id: t5, interval_s: 60}\n", MemorySink(), state=StateStore(tmp_path))
    scheduler.run(once=True)
    assert '"host.test_metrics":{"runs":1}' in (tmp_path / "state.json").read_text()


def _wait_for(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.integration
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_a_real_daemon_cleanly(tmp_path, signum):
    config = tmp_path / "agent.yaml"
    config.write_text("agent: {id: sig-test}\n")
    proc = subprocess.Popen(
        agent_cmd("run", "--config", str(config), "--state-dir", str(tmp_path / "state"), "--interval", "1"),
        cwd=REPO,
        env=agent_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    spool_path = tmp_path / "state" / "spool.db"
    try:
        # wait until the first cycle is spooled (results and a health entry)
        assert _wait_for(lambda: spool_path.exists() and _kinds(spool_path).get(KIND_HEALTH, 0) >= 1, 20)
        sent = time.monotonic()
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=15)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    assert took < 6.0, f"took {took:.1f} s to stop"
    assert "stopped" in stderr and "Traceback" not in stderr
    kinds = _kinds(spool_path)
    assert kinds[KIND_RESULT] >= 10 and kinds[KIND_HEALTH] >= 2 and kinds[KIND_INVENTORY] == 1
    with Spool(spool_path) as spool:
        entries = spool.read_from(0, 100_000)
        records = [decode_record(e.payload) for e in entries if e.kind == KIND_RESULT]
        assert {r.layer for r in records} >= {"host"}
        health = [decode_json(e.payload) for e in entries if e.kind == KIND_HEALTH]
        assert health[-1]["agent_id"] == "sig-test"
        assert spool.stats().high_water == len(entries)
    assert (tmp_path / "state" / "state.json").exists()
    assert os.stat(tmp_path / "state").st_mode & 0o077 == 0


def _kinds(path: Any) -> dict[str, int]:
    import sqlite3

    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return dict(db.execute("SELECT kind, COUNT(*) FROM entries GROUP BY kind").fetchall())
        finally:
            db.close()
    except sqlite3.Error:
        return {}  # not created yet


def test_each_cycle_shares_the_agents_status_with_checks():
    # application.agent reads probe.agent_status: the scheduler must fill it every cycle.
    probe = AgentProbe()
    scheduler = make_scheduler("agent: {id: t9, interval_s: 1, jitter_s: 0}\n", MemorySink(), probe=probe)
    run_for(scheduler, 2.5)
    status = probe.agent_status
    assert status["abandoned_threads"] >= 1  # fakes' hang check never returns
    assert isinstance(status["spool_depth"], int) and status["dropped_total"] == 0
    assert status["last_cycle_cpu_ms"] >= 0 and status["last_cycle_s"] > 0
