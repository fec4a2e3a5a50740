"""Hostile YAML files against every loader a daemon or CLI has (issue 13, "Hostile configuration files").

Each loader runs as its real command in a child process: ``diag-agent check-config``,
``diag-collector serve --config`` (the collector config and, through it, the
maintenance windows file), the inspection plan loader the serving collector uses
(``load_plan``, in a child of its own: ``serve`` logs a bad plan and goes on) and
diagctl's own config file. Each must answer a hostile file with exit 2 and a one-line
reason naming the file, no traceback, and cost about what a tiny bad file costs: the
child's CPU time and peak RSS are measured (``os.wait4``) against that baseline, run
in the same test. The child runs under an address-space limit, so a regression fails
here instead of taking the machine's memory.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.harness import REPO, python_env

pytestmark = pytest.mark.timeout(300)

ADDRESS_SPACE = 3 * 1024**3
"""RLIMIT_AS of the children: generous for a Python with grpc loaded, far below what the
old loaders took on these files (2.2 GB RSS for the alias bomb)."""
EXTRA_CPU_S = 2.0
"""CPU a hostile file may cost over the baseline's tiny bad file (the issue's 2 s)."""
EXTRA_RSS_MB = 150.0
"""Peak RSS a hostile file may add over the baseline (200 MB in all, by the issue)."""
TIMEOUT_S = 120.0


def alias_bomb() -> str:
    """~1 KB whose aliases expand to 9**10 strings: the billion laughs."""
    lines = ["a0: &a0 [" + ", ".join(['"lol"'] * 9) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    return "\n".join(lines) + "\n"


def deep_nesting() -> str:
    return "a: " + "[" * 100_000 + "]" * 100_000 + "\n"


def many_keys() -> str:
    return "".join(f"k{i}: {i}\n" for i in range(400_000))


def oversized() -> str:
    """16 MiB that would parse (comments) before the first real line."""
    return "# padding padding padding padding padding padding padding padding padding\n" * 220_000 + "a: 1\n"


HOSTILE: dict[str, tuple[Callable[[], str], str]] = {
    "alias bomb": (alias_bomb, "refused: aliases (*name) expand the document to more than 100,000 values"),
    "deep nesting": (deep_nesting, "refused: nested more than 50 levels deep"),
    "400,000 keys": (many_keys, "larger than 1,048,576 bytes"),
    "oversized": (oversized, "larger than 1,048,576 bytes"),
}


@dataclass
class Outcome:
    code: int
    stderr: str
    cpu_s: float
    rss_mb: float
    wall_s: float


LIMITED = """
import os, resource, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
"""
"""Sets the address-space limit, then becomes the command. Not ``preexec_fn``: that runs
Python in a fork of this test process, whose gRPC threads (from earlier tests) can abort
the child before it ever execs (SIGABRT, "epoll_wait error: Bad file descriptor")."""


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> Outcome:
    """Run ``python args`` to the end; its exit code, stderr, CPU time and peak RSS."""
    err = cwd / "stderr.txt"
    started = time.monotonic()
    with err.open("wb") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-c", LIMITED, str(ADDRESS_SPACE), *args],
            stdout=subprocess.DEVNULL,
            stderr=handle,
            cwd=REPO,
            env={**python_env(), **(env or {})},
        )
        deadline = started + TIMEOUT_S
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                pytest.fail(f"{args} still running after {TIMEOUT_S:g} s")
            time.sleep(0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4
    return Outcome(
        code=proc.returncode,
        stderr=err.read_text(errors="replace"),
        cpu_s=usage.ru_utime + usage.ru_stime,
        rss_mb=usage.ru_maxrss / 1024,
        wall_s=time.monotonic() - started,
    )


@dataclass(frozen=True)
class Loader:
    """How to make one real command read ``path`` as the hostile file."""

    command: Callable[[Path, Path], tuple[list[str], dict[str, str]]]
    """(hostile file, scratch dir) -> (python args, extra environment)."""


def _agent(path: Path, tmp: Path) -> tuple[list[str], dict[str, str]]:
    return ["-m", "agent", "check-config", str(path)], {}


def _collector(path: Path, tmp: Path) -> tuple[list[str], dict[str, str]]:
    return ["-m", "collector.cli", "serve", "--config", str(path), "--store", f"sqlite:///{tmp / 'c.db'}"], {}


def _windows(path: Path, tmp: Path) -> tuple[list[str], dict[str, str]]:
    config = tmp / "collector.yaml"
    config.write_text(f"state_dir: {tmp / 'state'}\nemergency: {{windows_file: {path}}}\n")
    args = ["-m", "collector.cli", "serve", "--config", str(config), "--store", f"sqlite:///{tmp / 'c.db'}",
            "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"]  # fmt: skip
    return args, {}


PLAN_LOADER = """
import sys
from collector.inspections.plan import load_plan
from diagconfig import ConfigError
try:
    load_plan(sys.argv[1])
