"""Drain time after a collector outage: how soon agents find a restarted collector.

Real processes: one ``diag-collector serve`` (SQLite in a temp dir) and ``--agents`` agent
processes (``tests/integration/agent_proc.py``: the real spool and streamer, no checks),
with diag-agent's own backoff (0.5 s doubling to 30 s). Each agent appends ``--rate``
records per second. Per round: once every agent is streaming, they stream ``--warmup`` more
seconds, the collector
is killed (SIGKILL) for ``--outage`` seconds while they keep spooling, then restarted;
``drain_s`` is the time from the restart until every agent has had everything it spooled
acknowledged (every agent process exited, ``--exit-when-drained``).

Two modes, alternated ``--repeats`` times in the same run (the machine is shared, so only
the ratio means much):

- ``baseline``: the backoff as before this change, capped at 30 s whatever happened
  (``recent_backoff_cap_s`` = 30);
- ``recent_cap``: capped at 5 s while a session was welcomed within 5 minutes (the
  default now).

Prints one JSON document: each mode's drain times, their medians, and ``ratio`` =
recent_cap / baseline (below 1: faster).

    python bench/reconnect.py --agents 10 --outage 30 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from collector.store.store import Store  # noqa: E402

MODES = {"baseline": 30.0, "recent_cap": 5.0}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _serve(store_url: str, grpc_port: int, http_port: int, log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "collector.cli",
            "serve",
            "--store",
            store_url,
            "--grpc-listen",
            f"127.0.0.1:{grpc_port}",
            "--http-listen",
            f"127.0.0.1:{http_port}",
        ],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env=_env(),
        cwd=REPO,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", grpc_port), timeout=0.5):
                return proc
        except OSError:  # not listening yet
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"collector did not start; see {log}")


def one_round(args: argparse.Namespace, tmp: Path, mode: str, round_no: int) -> float:
    work = tmp / f"{mode}-{round_no}"
    work.mkdir()
    store_url = f"sqlite:///{work / 'collector.db'}"
    store = Store.open(store_url)
    tokens = [store.enroll_agent("bench", f"h{i}", f"{mode}-{round_no}-a{i}") for i in range(args.agents)]
    store.close()
    grpc_port, http_port = _free_port(), _free_port()
    collector = _serve(store_url, grpc_port, http_port, work / "collector.log")
    count = int(args.rate * (args.warmup + args.outage))  # spooled by the outage's end (or soon after)
    agents = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.integration.agent_proc",
                "--spool",
                str(work / identity.agent_id / "spool.db"),
                "--collector",
                f"127.0.0.1:{grpc_port}",
                "--token",
                token,
                "--agent-id",
                identity.agent_id,
                "--count",
                str(count),
                "--rate",
                str(args.rate),
                "--chunk",
                "1",
                "--backoff-base",
                "0.5",
                "--backoff-cap",
                "30",
                "--recent-cap",
                str(MODES[mode]),
                "--exit-when-drained",
            ],
            stdout=(work / f"{identity.agent_id}.log").open("ab"),
            stderr=subprocess.STDOUT,
            env=_env(),
            cwd=REPO,
        )
        for identity, token in tokens
    ]
    try:
        # Every agent streaming (its first session welcomed) before the outage starts.
        logs = [work / f"{identity.agent_id}.log" for identity, _ in tokens]
        deadline = time.monotonic() + 120
        while not all("streaming to" in log.read_text(errors="replace") for log in logs):
            if time.monotonic() > deadline:
                raise SystemExit(f"agents did not connect in time; see {work}")
            time.sleep(0.2)
        time.sleep(args.warmup)
        collector.send_signal(signal.SIGKILL)
        collector.wait()
        time.sleep(args.outage)
        restarted = time.monotonic()
        collector = _serve(store_url, grpc_port, http_port, work / "collector.log")
        for agent in agents:
            agent.wait(timeout=args.outage + 120)
        drained = time.monotonic() - restarted
    finally:
        for agent in agents:
            if agent.poll() is None:
                agent.kill()
        collector.send_signal(signal.SIGTERM)
        try:
            collector.wait(20)
        except subprocess.TimeoutExpired:
            collector.kill()
    return drained


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--outage", type=float, default=30.0, help="seconds the collector is down")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of streaming before the outage")
    parser.add_argument("--rate", type=float, default=5.0, help="records per second per agent")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="diag-reconnect-"))
    drains: dict[str, list[float]] = {mode: [] for mode in MODES}
    try:
        for round_no in range(args.repeats):
            for mode in MODES:  # alternated: both modes see the same load over time
                drains[mode].append(round(one_round(args, tmp, mode, round_no), 2))
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    medians = {mode: statistics.median(values) for mode, values in drains.items()}
    report = {
        "agents": args.agents,
        "outage_s": args.outage,
        "drain_s": drains,
        "median_drain_s": medians,
        "ratio": round(medians["recent_cap"] / medians["baseline"], 3),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
