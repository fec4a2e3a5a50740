from __future__ import annotations

from typing import Any

import pytest

from checks.api import Metric, Result, Severity, Unit
from checks.host.top_consumers import (
    TopConsumersParams,
    TopSection,
    collect_top_consumers,
    evaluate_top_consumers,
)
from checks.proctable import ProcessInfo
from tests.conftest import fixture_probe

GiB = 1024**3


def proc(pid, name, ticks, rss=0, start=100):
    return ProcessInfo(pid, name, "S", 1, ticks, 0, 1, start, rss)


def section(now, *procs, cores=4, mem=16 * GiB):
    return TopSection(now=now, cores=cores, mem_total_bytes=mem, clock_ticks=100, processes=tuple(procs))


def test_collect_busy_host():
    got = collect_top_consumers(fixture_probe("host-busy", now=7.0), TopConsumersParams())
    assert (got.now, got.cores, got.mem_total_bytes) == (7.0, 4, 16318852 * 1024)
    assert {p.name for p in got.processes} >= {"java", "postgres", "my (odd) name"}


def test_collect_garbled_meminfo_names_file():
    with pytest.raises(ValueError, match="/proc/meminfo"):
        collect_top_consumers(fixture_probe("host-garbled"), TopConsumersParams())


def test_first_run_names_memory_only():
    store: dict[str, Any] = {}
    out = list(
        evaluate_top_consumers(
            TopConsumersParams(top_n=2),
            section(0.0, proc(1, "a", 10, GiB), proc(2, "b", 5, 2 * GiB), proc(3, "c", 0, 1)),
            store,
        )
    )
    assert out == [
        Result(Severity.OK, "OK", "Top CPU: first sample stored, CPU percent from the next run"),
        Result(Severity.OK, "OK", "Top memory (RSS): b[2] 2.0 GiB, a[1] 1.0 GiB"),
        Metric("host_process_rss_bytes", 2 * GiB, Unit.BYTES, {"process": "b", "pid": "2"}),
        Metric("host_process_rss_bytes", GiB, Unit.BYTES, {"process": "a", "pid": "1"}),
    ]
    assert store == {"ticks": {"1:100": 10, "2:100": 5, "3:100": 0}, "time": 0.0}


def test_cpu_percent_since_last_run_and_bounded_store():
    store: dict[str, Any] = {}
    params = TopConsumersParams(top_n=2)
    list(
        evaluate_top_consumers(
            params, section(0.0, proc(1, "a", 1000), proc(2, "b", 50), proc(3, "gone", 7)), store
        )
    )
    # 10 s later: a used 5 s of CPU (50 %), b 1 s (10 %), a new process d 2 s (20 %); c exited
    out = list(
        evaluate_top_consumers(
            params, section(10.0, proc(1, "a", 1500), proc(2, "b", 150), proc(4, "d", 200)), store
        )
    )
    assert out[0] == Result(Severity.OK, "OK", "Top CPU (100% = one core): a[1] 50.0%, d[4] 20.0%")
    cpu = [m for m in out if isinstance(m, Metric) and m.name == "host_process_cpu_percent"]
    assert cpu == [
        Metric("host_process_cpu_percent", 50.0, Unit.PERCENT, {"process": "a", "pid": "1"}),
        Metric("host_process_cpu_percent", 20.0, Unit.PERCENT, {"process": "d", "pid": "4"}),
    ]
    assert set(store["ticks"]) == {"1:100", "2:100", "4:100"}  # only live processes are kept


def test_reused_pid_is_a_new_process():
    store: dict[str, Any] = {}
    list(evaluate_top_consumers(TopConsumersParams(), section(0.0, proc(7, "old", 90_000, start=100)), store))
    out = list(
        evaluate_top_consumers(TopConsumersParams(), section(10.0, proc(7, "new", 100, start=5000)), store)
    )
    # the new process's 1 s of CPU, not 90,000 - 100 negative ticks nor the old process's total
    assert Metric("host_process_cpu_percent", 10.0, Unit.PERCENT, {"process": "new", "pid": "7"}) in out


@pytest.mark.parametrize(
    ("ticks", "cores", "expected"),
    [
        pytest.param(1000, 4, [], id="one core of four is not a hog"),
        pytest.param(3400, 4, [(Severity.WARN, "PROCESS_CPU_HOG", "java[9]")], id="85 percent of the host"),
        pytest.param(1980, 2, [(Severity.CRIT, "PROCESS_CPU_HOG", "java[9]")], id="99 percent of two cores"),
    ],
)
def test_cpu_hog_levels_are_share_of_host(ticks, cores, expected):
    store: dict[str, Any] = {}
    list(evaluate_top_consumers(TopConsumersParams(), section(0.0, proc(9, "java", 0), cores=cores), store))
    out = list(
        evaluate_top_consumers(
            TopConsumersParams(), section(10.0, proc(9, "java", ticks), cores=cores), store
        )
    )
    problems = [
        (r.severity, r.key, r.item) for r in out if isinstance(r, Result) and r.severity is not Severity.OK
    ]
    assert problems == expected


@pytest.mark.parametrize(
    ("rss", "expected"),
    [
        pytest.param(8 * GiB, [], id="half of memory"),
        pytest.param(13 * GiB, [(Severity.WARN, "PROCESS_MEMORY_HOG", "java[9]")], id="81 percent"),
        pytest.param(15 * GiB, [(Severity.CRIT, "PROCESS_MEMORY_HOG", "java[9]")], id="94 percent"),
    ],
)
def test_memory_hog_levels(rss, expected):
    out = list(evaluate_top_consumers(TopConsumersParams(), section(0.0, proc(9, "java", 0, rss)), {}))
    problems = [
        (r.severity, r.key, r.item) for r in out if isinstance(r, Result) and r.severity is not Severity.OK
    ]
    assert problems == expected


def test_busy_host_fixture_end_to_end():
    out = list(
        evaluate_top_consumers(
            TopConsumersParams(), collect_top_consumers(fixture_probe("host-busy"), TopConsumersParams()), {}
        )
    )
    hogs = [
        (r.severity, r.key, r.item) for r in out if isinstance(r, Result) and r.severity is not Severity.OK
    ]
    assert hogs == [(Severity.WARN, "PROCESS_MEMORY_HOG", "java[900]")]
    assert len([m for m in out if isinstance(m, Metric)]) == 5
