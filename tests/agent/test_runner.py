from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest

from agent.config import CheckPlan, load_text
from agent.runner import AgentProbe, OutcomeKind, WorkerPool, execute_check, run_all, scrub
from agent.state import StateStore
from checks.api import Check, CheckParams, Layer, Metric, MetricSpec, Result, Severity, Unit, ValueStore
from checks.probe import CommandTimeout, Probe
from tests.agent import fakes


def plans(*names: str, text: str = "") -> list[CheckPlan]:
    loaded = load_text(text, "test.yaml", registry=fakes.ALL)
    by_name = {p.name: p for p in loaded.plans}
    return [by_name[n] for n in names] if names else list(loaded.enabled_plans)


def one(name: str, probe: Probe | None = None):
    (plan,) = plans(name)
    return execute_check(plan, probe or AgentProbe(), {}, ("s3cr3t-token",))


def test_run_all_isolates_a_hung_check_while_the_others_complete():
    started = time.monotonic()
    report = run_all(plans(), AgentProbe(), StateStore(None), max_workers=2)
    elapsed = time.monotonic() - started
    assert elapsed < fakes.HANG.timeout_s + 0.5
    by_check = {r.check: (r.severity, r.key) for r in report.records}
    assert by_check == {
        "host.test_metrics": ("OK", "OK"),
        "network.test_hang": ("UNKNOWN", "CHECK_TIMEOUT"),
        "storage.test_raise": ("UNKNOWN", "CHECK_ERROR"),
        "platform.test_permission": ("UNKNOWN", "CHECK_PERMISSION"),
        "application.test_undeclared": ("UNKNOWN", "CHECK_ERROR"),
    }
    # layer, then name order; the skip is reported apart
    assert [r.check for r in report.records] == list(by_check)
    assert [(s.check, s.reason) for s in report.skips] == [("application.test_skip", "nothing configured")]
    assert report.abandoned == ("network.test_hang",)
    hang = next(r for r in report.records if r.check == "network.test_hang")
    assert fakes.HANG.timeout_s * 1000 <= hang.duration_ms < (fakes.HANG.timeout_s + 0.5) * 1000


def test_hung_checks_do_not_starve_a_single_worker():
    # Two hung checks with one worker: each is abandoned and replaced, so the third still runs.
    hang2 = Check(
        name="network.test_hang_two",
        layer=Layer.NETWORK,
        summary="hangs too",
        collect=fakes.HANG.collect,
        evaluate=fakes.HANG.evaluate,
        params=fakes.NoParams,
        timeout_s=0.2,
    )
    registry = {**fakes.ALL, hang2.name: hang2}
    loaded = load_text("", registry=registry)
    chosen = [
        p
        for p in loaded.plans
        if p.name in ("network.test_hang", "network.test_hang_two", "host.test_metrics")
    ]
    chosen.sort(key=lambda p: p.name, reverse=True)  # the hung ones first in the queue
    started = time.monotonic()
    report = run_all(chosen, AgentProbe(), StateStore(None), max_workers=1)
    assert time.monotonic() - started < 0.3 + 0.2 + 1.0
    assert {r.check: r.key for r in report.records}["host.test_metrics"] == "OK"
    assert sorted(report.abandoned) == ["network.test_hang", "network.test_hang_two"]


def test_error_is_short_secret_free_and_without_traceback():
    outcome = one("storage.test_raise")
    assert outcome.kind is OutcomeKind.ERROR
    assert outcome.record is not None
    assert outcome.record.summary == "RuntimeError: backend said no: password=<redacted>"
    assert outcome.store is None  # a failed run does not commit state


def test_long_error_messages_are_truncated_and_known_secrets_scrubbed():
    def boom(probe: Probe, params: CheckParams) -> None:
        raise ValueError("token s3cr3t-token rejected " + "x" * 500)

    check = Check("host.test_boom", Layer.HOST, "boom", boom, fakes._evaluate_ok, fakes.NoParams)
    plan = CheckPlan(check, fakes.NoParams(), True, 60, 5)
    outcome = execute_check(plan, AgentProbe(), {}, ("s3cr3t-token",))
    assert outcome.record is not None
    summary = outcome.record.summary
    assert "s3cr3t" not in summary
    assert len(summary) <= 200 and summary.endswith("...")


