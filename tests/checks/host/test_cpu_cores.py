from __future__ import annotations

from typing import Any

import pytest

from checks.api import Metric, Result, Severity
from checks.host.cpu_cores import CoresSection, CpuCoresParams, collect_cpu_cores, evaluate_cpu_cores
from tests.conftest import fixture_probe


def times(busy_ticks, idle_ticks):
    """A cpu line whose busy part is all user time."""
    return (busy_ticks, 0, 0, idle_ticks, 0, 0, 0, 0)


def run(store, *cores_busy_idle):
    section = CoresSection({f"cpu{i}": times(b, i_) for i, (b, i_) in enumerate(cores_busy_idle)})
    return list(evaluate_cpu_cores(CpuCoresParams(), section, store))


def test_collect_real_cores():
    section = collect_cpu_cores(fixture_probe("host-real"), CpuCoresParams())
    assert list(section.cores) == ["cpu0", "cpu1"]


def test_collect_garbled_names_file():
    with pytest.raises(ValueError, match="/proc/stat"):
        collect_cpu_cores(fixture_probe("host-garbled"), CpuCoresParams())


def test_first_run_is_baseline_only():
    out = run({}, (0, 0), (0, 0))
    assert out == [Result(Severity.OK, "OK", "2 cores: first sample stored, utilisation from the next run")]


def test_saturation_needs_two_consecutive_runs():
    store: dict[str, Any] = {}
    run(store, (0, 0), (0, 0))
    # run 2: cpu0 99 % busy, cpu1 10 %: saturated once, not yet reported
    out = run(store, (99, 1), (10, 90))
    assert [r for r in out if isinstance(r, Result)] == [
        Result(Severity.OK, "OK", "2 cores, busiest cpu0 at 99.0%, spread 89.0%")
    ]
    assert store["streaks"] == {"cpu0": 1}
    # run 3: still pinned: WARN with the core as item
    out = run(store, (198, 2), (20, 180))
    warn = [r for r in out if isinstance(r, Result) and r.severity is Severity.WARN]
    assert [(r.key, r.item) for r in warn] == [("CPU_CORE_SATURATED", "cpu0")]
    assert "99.0% busy for 2 runs in a row" in warn[0].summary
    metrics = {(m.name, m.label_dict.get("core")): m.value for m in out if isinstance(m, Metric)}
    assert metrics == {
        ("host_cpu_core_busy_percent", "cpu0"): pytest.approx(99.0),
        ("host_cpu_core_busy_percent", "cpu1"): pytest.approx(10.0),
        ("host_cpu_core_busy_max_percent", None): pytest.approx(99.0),
        ("host_cpu_core_busy_spread_percent", None): pytest.approx(89.0),
    }
    # run 4: the core recovers: the streak ends
    out = run(store, (208, 92), (30, 270))
    assert all(r.severity is Severity.OK for r in out if isinstance(r, Result))
    assert store["streaks"] == {}


def test_offlined_core_drops_out():
    store: dict[str, Any] = {}
    run(store, (0, 0), (0, 0))
    run(store, (100, 0), (100, 0))
    out = run(store, (200, 0))  # cpu1 went offline
    assert [(r.key, r.item) for r in out if isinstance(r, Result)] == [
        ("OK", None),
        ("CPU_CORE_SATURATED", "cpu0"),
    ]
    assert set(store["cores"]) == {"cpu0"}


def test_cores_sorted_numerically():
    store: dict[str, Any] = {}
    section = CoresSection({f"cpu{i}": times(0, 0) for i in (10, 2, 1)})
    list(evaluate_cpu_cores(CpuCoresParams(), section, store))
    section = CoresSection({f"cpu{i}": times(i, 100) for i in (10, 2, 1)})
    out = list(evaluate_cpu_cores(CpuCoresParams(), section, store))
    cores = [
        m.label_dict["core"] for m in out if isinstance(m, Metric) and m.name == "host_cpu_core_busy_percent"
    ]
    assert cores == ["cpu1", "cpu2", "cpu10"]
