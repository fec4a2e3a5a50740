"""Resident memory of a real ``diag-agent run``: alone, streaming in plaintext, over TLS and mTLS.

For each mode the script starts what the agent needs and nothing else:

- ``none``: ``diag-agent run`` with no ``collector.address`` (results stay in the spool);
- ``plain``: a real ``diag-collector serve`` on a temporary SQLite store, the agent
  enrolled with ``diag-collector enroll`` and streaming to it;
- ``tls``: the same collector with a server certificate; the agent trusts only the
  CA file made for the run (``collector.tls.ca_file``);
- ``mtls``: the collector also requires a client certificate (``client_ca_file``); the
  agent presents one (``collector.tls.cert_file`` / ``key_file``);
- ``sessions-idle``: as ``plain``, with remote sessions enabled in the agent's config
  (no grant arrives: paramiko must stay unloaded);
- ``session``: remote sessions enabled and one session running for the whole measurement,
  against the test suite's fake collector (``tests/agent/sessions/fake_collector.py``:
  real gRPC, it relays SSH; the real collector side is another branch): a paramiko client
  runs a command printing 10 lines a second and uploads files over SFTP in a loop.

The CA and certificates are made at run time with ``openssl`` (as the TLS tests do).
The agent runs the default checks (``deploy/agent.example.yaml``) at ``--interval``
seconds for ``--cycles`` cycles; its ``/proc/<pid>`` figures are sampled every
``--sample-s`` seconds. Printed as one JSON object per mode:

- ``rss_mb``: steady RSS, the median of the samples taken in the second half of the run;
- ``rss_max_mb``: the largest sample; ``hwm_mb``: the kernel's peak (``VmHWM``);
- ``pss_mb`` / ``uss_mb``: proportional and private memory at the end (``smaps_rollup``);
- ``results_stored``: check results the collector stored from this agent (streaming works).

The agent runs from a byte-compiled copy of its packages, as a package install has them
(``--source-tree``: from the repository as it is). It gets the environment of
``deploy/diag-agent.service`` (its ``Environment=`` lines, e.g. ``MALLOC_ARENA_MAX=2``)
unless ``--bare-env``.

Usage: ``python bench/agent_rss.py [--modes none,plain,tls,mtls] [--cycles 8] [--interval 2]``.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import json
import os
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODES = ("none", "plain", "tls", "mtls", "sessions-idle", "session")
SESSIONS_BLOCK = (
    "sessions:\n  enabled: true\n  approvals: [customer_admin]\n  modes: [diagnostic, shell]\n"
    "  shell_user: {user}\n"
)
TARGET_MB = 45.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(site_paths: bool = False, root: Path = ROOT) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(root), *(p for p in sys.path if p.endswith("-packages"))] if site_paths else [str(root)]
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")])
    return env


AGENT_PACKAGES = ("agent", "checks", "protos", "diagconfig")


def installed_copy(dest: Path, root: Path = ROOT) -> Path:
    """The agent's packages copied to ``dest`` and byte-compiled, as a package install has them.

    Run from the source tree with ``PYTHONDONTWRITEBYTECODE`` set (as in CI), every start
    compiles every module from source: more garbage on the heap than an installed agent
    ever has (about 0.6 MB of RSS).
    """
    for name in AGENT_PACKAGES:
        shutil.copytree(root / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if not compileall.compile_dir(str(dest), quiet=1):
        raise RuntimeError(f"could not byte-compile the agent's packages in {dest}")
    return dest


def unit_environment() -> dict[str, str]:
    """``Environment=`` assignments of the agent's systemd unit."""
    out: dict[str, str] = {}
    for line in (ROOT / "deploy" / "diag-agent.service").read_text().splitlines():
        match = re.match(r"^Environment=(\w+)=(\S*)$", line.strip())
        if match:
            out[match.group(1)] = match.group(2)
    return out


def _openssl(d: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)


