from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydantic import ValidationError

from checks.api import Metric, Result, Severity, SkipCheck, Unit
from checks.application.process import (
    Member,
    ProcessGroup,
    ProcessParams,
    ProcessSection,
    ProcessSpec,
    clear_cmdline_cache,
    collect_process,
    evaluate_process,
)
from checks.probe import MAX_COMMAND_OUTPUT, Probe
from tests.conftest import FIXTURES, fixture_probe


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    clear_cmdline_cache()
    yield
    clear_cmdline_cache()


@dataclass
class CountingProbe(Probe):
    """A real probe that counts the command lines it reads."""

    cmdline_reads: list[str] = field(default_factory=list)

    def read_bytes(self, absolute: str, limit: int = MAX_COMMAND_OUTPUT) -> bytes:
        if absolute.endswith("/cmdline"):
            self.cmdline_reads.append(absolute)
        return super().read_bytes(absolute, limit)


def spec(name: str, match: str, **kw: object) -> ProcessSpec:
    return ProcessSpec.model_validate({"name": name, "match": match, **kw})


def members(section: ProcessSection) -> dict[str, list[str]]:
    return {g.name: [m.identity.split(":")[0] for m in g.members] for g in section.groups}


# --- collect from the fixture tree ------------------------------------------------------------


def test_collect_matches_by_name_and_cmdline():
    params = ProcessParams(
        processes=(
            spec("billing", r"-Dapp=billing"),
            spec("jvm", r"^java$"),
            spec("walwriter", r"postgres: walwriter"),
            spec("kworkers", r"^kworker/"),
            spec("nginx", r"nginx"),
        )
    )
    section = collect_process(fixture_probe("app-procs"), params)
    assert section.uptime_s == 5081.30
    assert {k: sorted(v) for k, v in members(section).items()} == {
        "billing": ["100"],
        "jvm": ["100", "101"],
        "walwriter": ["102"],
        "kworkers": ["3"],
        "nginx": [],
    }
    [billing] = [g for g in section.groups if g.name == "billing"]
    assert billing.members == (Member("100:4410", 4410, 1553, 100671 * 4096),)


def test_cmdline_read_only_when_the_name_does_not_decide():
    root = FIXTURES / "hosts" / "app-procs"
    params = ProcessParams(processes=(spec("jvm", r"^java$"),))
    probe = CountingProbe(root=root)
    collect_process(probe, params)
    # java x2 matched by name; kthreadd and kworker are kernel threads: only 1, 102, 200 read.
    assert sorted(probe.cmdline_reads) == [f"/proc/{pid}/cmdline" for pid in (1, 102, 200)]
    probe.new_cycle()
    probe.cmdline_reads.clear()
    collect_process(probe, params)
    assert probe.cmdline_reads == []  # remembered verdicts
    probe.new_cycle()
    collect_process(probe, ProcessParams(processes=params.processes, cmdline_recheck_s=0))
    assert len(probe.cmdline_reads) == 3  # recheck 0: read every cycle


def test_cmdline_cache_follows_exec_and_config_changes(tmp_path):
    root = tmp_path / "host"
    shutil.copytree(FIXTURES / "hosts" / "app-procs", root)
    params = ProcessParams(processes=(spec("billing", r"-Dapp=billing"),))
    probe = CountingProbe(root=root)
    assert members(collect_process(probe, params)) == {"billing": ["100"]}
    # pid 200 execs the billing JVM: same pid and start time, new name and command line.
    stat = (root / "proc/200/stat").read_text().replace("(bash)", "(java)")
    (root / "proc/200/stat").write_text(stat)
    (root / "proc/200/cmdline").write_bytes(b"/usr/bin/java\0-Dapp=billing\0")
    probe.new_cycle()
    probe.cmdline_reads.clear()
    assert sorted(members(collect_process(probe, params))["billing"]) == ["100", "200"]
    assert probe.cmdline_reads == ["/proc/200/cmdline"]
    # A different pattern set invalidates every verdict.
    probe.new_cycle()
    probe.cmdline_reads.clear()
    collect_process(probe, ProcessParams(processes=(spec("billing", r"-Dapp=bill"),)))
    assert len(probe.cmdline_reads) == 5


