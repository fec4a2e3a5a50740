"""``diag-collector`` commands as real processes: migrate, enroll, token create, serve + signals."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from collector.cli.main import raise_fd_limit
from collector.store.store import Store
from tests.integration.harness import REPO, batch_msg, free_port, hello_msg, python_env, run_stream, spawn

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "collector.cli", *args],
        cwd=REPO,
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_migrate_enroll_and_token_create(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    done = cli("migrate", "--store", url)
    assert done.returncode == 0 and "latest schema" in done.stdout
    done = cli("enroll", "--store", url, "--customer", "acme", "--host", "web1", "--agent-id", "web1-agent")
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)  # stdout is the agent's config file
    token = config["collector"]["token"]
    assert config["agent"] == {"id": "web1-agent", "customer": "acme"}
    assert config["collector"]["address"] == "127.0.0.1:50051"
    store = Store.open(url)
    try:
        identity = store.authenticate_agent(token)
        assert identity is not None and (identity.agent_id, identity.customer, identity.host) == (
            "web1-agent",
            "acme",
            "web1",
        )
        done = cli("token", "create", "--store", url, "--name", "alice", "--role", "engineer")
        assert done.returncode == 0, done.stderr
        api_token = done.stdout.splitlines()[-1]
        principal = store.authenticate_api_token(api_token)
        assert principal is not None
    finally:
        store.close()
    again = cli("enroll", "--store", url, "--customer", "acme", "--agent-id", "web1-agent")
    assert again.returncode == 2 and "already enrolled" in again.stderr
    bad = cli("token", "create", "--store", url, "--name", "bob", "--role", "viewer")
    assert bad.returncode == 2 and "customer" in bad.stderr


def test_bad_config_exits_2_naming_the_problem(tmp_path: Path) -> None:
    config = tmp_path / "collector.yaml"
    config.write_text("grpc:\n  listn: 127.0.0.1:1\n")
    done = cli("serve", "--config", str(config))
    assert done.returncode == 2 and "grpc.listn" in done.stderr


def test_a_bad_maintenance_windows_file_stops_serve_with_exit_2_naming_it(tmp_path: Path) -> None:
    windows = tmp_path / "windows.yaml"
    windows.write_text("windows:\n  - name: w\n    customer: acme\n    once: {start: tomorrow}\n")
    config = tmp_path / "collector.yaml"
    config.write_text(f"state_dir: {tmp_path}\nemergency: {{windows_file: {windows}}}\n")
    done = cli(
        "serve", "--config", str(config), "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"
    )
    assert done.returncode == 2, done.stderr
    assert f"{windows}: windows.0.once.end: required key is missing" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_serve_prints_where_it_listens_serves_and_stops_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    store = Store.open(url)
    _, token = store.enroll_agent("acme", "web1", "agent-1")
    grpc_addr, http_port = f"127.0.0.1:{free_port()}", free_port()
    proc = spawn(
        ["-m", "collector.cli", "serve", "--store", url, "--grpc-listen", grpc_addr, "--http-listen",
         f"127.0.0.1:{http_port}"],
        tmp_path / "serve.log",
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while "Ctrl-C stops" not in proc.output() and time.monotonic() < deadline:
            assert proc.popen.poll() is None, proc.output()
            time.sleep(0.1)
        out = proc.output()
        assert f"gRPC (agents) on grpc://{grpc_addr}" in out
        assert f"API on http://127.0.0.1:{http_port}/api/v1" in out
        _, code, _ = run_stream(grpc_addr, token, [hello_msg("agent-1"), batch_msg([1, 2, 3])])
        assert code.name == "OK"
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        assert "diag_ingest_entries_total 3.0" in text and "diag_ingest_points_total 6.0" in text
        proc.popen.send_signal(sig)
        assert proc.popen.wait(15) == 0, proc.output()
        assert "diag-collector: stopped" in proc.output()
    finally:
        proc.kill9()
        store.close()


def test_a_busy_grpc_port_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        done = cli(
            "serve", "--store", f"sqlite:///{tmp_path / 'c.db'}", "--grpc-listen", f"127.0.0.1:{port}",
            "--http-listen", f"127.0.0.1:{free_port()}",
        )  # fmt: skip
    assert done.returncode == 1 and f"cannot listen for gRPC on 127.0.0.1:{port}" in done.stderr


def test_raise_fd_limit_never_lowers() -> None:
    import resource

    before = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert raise_fd_limit(16) >= min(before, 16)
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == before


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--ingest-log-max-points", "0", "expected at least 1, got 0"),
        ("--ingest-direct-max-points", "-5", "expected at least 0, got -5"),
        ("--ingest-log-max-points", "lots", "expected a whole number, got 'lots'"),
    ],
)
def test_bad_ingest_limits_are_usage_errors(
    flag: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from collector.cli.main import build_parser

    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["serve", flag, value])
    assert exit_info.value.code == 2
    assert f"argument {flag}: {message}" in capsys.readouterr().err
