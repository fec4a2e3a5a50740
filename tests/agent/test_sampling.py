"""The one-shot run samples rate checks twice when it has no previous reading (agent/sampling.py)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from agent.config import CheckPlan, default_config
from agent.runner import AgentProbe, OutcomeKind, RunReport, run_all
from agent.sampling import needs_second_sample, run_sampled
from agent.state import StateStore
from checks.probe import Probe
from tests.agent.conftest import REPO
from tests.agent.test_cli import run_cli

HOST_BUSY = REPO / "tests" / "fixtures" / "hosts" / "host-busy"

# Two readings of /proc/stat's counters, 100 ticks apart: 30 user, 10 system, 60 idle.
STAT_FIRST = "cpu  1000 0 500 8000 0 0 0 0 0 0\ncpu0 1000 0 500 8000 0 0 0 0 0 0\n"
STAT_SECOND = "cpu  1030 0 510 8060 0 0 0 0 0 0\ncpu0 1030 0 510 8060 0 0 0 0 0 0\n"
STAT_TAIL = (
    "intr 1000 0\nctxt 5000\nbtime 1700000000\nprocesses 10\nprocs_running 1\nprocs_blocked {blocked}\n"
)


def _plans(*names: str) -> list[CheckPlan]:
    by_name = {p.name: p for p in default_config().plans}
    return [by_name[n] for n in names]


@pytest.fixture
def host(tmp_path: Path) -> Path:
    root = tmp_path / "host"
    shutil.copytree(HOST_BUSY, root)
    (root / "proc" / "stat").write_text(STAT_FIRST + STAT_TAIL.format(blocked=0))
    return root


class FakeTime:
    """A clock that the fake sleep advances; the sleep also changes the host's counters."""

    def __init__(self, on_sleep: object = None) -> None:
        self.now = 100.0
        self.slept: list[float] = []
        self.on_sleep = on_sleep

    def clock(self) -> float:
        return self.now

    def wall(self) -> float:
        return 1_700_000_000.0 + self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        if callable(self.on_sleep):
            self.on_sleep()


def _second_reading(root: Path) -> None:
    # Between the readings the counters move and a task blocks: only a check that runs
    # again after the sleep can see that.
    (root / "proc" / "stat").write_text(STAT_SECOND + STAT_TAIL.format(blocked=3))
    vmstat = (root / "proc" / "vmstat").read_text()
    (root / "proc" / "vmstat").write_text(vmstat.replace("oom_kill ", "oom_kill 9", 1))


def _metrics(report: RunReport, check: str) -> dict[str, float]:
    (record,) = [r for r in report.records if r.check == check]
    return {(m.name + "".join(f"{{{k}={v}}}" for k, v in m.labels)): m.value for m in record.metrics}


def test_a_first_run_samples_the_rate_checks_twice_and_the_others_once(host: Path) -> None:
    fake = FakeTime(lambda: _second_reading(host))
    probe = Probe(root=host, clock=fake.wall)
    state = StateStore(None)
    plans = _plans("host.cpu", "host.oom_kills")
    report = run_sampled(plans, probe, state, 1, interval_s=1.0, clock=fake.clock, sleep=fake.sleep)
    assert fake.slept == [1.0]
    cpu = _metrics(report, "host.cpu")
    # Utilisation between the two readings: 40 of 100 ticks busy.
    assert cpu["host_cpu_busy_percent"] == pytest.approx(40.0)
    assert cpu["host_cpu_mode_percent{mode=user}"] == pytest.approx(30.0)
    assert cpu["host_cpu_mode_percent{mode=idle}"] == pytest.approx(60.0)
    assert cpu["host_procs_blocked_count"] == 3  # the second reading's
    (oom,) = [r for r in report.records if r.check == "host.oom_kills"]
    assert "Baseline stored" in oom.summary  # an event count keeps its first run's figure
    assert [o.check for o in report.outcomes] == ["host.cpu", "host.oom_kills"]
    assert state.has_reading("host.cpu")


def test_sample_interval_zero_is_a_single_pass(host: Path) -> None:
    fake = FakeTime(lambda: _second_reading(host))
    report = run_sampled(
        _plans("host.cpu"), Probe(root=host, clock=fake.wall), StateStore(None), 1, interval_s=0.0,
        clock=fake.clock, sleep=fake.sleep,
    )  # fmt: skip
    assert fake.slept == []
    (record,) = report.records
    assert "first sample stored" in record.summary
    assert "host_cpu_busy_percent" not in _metrics(report, "host.cpu")


def test_a_previous_reading_means_one_pass(host: Path) -> None:
    state = StateStore(None)
    state.commit("host.cpu", {"cpu": [900, 0, 490, 7900, 0, 0, 0, 0]})
    fake = FakeTime()
    report = run_sampled(
        _plans("host.cpu"), Probe(root=host, clock=fake.wall), state, 1, interval_s=1.0,
        clock=fake.clock, sleep=fake.sleep,
    )  # fmt: skip
    assert fake.slept == []
    assert _metrics(report, "host.cpu")["host_cpu_busy_percent"] == pytest.approx(
        100.0 * (100 + 10) / (100 + 10 + 100)
    )


