from __future__ import annotations

from typing import Any

import pytest

from checks.api import Metric, Result, Severity, Unit
from checks.host.processes import ProcessesParams, ProcessesSection, collect_processes, evaluate_processes
from checks.proctable import process_table
from tests.conftest import fixture_probe


def section(**kw: Any) -> ProcessesSection:
    base: dict[str, Any] = dict(
        processes=100,
        threads=300,
        zombies=0,
        blocked=0,
        pid_max=32768,
        threads_max=63422,
        zombie_parents=(),
        blocked_names=(),
    )
    base.update(kw)
    return ProcessesSection(**base)


def keys(out):
    return [(r.severity, r.key) for r in out if isinstance(r, Result)]


def test_collect_busy_host():
    probe = fixture_probe("host-busy")
    got = collect_processes(probe, ProcessesParams())
    assert got == ProcessesSection(
        processes=10,
        threads=130,
        zombies=3,
        blocked=1,
        pid_max=32768,
        threads_max=63422,
        zombie_parents=(("php-fpm[950]", 3),),
        blocked_names=("rsync[1200]",),
    )
    assert probe.cache["proctable"] is process_table(probe)  # the shared snapshot, not a scan of its own


def test_collect_real_sample():
    got = collect_processes(fixture_probe("host-real"), ProcessesParams())
    assert (got.processes, got.threads, got.pid_max, got.threads_max) == (4, 17, 32768, 192730)


def test_collect_garbled_pid_max_names_file():
    with pytest.raises(ValueError, match="/proc/sys/kernel/pid_max: expected an integer"):
        collect_processes(fixture_probe("host-garbled"), ProcessesParams())


def test_evaluate_busy_host_summaries():
    out = list(
        evaluate_processes(
            ProcessesParams(), collect_processes(fixture_probe("host-busy"), ProcessesParams()), {}
        )
    )
    assert [r for r in out if isinstance(r, Result)] == [
        Result(Severity.OK, "OK", "10 processes, 130 threads"),
        Result(Severity.OK, "OK", "Zombies: 3; parents: php-fpm[950] holds 3"),
        Result(Severity.OK, "OK", "Processes in D state: 1: rsync[1200]"),
        Result(Severity.OK, "OK", "130 threads of 32768: 0.4%", item="pid_max"),
        Result(Severity.OK, "OK", "130 threads of 63422: 0.2%", item="threads-max"),
    ]
    assert Metric("host_zombie_processes_count", 3, Unit.COUNT) in out


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        pytest.param({}, [("OK", "OK")] * 5, id="healthy"),
        pytest.param(
            {"zombies": 60, "zombie_parents": (("httpd[9]", 60),)},
            [("OK", "OK"), ("CRIT", "ZOMBIES"), ("OK", "OK"), ("OK", "OK"), ("OK", "OK")],
            id="zombie leak",
        ),
        pytest.param(
            {"blocked": 7},
            [("OK", "OK"), ("OK", "OK"), ("WARN", "PROCS_BLOCKED"), ("OK", "OK"), ("OK", "OK")],
            id="stuck on I/O",
        ),
        pytest.param(
            {"threads": 30000},
            [("OK", "OK"), ("OK", "OK"), ("OK", "OK"), ("CRIT", "PID_EXHAUSTION"), ("OK", "OK")],
            id="pid_max nearly used up",
        ),
        pytest.param(
            {"threads": 1700, "threads_max": 2000, "pid_max": 4194304},
            [("OK", "OK"), ("OK", "OK"), ("OK", "OK"), ("OK", "OK"), ("WARN", "PID_EXHAUSTION")],
            id="threads-max nearly used up",
        ),
    ],
)
def test_evaluate_levels(kw, expected):
    out = list(evaluate_processes(ProcessesParams(), section(**kw), {}))
    assert [(s.value, k) for s, k in keys(out)] == expected
