from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from checks.api import Metric, Result, Severity, Unit
from checks.application.agent import (
    AGENT,
    AgentParams,
    AgentSection,
    collect_agent,
    evaluate_agent,
)
from checks.probe import Probe
from tests.conftest import FIXTURES, fixture_probe

MIB = 1024 * 1024
STATUS = {
    "spool_depth": 12,
    "spool_bytes": 18432,
    "dropped_total": 0,
    "abandoned_threads": 0,
    "last_cycle_cpu_ms": 5.2,
    "last_cycle_s": 0.41,
}


def copy_host(tmp_path: Path) -> Path:
    shutil.copytree(FIXTURES / "hosts" / "x5-agent", tmp_path, dirs_exist_ok=True)
    return tmp_path


def results(out: list[Any]) -> list[Result]:
    return [r for r in out if isinstance(r, Result)]


def test_collect_from_the_fixture_process_with_status():
    probe = fixture_probe("x5-agent")
    probe.agent_status.update(STATUS)
    assert collect_agent(probe, AgentParams()) == AgentSection(
        now=1_700_000_000.0,
        identity="28972:294197",
        cpu_seconds=0.65,
        rss_bytes=11090 * os.sysconf("SC_PAGE_SIZE"),
        threads=4,
        open_fds=7,
        spool_depth=12,
        spool_bytes=18432,
        dropped_total=0,
        abandoned=0,
        abandoned_checks=(),
        last_cycle_cpu_s=0.0052,
        last_cycle_s=0.41,
    )


def test_collect_one_shot_run_without_status_reads_this_very_process():
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait)
    worker.start()
    try:
        section = collect_agent(Probe(), AgentParams())
    finally:
        stop.set()
        worker.join()
    assert section.identity.startswith(f"{os.getpid()}:")
    assert section.threads >= 2
    assert 5 * MIB < section.rss_bytes < 2048 * MIB
    assert section.open_fds >= 3
    assert (section.spool_depth, section.dropped_total, section.abandoned) == (None, None, None)


def test_abandoned_threads_as_names():
    probe = fixture_probe("x5-agent")
    probe.agent_status["abandoned_threads"] = ["storage.filesystem", "application.http"]
    section = collect_agent(probe, AgentParams())
    assert (section.abandoned, section.abandoned_checks) == (2, ("storage.filesystem", "application.http"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param("", r"/proc/self/stat: cannot parse ''", id="empty"),
        pytest.param(
            "28972 (python) R 28970\n",
            r"/proc/self/stat: cannot parse .*expected at least 24 fields",
            id="truncated",
        ),
        pytest.param(
            "28972 (python) R 1 2 3 4 5 6 7 8 9 10 x y 0 0 0 0 4 0 1 2 3 4\n",
            r"/proc/self/stat",
            id="non-numeric",
        ),
    ],
)
def test_collect_rejects_a_garbled_stat(tmp_path, content, message):
    root = copy_host(tmp_path)
    (root / "proc/self/stat").write_text(content)
    with pytest.raises(ValueError, match=message):
        collect_agent(Probe(root=root), AgentParams())


@pytest.mark.parametrize(
    ("status", "message"),
    [
        pytest.param({"spool_depth": "many"}, "spool_depth must be a non-negative number", id="text"),
        pytest.param({"dropped_total": -1}, "dropped_total must be a non-negative number", id="negative"),
        pytest.param({"abandoned_threads": True}, "abandoned_threads must be", id="bool"),
    ],
)
def test_collect_rejects_a_bad_agent_status(status, message):
    probe = fixture_probe("x5-agent")
    probe.agent_status.update(status)
    with pytest.raises(ValueError, match=f"agent status: {message}"):
        collect_agent(probe, AgentParams())


def section(**kw: Any) -> AgentSection:
    values: dict[str, Any] = {
        "now": 1_700_000_060.0,
        "identity": "812:4410",
        "cpu_seconds": 13.0,
        "rss_bytes": 40 * MIB,
        "threads": 6,
        "open_fds": 21,
    }
    return AgentSection(**{**values, **kw})


MEM_OK = Result(Severity.OK, "OK", "Agent resident memory (6 threads, 21 open files): 40.0 MiB")