def test_permission_error_names_the_path():
    outcome = one("platform.test_permission")
    assert outcome.kind is OutcomeKind.PERMISSION
    assert outcome.record is not None
    assert outcome.record.key == "CHECK_PERMISSION"
    assert outcome.record.summary.startswith("Permission denied: /proc/1/fd")


def test_skip_gives_no_record_and_keeps_the_reason():
    outcome = one("application.test_skip")
    assert outcome.record is None
    assert outcome.skip is not None and outcome.skip.reason == "nothing configured"
    assert outcome.skip.to_dict()["severity"] == "SKIP"


def test_undeclared_metric_is_catalogue_drift():
    outcome = one("application.test_undeclared")
    assert outcome.record is not None
    assert (outcome.record.severity, outcome.record.key) == ("UNKNOWN", "CHECK_ERROR")
    assert "test_surprise_bytes" in outcome.record.summary
    assert outcome.record.metrics == ()


def _labelled(params: CheckParams, section: None, store: ValueStore) -> Iterator[Result | Metric]:
    yield Metric("test_value_count", 1, Unit.COUNT, {"colour": "red"})


def _not_a_result(params: CheckParams, section: None, store: ValueStore) -> Iterator[object]:
    yield "OK"


@pytest.mark.parametrize(
    ("evaluate", "fragment"),
    [
        pytest.param(_labelled, "label 'colour' is not declared", id="undeclared label"),
        pytest.param(_not_a_result, "yielded str, not a Result or Metric", id="wrong type yielded"),
    ],
)
def test_bad_output_is_check_error(evaluate, fragment):
    check = Check(
        "host.test_bad",
        Layer.HOST,
        "bad",
        fakes._collect_none,
        evaluate,
        fakes.NoParams,
        metrics=(MetricSpec("test_value_count", Unit.COUNT, "value", labels=("kind",)),),
    )
    outcome = execute_check(CheckPlan(check, fakes.NoParams(), True, 60, 5), AgentProbe(), {})
    assert outcome.record is not None
    assert outcome.record.key == "CHECK_ERROR"
    assert fragment in outcome.record.summary


def test_command_timeout_is_check_timeout():
    def slow(probe: Probe, params: CheckParams) -> None:
        raise CommandTimeout(["/usr/lib/nagios/plugins/check_x"], 2)

    check = Check(
        "application.test_slow", Layer.APPLICATION, "slow", slow, fakes._evaluate_ok, fakes.NoParams
    )
    outcome = execute_check(CheckPlan(check, fakes.NoParams(), True, 60, 5), AgentProbe(), {})
    assert outcome.record is not None
    assert outcome.record.key == "CHECK_TIMEOUT"
    assert "check_x did not finish within 2 s" in outcome.record.summary


def test_metrics_and_store_persist_between_runs(tmp_path):
    state = StateStore(tmp_path)
    (plan,) = plans("host.test_metrics", text="checks: {host.test_metrics: {params: {value: 7}}}")
    first = run_all([plan], AgentProbe(), state)
    second = run_all([plan], AgentProbe(), state)
    assert [m.to_dict() for m in second.records[0].metrics] == [
        {"name": "test_value_count", "value": 7.0, "unit": "count", "labels": {"kind": "a"}},
        {"name": "test_runs_count", "value": 2.0, "unit": "count", "labels": {}},
    ]
    assert first.records[0].summary == "run 1"
    state.save()
    assert json.loads((tmp_path / "state.json").read_text())["checks"]["host.test_metrics"] == {"runs": 2}
    third = run_all([plan], AgentProbe(), StateStore(tmp_path))
    assert third.records[0].summary == "run 3"


def test_state_store_survives_a_corrupt_file(tmp_path):
    (tmp_path / "state.json").write_text("{not json")
    state = StateStore(tmp_path)
    assert state.checkout("x") == {}
    assert (tmp_path / "state.json.corrupt").exists()


def test_state_store_refuses_unserialisable_values_and_keeps_the_old():
    state = StateStore(None)
    assert state.commit("c", {"n": 1})
    assert not state.commit("c", {"n": object()})
    assert state.checkout("c") == {"n": 1}


def test_state_checkout_is_a_private_copy():
    state = StateStore(None)
    state.commit("c", {"nested": {"a": 1}})
    copy = state.checkout("c")
    copy["nested"]["a"] = 2
    assert state.checkout("c") == {"nested": {"a": 1}}


