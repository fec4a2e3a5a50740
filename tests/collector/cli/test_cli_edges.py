"""The command lines' edges: --version everywhere, and a port in use is one clear line, status 1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import __version__

ROOT = Path(__file__).resolve().parents[3]


def _run(module: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize(
    ("module", "program"),
    [("agent.cli", "diag-agent"), ("collector.cli", "diag-collector"), ("diagctl.main", "diagctl")],
)
def test_every_command_prints_its_version(module: str, program: str) -> None:
    done = _run(module, "--version")
    assert (done.returncode, done.stdout) == (0, f"{program} {__version__}\n"), done.stderr


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port another process listens on (here: this one)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("server", ["HTTP", "gRPC"])
def test_a_port_in_use_is_one_clear_line_and_status_1(server: str, held_port: int, tmp_path: Path) -> None:
    listen = f"127.0.0.1:{held_port}"
    flags = ["--http-listen", listen, "--grpc-listen", "127.0.0.1:0"]
    if server == "gRPC":
        flags = ["--grpc-listen", listen, "--http-listen", "127.0.0.1:0"]
    done = _run("collector.cli", "serve", "--store", f"sqlite:///{tmp_path / 'c.db'}", *flags, timeout=60)
    assert done.returncode == 1
    reason = "the port is in use (another collector?)"
    assert done.stderr == f"diag-collector: cannot listen for {server} on {listen}: {reason}\n"
    assert done.stdout == ""
