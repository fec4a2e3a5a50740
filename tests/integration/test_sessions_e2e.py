"""Remote sessions end to end, every part real: ``diag-collector serve`` (SQLite), two
``diag-agent run`` processes (``web1`` with sessions enabled in shell mode, running as
``nobody`` when the test runs as root; ``web2`` with sessions left disabled), ``diagctl``
for the engineer and the customer's admin, and Debian's OpenSSH ``ssh``/``scp`` through
``ProxyCommand='diagctl sessions proxy %h'`` with the pinned host key in a known_hosts
file (StrictHostKeyChecking=yes). Nothing is mocked.

The refusals run against the same processes: no approval, denied, expired, a wrong key,
a session of a host whose agent is not connected, an agent with sessions disabled, and
another customer's admin approving.
"""

from __future__ import annotations

import io
import json
import os
import pty
import pwd
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from checks.registry import all_checks
from collector.emergency.case_content import case_content
from collector.incidents import IncidentEngine, Signal
from collector.store.cases import CaseRepo
from collector.store.schema_sessions import session_audit, sessions
from collector.store.store import Store
from diagctl.main import main as diagctl
from tests.integration.harness import Proc, python_env, serve_collector, spawn, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

BIN = Path(sys.executable).parent


def _shell_user() -> str:
    return "nobody" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name


def _need_openssh() -> None:
    for tool in ("ssh", "scp", "ssh-keygen"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt-get install openssh-client)")
    if not (BIN / "diagctl").exists():
        pytest.skip(f"no diagctl entry point next to {sys.executable} (pip install -e '.[dev]')")