@pytest.mark.parametrize(
    ("store", "sect", "expected"),
    [
        pytest.param({}, section(), [MEM_OK], id="first run: no CPU rate yet"),
        pytest.param(
            {"identity": "812:4410", "cpu": [1_700_000_000.0, 12.4]},
            section(),
            [MEM_OK, Result(Severity.OK, "OK", "Agent CPU since the last run (one core = 100%): 1.0%")],
            id="quiet",
        ),
        pytest.param(
            {"identity": "812:4410", "cpu": [1_700_000_000.0, 1.0]},
            section(rss_bytes=130 * MIB),
            [
                Result(
                    Severity.CRIT,
                    "AGENT_MEMORY_HIGH",
                    "Agent resident memory (6 threads, 21 open files): 130.0 MiB "
                    "(warn/crit at 60.0 MiB/120.0 MiB)",
                ),
                Result(
                    Severity.CRIT,
                    "AGENT_CPU_HIGH",
                    "Agent CPU since the last run (one core = 100%): 20.0% (warn/crit at 5.0%/20.0%)",
                ),
            ],
            id="memory and CPU over their levels",
        ),
        pytest.param(
            {"identity": "700:100", "cpu": [1_700_000_000.0, 1.0], "dropped_total": 5},
            section(dropped_total=9, spool_depth=50000, spool_bytes=64 * MIB),
            [
                MEM_OK,
                Result(
                    Severity.CRIT,
                    "AGENT_DROPPED_RESULTS",
                    "The agent dropped 4 result(s) since the last run: they are lost to the vendor "
                    "(spool holds 50000 results, 64.0 MiB)",
                ),
            ],
            id="restarted agent: no CPU rate, drops still counted",
        ),
        pytest.param(
            {"identity": "812:4410", "dropped_total": 9},
            section(
                dropped_total=9, abandoned=2, abandoned_checks=("storage.filesystem", "application.http")
            ),
            [
                MEM_OK,
                Result(
                    Severity.WARN,
                    "AGENT_CHECKS_HUNG",
                    "2 check thread(s) stuck past their timeout: storage.filesystem, application.http "
                    "(a hung NFS mount or a blocked command; those checks do not run until they return)",
                ),
            ],
            id="hung checks",
        ),
        pytest.param(
            {"identity": "812:4410", "dropped_total": 9},
            section(dropped_total=0, abandoned=0),
            [MEM_OK],
            id="new spool: drop counter reset is a new baseline",
        ),
    ],
)
def test_evaluate(store, sect, expected):
    assert results(list(evaluate_agent(AgentParams(), sect, store))) == expected
    assert store["identity"] == sect.identity


def test_metrics_with_full_status():
    store: dict[str, Any] = {"identity": "812:4410", "cpu": [1_700_000_000.0, 12.4], "dropped_total": 0}
    sect = section(
        spool_depth=12,
        spool_bytes=18432,
        dropped_total=0,
        abandoned=0,
        last_cycle_cpu_s=0.0052,
        last_cycle_s=0.41,
    )
    metrics = [m for m in evaluate_agent(AgentParams(), sect, store) if isinstance(m, Metric)]
    cpu = metrics.pop(4)
    assert cpu.name == "app_agent_cpu_percent"
    assert cpu.value == pytest.approx(1.0)
    assert metrics == [
        Metric("app_agent_rss_bytes", 40 * MIB, Unit.BYTES),
        Metric("app_agent_threads_count", 6, Unit.COUNT),
        Metric("app_agent_open_fds_count", 21, Unit.COUNT),
        Metric("app_agent_cpu_seconds", 13.0, Unit.SECONDS),
        Metric("app_agent_spool_depth_count", 12, Unit.COUNT),
        Metric("app_agent_spool_bytes", 18432, Unit.BYTES),
        Metric("app_agent_cycle_cpu_seconds", 0.0052, Unit.SECONDS),
        Metric("app_agent_cycle_duration_seconds", 0.41, Unit.SECONDS),
        Metric("app_agent_dropped_results_count", 0, Unit.COUNT),
        Metric("app_agent_abandoned_threads_count", 0, Unit.COUNT),
    ]


def test_two_runs_on_a_changing_tree(tmp_path):
    root = copy_host(tmp_path)
    clock = [1_700_000_000.0]
    probe = Probe(root=root, clock=lambda: clock[0])
    probe.agent_status.update(STATUS)
    params = AgentParams()
    store: dict[str, Any] = {}
    assert [r.key for r in results(list(AGENT.run(probe, params, store)))] == ["OK"]
    stat = root / "proc/self/stat"
    # 60 s later: utime 18 -> 618 ticks (6 s of CPU = 10 %), and the spool dropped 3 results.
    stat.write_text(stat.read_text().replace(" 18 47 ", " 618 47 "))
    clock[0] += 60
    probe.agent_status["dropped_total"] = 3
    second = results(list(AGENT.run(probe, params, store)))
    assert [(r.severity, r.key) for r in second] == [
        (Severity.OK, "OK"),
        (Severity.WARN, "AGENT_CPU_HIGH"),
        (Severity.CRIT, "AGENT_DROPPED_RESULTS"),
    ]
    assert second[1].summary.startswith("Agent CPU since the last run (one core = 100%): 10.0%")
