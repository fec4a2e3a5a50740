"""``diagctl sessions`` against a real collector (gRPC + uvicorn on one loop, SQLite) and a
fake agent on real gRPC loopback (tests/collector/sessions/harness.py) until the agent side
is merged: the commands' tables and JSON, ``proxy`` as a real process (OpenSSH's
ProxyCommand), ``replay`` and ``audit --verify`` detecting one changed byte."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from collector.ingest.decode import IngestLimits, decode
from collector.store import AgentIdentity, Store
from collector.store.schema_sessions import session_audit
from diagctl.main import main
from protos.diag.v1 import agent_pb2 as pb
from tests.collector.sessions.conftest import KEY, open_case
from tests.collector.sessions.harness import FakeAgent, SessionCollector
from tests.integration.harness import python_env, wait_for


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[SessionCollector, dict[str, str], Store]]:
    store = Store.open(f"sqlite:///{tmp_path / 'collector.db'}")
    c = SessionCollector(store)
    t = {"case": open_case(store, "acme", "db1")}
    t["eng"] = store.create_api_token("eng", "engineer")
    t["admin"] = store.create_api_token("acme-admin", "customer_admin", customer="acme")
    _, t["agent"] = store.enroll_agent("acme", "db1", "acme-db1-live")
    (tmp_path / "id.pub").write_text(KEY + "\n")
    t["key"] = str(tmp_path / "id.pub")
    yield c, t, store
    c.stop()
    store.close()


def run(c: SessionCollector, token: str, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(["--server", c.base, "--token", token, *argv], out=out)
    return code, out.getvalue()


def test_request_approve_proxy_revoke_replay_and_audit(
    env: tuple[SessionCollector, dict[str, str], Store], capsys: pytest.CaptureFixture[str]
) -> None:
    c, t, store = env
    agent = FakeAgent(c.address, t["agent"], "acme-db1-live", approve=False)
    try:
        code, text = run(
            c,
            t["eng"],
            "sessions",
            "request",
            "--host",
            "db1",
            "--case",
            t["case"],
            "--duration",
            "30m",
            "--reason",
            "disk full",
            "--mode",
            "shell",
            "--key",
            t["key"],
            "--format",
            "json",
        )
        assert code == 0
        sid = json.loads(text)["id"]
        assert agent.grants.get(timeout=5).session_id == sid
        # an engineer cannot approve: the error says why, exit 1
        assert run(c, t["eng"], "sessions", "approve", sid)[0] == 1
        assert "customer_admin" in capsys.readouterr().err
        assert run(c, t["admin"], "sessions", "approve", sid) == (0, f"{sid}: approved\n")
        agent.send(
            pb.AgentMessage(
                session_status=pb.SessionStatus(
                    session_id=sid, state="approved", host_key="ssh-ed25519 AAAAk", host_key_sha256="SHA256:k"
                )
            )
        )
        assert wait_for(lambda: "Connect with:" in run(c, t["eng"], "sessions", "show", sid)[1], 5)
        shown = run(c, t["eng"], "sessions", "show", sid)[1]
        assert f"diag-session-{sid} ssh-ed25519 AAAAk" in shown and f"user@{sid}" in shown
        listed = run(c, t["admin"], "sessions", "list")[1]
        assert listed.splitlines()[0].split()[:3] == ["SESSION", "CUSTOMER", "HOST"] and sid in listed
        # diagctl sessions proxy, as OpenSSH runs it: bytes both ways, cut off by a revoke
        proc = subprocess.Popen(
            [sys.executable, "-m", "diagctl.main", "sessions", "proxy", sid],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**python_env(), "DIAG_SERVER": c.base, "DIAG_TOKEN": t["eng"]},
        )
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(b"uname -a\n")
        proc.stdin.flush()
        assert os.read(proc.stdout.fileno(), 100) == b"UNAME -A\n"
        assert run(c, t["admin"], "sessions", "revoke", sid, "--reason", "done") == (0, f"{sid}: revoked\n")
        started = time.monotonic()
        assert proc.wait(timeout=5) == 1
        assert time.monotonic() - started < 1.0, "the proxy must be cut off within 1 s of the revocation"
        assert "revoked" in proc.stderr.read().decode()  # type: ignore[union-attr]
        proc.stdin.close()
        proc.stdout.close()
        # the agent's recording arrives through the spool; replay plays it with its timing
        cast = (
            b'{"version": 2, "width": 80, "height": 24}\n[0.01, "o", "$ uname -a\\r\\n"]\n'
            b'[0.02, "i", "x"]\n[0.03, "o", "Linux db1\\r\\n"]\n'
        )
        chunk = pb.SessionRecordingChunk(
            session_id=sid, index=0, data=cast, last=True, sha256=hashlib.sha256(cast).hexdigest()
        )
        batch = pb.EntryBatch(entries=[pb.Entry(seq=1, ts_unix_ms=int(time.time() * 1000), recording=chunk)])
        with store.engine.connect() as conn:
            token_id = conn.execute(
                sa.text("SELECT id FROM agents WHERE agent_id = 'acme-db1-live'")
            ).scalar_one()
        store.ingest(
            AgentIdentity("acme-db1-live", "acme", "db1", int(token_id)),
            decode(batch, limits=IngestLimits(), after_seq=0),
        )
        assert run(c, t["eng"], "sessions", "replay", sid, "--speed", "100") == (
            0,
            "$ uname -a\r\nLinux db1\r\n",
        )
        saved = Path(t["key"]).with_name("s.cast")
        assert (
            run(c, t["admin"], "sessions", "replay", sid, "-o", str(saved))[0] == 0
            and saved.read_bytes() == cast
        )
        # the audit log verifies, then fails once one byte of it changes in the database
        code, text = run(c, t["eng"], "sessions", "audit", "--verify")
        assert code == 0 and text.splitlines()[1].split() == ["acme", text.splitlines()[1].split()[1], "ok"]
        events = [
            r["event"]
            for r in json.loads(
                run(c, t["admin"], "sessions", "audit", "--session", sid, "--format", "json")[1]
            )
        ]
        assert events[0] == "requested" and {
            "approved",
            "agent_approved",
            "started",
            "revoked",
            "ended",
            "recording_stored",
        } <= set(events)
        with store.engine.begin() as conn:
            detail = conn.execute(
                sa.select(session_audit.c.detail).where(session_audit.c.seq == 2)
            ).scalar_one()
            conn.execute(
                session_audit.update()
                .where(session_audit.c.seq == 2)
                .values(detail=detail[:-1] + chr(ord(detail[-1]) ^ 1))
            )
        code, text = run(c, t["eng"], "sessions", "audit", "--verify")
        assert code == 1 and "BROKEN at seq 2" in text
        assert "row 2" in capsys.readouterr().err
    finally:
        agent.close()