def make_pki(d: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, signed by the CA."""
    _openssl(
        d,
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=bench ca",
    )
    for name, ext in (
        ("server", "subjectAltName=IP:127.0.0.1,DNS:localhost\n"),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ):
        _openssl(
            d,
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            f"/CN={name}",
        )
        (d / f"{name}.ext").write_text(ext)
        _openssl(
            d,
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.pem",
            "-days",
            "2",
            "-extfile",
            f"{name}.ext",
        )
    return {n: d / n for n in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}


def _memory(pid: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


def _smaps(pid: int) -> dict[str, float]:
    fields: dict[str, float] = {}
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return {}
    for line in text.splitlines()[1:]:
        key, _, value = line.partition(":")
        parts = value.split()
        if parts and parts[0].isdigit():
            fields[key] = int(parts[0]) / 1024
    return {
        "pss_mb": round(fields.get("Pss", 0.0), 1),
        "uss_mb": round(fields.get("Private_Clean", 0.0) + fields.get("Private_Dirty", 0.0), 1),
    }


class Collector:
    """``diag-collector serve`` on a temporary SQLite store, optionally with TLS / mTLS."""

    def __init__(self, tmp: Path, mode: str, pki: dict[str, Path] | None) -> None:
        self.tmp = tmp
        self.db = tmp / "collector.db"
        self.address = f"127.0.0.1:{_free_port()}"
        lines = [f"state_dir: {tmp}", "grpc:", f"  listen: {self.address}"]
        if mode in ("tls", "mtls") and pki is not None:
            lines += ["  tls:", f"    cert_file: {pki['server.pem']}", f"    key_file: {pki['server.key']}"]
            if mode == "mtls":
                lines.append(f"    client_ca_file: {pki['ca.pem']}")
        lines += ["http:", f"  listen: 127.0.0.1:{_free_port()}"]
        self.config = tmp / "collector.yaml"
        self.config.write_text("\n".join(lines) + "\n")
        self.store = f"sqlite:///{self.db}"
        self.log = (tmp / "collector.log").open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "collector.cli",
                "serve",
                "--config",
                str(self.config),
                "--store",
                self.store,
                "--ingest-processes",
                "0",
            ],
            cwd=ROOT,
            env=_env(),
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        host, port = self.address.rsplit(":", 1)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"collector exited: {(tmp / 'collector.log').read_text()[-2000:]}")
            try:
                socket.create_connection((host, int(port)), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("collector did not listen within 60 s") from None
                time.sleep(0.2)

    def enroll(self, agent_id: str) -> str:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "collector.cli",
                "enroll",
                "--config",
                str(self.config),
                "--store",
                self.store,
                "--customer",
                "bench",
                "--host",
                agent_id,
                "--agent-id",
                agent_id,
            ],
            cwd=ROOT,
            env=_env(),
            capture_output=True,
            text=True,
            check=True,
        )
        match = re.search(r"^\s*token:\s*(\S+)\s*$", out.stdout, re.M)
        if match is None:
            raise RuntimeError(f"no token in the enroll output: {out.stdout!r}")
        return match.group(1)

    def results(self, agent_id: str) -> int:
        with sqlite3.connect(self.db) as conn:
            row = conn.execute(
                "SELECT count(*) FROM check_results WHERE agent_id = ?", (agent_id,)
            ).fetchone()
        return int(row[0])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


def run_agent(
    tmp: Path,
    mode: str,
    args: argparse.Namespace,
    pki: dict[str, Path] | None,
    env: dict[str, str],
    agent_root: Path,
) -> dict[str, Any]:
    agent_id = f"bench-{mode}"
    fake = None
    if mode == "session":
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
        from tests.agent.sessions.fake_collector import FakeCollector

        fake = FakeCollector(tmp, "bench-session")
    collector = (
        Collector(tmp, "plain" if mode == "sessions-idle" else mode, pki)
        if mode not in ("none", "session")
        else None
    )
    try:
        config = (ROOT / "deploy" / "agent.example.yaml").read_text()
        config = config.replace("agent:\n", f"agent:\n  id: {agent_id}\n", 1)
        if mode in ("sessions-idle", "session"):
            user = "nobody" if os.geteuid() == 0 else os.environ.get("USER", "nobody")
            config += "\n" + SESSIONS_BLOCK.format(user=user)
        if fake is not None:
            config = config.replace(
                "collector:\n", f"collector:\n  address: {fake.address}\n  token: bench\n", 1
            )
        if collector is not None:
            block = [
                "collector:",
                f"  address: {collector.address}",
                f"  token: {collector.enroll(agent_id)}",
            ]
            if mode in ("tls", "mtls") and pki is not None:
                block += ["  tls:", f"    ca_file: {pki['ca.pem']}"]
                if mode == "mtls":
                    block += [f"    cert_file: {pki['client.pem']}", f"    key_file: {pki['client.key']}"]
            config = config.replace("collector:\n", "\n".join(block) + "\n", 1)
        cfg = tmp / "agent.yaml"
        cfg.write_text(config)
        cfg.chmod(0o600)
        log = (tmp / "agent.log").open("wb")
        python = [sys.executable, "-S"] if args.no_pth else [sys.executable]
        proc = subprocess.Popen(
            [
                *python,
                "-m",
                "agent",
                "run",
                "--config",
                str(cfg),
                "--state-dir",
                str(tmp / "state"),
                "--interval",
                str(args.interval),
            ],
            cwd=agent_root,  # `-m agent` looks in the working directory first
            env={**_env(site_paths=args.no_pth, root=agent_root), **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        samples: list[tuple[float, float]] = []
        started = time.monotonic()
        duration = args.interval * args.cycles + 1.0
        mem: dict[str, float] = {}
        session = None
        if fake is not None:
            session = _SessionLoad(fake, agent_id, tmp)
            session.start()
        try:
            while time.monotonic() - started < duration:
                if proc.poll() is not None:
                    raise RuntimeError(f"agent exited: {(tmp / 'agent.log').read_text()[-2000:]}")
                mem = _memory(proc.pid)
                samples.append((time.monotonic() - started, mem["VmRSS"]))
                time.sleep(args.sample_s)
            smaps = _smaps(proc.pid)
            threads = len(os.listdir(f"/proc/{proc.pid}/task"))
        finally:
            if session is not None:
                session.stop()
            proc.terminate()
            proc.wait(30)
            log.close()
        stored = collector.results(agent_id) if collector is not None else None
        if fake is not None:
            stored = len(fake.entries("result"))
    finally:
        if collector is not None:
            collector.stop()
        if fake is not None:
            fake.stop()
    steady = [rss for t, rss in samples if t >= duration / 2]
    return {
        "rss_mb": round(statistics.median(steady), 1),
        "rss_max_mb": round(max(rss for _, rss in samples), 1),
        "hwm_mb": round(mem.get("VmHWM", float("nan")), 1),
        **smaps,
        "threads": threads,
        "results_stored": stored,
        "exit_code": proc.returncode,
        **({"session": session.report()} if session is not None else {}),
    }


class _SessionLoad:
    """Grants a session through the fake collector and keeps it busy (``session`` mode)."""

    def __init__(self, fake: Any, agent_id: str, tmp: Path) -> None:
        import threading

        self.fake, self.agent_id, self.tmp = fake, agent_id, tmp
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.lines = 0
        self.uploaded = 0
        self.error = ""

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(30)

    def report(self) -> dict[str, Any]:
        return {"output_lines": self.lines, "uploaded_bytes": self.uploaded, "error": self.error}

    def _run(self) -> None:
        import paramiko

        from protos.diag.v1 import agent_pb2 as pb

        try:
            key_path = self.tmp / "id_ed25519"
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key_path)], check=True)
            deadline = time.monotonic() + 60
            while self.fake.outbox is None and time.monotonic() < deadline:
                time.sleep(0.1)
            now = int(time.time() * 1000)
            self.fake.send(
                session_grant=pb.SessionGrant(
                    session_id="bench-session",
                    agent_id=self.agent_id,
                    mode="shell",
                    engineer_public_key=(self.tmp / "id_ed25519.pub").read_text().strip(),
                    not_after_unix_ms=now + 3_600_000,
                    approval="customer_admin",
                )
            )
            while (
                not any(s.state == "approved" for s in self.fake.statuses()) and time.monotonic() < deadline
            ):
                time.sleep(0.1)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(str(self.fake.socket_path))
            transport = paramiko.Transport(sock)
            transport.connect(username="bench", pkey=paramiko.Ed25519Key.from_private_key_file(str(key_path)))
            chan = transport.open_session()
            chan.exec_command("while true; do date; sleep 0.1; done")
            sftp = paramiko.SFTPClient.from_transport(transport)
            assert sftp is not None
            blob = os.urandom(4 * 1024 * 1024)
            target = "/tmp/diag-bench-session.bin"
            while not self.stopping.is_set():
                while chan.recv_ready():
                    self.lines += chan.recv(65536).count(b"\n")
                with sftp.open(target, "wb") as f:
                    f.write(blob)
                self.uploaded += len(blob)
            with contextlib.suppress(OSError):
                sftp.remove(target)
            transport.close()
        except Exception as exc:  # noqa: BLE001  # reported in the JSON, not a dead measurement
            self.error = f"{type(exc).__name__}: {exc}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--modes", default=",".join(MODES), help="comma-separated subset of " + ",".join(MODES)
    )
    parser.add_argument("--cycles", type=int, default=8, help="base intervals the agent runs per mode")
    parser.add_argument("--interval", type=float, default=2.0, help="the agent's --interval in seconds")
    parser.add_argument("--sample-s", type=float, default=0.25)
    parser.add_argument("--bare-env", action="store_true", help="without the systemd unit's Environment=")
    parser.add_argument(
        "--source-tree",
        action="store_true",
        help="run the agent from the repository as it is (compiled from source at every start when "
        "PYTHONDONTWRITEBYTECODE is set) instead of a byte-compiled copy of its packages",
    )
    parser.add_argument(
        "--no-pth",
        action="store_true",
        help="start the agent's interpreter with -S (site-packages on PYTHONPATH instead), so the "
        "environment's .pth start-up hooks (an editable install's finder, a sandbox's CA injector) "
        "are not run: closer to a packaged install",
    )
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="extra environment for the agent"
    )
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        parser.error(f"unknown mode(s) {', '.join(unknown)}; choose from {', '.join(MODES)}")
    env = {} if args.bare_env else unit_environment()
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            parser.error(f"--env expects NAME=VALUE, got {item!r}")
        env[name] = value
    report: dict[str, Any] = {
        "env": env,
        "no_pth": args.no_pth,
        "agent_from": "source tree" if args.source_tree else "byte-compiled copy",
        "interval_s": args.interval,
        "cycles": args.cycles,
        "modes": {},
    }
    with tempfile.TemporaryDirectory(prefix="agent-rss-") as tmp_name:
        tmp = Path(tmp_name)
        pki = make_pki(tmp) if {"tls", "mtls"} & set(modes) else None
        agent_root = ROOT if args.source_tree else installed_copy(tmp / "site")
        for mode in modes:
            d = tmp / mode
            d.mkdir()
            report["modes"][mode] = run_agent(d, mode, args, pki, env, agent_root)
    report["target_rss_mb"] = TARGET_MB
    # The budget is the resident agent's; a running session (paramiko, cryptography, its
    # buffers) is reported beside it, not held to it.
    report["meets_target"] = all(
        m["rss_mb"] <= TARGET_MB for k, m in report["modes"].items() if k != "session"
    )
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
