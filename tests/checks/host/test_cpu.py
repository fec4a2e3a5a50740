from __future__ import annotations

from typing import Any

import pytest

from checks.api import Metric, Result, Severity, Unit
from checks.host._common import ProcStat
from checks.host.cpu import CpuParams, CpuSection, collect_cpu, evaluate_cpu
from checks.host.cpu_cores import CpuCoresParams, collect_cpu_cores
from checks.probe import Probe
from tests.conftest import fixture_probe


def only_results(out: list[Result | Metric]) -> list[Result]:
    return [r for r in out if isinstance(r, Result)]


def stat(total, ctxt=1000, intr=500, blocked=0):
    return ProcStat(
        total=tuple(total), cores={}, ctxt=ctxt, intr=intr, btime=1, procs_running=1, procs_blocked=blocked
    )


def results(out):
    return [(r.severity, r.key) for r in out if isinstance(r, Result)]


def metric(out, name, **labels):
    found = [m.value for m in out if isinstance(m, Metric) and m.name == name and m.label_dict == labels]
    return found[0] if found else None


def test_collect_real_proc_stat():
    section = collect_cpu(fixture_probe("host-real", now=5.0), CpuParams())
    assert section.now == 5.0
    assert section.stat.total == (10130, 0, 5684, 164654, 462, 0, 126, 13)


def test_collect_garbled_names_file():
    with pytest.raises(ValueError, match="/proc/stat"):
        collect_cpu(fixture_probe("host-garbled"), CpuParams())


def test_collect_missing_file_propagates(tmp_path):
    with pytest.raises(FileNotFoundError):
        collect_cpu(Probe(root=tmp_path), CpuParams())


def test_cpu_and_cpu_cores_share_one_read():
    probe = fixture_probe("host-busy")
    collect_cpu(probe, CpuParams())
    cached = probe.cache["host.proc_stat"]
    assert collect_cpu_cores(probe, CpuCoresParams()).cores is cached.cores


def test_first_run_has_no_utilisation_but_judges_blocked_tasks():
    store: dict[str, Any] = {}
    out = list(evaluate_cpu(CpuParams(), CpuSection(100.0, stat((0,) * 8, blocked=9)), store))
    assert [r for r in out if isinstance(r, Result)] == [
        Result(Severity.OK, "OK", "CPU: first sample stored, utilisation from the next run"),
        Result(Severity.WARN, "CPU_BLOCKED_TASKS", "Tasks blocked on I/O: 9 (warn/crit at 8/32)"),
    ]
    assert metric(out, "host_cpu_busy_percent") is None
    assert metric(out, "host_context_switches_per_second") is None
    assert store["cpu"] == [0] * 8


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        pytest.param(
            (30, 0, 10, 55, 3, 0, 1, 1),
            [(Severity.OK, "OK"), (Severity.OK, "OK"), (Severity.OK, "OK"), (Severity.OK, "OK")],
            id="normal",
        ),
        pytest.param(
            (70, 5, 20, 2, 1, 1, 1, 0),
            [(Severity.CRIT, "CPU_BUSY"), (Severity.OK, "OK"), (Severity.OK, "OK"), (Severity.OK, "OK")],
            id="busy 98 percent",
        ),
        pytest.param(
            (10, 0, 5, 40, 45, 0, 0, 0),
            [
                (Severity.OK, "OK"),
                (Severity.CRIT, "CPU_IOWAIT_HIGH"),
                (Severity.OK, "OK"),
                (Severity.OK, "OK"),
            ],
            id="iowait 45 percent",
        ),
        pytest.param(
            (40, 0, 10, 35, 0, 0, 0, 15),
            [
                (Severity.OK, "OK"),
                (Severity.OK, "OK"),
                (Severity.WARN, "CPU_STEAL_HIGH"),
                (Severity.OK, "OK"),
            ],
            id="steal 15 percent",
        ),
    ],
)
def test_second_run_judges_utilisation(delta, expected):
    store: dict[str, Any] = {}
    list(evaluate_cpu(CpuParams(), CpuSection(100.0, stat((1000,) * 8)), store))
    new = tuple(1000 + d for d in delta)
    out = list(evaluate_cpu(CpuParams(), CpuSection(160.0, stat(new, ctxt=7000, intr=3500)), store))
    assert results(out) == expected
    assert metric(out, "host_cpu_busy_percent") == pytest.approx(100 - delta[3] - delta[4])
    assert metric(out, "host_cpu_mode_percent", mode="irq") == pytest.approx(delta[5] + delta[6])
    assert metric(out, "host_context_switches_per_second") == pytest.approx(100.0)
    assert metric(out, "host_interrupts_per_second") == pytest.approx(50.0)


def test_busy_result_carries_breakdown():
    store: dict[str, Any] = {"cpu": [0] * 8}
    out = list(evaluate_cpu(CpuParams(), CpuSection(1.0, stat((50, 0, 20, 20, 5, 2, 1, 2))), store))
    busy = only_results(out)[0]
    assert busy.summary == "CPU busy: 75.0%"
    assert busy.details == (
        "user 50.0%, nice 0.0%, system 20.0%, iowait 5.0%, irq 3.0%, steal 2.0%, idle 20.0%"
    )


def test_counter_reset_starts_over():
    store: dict[str, Any] = {"cpu": [5000] * 8, "ctxt": [50.0, 10**9], "intr": [50.0, 10**9]}
    out = list(evaluate_cpu(CpuParams(), CpuSection(100.0, stat((10,) * 8)), store))
    assert results(out)[0] == (Severity.OK, "OK")
    assert "first sample" in only_results(out)[0].summary
    assert metric(out, "host_context_switches_per_second") is None
    assert store["cpu"] == [10] * 8


def test_two_collects_on_a_changing_tree(tmp_path):
    (tmp_path / "proc").mkdir()
    path = tmp_path / "proc" / "stat"
    template = (
        "cpu  {u} 0 100 {i} 0 0 0 0 0 0\nintr 100\nctxt {c}\nbtime 1\nprocs_running 1\nprocs_blocked 0\n"
    )
    store: dict[str, Any] = {}
    path.write_text(template.format(u=100, i=800, c=1000))
    section = collect_cpu(Probe(root=tmp_path, clock=lambda: 0.0), CpuParams())
    list(evaluate_cpu(CpuParams(), section, store))
    path.write_text(template.format(u=190, i=810, c=4000))
    section = collect_cpu(Probe(root=tmp_path, clock=lambda: 30.0), CpuParams())
    out = list(evaluate_cpu(CpuParams(), section, store))
    assert results(out)[0] == (Severity.WARN, "CPU_BUSY")  # 90 % busy: between 85 and 95
    assert metric(out, "host_cpu_mode_percent", mode="user") == pytest.approx(90.0)
    assert Metric("host_context_switches_per_second", 100.0, Unit.PER_SECOND) in out