@dataclass
class Stack:
    tmp: Path
    store: Store
    server: str
    collector: Proc
    web1: Proc
    web2: Proc
    engineer: str
    other_engineer: str
    admin: str
    other_admin: str
    viewer: str
    case1: str
    case2: str
    key: Path
    public: str

    def ctl(self, token: str, *args: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        old = sys.stderr
        sys.stderr = err
        try:
            code = diagctl(["--server", self.server, "--token", token, *args], out=out)
        finally:
            sys.stderr = old
        return code, out.getvalue(), err.getvalue()

    def json(self, token: str, *args: str) -> Any:
        code, out, err = self.ctl(token, *args, "--format", "json")
        assert code == 0, (args, err, out)
        return json.loads(out)

    def show(self, session_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self.json(self.engineer, "sessions", "show", session_id)
        return data

    def request(self, host: str = "web1", case: str | None = None, key: Path | None = None) -> str:
        data = self.json(
            self.engineer,
            "sessions", "request", "--host", host, "--case", case or self.case1, "--duration", "30m",
            "--reason", "disk full on /var", "--mode", "shell", "--key", str(key or self.key) + ".pub",
        )  # fmt: skip
        assert data["state"] == "requested"
        return str(data["id"])

    def env(self, token: str) -> dict[str, str]:
        env = python_env()
        env.update(DIAG_SERVER=self.server, DIAG_TOKEN=token, PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
        return env

    def known_hosts(self, session: dict[str, Any]) -> Path:
        path = self.tmp / f"known_hosts-{session['id']}"
        path.write_text(session["known_hosts_line"] + "\n")
        return path

    def ssh_opts(self, session: dict[str, Any], key: Path | None = None) -> list[str]:
        """The options of the ssh command ``diagctl sessions show`` prints, plus the test's key."""
        command = session["ssh_command"]
        assert command.startswith("ssh -o ProxyCommand='diagctl sessions proxy %h' ")
        alias = f"diag-session-{session['id']}"
        assert f"-o HostKeyAlias={alias} " in command
        assert session["known_hosts_line"].startswith(f"{alias} ssh-ed25519 ")
        return [
            "-F", "/dev/null",
            "-o", "ProxyCommand=diagctl sessions proxy %h",
            "-o", f"HostKeyAlias={alias}",
            "-o", f"UserKnownHostsFile={self.known_hosts(session)}",
            "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes",
            "-o", "IdentitiesOnly=yes",
            "-i", str(key or self.key),
        ]  # fmt: skip

    def ssh(
        self, session: dict[str, Any], *command: str, key: Path | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ssh", *self.ssh_opts(session, key), f"anyone@{session['id']}", *command],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(self.engineer),
        )

    def audit_events(self, session_id: str) -> list[str]:
        rows = self.json(self.engineer, "sessions", "audit", "--session", session_id)
        return [str(r["event"]) for r in rows]


def _in_a_terminal(argv: list[str], timeout: float = 60) -> tuple[int, str]:
    """Run ``argv`` with a pseudo-terminal as its controlling tty (asciinema opens /dev/tty)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if not ready:
            continue
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    else:
        os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode(errors="replace")


def _keypair(directory: Path, name: str = "id_ed25519") -> tuple[Path, str]:
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key, key.with_suffix(".pub").read_text().strip()


def _open_case(store: Store, customer: str, host: str) -> str:
    at = time.time()
    (incident,) = IncidentEngine(clock=lambda: at).feed(
        Signal.check_crit(customer, host, "storage.filesystem", "FS_FULL", ts=at, item="/var")
    )
    return CaseRepo(store).open_case(case_content(incident), now=at)


def _agent_config(tmp: Path, name: str, grpc: str, token: str, sessions: dict[str, Any] | None) -> Path:
    only = {n: {"enabled": False} for n, check in all_checks().items() if check.default_enabled}
    only["host.uptime"] = {"enabled": True}
    cfg: dict[str, Any] = {
        "agent": {"id": name, "customer": "acme", "interval_s": 5, "state_dir": str(tmp / name)},
        "collector": {"address": grpc, "token": token},
        "checks": only,
    }
    if sessions is not None:
        cfg["sessions"] = sessions
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    _need_openssh()
    tmp = tmp_path_factory.mktemp("sessions-e2e")
    url = f"sqlite:///{tmp / 'c.db'}"
    store = Store.open(url)
    _, token1 = store.enroll_agent("acme", "web1", "web1")
    _, token2 = store.enroll_agent("acme", "web2", "web2")
    store.enroll_agent("globex", "db1", "db1")
    engineer = store.create_api_token("eng@vendor", "engineer")
    other_engineer = store.create_api_token("colleague@vendor", "engineer")
    admin = store.create_api_token("admin@acme", "customer_admin", "acme")
    other_admin = store.create_api_token("admin@globex", "customer_admin", "globex")
    viewer = store.create_api_token("viewer@acme", "viewer", "acme")
    case1, case2 = _open_case(store, "acme", "web1"), _open_case(store, "acme", "web2")
    key, public = _keypair(tmp / "engineer")
    collector, grpc_addr, server = serve_collector(tmp, url)
    agents: list[Proc] = []
    try:
        assert wait_for(lambda: "Ctrl-C stops" in collector.output(), 60), collector.output()
        enabled = {
            "enabled": True,
            "approvals": ["customer_admin", "host"],
            "modes": ["diagnostic", "shell"],
            "shell_user": _shell_user(),
        }
        for name, token, sess in (("web1", token1, enabled), ("web2", token2, None)):
            cfg = _agent_config(tmp, name, grpc_addr, token, sess)
            agents.append(
                spawn(
                    ["-m", "agent.cli", "run", "--config", str(cfg), "--log-level", "debug"],
                    tmp / f"{name}.log",
                )
            )
        s = Stack(
            tmp, store, server, collector, agents[0], agents[1],
            engineer, other_engineer, admin, other_admin, viewer, case1, case2, key, public,
        )  # fmt: skip
        yield s
    finally:
        for agent in agents:
            agent.terminate()
        collector.terminate()
        store.close()


def _wait_agent_state(stack: Stack, session_id: str, state: str, timeout: float = 30) -> dict[str, Any]:
    seen: list[Any] = []

    def check() -> bool:
        s = stack.show(session_id)
        seen.append((s["state"], s["agent_state"], s["agent_reason"]))
        return bool(s["agent_state"] == state)

    assert wait_for(check, timeout, interval=0.2), (seen[-3:], stack.web1.output()[-3000:])
    return stack.show(session_id)


def test_request_approve_ssh_scp_revoke_replay_and_audit(stack: Stack) -> None:
    sid = stack.request()
    waiting = _wait_agent_state(stack, sid, "waiting")
    assert waiting["connectable"] is False and waiting["ssh_command"] is None

    # the customer's admin approves; the agent answers with the host key the collector pins
    code, out, err = stack.ctl(stack.admin, "sessions", "approve", sid)
    assert code == 0, err
    approved = _wait_agent_state(stack, sid, "approved")
    assert approved["state"] == "approved" and approved["approved_by"] == "admin@acme"
    assert approved["connectable"] is True
    assert approved["host_key_sha256"].startswith("SHA256:")
    code, text, _ = stack.ctl(stack.engineer, "sessions", "show", sid)
    assert approved["ssh_command"] in text and approved["known_hosts_line"] in text

    # a command through stock ssh, as shell_user
    ran = stack.ssh(approved, "echo hello-from-$(id -un)")
    assert ran.returncode == 0, ran.stderr + stack.web1.output()[-2000:]
    assert ran.stdout.strip() == f"hello-from-{_shell_user()}"

    # scp both ways (SFTP, OpenSSH 9's default); shell_user must reach the directory
    drop = Path(tempfile.mkdtemp(prefix="diag-e2e-drop-"))
    try:
        drop.chmod(0o777)
        payload = os.urandom(300_000)
        (stack.tmp / "up.bin").write_bytes(payload)
        opts = stack.ssh_opts(approved)
        env = stack.env(stack.engineer)
        up = subprocess.run(
            ["scp", *opts, str(stack.tmp / "up.bin"), f"anyone@{sid}:{drop / 'up.bin'}"],
            capture_output=True, text=True, timeout=60, env=env,
        )  # fmt: skip
        assert up.returncode == 0, up.stderr
        assert (drop / "up.bin").read_bytes() == payload
        assert (drop / "up.bin").stat().st_uid == pwd.getpwnam(_shell_user()).pw_uid
        down = subprocess.run(
            ["scp", *opts, f"anyone@{sid}:{drop / 'up.bin'}", str(stack.tmp / "down.bin")],
            capture_output=True, text=True, timeout=60, env=env,
        )  # fmt: skip
        assert down.returncode == 0, down.stderr
        assert (stack.tmp / "down.bin").read_bytes() == payload
    finally:
        shutil.rmtree(drop, ignore_errors=True)

    # revoke mid-session: the running ssh client exits within a second
    long = subprocess.Popen(
        ["ssh", *stack.ssh_opts(approved), f"anyone@{sid}", "echo started; exec sleep 60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=stack.env(stack.engineer),
    )  # fmt: skip
    try:
        assert long.stdout is not None
        assert long.stdout.readline().strip() == b"started"
        code, out, err = stack.ctl(stack.engineer, "sessions", "revoke", sid, "--reason", "case closed")
        assert code == 0, err
        revoked_at = time.monotonic()
        long.wait(5)
        assert time.monotonic() - revoked_at < 1.0
        assert long.returncode != 0
    finally:
        if long.poll() is None:
            long.kill()
            long.wait()
    after = stack.show(sid)
    assert after["state"] == "revoked" and after["connectable"] is False
    # and nothing connects any more
    again = stack.ssh(after, "true", timeout=30) if after["ssh_command"] else None
    assert again is not None and again.returncode != 0
    assert "revoked" in again.stderr

    # the recording arrives through the spool, replays, and is asciicast v2
    def recording() -> bool:
        code, _, _ = stack.ctl(stack.engineer, "sessions", "replay", sid, "-o", str(stack.tmp / "s.cast"))
        return code == 0

    assert wait_for(recording, 30, interval=0.5), stack.web1.output()[-3000:]
    lines = (stack.tmp / "s.cast").read_text().splitlines()
    header = json.loads(lines[0])
    assert header["version"] == 2 and header["width"] > 0 and header["height"] > 0
    events = [json.loads(line) for line in lines[1:]]
    assert all(isinstance(t, int | float) and kind in ("o", "i") for t, kind, _ in events)
    assert f"hello-from-{_shell_user()}" in "".join(e[2] for e in events)
    code, played, err = stack.ctl(stack.engineer, "sessions", "replay", sid, "--speed", "1000")
    assert code == 0, err
    assert f"hello-from-{_shell_user()}" in played
    if shutil.which("asciinema"):
        code, printed = _in_a_terminal(["asciinema", "cat", str(stack.tmp / "s.cast")])
        assert code == 0, printed
        assert f"hello-from-{_shell_user()}" in printed
        code, printed = _in_a_terminal(
            ["asciinema", "play", "-s", "100", "-i", "0.1", str(stack.tmp / "s.cast")]
        )
        assert code == 0, printed
        assert f"hello-from-{_shell_user()}" in printed
    elif os.environ.get("DIAG_FAIL_ON_SKIP"):
        pytest.fail("asciinema is not installed (apt-get install asciinema)")

    # the audit log: the whole story, verified; then one byte changed in the DB breaks it
    events_seen = stack.audit_events(sid)
    for event in (
        "requested",
        "approved",
        "agent_approved",
        "started",
        "ended",
        "revoked",
        "agent_revoked",
        "recording_stored",
    ):
        assert event in events_seen, (event, sorted(set(events_seen)))
    code, out, err = stack.ctl(stack.engineer, "sessions", "audit", "--verify")
    assert code == 0, err
    assert "BROKEN" not in out and "acme" in out
    with stack.store.engine.begin() as conn:
        row = conn.execute(
            sa.select(session_audit.c.customer_id, session_audit.c.seq, session_audit.c.detail).where(
                session_audit.c.session_id == sid, session_audit.c.event == "requested"
            )
        ).one()
        changed = row.detail.replace("disk", "dusk", 1)
        assert len(changed) == len(row.detail) and changed != row.detail
        conn.execute(
            session_audit.update()
            .where(session_audit.c.customer_id == row.customer_id, session_audit.c.seq == row.seq)
            .values(detail=changed)
        )
    try:
        code, out, err = stack.ctl(stack.engineer, "sessions", "audit", "--verify")
        assert code != 0
        assert f"BROKEN at seq {row.seq}" in out
        assert f"row {row.seq}" in err and "acme" in err
    finally:
        with stack.store.engine.begin() as conn:
            conn.execute(
                session_audit.update()
                .where(session_audit.c.customer_id == row.customer_id, session_audit.c.seq == row.seq)
                .values(detail=row.detail)
            )


def test_host_approval_and_the_paramiko_client(stack: Stack) -> None:
    sid = stack.request()
    _wait_agent_state(stack, sid, "waiting")
    approve = subprocess.run(
        [sys.executable, "-m", "agent.cli", "sessions", "approve", sid,
         "--state-dir", str(stack.tmp / "web1")],
        capture_output=True, text=True, timeout=30, env=python_env(),
    )  # fmt: skip
    assert approve.returncode == 0, approve.stdout + approve.stderr
    approved = _wait_agent_state(stack, sid, "approved")
    assert approved["state"] == "approved" and approved["approval"] == "host"
    assert approved["approved_by"].startswith("host:")
    ran = subprocess.run(
        [str(BIN / "diagctl"), "sessions", "ssh", "-i", str(stack.key), sid, "--", "echo", "via-paramiko"],
        capture_output=True, text=True, timeout=60, env=stack.env(stack.engineer), stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "via-paramiko"
    failed = subprocess.run(
        [str(BIN / "diagctl"), "sessions", "ssh", "-i", str(stack.key), sid, "--", "exit", "3"],
        capture_output=True, text=True, timeout=60, env=stack.env(stack.engineer), stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert failed.returncode != 0 and "status 3" in failed.stderr
    assert "agent_approved" in stack.audit_events(sid)
    stack.ctl(stack.engineer, "sessions", "revoke", sid)


def _proxy(stack: Stack, session_id: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    """``diagctl sessions proxy`` as ssh runs it: stdin stays open until the collector answers."""
    proc = subprocess.Popen(
        [str(BIN / "diagctl"), "sessions", "proxy", session_id],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=stack.env(token or stack.engineer),
    )  # fmt: skip
    try:
        code = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdin.close()
    return subprocess.CompletedProcess(proc.args, code, proc.stdout.read(), proc.stderr.read())


def test_refusals(stack: Stack) -> None:
    # no approval yet: the proxy refuses, saying why
    sid = stack.request()
    waiting = _wait_agent_state(stack, sid, "waiting")
    proxy = _proxy(stack, sid)
    assert proxy.returncode != 0 and "4409" in proxy.stderr and "waiting" in proxy.stderr, proxy.stderr
    assert "refused" in stack.audit_events(sid)

    # another customer's admin cannot even see it; a viewer and the engineer cannot approve
    code, _, err = stack.ctl(stack.other_admin, "sessions", "approve", sid)
    assert code != 0 and "no session" in err, err
    code, _, err = stack.ctl(stack.viewer, "sessions", "approve", sid)
    assert code != 0 and "customer_admin" in err, err
    code, _, err = stack.ctl(stack.engineer, "sessions", "approve", sid)
    assert code != 0 and "customer_admin" in err, err
    assert stack.show(sid)["state"] == "requested"

    # denied: the agent learns it, nothing connects
    code, _, err = stack.ctl(stack.admin, "sessions", "deny", sid, "--reason", "not today")
    assert code == 0, err
    denied = stack.show(sid)
    assert denied["state"] == "denied" and denied["connectable"] is False
    proxy = _proxy(stack, sid)
    assert proxy.returncode != 0 and "denied" in proxy.stderr, proxy.stderr
    del waiting

    # a wrong key: the agent authenticates only the key of the request
    sid = stack.request()
    assert stack.ctl(stack.admin, "sessions", "approve", sid)[0] == 0
    approved = _wait_agent_state(stack, sid, "approved")
    # only the engineer who requested it may connect: not a colleague, not the customer's people
    for token, code_text in ((stack.other_engineer, "4403"), (stack.admin, "4403"), (stack.viewer, "4403")):
        refused = _proxy(stack, sid, token)
        assert refused.returncode != 0 and code_text in refused.stderr, refused.stderr
        assert "eng@vendor, who requested" in refused.stderr
    other, _ = _keypair(stack.tmp / "intruder")
    wrong = stack.ssh(approved, "true", key=other)
    assert wrong.returncode == 255 and "Permission denied" in wrong.stderr, wrong.stderr
    # a host key that is not the pinned one: stock ssh refuses (StrictHostKeyChecking=yes)
    bogus = dict(approved)
    _, fake_host = _keypair(stack.tmp / "bogus-host")
    bogus["known_hosts_line"] = f"diag-session-{sid} {' '.join(fake_host.split()[:2])}"
    mismatch = stack.ssh(bogus, "true")
    assert mismatch.returncode == 255 and "HOST IDENTIFICATION HAS CHANGED" in mismatch.stderr

    # expired: the collector's expiry ends it, and connecting is refused
    with stack.store.engine.begin() as conn:
        conn.execute(sessions.update().where(sessions.c.id == sid).values(not_after=time.time() - 1))
    assert wait_for(lambda: stack.show(sid)["state"] == "expired", 10), stack.show(sid)
    late = stack.ssh(approved, "true", timeout=30)
    assert late.returncode == 255 and "expired" in late.stderr, late.stderr

    # sessions disabled on web2's agent: its Hello does not offer them, so the collector sends
    # no grant and refuses to connect, saying why (the agent refusing grants and frames
    # whatever a collector says is tests/agent/sessions/test_daemon.py's, on real gRPC)
    sid2 = stack.request(host="web2", case=stack.case2)
    assert stack.ctl(stack.admin, "sessions", "approve", sid2)[0] == 0
    assert stack.show(sid2)["connectable"] is False
    proxy = _proxy(stack, sid2)
    assert proxy.returncode != 0 and "does not accept sessions" in proxy.stderr, proxy.stderr

    # a host of another customer cannot be reached through this customer's case
    code, _, err = stack.ctl(
        stack.engineer, "sessions", "request", "--host", "db1", "--case", stack.case1, "--duration", "30m",
        "--reason", "look at db1", "--key", str(stack.key) + ".pub",
    )  # fmt: skip
    assert code != 0 and "no host 'db1'" in err, err