def test_a_rate_check_that_failed_is_not_sampled_again(host: Path) -> None:
    (host / "proc" / "stat").write_text("garbage\n")
    fake = FakeTime()
    report = run_sampled(
        _plans("host.cpu", "host.memory"), Probe(root=host, clock=fake.wall), StateStore(None), 1,
        interval_s=1.0, clock=fake.clock, sleep=fake.sleep,
    )  # fmt: skip
    assert fake.slept == []
    assert {r.check: r.key for r in report.records}["host.cpu"] == "CHECK_ERROR"


def test_the_wait_counts_from_the_first_pass_start(host: Path) -> None:
    fake = FakeTime()

    class SlowProbe(Probe):
        def read_bytes(self, absolute: str, limit: int = 1 << 20) -> bytes:
            fake.now += 0.3  # the first pass takes 0.3 s of the interval
            return super().read_bytes(absolute, limit)

    run_sampled(
        _plans("host.cpu"), SlowProbe(root=host, clock=fake.wall), StateStore(None), 1, interval_s=1.0,
        clock=fake.clock, sleep=fake.sleep,
    )  # fmt: skip
    assert fake.slept == [pytest.approx(0.7)]


def test_only_rate_checks_are_sampled_twice() -> None:
    plans = default_config().plans
    chosen = {p.name for p in needs_second_sample(plans, StateStore(None))}
    assert {"host.cpu", "storage.disk_io", "network.interfaces", "network.tcp_retransmits"} <= chosen
    assert not chosen & {"host.oom_kills", "host.kernel_events", "host.load", "network.conntrack"}


# --- the real command on this host ----------------------------------------------------------

RATES = {
    "host.cpu": "host_cpu_busy_percent",
    "host.cpu_cores": "host_cpu_core_busy_percent",
    "network.interfaces": "net_rx_bytes_per_second",
    "network.tcp_retransmits": "net_tcp_retransmits_per_second",
    "network.udp": "net_udp_in_datagrams_per_second",
    "storage.disk_io": "storage_disk_utilization_percent",
}


def _names(items: list[dict[str, object]]) -> dict[str, set[str]]:
    return {str(i["check"]): {str(m["name"]) for m in i["metrics"]} for i in items}  # type: ignore[attr-defined]


@pytest.mark.integration
def test_checks_with_a_fresh_state_dir_reports_rates(tmp_path: Path) -> None:
    args = ["checks", "--format", "json", "--show-skipped", "--state-dir", str(tmp_path)]
    for check in RATES:
        args += ["--check", check]
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    items = json.loads(proc.stdout)
    names = _names(items)
    skipped = {i["check"] for i in items if i.get("skipped")}
    for check, metric in RATES.items():
        if check in skipped:
            continue  # nothing to measure here (no block device, say): the reason is in the item
        assert metric in names[check], f"{check} has no {metric} on a first run"
    assert {"host.cpu", "network.tcp_retransmits", "network.interfaces"} <= set(names) - skipped
    saved = json.loads((tmp_path / "state.json").read_text())
    assert "host.cpu" in saved["checks"]


@pytest.mark.integration
def test_checks_with_sample_interval_zero_behaves_as_before(tmp_path: Path) -> None:
    proc = run_cli("checks", "--format", "json", "--sample-interval", "0", "--check", "host.cpu")
    assert proc.returncode == 0, proc.stderr
    (item,) = json.loads(proc.stdout)
    assert "first sample stored" in item["summary"]
    assert "host_cpu_busy_percent" not in {m["name"] for m in item["metrics"]}


@pytest.mark.integration
def test_the_default_run_shows_rates_of_every_layer_with_them() -> None:
    proc = run_cli("checks", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    names = _names(json.loads(proc.stdout))
    assert "host_cpu_busy_percent" in names["host.cpu"]
    assert "net_tcp_retransmits_per_second" in names["network.tcp_retransmits"]


@pytest.mark.parametrize("value", ["-1", "61", "soon"])
def test_a_bad_sample_interval_exits_2(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    from agent.cli import main

    assert main(["checks", "--sample-interval", value]) == 2
    assert "--sample-interval" in capsys.readouterr().err


@pytest.mark.integration
def test_rate_declarations_match_what_the_checks_do_on_this_host() -> None:
    """``Check.rates`` is set exactly on the checks whose second reading adds rates.

    Event counts "since the last run" (``*_count``: OOM kills, kernel events, drops)
    appear on a second run too, but they are not rates and are sampled once.
    """
    plans = [p for p in default_config().plans if p.enabled]
    probe, state = AgentProbe(), StateStore(None)
    first = {o.check: o for o in run_all(plans, probe, state).outcomes}
    time.sleep(0.3)
    second = {o.check: o for o in run_all(plans, probe, state).outcomes}
    for plan in plans:
        a, b = first[plan.name].record, second[plan.name].record
        if a is None or b is None or first[plan.name].kind is not OutcomeKind.OK:
            continue  # skipped or failed here: nothing to compare
        gained = {m.name for m in b.metrics} - {m.name for m in a.metrics}
        rates = {name for name in gained if not name.endswith("_count")}
        if plan.check.rates:
            assert rates, f"{plan.name} declares rates but its second run adds none"
        else:
            assert not rates, f"{plan.name} adds {sorted(rates)} on its second run: declare rates=True"