def test_user_filter(tmp_path):
    root = tmp_path / "host"
    shutil.copytree(FIXTURES / "hosts" / "app-procs", root)
    (root / "etc/passwd").write_text(
        f"me:x:{os.getuid()}:0::/:/bin/sh\nother:x:{os.getuid() + 1}:0::/:/bin/sh\n"
    )
    params = ProcessParams(
        processes=(
            spec("mine", r"^java$", user="me"),
            spec("by-uid", r"^java$", user=str(os.getuid())),
            spec("theirs", r"^java$", user="other", min_count=0),
            spec("nobody-such", r"^java$", user="ghost"),
        )
    )
    section = collect_process(Probe(root=root), params)
    assert {k: sorted(v) for k, v in members(section).items()} == {
        "mine": ["100", "101"],
        "by-uid": ["100", "101"],
        "theirs": [],
        "nobody-such": [],
    }


@pytest.mark.parametrize("content", ["", "garbage\n", "x y\n"])
def test_garbled_uptime_names_the_file(tmp_path, content):
    root = tmp_path / "host"
    shutil.copytree(FIXTURES / "hosts" / "app-procs", root)
    (root / "proc/uptime").write_text(content)
    with pytest.raises(ValueError, match="/proc/uptime"):
        collect_process(Probe(root=root), ProcessParams(processes=(spec("a", "a"),)))


def test_skip_when_nothing_configured():
    with pytest.raises(SkipCheck, match="no processes"):
        collect_process(Probe(), ProcessParams())


# --- real processes -------------------------------------------------------------------------


def test_real_process_count_and_cpu():
    marker = f"remote-diag-test-{os.getpid()}-{time.monotonic_ns()}"
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass", marker])
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", marker])
    try:
        me = pwd.getpwuid(os.getuid()).pw_name
        params = ProcessParams(
            processes=(
                spec("busy", f"-c while True: pass {marker}", user=me, levels_cpu_percent=(20, 1000)),
                spec("idle", rf"time\.sleep\(60\) {marker}$", max_count=1),
                spec("both", marker, min_count=3),
            )
        )
        store: dict[str, object] = {}
        probe = Probe()
        first = list(evaluate_process(params, collect_process(probe, params), store))
        assert [(r.item, r.key) for r in first if isinstance(r, Result)] == [
            ("busy", "OK"),
            ("idle", "OK"),
            ("both", "PROCESS_MISSING"),
        ]
        time.sleep(1.0)
        probe.new_cycle()
        second = list(evaluate_process(params, collect_process(probe, params), store))
        cpu = {
            m.label_dict["name"]: m.value
            for m in second
            if isinstance(m, Metric) and m.name.endswith("percent")
        }
        # The busy loop spins a whole core; on a shared 2-core machine it gets at least 20 %.
        assert cpu["busy"] >= 20
        assert cpu["idle"] < 5
        assert ("busy", "PROCESS_CPU_HIGH") in [(r.item, r.key) for r in second if isinstance(r, Result)]
    finally:
        for proc in (busy, idle):
            proc.kill()
            proc.wait()


# --- evaluate ------------------------------------------------------------------------------

LBL = {"name": "app"}


def section(uptime: float, *members_: Member) -> ProcessSection:
    return ProcessSection(uptime, (ProcessGroup("app", members_),), clock_ticks=100)


M1 = Member("10:100", 100, 1000, 1000)
M2 = Member("11:200", 200, 50, 3000)
IDLE = Member("10:100", 100, 1000, 1)
"""M1 ten seconds later, without having used any CPU."""


