"""The agent-only install: ``pip install remote-diag`` carries only what the agent imports.

The agent's commands, its daemon streaming to a real collector included, run here with
every module of the collector-only distributions made unimportable (a ``sitecustomize``
meta-path blocker in the subprocess): which modules those are is computed from
pyproject.toml's extras and the installed distributions' metadata, not listed by hand.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from collector.ingest.grpc_service import GrpcSettings
from collector.store import Store
from tests.integration.harness import InProcessCollector, count, wait_for

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9_.-]+", requirement)
    assert match is not None, requirement
    return match.group(0).lower().replace("_", "-")


def _extra_only_modules() -> set[str]:
    """Top-level modules provided by distributions named only in the extras."""
    base = {_name(r) for r in PYPROJECT["dependencies"]}
    extras = {
        _name(r)
        for name, reqs in PYPROJECT["optional-dependencies"].items()
        if name != "dev"
        for r in reqs
        if not r.startswith("remote-diag")
    }
    only = extras - base
    modules = {
        module
        for module, dists in importlib.metadata.packages_distributions().items()
        if any(d.lower().replace("_", "-") in only for d in dists)
    }
    assert {"sqlalchemy", "grpc", "fastapi", "weasyprint", "paramiko"} <= modules  # the map works
    return modules


def test_the_agent_install_names_no_collector_dependency() -> None:
    base = {_name(r) for r in PYPROJECT["dependencies"]}
    assert base == {"psutil", "pyyaml", "pydantic", "h2", "shtab"}
    collector = {_name(r) for r in PYPROJECT["optional-dependencies"]["collector"]}
    assert {"grpcio", "sqlalchemy", "fastapi", "weasyprint", "psycopg"} <= collector
    assert "paramiko" not in base | collector  # sessions only
    assert PYPROJECT["optional-dependencies"]["sessions"] == ["paramiko>=3.4"]
    assert (ROOT / "LICENSE").read_text().lstrip().startswith("Apache License")
    assert PYPROJECT["license"] == "Apache-2.0"


@pytest.fixture
def agent_only_env(tmp_path: Path) -> dict[str, str]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        textwrap.dedent(
            f"""
            import sys
            BLOCKED = {sorted(_extra_only_modules())!r}

            class AgentOnly:
                def find_spec(self, name, path=None, target=None):
                    if name.split(".")[0] in BLOCKED:
                        raise ModuleNotFoundError(f"No module named {{name!r}} (agent-only install)")
                    return None

            sys.meta_path.insert(0, AgentOnly())
            """
        )
    )
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=180, check=False
    )


def test_the_blocker_really_blocks(agent_only_env) -> None:
    done = _run(["-c", "import sqlalchemy"], agent_only_env)
    assert done.returncode != 0 and "agent-only install" in done.stderr


def test_agent_commands_run_without_the_collector_dependencies(agent_only_env) -> None:
    checks = _run(["-m", "agent.cli", "checks", "--check", "host.memory", "--format", "json"], agent_only_env)
    assert checks.returncode in (0, 1, 2) and json.loads(checks.stdout)[0]["check"] == "host.memory", (
        checks.stderr
    )
    config = _run(["-m", "agent.cli", "check-config", "deploy/agent.example.yaml"], agent_only_env)
    assert config.returncode == 0 and config.stdout.startswith("OK:"), config.stderr
    inventory = _run(["-m", "agent.cli", "inventory", "--format", "json"], agent_only_env)
    assert inventory.returncode == 0 and "os" in json.loads(inventory.stdout), inventory.stderr
    version = _run(["-m", "agent.cli", "--version"], agent_only_env)
    assert version.returncode == 0 and version.stdout.startswith("diag-agent "), version.stderr


def test_the_vendor_commands_say_which_extra_to_install(agent_only_env) -> None:
    for program, function, extra in (
        ("diag-collector", "collector_main", "collector"),
        ("diagctl", "diagctl_main", "diagctl"),
    ):
        done = _run(
            ["-c", f"import sys; from collector.entry import {function}; sys.exit({function}())"],
            agent_only_env,
        )
        assert done.returncode == 2
        assert f"pip install 'remote-diag[{extra}]'" in done.stderr and "Traceback" not in done.stderr, (
            program
        )


def test_the_agent_daemon_streams_to_a_real_collector_without_them(agent_only_env, tmp_path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'c.db'}")
    collector = InProcessCollector(store, GrpcSettings(listen="127.0.0.1:0"))
    identity, token = store.enroll_agent("acme", host="db1")
    config = tmp_path / "agent.yaml"
    config.write_text(
        f"agent: {{id: {identity.agent_id}, customer: acme, state_dir: {tmp_path / 'state'}}}\n"
        f"collector: {{address: '{collector.address}', token: {token}}}\n"
        "checks: {host.memory: {}, host.load: {}}\n"
    )
    log = (tmp_path / "agent.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "run", "--config", str(config)],
        env=agent_only_env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        from collector.store.schema import check_results

        assert wait_for(lambda: count(store, check_results) > 0, 60), (tmp_path / "agent.log").read_text()
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
        collector.stop()
        store.close()
    assert "agent-only install" not in (tmp_path / "agent.log").read_text()
    assert proc.returncode == 0