def test_pool_refuses_a_second_run_until_the_abandoned_thread_returns():
    release = threading.Event()
    pool: WorkerPool[str] = WorkerPool(1)

    def stuck() -> str:
        release.wait(10)
        return "late"

    pool.submit("c", stuck, 0.05)
    time.sleep(0.1)
    (expired,) = pool.expire()
    assert expired.name == "c" and pool.abandoned_total == 1
    assert pool.busy("c")
    with pytest.raises(RuntimeError, match="still running"):
        pool.submit("c", stuck, 0.05)
    # the replacement worker keeps the pool's capacity
    task = pool.submit("d", lambda: "ok", 1.0)
    assert pool.completions.get(timeout=2) is task and task.result == "ok"
    release.set()
    returned = pool.completions.get(timeout=2)
    assert returned.name == "c" and returned.result is None  # a late result is discarded
    assert not pool.busy("c")
    assert pool.shutdown(1.0) == []


def test_memo_computes_once_across_threads():
    probe = AgentProbe()
    calls = []

    def compute() -> int:
        calls.append(1)
        time.sleep(0.05)
        return 42

    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(probe.memo("k", compute))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert results == [42] * 4 and len(calls) == 1
    probe.new_cycle()
    assert probe.memo("k", compute) == 42 and len(calls) == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("Authorization: Bearer abc.def", "Authorization: Bearer <redacted>", id="header"),
        pytest.param("sent bearer eyJhbGciOiJIUzI1NiJ9.x", "sent bearer <redacted>", id="bare bearer"),
        pytest.param(
            "login to https://u:pw@h/x failed", "login to https://u:<redacted>@h/x failed", id="url"
        ),
        pytest.param("api_key=XYZ done", "api_key=<redacted> done", id="api key"),
        pytest.param("plain message", "plain message", id="untouched"),
    ],
)
def test_scrub(text, expected):
    assert scrub(text, ()) == expected


def test_result_records_carry_severity_of_the_worst_result():
    outcome = execute_check(plans("host.test_warn")[0], AgentProbe(), {})
    assert outcome.record is not None
    assert (outcome.record.severity, outcome.record.key) == (Severity.WARN.value, "TEST_WARN")


def test_agent_probe_keeps_kernel_files_open_and_reads_them_afresh():
    probe = AgentProbe()
    first = probe.read_text("/proc/uptime")
    assert "/proc/uptime" in probe._kept
    time.sleep(0.02)
    second = probe.read_text("/proc/uptime")
    assert float(second.split()[0]) > float(first.split()[0])  # generated again, not a cached copy
    probe.read_text("/etc/hostname")  # a regular file may be replaced by rename: never kept
    assert "/etc/hostname" not in probe._kept


def test_agent_probe_drops_a_failing_kept_file_and_reads_it_by_path(monkeypatch):
    import errno
    import os

    probe = AgentProbe()
    probe.read_text("/proc/loadavg")
    kept_fd = probe._kept["/proc/loadavg"]
    real_pread = os.pread
    failed: list[int] = []

    def pread(fd: int, size: int, offset: int) -> bytes:
        if fd == kept_fd and not failed:
            failed.append(fd)
            raise OSError(errno.ENODEV, "No such device")  # what a removed sysfs node answers
        return real_pread(fd, size, offset)

    monkeypatch.setattr("agent.runner.os.pread", pread)
    assert probe.read_text("/proc/loadavg").count(" ") == 4  # read by path instead
    assert failed == [kept_fd]
    assert "/proc/loadavg" in probe._kept  # the fresh descriptor is kept in its place
    assert probe.read_text("/proc/loadavg").count(" ") == 4


def test_agent_probe_errors_are_those_of_a_fresh_read(tmp_path):
    probe = AgentProbe()
    with pytest.raises(FileNotFoundError):
        probe.read_text("/proc/sys/kernel/no_such_sysctl")
    assert "/proc/sys/kernel/no_such_sysctl" not in probe._kept
    rooted = AgentProbe(root=tmp_path)  # a fixture tree: ordinary files, nothing kept
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "loadavg").write_text("0.1 0.2 0.3 1/2 3\n")
    assert rooted.read_text("/proc/loadavg").startswith("0.1")
    assert rooted._kept == {}


def test_agent_probe_closes_its_kept_files_when_dropped():
    import gc
    import os

    probe = AgentProbe()
    probe.read_text("/proc/meminfo")
    fd = probe._kept["/proc/meminfo"]
    del probe
    gc.collect()
    with pytest.raises(OSError):
        os.fstat(fd)
