"""A real ``diag-agent run`` with sessions, against a fake collector on real gRPC loopback.

The collector side of sessions is on another branch (``sess-collector``), so the
collector here is :class:`tests.agent.sessions.fake_collector.FakeCollector` (the
contract's generated classes over real gRPC, and a relay of unix-socket connections into
SessionOpen/SessionData streams). Everything on the agent's side is real: the daemon
process, its grant store and control socket (``diag-agent sessions approve``), paramiko's
SSH server, processes dropped to ``shell_user``, and on the client side a real paramiko
client and Debian's OpenSSH ``ssh`` and ``scp`` through a ProxyCommand.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from protos.diag.v1 import agent_pb2 as pb
from tests.agent.sessions.fake_collector import FakeCollector
from tests.integration.harness import Proc, python_env, spawn, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

AGENT_ID = "agent-sess"
SESSION = "s-0001"
KEEP_CHECKS = ("host.load", "application.agent")


def _shell_user() -> str:
    return "nobody" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name


def _config(tmp: Path, address: str, sessions: str, interval: float = 600) -> Path:
    from checks.registry import all_checks

    disabled = "".join(f"  {name}: {{enabled: false}}\n" for name in all_checks() if name not in KEEP_CHECKS)
    path = tmp / "agent.yaml"
    path.write_text(
        f"agent:\n  id: {AGENT_ID}\n  state_dir: {tmp / 'state'}\n  interval_s: {interval}\n  jitter_s: 0.1\n"
        f"collector:\n  address: {address}\n  token: dga_test\n"
        f"checks:\n{disabled}"
        f"{sessions}"
    )
    path.chmod(0o600)
    return path


def _agent(tmp: Path, config: Path) -> Proc:
    return spawn(["-m", "agent", "run", "--config", str(config), "--log-level", "debug"], tmp / "agent.log")


def _cli(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", "sessions", *args, "--state-dir", str(tmp / "state")],
        capture_output=True,
        text=True,
        env=python_env(),
        timeout=30,
    )


def _keypair(tmp: Path) -> tuple[Path, str]:
    key = tmp / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key, (tmp / "id_ed25519.pub").read_text().strip()


def _grant(public_key: str, mode: str, approval: str = "", minutes: float = 10) -> pb.SessionGrant:
    now = int(time.time() * 1000)
    return pb.SessionGrant(
        session_id=SESSION,
        agent_id=AGENT_ID,
        case_id="case-7",
        engineer="eng@vendor",
        reason="disk full on /var",
        mode=mode,
        engineer_public_key=public_key,
        not_before_unix_ms=now - 1000,
        not_after_unix_ms=now + int(minutes * 60_000),
        approval=approval,
    )


def _status(fake: FakeCollector, state: str, timeout: float = 15) -> pb.SessionStatus:
    assert wait_for(
        lambda: any(s.state == state and not s.stream_id for s in fake.statuses(SESSION)), timeout
    ), [(s.state, s.reason) for s in fake.statuses()]
    return [s for s in fake.statuses(SESSION) if s.state == state and not s.stream_id][-1]


def _paramiko(fake: FakeCollector, key: Path, host_key: str) -> paramiko.Transport:
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(fake.socket_path))
    transport = paramiko.Transport(sock)
    # A loaded CI machine can take longer than paramiko's 15-s defaults to answer the banner.
    transport.banner_timeout = transport.handshake_timeout = transport.auth_timeout = 60.0
    transport.connect(username="whoever", pkey=paramiko.Ed25519Key.from_private_key_file(str(key)))
    served = transport.get_remote_server_key()
    assert f"{served.get_name()} {served.get_base64()}" == host_key  # the key the status pinned
    return transport


def _exec(transport: paramiko.Transport, command: str) -> tuple[int, bytes, bytes]:
    chan = transport.open_session()
    chan.exec_command(command)
    out = chan.makefile("rb").read()
    err = chan.makefile_stderr("rb").read()
    return chan.recv_exit_status(), out, err


def _ssh_options(fake: FakeCollector, key: Path, known_hosts: Path) -> list[str]:
    return [
        "-F", "/dev/null",
        "-o", f"ProxyCommand={sys.executable} {fake.bridge} {fake.socket_path}",
        "-o", f"HostKeyAlias=diag-{SESSION}",
        "-o", f"UserKnownHostsFile={known_hosts}",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes",
        "-o", "IdentitiesOnly=yes",
        "-i", str(key),
    ]  # fmt: skip


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeCollector]:
    f = FakeCollector(tmp_path, SESSION)
    yield f
    f.stop()


def test_shell_session_end_to_end(fake: FakeCollector, tmp_path: Path) -> None:
    if shutil.which("ssh") is None or shutil.which("scp") is None:
        pytest.skip("OpenSSH client not installed (apt-get install openssh-client)")
    key, public = _keypair(tmp_path)
    sessions = (
        "sessions:\n  enabled: true\n  approvals: [host, customer_admin]\n  modes: [diagnostic, shell]\n"
        f"  shell_user: {_shell_user()}\n"
    )
    agent = _agent(tmp_path, _config(tmp_path, fake.address, sessions))
    cleanup: list[Path] = []
    try:
        assert wait_for(lambda: bool(fake.of("hello")) and fake.outbox is not None, 30), agent.output()
        assert list(fake.of("hello")[0].features) == ["sessions"]

        # 1. the grant waits for the host; a stream before approval is refused
        fake.send(session_grant=_grant(public, "shell"))
        waiting = _status(fake, "waiting")
        assert "diag-agent sessions approve s-0001" in waiting.reason
        listed = _cli(tmp_path, "list", "--format", "json")
        assert listed.returncode == 0, listed.stderr
        assert [(s["session_id"], s["state"]) for s in json.loads(listed.stdout)["sessions"]] == [
            (SESSION, "waiting")
        ]

        # 2. approved on the host: the status carries the host key the collector pins
        approved = _cli(tmp_path, "approve", SESSION)
        assert approved.returncode == 0, approved.stderr + approved.stdout
        status = _status(fake, "approved")
        assert status.host_key.startswith("ssh-ed25519 ") and status.host_key_sha256.startswith("SHA256:")
        assert status.approved_by.startswith("host:")
        known_hosts = tmp_path / "known_hosts"
        known_hosts.write_text(f"diag-{SESSION} {status.host_key}\n")
        fingerprint = subprocess.run(
            ["ssh-keygen", "-l", "-f", str(known_hosts)], capture_output=True, text=True, check=True
        ).stdout
        assert status.host_key_sha256 in fingerprint

        # 3. a real paramiko client: exec as shell_user
        transport = _paramiko(fake, key, status.host_key)
        code, out, _ = _exec(transport, "id -un; echo hello-from-$USER")
        assert code == 0 and out.decode().split() == [_shell_user(), f"hello-from-{_shell_user()}"]
        code, _, _ = _exec(transport, "exit 7")
        assert code == 7
        transport.close()

        # 4. OpenSSH's ssh and scp (SFTP and legacy -O) through the ProxyCommand
        opts = _ssh_options(fake, key, known_hosts)
        ran = subprocess.run(
            ["ssh", *opts, f"anyone@{SESSION}", "echo via-openssh; id -un"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.split() == ["via-openssh", _shell_user()]
        # shell_user must reach it: pytest's own tmp directories are root's alone
        drop = Path(tempfile.mkdtemp(prefix="diag-session-drop-"))
        cleanup.append(drop)
        drop.chmod(0o777)
        payload = os.urandom(700_000)
        (tmp_path / "payload.bin").write_bytes(payload)
        for flag, name in (([], "sftp.bin"), (["-O"], "legacy.bin")):
            copied = subprocess.run(
                ["scp", *flag, *opts, str(tmp_path / "payload.bin"), f"anyone@{SESSION}:{drop / name}"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert copied.returncode == 0, (flag, copied.stderr)
            assert (drop / name).read_bytes() == payload
            assert (drop / name).stat().st_uid == pwd.getpwnam(_shell_user()).pw_uid  # written as shell_user
        back = subprocess.run(
            ["scp", *opts, f"anyone@{SESSION}:{drop / 'sftp.bin'}", str(tmp_path / "back.bin")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert back.returncode == 0, back.stderr
        assert (tmp_path / "back.bin").read_bytes() == payload
        if os.geteuid() == 0:  # SFTP writes as shell_user: root's files stay out of reach
            denied = subprocess.run(
                ["scp", *opts, str(tmp_path / "payload.bin"), f"anyone@{SESSION}:/root/nope.bin"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert denied.returncode != 0 and not Path("/root/nope.bin").exists()

        # 5. a long-running command, then revocation: cut off within 1 s, its process gone
        transport = _paramiko(fake, key, status.host_key)
        chan = transport.open_session()
        chan.exec_command("echo $$; exec sleep 120")
        pid = int(chan.makefile("rb").readline())
        assert Path(f"/proc/{pid}").exists()
        fake.send(session_revoke=pb.SessionRevoke(session_id=SESSION, reason="case closed"))
        assert wait_for(lambda: not transport.is_active() or chan.closed or bool(chan.eof_received), 1.0)
        assert wait_for(lambda: not Path(f"/proc/{pid}").exists(), 5.0)
        revoked = _status(fake, "revoked")
        assert revoked.reason == "case closed"
        closes = fake.of("session_close")
        assert closes and all(c.reason for c in closes)

        # 6. after revocation a new connection is refused, even if the collector re-sends the grant
        fake.send(session_grant=_grant(public, "shell", approval="customer_admin"))
        assert wait_for(lambda: [s.state for s in fake.statuses(SESSION)][-1] == "revoked", 10)
        assert _cli(tmp_path, "list", "--format", "json").returncode == 0

        # 7. the recording: spooled chunks, in order, last one with the sha256; asciicast v2
        assert wait_for(lambda: any(c.last for c in fake.entries("recording")), 15), agent.output()
        chunks = sorted(fake.entries("recording"), key=lambda c: c.index)
        assert [c.index for c in chunks] == list(range(len(chunks)))
        cast = b"".join(c.data for c in chunks)
        assert chunks[-1].sha256 == hashlib.sha256(cast).hexdigest()
        lines = cast.decode().rstrip("\n").split("\n")
        header = json.loads(lines[0])
        assert header["version"] == 2 and header["width"] > 0 and header["height"] > 0 and header["timestamp"]
        events = [json.loads(line) for line in lines[1:]]
        assert all(isinstance(t, float | int) and kind in ("o", "i") for t, kind, _ in events)
        assert [e[0] for e in events] == sorted(e[0] for e in events)
        text = "".join(e[2] for e in events)
        assert f"hello-from-{_shell_user()}" in text and "via-openssh" in text and "[sftp] open" in text
        events_spooled = [(e.event, e.actor) for e in fake.entries("session_event")]
        assert ("approved", f"host:{pwd.getpwuid(os.geteuid()).pw_name}") in events_spooled
        assert {"started", "ended", "revoked", "exec"} <= {e for e, _ in events_spooled}
        assert fake.entries("result")  # results kept flowing
    finally:
        code = agent.terminate()
        for path in cleanup:
            shutil.rmtree(path, ignore_errors=True)
    assert code == 0, agent.output()


def test_diagnostic_mode_runs_the_allowlist_only(fake: FakeCollector, tmp_path: Path) -> None:
    key, public = _keypair(tmp_path)
    sessions = f"sessions:\n  enabled: true\n  approvals: [customer_admin]\n  shell_user: {_shell_user()}\n"
    agent = _agent(tmp_path, _config(tmp_path, fake.address, sessions))
    try:
        assert wait_for(lambda: fake.outbox is not None, 30), agent.output()
        fake.send(session_grant=_grant(public, "shell", approval="customer_admin"))
        refused = _status(fake, "refused")
        assert refused.reason.startswith("mode shell is not allowed")
        fake.send(session_grant=_grant(public, "diagnostic", approval="customer_admin"))
        status = _status(fake, "approved")
        transport = _paramiko(fake, key, status.host_key)
        code, out, _ = _exec(transport, "uptime")
        assert code == 0 and b"load average" in out
        code, _, err = _exec(transport, "rm -rf /tmp/x")
        assert code == 126 and b"command 'rm' is not allowed in diagnostic mode" in err
        code, _, err = _exec(transport, "df -h; id")
        assert code == 126 and b"refused" in err
        chan = transport.open_session()
        with pytest.raises(paramiko.SSHException):
            chan.invoke_subsystem("sftp")
        chan = transport.open_session()
        with pytest.raises(paramiko.SSHException):
            chan.get_pty()
        transport.close()
        # a wrong key never gets in
        (tmp_path / "other").mkdir()
        other, _ = _keypair(tmp_path / "other")
        with pytest.raises(paramiko.AuthenticationException):
            _paramiko(fake, other, status.host_key)
        # expiry ends the session's connections by itself
        fake.session_id = "s-expiring"
        short = _grant(public, "diagnostic", approval="customer_admin", minutes=3 / 60)
        short.session_id = "s-expiring"
        fake.send(session_grant=short)
        assert wait_for(lambda: any(s.state == "approved" for s in fake.statuses("s-expiring")), 10)
        transport = _paramiko(fake, key, status.host_key)
        assert transport.is_active()
        expires_in = short.not_after_unix_ms / 1000 - time.time()
        assert wait_for(lambda: not transport.is_active(), expires_in + 1.0)
        ended = [s for s in fake.statuses("s-expiring") if s.state == "ended" and not s.stream_id]
        assert ended and ended[-1].reason == "expired"
    finally:
        code = agent.terminate()
    assert code == 0, agent.output()


def test_sessions_disabled_agent_refuses_everything(fake: FakeCollector, tmp_path: Path) -> None:
    _, public = _keypair(tmp_path)
    config = _config(tmp_path, fake.address, "", interval=2)
    agent = _agent(tmp_path, config)
    try:
        assert wait_for(lambda: fake.outbox is not None, 30), agent.output()
        assert list(fake.of("hello")[0].features) == []  # the collector must not offer sessions
        fake.send(session_grant=_grant(public, "diagnostic", approval="customer_admin"))
        refused = _status(fake, "refused")
        assert refused.reason == f"sessions are disabled in {config}"
        assert not refused.host_key
        fake.send(session_open=pb.SessionOpen(session_id=SESSION, stream_id=41, window_bytes=1024))
        fake.send(session_data=pb.SessionData(stream_id=42, data=b"SSH-2.0-x\r\n"))
        assert wait_for(lambda: {c.stream_id for c in fake.of("session_close")} == {41, 42}, 10)
        per_stream = {s.stream_id: s for s in fake.statuses() if s.stream_id}
        assert per_stream[41].state == per_stream[42].state == "refused"
        assert not (tmp_path / "state" / "sessions").exists()  # no grant store, no host key, no socket
        assert _cli(tmp_path, "list").returncode == 1
        # the refusal reaches the audit log once, through the spool
        assert wait_for(lambda: len(fake.entries("session_event")) == 1, 15)
        event = fake.entries("session_event")[0]
        assert (event.session_id, event.event) == (SESSION, "refused")
        results = len(fake.entries("result"))
        assert wait_for(lambda: len(fake.entries("result")) > results, 15)  # results keep flowing
    finally:
        code = agent.terminate()
    assert code == 0, agent.output()


def test_a_flood_of_bad_session_frames_leaves_results_flowing(fake: FakeCollector, tmp_path: Path) -> None:
    key, public = _keypair(tmp_path)
    sessions = f"sessions:\n  enabled: true\n  approvals: [customer_admin]\n  shell_user: {_shell_user()}\n"
    agent = _agent(tmp_path, _config(tmp_path, fake.address, sessions, interval=2))
    try:
        assert wait_for(lambda: fake.outbox is not None and len(fake.entries("result")) >= 2, 30), (
            agent.output()
        )
        before = len(fake.entries("result"))
        for i in range(1500):
            fake.send(session_data=pb.SessionData(stream_id=7, data=b"x" * (33 * 1024)))  # oversized
            fake.send(session_grant=pb.SessionGrant(session_id="bad\x00id", agent_id=AGENT_ID))  # malformed
            fake.send(session_data=pb.SessionData(stream_id=1000 + i % 3, data=b"?"))  # no such stream
        # batches and acks went on, and the agent still answers a real grant
        assert wait_for(lambda: len(fake.entries("result")) >= before + 4, 30), agent.output()
        fake.send(session_grant=_grant(public, "diagnostic", approval="customer_admin"))
        status = _status(fake, "approved")
        transport = _paramiko(fake, key, status.host_key)
        assert _exec(transport, "uptime")[0] == 0
        transport.close()
        listed = _cli(tmp_path, "list", "--format", "json")
        dropped = json.loads(listed.stdout)["dropped"]
        assert (
            dropped["oversized"] == 1500
            and dropped["malformed"] == 1500
            and dropped["unknown_stream"] == 1500
        )
        refusals = [s for s in fake.statuses() if s.stream_id in (1000, 1001, 1002)]
        assert len(refusals) == 3  # each unknown stream answered once, not 1500 times
    finally:
        code = agent.terminate()
    assert code == 0, agent.output()
