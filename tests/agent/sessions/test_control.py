"""``diag-agent sessions`` and the control socket; the start-up refusal without paramiko."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from agent.sessions.control import ControlServer, request
from agent.sessions.grants import TEST_KEY, Grant
from agent.sessions.manager import SessionManager
from agent.sessions.settings import SessionsConfig
from tests.agent.sessions.events import Events
from tests.integration.harness import python_env


def _manager(tmp_path: Path, **config: Any) -> tuple[SessionManager, Events]:
    events = Events()
    cfg = SessionsConfig(enabled=True, **config)
    return SessionManager(cfg, "a1", tmp_path, events, "/etc/diag-agent/agent.yaml"), events


def _put(manager: SessionManager, **kw: Any) -> None:
    grant = Grant(
        session_id=kw.pop("session_id", "s1"),
        agent_id="a1",
        mode="diagnostic",
        engineer_public_key=TEST_KEY,
        not_after_unix_ms=int(time.time() * 1000) + 60_000,
        **kw,
    )
    manager.store.put(grant)


def test_control_socket_approve_deny_revoke(tmp_path: Path) -> None:
    manager, events = _manager(tmp_path)
    manager.start()
    sock = tmp_path / "sessions" / "control.sock"
    try:
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        _put(manager)
        _put(manager, session_id="s2")
        listed = request(sock, "list")
        assert {(s["session_id"], s["state"]) for s in listed["sessions"]} == {
            ("s1", "waiting"),
            ("s2", "waiting"),
        }
        approved = request(sock, "approve", "s1")
        assert approved["ok"] and approved["session"]["state"] == "approved"
        assert approved["session"]["approval"].startswith("host:")
        assert request(sock, "deny", "s2")["session"]["state"] == "denied"
        assert request(sock, "revoke", "s1")["session"]["state"] == "revoked"
        assert [e[1] for e in events.events] == ["approved", "denied", "revoked"]
        assert request(sock, "approve", "s1") == {
            "ok": False,
            "error": "session is revoked: revoked on the host by root",
        }
        assert "no session nope" in request(sock, "approve", "nope")["error"]
        assert "session_id is required" in request(sock, "approve")["error"]
        assert "unknown operation" in request(sock, "explode", "s1")["error"]
        with socket.socket(socket.AF_UNIX) as raw:
            raw.connect(str(sock))
            raw.sendall(b"[1, 2]\n")
            assert "expected one JSON object" in raw.recv(4096).decode()
        with socket.socket(socket.AF_UNIX) as raw:
            raw.connect(str(sock))
            raw.sendall(b"x" * 5000)
            assert "larger than 4096 bytes" in raw.recv(4096).decode()
    finally:
        manager.close()
    assert not sock.exists()


def test_host_approval_is_refused_when_the_config_only_takes_customer_admins(tmp_path: Path) -> None:
    manager, _ = _manager(tmp_path, approvals=("customer_admin",))
    _put(manager)
    answer = manager.control({"op": "approve", "session_id": "s1"}, "root")
    assert answer == {
        "ok": False,
        "error": "sessions.approvals does not include host: approve through the collector",
    }


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to connect as another user (nobody)")
def test_other_users_are_turned_away(tmp_path: Path) -> None:
    served: list[str] = []
    # nobody must reach the directory: pytest's own tmp directories are root's alone
    where = Path(tempfile.mkdtemp(prefix="diag-control-"))
    where.chmod(0o755)

    def handler(req: dict[str, Any], actor: str) -> dict[str, Any]:
        served.append(actor)
        return {"ok": True}

    server = ControlServer(where / "control.sock", handler)
    server.start()
    python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
    try:
        client = (
            "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]);"
            's.sendall(b\'{"op": "list"}\\n\'); print(s.recv(4096).decode())'
        )
        # the socket's mode stops another user at connect()
        blocked = subprocess.run(
            [python, "-c", client, str(where / "control.sock")],
            user="nobody",
            capture_output=True,
            text=True,
        )
        assert blocked.returncode != 0 and "Permission denied" in blocked.stderr
        # and the peer check stops them when the mode would not (a mistaken chmod)
        (where / "control.sock").chmod(0o666)
        peer = subprocess.run(
            [python, "-c", client, str(where / "control.sock")],
            user="nobody",
            capture_output=True,
            text=True,
        )
        assert json.loads(peer.stdout) == {
            "ok": False,
            "error": "only root or the agent's user may control sessions",
        }
        assert served == []
    finally:
        server.stop()
        shutil.rmtree(where, ignore_errors=True)


def test_cli_without_a_running_agent_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sessions", "list", "--state-dir", str(tmp_path)]) == 1
    assert "is `diag-agent run` running with sessions.enabled: true" in capsys.readouterr().err
    assert main(["sessions", "approve", "--state-dir", str(tmp_path)]) == 2
    assert "needs a session ID" in capsys.readouterr().err


def test_cli_table_in_both_languages(tmp_path: Path) -> None:
    manager, _ = _manager(tmp_path)
    manager.start()
    try:
        _put(manager, engineer="eng@vendor", case_id="case-7")
        env = python_env()
        en = subprocess.run(
            [sys.executable, "-m", "agent", "sessions", "list", "--state-dir", str(tmp_path)],
            capture_output=True, text=True, env=env, check=True,
        ).stdout  # fmt: skip
        assert en.splitlines()[0].split()[:3] == ["SESSION", "STATE", "MODE"]
        assert "s1" in en and "waiting" in en and "eng@vendor" in en
        zh = subprocess.run(
            [sys.executable, "-m", "agent", "sessions", "list", "--lang", "zh", "--state-dir", str(tmp_path)],
            capture_output=True, text=True, env=env, check=True,
        ).stdout  # fmt: skip
        assert (
            zh.splitlines()[0].split()[:2] == ["会话", "状态"]
            and "等待批准" in zh
            and "等待主机上的批准" in zh
        )
    finally:
        manager.close()


def test_sessions_enabled_without_paramiko_refuses_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # paramiko is installed here (dev extra); an agent-only install lacks it. Mocked: the
    # lookup the agent makes at start-up answers "not installed".
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "paramiko" else real(name, *a)
    )
    config = tmp_path / "agent.yaml"
    config.write_text(
        f"agent: {{id: a1, state_dir: {tmp_path / 'state'}}}\n"
        "collector: {address: '127.0.0.1:9', token: t}\nsessions: {enabled: true}\n"
    )
    assert main(["run", "--config", str(config), "--once"]) == 2
    err = capsys.readouterr().err
    assert "sessions.enabled is true" in err and "pip install 'remote-diag[sessions]'" in err
