"""The agent's overhead against Prometheus node_exporter, measured in one run.

Prints one JSON object:

- ``agent.cycle_cpu_ms``: CPU time (user + system, all threads) of one full default
  cycle, median over ``--cycles`` cycles run by the agent's own runner in a fresh
  process after a warm-up cycle (rates need a previous reading);
- ``agent.metrics_per_cycle`` / ``agent.checks_per_cycle``;
- ``agent.daemon_rss_mb``: resident memory of a real ``diag-agent run`` daemon after
  ``--daemon-cycles`` cycles;
- ``node_exporter.scrape_cpu_ms``: CPU time node_exporter spends per full scrape of
  ``/metrics`` (its process's CPU delta over ``--scrapes`` scrapes), and its RSS;
- ``ratio_cpu``: agent cycle CPU / node_exporter scrape CPU (target <= 1.0).

Usage: ``python bench/agent_overhead.py [--cycles 50] [--scrapes 50]``.
Needs Debian's ``prometheus-node-exporter`` for the baseline (else that part is null).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
NODE_EXPORTER = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")

CYCLE_PROBE = r"""
import json, resource, statistics, sys
from agent.config import default_config
from agent.runner import AgentProbe, WorkerPool, run_all
from agent.state import StateStore

def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)  # all threads of this process
    return usage.ru_utime + usage.ru_stime

cycles, workers = int(sys.argv[1]), int(sys.argv[2])
loaded = default_config()
plans = [p for p in loaded.plans if p.enabled]
probe, state = AgentProbe(), StateStore(None)
pool = WorkerPool(workers, wake_when_idle=True)  # the daemon keeps its threads too
run_all(plans, probe, state, workers, pool=pool)  # warm-up: rates need a previous reading
samples, report = [], None
for _ in range(cycles):
    before = cpu()
    report = run_all(plans, probe, state, workers, pool=pool)
    samples.append(cpu() - before)
per_check = {}
for outcome in report.outcomes:
    per_check[outcome.check] = round(outcome.duration_s * 1000, 3)
print(json.dumps({
    "cycle_cpu_ms": round(statistics.median(samples) * 1000, 3),
    "cycle_cpu_ms_mean": round(statistics.fmean(samples) * 1000, 3),
    "checks_per_cycle": len(report.records),
    "checks_skipped": len(report.skips),
    "layers": sorted({r.layer for r in report.records}),
    "metrics_per_cycle": sum(len(r.metrics) for r in report.records),
    "workers": workers,
    "slowest_checks_wall_ms": dict(sorted(per_check.items(), key=lambda kv: -kv[1])[:6]),
}))
"""


def _proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bench_node_exporter(scrapes: int) -> dict[str, Any] | None:
    if NODE_EXPORTER is None:
        return None
    port = _free_port()
    proc = subprocess.Popen(
        [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        deadline = time.monotonic() + 15
        while True:
            try:
                body = urllib.request.urlopen(url, timeout=5).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        for _ in range(3):  # warm-up: first scrapes pay for lazy initialisation
            urllib.request.urlopen(url, timeout=10).read()
        # Per-scrape CPU from the process's own counters; clock-tick resolution (10 ms)
        # is why we sum over many scrapes instead of timing each one.
        before = _proc_cpu_seconds(proc.pid)
        for _ in range(scrapes):
            body = urllib.request.urlopen(url, timeout=10).read()
        after = _proc_cpu_seconds(proc.pid)
        lines = [ln for ln in body.decode().splitlines() if ln and not ln.startswith("#")]
        return {
            "scrape_cpu_ms": round((after - before) / scrapes * 1000, 3),
            "samples_per_scrape": len(lines),
            "rss_mb": round(_proc_rss_mb(proc.pid), 1),
            "scrapes": scrapes,
        }
    finally:
        proc.terminate()
        proc.wait(10)


def bench_agent_cycle(cycles: int, workers: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", CYCLE_PROBE, str(cycles), str(workers)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def bench_agent_daemon(cycles: int, interval_s: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as state:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agent",
                "run",
                "--config",
                str(ROOT / "deploy" / "agent.example.yaml"),
                "--state-dir",
                state,
                "--interval",
                str(interval_s),
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        try:
            time.sleep(interval_s * cycles + 2)
            alive = proc.poll() is None
            rss = _proc_rss_mb(proc.pid) if alive else float("nan")
            cpu = _proc_cpu_seconds(proc.pid) if alive else float("nan")
        finally:
            proc.terminate()
            proc.wait(20)
        return {
            "daemon_rss_mb": round(rss, 1),
            "daemon_cpu_s": round(cpu, 3),
            "daemon_cycles": cycles,
            "alive": alive,
        }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--scrapes", type=int, default=50)
    parser.add_argument("--workers", type=int, default=4, help="the agent's max_workers")
    parser.add_argument("--daemon-cycles", type=int, default=5)
    parser.add_argument("--daemon-interval", type=float, default=2.0)
    args = parser.parse_args()

    node = bench_node_exporter(args.scrapes)
    cycle = bench_agent_cycle(args.cycles, args.workers)
    daemon = bench_agent_daemon(args.daemon_cycles, args.daemon_interval)
    report: dict[str, Any] = {
        "agent": {**cycle, **daemon},
        "node_exporter": node,
        "ratio_cpu": round(cycle["cycle_cpu_ms"] / node["scrape_cpu_ms"], 3) if node else None,
        "targets": {"ratio_cpu_max": 1.0, "daemon_rss_mb_max": 40, "metrics_per_cycle_min": 150},
    }
    report["meets_targets"] = bool(
        node
        and report["ratio_cpu"] <= 1.0
        and daemon["daemon_rss_mb"] <= 40
        and cycle["metrics_per_cycle"] >= 150
    )
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