@pytest.mark.parametrize(
    ("spec_kw", "sec", "expected"),
    [
        pytest.param(
            {},
            section(100.0, M1, M2),
            [
                Result(Severity.OK, "OK", "2 processes", "app"),
                Metric("app_process_count", 2, Unit.COUNT, LBL),
                Metric("app_process_rss_bytes", 4000, Unit.BYTES, LBL),
            ],
            id="running",
        ),
        pytest.param(
            {"user": "app"},
            section(100.0),
            [
                Result(Severity.CRIT, "PROCESS_MISSING", "No process of user app matches 'app'", "app"),
                Metric("app_process_count", 0, Unit.COUNT, LBL),
                Metric("app_process_rss_bytes", 0, Unit.BYTES, LBL),
            ],
            id="missing",
        ),
        pytest.param(
            {"min_count": 3},
            section(100.0, M1),
            [
                Result(Severity.CRIT, "PROCESS_MISSING", "1 process, expected at least 3", "app"),
                Metric("app_process_count", 1, Unit.COUNT, LBL),
                Metric("app_process_rss_bytes", 1000, Unit.BYTES, LBL),
            ],
            id="too few",
        ),
        pytest.param(
            {"max_count": 1, "levels_rss_bytes": (2000, 3500)},
            section(100.0, M1, M2),
            [
                Result(Severity.WARN, "PROCESS_TOO_MANY", "2 processes, expected at most 1", "app"),
                Metric("app_process_count", 2, Unit.COUNT, LBL),
                Metric("app_process_rss_bytes", 4000, Unit.BYTES, LBL),
                Result(
                    Severity.CRIT,
                    "PROCESS_RSS_HIGH",
                    "Resident memory: 3.9 KiB (warn/crit at 2.0 KiB/3.4 KiB)",
                    "app",
                ),
            ],
            id="too many and too big",
        ),
        pytest.param(
            {"min_count": 0},
            section(100.0),
            [
                Result(Severity.OK, "OK", "0 processes", "app"),
                Metric("app_process_count", 0, Unit.COUNT, LBL),
                Metric("app_process_rss_bytes", 0, Unit.BYTES, LBL),
            ],
            id="none allowed",
        ),
    ],
)
def test_evaluate_counts(spec_kw, sec, expected):
    params = ProcessParams(processes=(spec("app", "app", **spec_kw),))
    assert list(evaluate_process(params, sec, {})) == expected


@pytest.mark.parametrize(
    ("later", "cpu"),
    [
        pytest.param(section(110.0, Member("10:100", 100, 1500, 1)), 50.0, id="half a core"),
        pytest.param(section(110.0, IDLE, Member("12:10500", 10500, 300, 1)), 30.0, id="born since"),
        pytest.param(
            section(110.0, IDLE, Member("13:500", 500, 900, 1)), 0.0, id="untracked old process not counted"
        ),
        pytest.param(section(110.0, Member("10:100", 100, 900, 1)), 0.0, id="counter went back"),
        pytest.param(section(50.0, Member("10:100", 100, 5000, 1)), None, id="rebooted"),
    ],
)
def test_evaluate_cpu(later, cpu):
    params = ProcessParams(processes=(spec("app", "app", levels_cpu_percent=(40, 90)),))
    store: dict[str, object] = {}
    first = list(evaluate_process(params, section(100.0, M1), store))
    assert not [m for m in first if isinstance(m, Metric) and m.name == "app_process_cpu_percent"]
    out = list(evaluate_process(params, later, store))
    got = [m.value for m in out if isinstance(m, Metric) and m.name == "app_process_cpu_percent"]
    assert got == ([] if cpu is None else [cpu])
    if cpu == 50.0:
        assert (
            Result(
                Severity.WARN,
                "PROCESS_CPU_HIGH",
                "CPU (100% = one core): 50.0% (warn/crit at 40.0%/90.0%)",
                "app",
            )
            in out
        )
    assert store["cpu:app"] == {
        "uptime": later.uptime_s,
        "ticks": {m.identity: m.cpu_ticks for m in later.groups[0].members},
    }


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"name": "a", "match": "(oops"}, id="malformed regex"),
        pytest.param({"name": "a", "match": "a", "min_count": 3, "max_count": 2}, id="max below min"),
        pytest.param({"name": "a", "match": "a", "min_count": -1}, id="negative count"),
        pytest.param({"name": "", "match": "a"}, id="empty name"),
        pytest.param({"name": "a", "match": "a", "levels_cpu_percent": [1]}, id="levels need two values"),
    ],
)
def test_bad_config(bad):
    with pytest.raises(ValidationError):
        ProcessSpec.model_validate(bad)
    with pytest.raises(ValidationError):
        ProcessParams.model_validate(
            {"processes": [{"name": "a", "match": "a"}, {"name": "a", "match": "b"}]}
        )


def test_fixture_section_is_json_safe_in_store():
    import json

    params = ProcessParams(processes=(spec("jvm", "^java$"),))
    store: dict[str, object] = {}
    list(evaluate_process(params, collect_process(fixture_probe("app-procs"), params), store))
    assert json.loads(json.dumps(store)) == store
    assert Path(FIXTURES / "hosts" / "app-procs" / "proc" / "uptime").exists()
