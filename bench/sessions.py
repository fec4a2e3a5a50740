"""Remote sessions through the relay against a direct ``ssh`` to a local sshd, in one run.

Starts what a real deployment runs, on loopback: ``diag-collector serve`` (a temporary
SQLite store), ``diag-agent run`` with sessions enabled (shell mode), a session requested
and approved through the API; and, for the comparison, Debian's ``sshd`` on a free high
port with its own config and host key (no systemd). Both paths use the same OpenSSH
client; the relay path goes through ``ProxyCommand='diagctl sessions proxy %h'``.

Measured (printed as one JSON object):

- ``keystroke_rtt_ms``: one byte written to ``ssh ... cat`` and its echo read back,
  ``--keystrokes`` times, p50 and p99, relay and direct, and their ratio;
- ``scp``: a ``--mb`` MB file copied up with ``scp`` (SFTP), MB/s relay and direct, ratio;
- ``agent_rss_mb``: the agent's RSS (all default checks, run from the source tree) with
  sessions enabled and no grant (``no_grant``: paramiko not loaded), with an approved grant
  and no connection (``grant_idle``: paramiko and the host key loaded), and the largest
  sample while the keystroke and scp runs go through it (``session``). The RSS budget
  itself is measured by ``bench/agent_rss.py --modes sessions-idle`` (packaged, tuned env).

Usage: ``python bench/sessions.py [--keystrokes 300] [--mb 100]`` (as root or as a user who
may run sshd; needs openssh-client and openssh-server).
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.integration.harness import free_port, python_env, serve_collector, spawn, wait_for  # noqa: E402

BIN = Path(sys.executable).parent


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class _Sampler:
    """The largest RSS of ``pid`` while running."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, _rss_mb(self.pid))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return round(self.peak, 1)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def keystrokes(ssh: list[str], n: int, env: dict[str, str]) -> list[float]:
    """Round trips (ms) of one byte through ``ssh ... cat``."""
    proc = subprocess.Popen([*ssh, "cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, bufsize=0)
    assert proc.stdin is not None and proc.stdout is not None
    out = proc.stdout.fileno()
    times: list[float] = []
    try:
        for i in range(n + 5):
            start = time.perf_counter()
            proc.stdin.write(b"k")
            ready, _, _ = select.select([out], [], [], 10)
            if not ready or os.read(out, 1) != b"k":
                raise RuntimeError("no echo within 10 s")
            if i >= 5:  # the first few warm up the channel
                times.append((time.perf_counter() - start) * 1000)
    finally:
        proc.stdin.close()
        proc.wait(10)
    return times


def scp_rate(scp: list[str], source: Path, target: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([*scp, str(source), target], check=True, env=env, capture_output=True, timeout=900)
    return source.stat().st_size / (1024 * 1024) / (time.perf_counter() - start)


def _sshd(tmp: Path, public_key: str) -> tuple[subprocess.Popen[bytes], int, Path]:
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if not Path(sshd).exists():
        raise SystemExit("sshd is not installed (apt-get install openssh-server)")
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory
    host_key = tmp / "sshd_host_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)
    authorized = tmp / "authorized_keys"
    authorized.write_text(public_key + "\n")
    authorized.chmod(0o600)
    port = free_port()
    config = tmp / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nAuthorizedKeysFile {authorized}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        f"PermitRootLogin prohibit-password\nPidFile {tmp / 'sshd.pid'}\nSubsystem sftp internal-sftp\n"
    )
    proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stderr=subprocess.DEVNULL)
    known = tmp / "known_hosts_direct"
    known.write_text(f"[127.0.0.1]:{port} {(tmp / 'sshd_host_ed25519.pub').read_text().split(' ', 2)[0]} "
                     f"{(tmp / 'sshd_host_ed25519.pub').read_text().split()[1]}\n")  # fmt: skip
    return proc, port, known


def _api(server: str, token: str, method: str, path: str, body: Any = None) -> Any:
    import httpx

    r = httpx.request(
        method, server + path, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    r.raise_for_status()
    return r.json()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keystrokes", type=int, default=300)
    parser.add_argument("--mb", type=int, default=100)
    args = parser.parse_args(argv)
    for tool in ("ssh", "scp", "ssh-keygen"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (apt-get install openssh-client)")

    from collector.emergency.case_content import case_content
    from collector.incidents import IncidentEngine, Signal
    from collector.store.cases import CaseRepo
    from collector.store.store import Store

    tmp = Path(tempfile.mkdtemp(prefix="bench-sessions-"))
    procs: list[Any] = []
    try:
        key = tmp / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        public = key.with_suffix(".pub").read_text().strip()
        url = f"sqlite:///{tmp / 'c.db'}"
        store = Store.open(url)
        _, agent_token = store.enroll_agent("acme", "web1", "web1")
        engineer = store.create_api_token("eng@vendor", "engineer")
        admin = store.create_api_token("admin@acme", "customer_admin", "acme")
        at = time.time()
        (incident,) = IncidentEngine(clock=lambda: at).feed(
            Signal.check_crit("acme", "web1", "storage.filesystem", "FS_FULL", ts=at, item="/var")
        )
        case = CaseRepo(store).open_case(case_content(incident), now=at)
        store.close()
        collector, grpc_addr, server = serve_collector(tmp, url)
        procs.append(collector)
        if not wait_for(lambda: "Ctrl-C stops" in collector.output(), 60):
            raise SystemExit(collector.output())
        user = "nobody" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        (tmp / "agent.yaml").write_text(
            f"agent: {{id: web1, customer: acme, state_dir: {tmp / 'agent'}}}\n"
            f"collector: {{address: '{grpc_addr}', token: {agent_token}}}\n"
            "sessions: {enabled: true, approvals: [customer_admin], modes: [diagnostic, shell], "
            f"shell_user: {user}}}\n"
        )
        (tmp / "agent.yaml").chmod(0o600)
        agent = spawn(["-m", "agent.cli", "run", "--config", str(tmp / "agent.yaml")], tmp / "agent.log")
        procs.append(agent)
        body = {"host": "web1", "case": case, "reason": "bench", "mode": "shell", "public_key": public,
                "duration_s": 3600}  # fmt: skip
        time.sleep(3)  # the agent connects (a grant requested before reaches it on connect too)
        no_grant_rss = round(_rss_mb(agent.popen.pid), 1)
        sid = _api(server, engineer, "POST", "/api/v1/sessions", body)["id"]
        _api(server, admin, "POST", f"/api/v1/sessions/{sid}/approve")
        if not wait_for(lambda: _api(server, engineer, "GET", f"/api/v1/sessions/{sid}")["connectable"], 30):
            raise SystemExit(agent.output())
        session = _api(server, engineer, "GET", f"/api/v1/sessions/{sid}")
        time.sleep(2)
        idle_rss = round(_rss_mb(agent.popen.pid), 1)

        known = tmp / "known_hosts_relay"
        known.write_text(session["known_hosts_line"] + "\n")
        common = ["-F", "/dev/null", "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
                  "-o", "IdentitiesOnly=yes", "-i", str(key)]  # fmt: skip
        relay = [*common, "-o", "ProxyCommand=diagctl sessions proxy %h",
                 "-o", f"HostKeyAlias=diag-session-{sid}", "-o", f"UserKnownHostsFile={known}"]  # fmt: skip
        env = python_env()
        env.update(DIAG_SERVER=server, DIAG_TOKEN=engineer, PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")

        sshd, port, direct_known = _sshd(tmp, public)
        procs.append(sshd)
        direct = [*common, "-o", f"UserKnownHostsFile={direct_known}"]
        me = pwd.getpwuid(os.geteuid()).pw_name
        if not wait_for(
            lambda: subprocess.run(["ssh", *direct, "-p", str(port), f"{me}@127.0.0.1", "true"],
                                   capture_output=True).returncode == 0, 20):  # fmt: skip
            raise SystemExit("the local sshd did not accept the key")

        payload = tmp / "payload.bin"
        with payload.open("wb") as f:
            for _ in range(args.mb):
                f.write(os.urandom(1024 * 1024))
        drop = Path(tempfile.mkdtemp(prefix="bench-sessions-drop-"))
        drop.chmod(0o777)

        sampler = _Sampler(agent.popen.pid)
        relay_rtt = keystrokes(["ssh", "-T", *relay, f"anyone@{sid}"], args.keystrokes, env)
        relay_rate = scp_rate(["scp", *relay], payload, f"anyone@{sid}:{drop / 'relay.bin'}", env)
        session_rss = sampler.stop()
        direct_rtt = keystrokes(
            ["ssh", "-T", *direct, "-p", str(port), f"{me}@127.0.0.1"], args.keystrokes, env
        )
        direct_rate = scp_rate(
            ["scp", *direct, "-P", str(port)], payload, f"{me}@127.0.0.1:{drop / 'direct.bin'}", env
        )
        for name in ("relay.bin", "direct.bin"):
            if (drop / name).stat().st_size != payload.stat().st_size:
                raise SystemExit(f"{name}: copy incomplete")
        shutil.rmtree(drop, ignore_errors=True)

        def stats(v: list[float]) -> dict[str, float]:
            return {"p50": round(statistics.median(v), 3), "p99": round(_percentile(v, 0.99), 3)}

        r, d = stats(relay_rtt), stats(direct_rtt)
        result = {
            "keystroke_rtt_ms": {
                "n": args.keystrokes,
                "relay": r,
                "direct": d,
                "ratio_p50": round(r["p50"] / d["p50"], 2),
                "ratio_p99": round(r["p99"] / d["p99"], 2),
            },
            "scp": {
                "mb": args.mb,
                "relay_mb_s": round(relay_rate, 1),
                "direct_mb_s": round(direct_rate, 1),
                "ratio": round(direct_rate / relay_rate, 2),
            },
            "agent_rss_mb": {"no_grant": no_grant_rss, "grant_idle": idle_rss, "session": session_rss},
        }
        print(json.dumps(result, indent=1))
        return 0
    finally:
        for proc in reversed(procs):
            proc.terminate()  # a harness Proc waits; a Popen (sshd) is waited for next
            if isinstance(proc, subprocess.Popen):
                proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