except ConfigError as exc:
    print(exc, file=sys.stderr)
    sys.exit(exc.exit_code)
"""


def _plan(path: Path, tmp: Path) -> tuple[list[str], dict[str, str]]:
    return ["-c", PLAN_LOADER, str(path)], {}


def _diagctl(path: Path, tmp: Path) -> tuple[list[str], dict[str, str]]:
    return ["-m", "diagctl.main", "hosts"], {"DIAGCTL_CONFIG": str(path)}


LOADERS = {
    "agent config": Loader(_agent),
    "collector config": Loader(_collector),
    "windows file": Loader(_windows),
    "plan file": Loader(_plan),
    "diagctl config": Loader(_diagctl),
}


@pytest.mark.parametrize("hostile", list(HOSTILE))
@pytest.mark.parametrize("loader", list(LOADERS))
def test_a_hostile_file_is_refused_quickly_within_bounds(tmp_path: Path, loader: str, hostile: str) -> None:
    make, reason = HOSTILE[hostile]
    command = LOADERS[loader].command

    small = tmp_path / "small.yaml"
    small.write_text("nonsense: [1, 2]\n")
    base_args, base_env = command(small, tmp_path)
    baseline = run(base_args, tmp_path, base_env)
    assert baseline.code == 2, baseline.stderr

    path = tmp_path / "hostile.yaml"
    path.write_text(make())
    args, env = command(path, tmp_path)
    outcome = run(args, tmp_path, env)

    assert outcome.code == 2, outcome.stderr[-2000:]
    assert "Traceback" not in outcome.stderr, outcome.stderr[-2000:]
    assert f"{path}: " in outcome.stderr and reason in outcome.stderr, outcome.stderr[-2000:]
    assert len(outcome.stderr.splitlines()) <= 3, outcome.stderr[-2000:]
    extra_cpu, extra_rss = outcome.cpu_s - baseline.cpu_s, outcome.rss_mb - baseline.rss_mb
    assert extra_cpu < EXTRA_CPU_S, (extra_cpu, outcome, baseline)
    assert extra_rss < EXTRA_RSS_MB, (extra_rss, outcome, baseline)


@pytest.mark.parametrize("loader", ["agent config", "collector config", "plan file"])
def test_many_problems_list_the_first_twenty_and_count_the_rest(tmp_path: Path, loader: str) -> None:
    path = tmp_path / "typos.yaml"
    path.write_text("".join(f"typo{i}: {i}\n" for i in range(5000)))
    args, env = LOADERS[loader].command(path, tmp_path)
    outcome = run(args, tmp_path, env)
    assert outcome.code == 2, outcome.stderr[-2000:]
    lines = [line for line in outcome.stderr.splitlines() if str(path) in line]
    assert len(lines) == 21, outcome.stderr[-3000:]
    more = re.fullmatch(rf".*{re.escape(str(path))}: \.\.\. and (\d+) more problems", lines[-1])
    assert more is not None and int(more.group(1)) >= 5000 - 20, lines[-1]
    assert outcome.cpu_s < 30, outcome
