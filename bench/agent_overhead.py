"""The real agent daemon's CPU and memory against Prometheus node_exporter, in one run.

The headline is measured from outside, as an operator would see it:

- Debian's ``prometheus-node-exporter`` on a loopback port with its default collectors,
  scraped once a second (``/metrics``, the whole page) by this script for the whole run;
- a real ``diag-agent run --interval 1`` per mode, each for ``--seconds`` (>= 60) after
  a ``--warmup``: ``spool`` (no collector: results stay in the spool) and ``stream`` (a
  real ``diag-collector serve`` on a temporary SQLite store, the agent enrolled and
  streaming to it). The agent's config sets ``interval_s: 1`` on every default check,
  so every one is due every second (the daemon's ``--interval`` alone scales the
  declared intervals: a 300 s check would run every 5 s);
- CPU from ``/proc/<pid>/stat`` (user + system of every thread, plus waited-for
  children: the commands a check runs are its cost), sampled at the start and end of
  the window for the agent and for node_exporter alike; RSS sampled during the window.

Results are counted, not assumed: per check, the results with a timestamp inside the
window, from the spool (``spool``) or the collector's store (``stream``). A *full cycle*
is one result of every check that applies here (``skipped_here`` lists those that
skip: they run, and cost, but yield no result); ``full_cycles`` = results / checks. Printed as JSON:

- ``modes.<mode>.agent.cpu_ms_per_full_cycle``, ``cpu_ms_per_s``, ``rss_mb``,
  ``results_per_check`` (min, max), ``missing`` (checks with fewer results than
  seconds in the window), ``every_check_every_cycle``;
- ``modes.<mode>.node_exporter.cpu_ms_per_scrape``, ``scrapes``, ``rss_mb``;
- ``modes.<mode>.ratio``: agent CPU per full cycle / node_exporter CPU per scrape
  (target <= 1.0); with ``--baseline ROOT`` the same figures for the agent of another
  checkout (e.g. a worktree of main) run side by side in the same window, and
  ``ratio_vs_baseline``.

``--in-process`` adds the old figure: the CPU of ``run_all`` (checks only, no scheduler,
spool or stream) per cycle in a fresh process, once a second as in the daemon (caches
as cold as there). With ``--baseline`` both checkouts run it side by side in the same
window (``in_process.<name>``, ``in_process.ratio_vs_baseline``): CPU from
``getrusage``, not from clock ticks, so differences of a few percent show.

Usage: ``python bench/agent_overhead.py [--seconds 60] [--modes spool,stream]
[--baseline /path/to/checkout]``. Needs ``prometheus-node-exporter`` (else exits 2).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from agent_rss import Collector, installed_copy, unit_environment

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
NODE_EXPORTER = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
MODES = ("spool", "stream")

CYCLE_PROBE = r"""
import json, resource, statistics, sys, time
from agent.config import default_config
from agent.runner import AgentProbe, WorkerPool, run_all
from agent.state import StateStore

def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)  # all threads of this process
    return usage.ru_utime + usage.ru_stime

cycles, workers, pace = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
loaded = default_config()
plans = [p for p in loaded.plans if p.enabled]
probe, state = AgentProbe(), StateStore(None)
pool = WorkerPool(workers, wake_when_idle=True)  # the daemon keeps its threads too
run_all(plans, probe, state, workers, pool=pool)  # warm-up: rates need a previous reading
samples, report = [], None
tick = time.monotonic()
for _ in range(cycles):
    before = cpu()
    report = run_all(plans, probe, state, workers, pool=pool)
    samples.append(cpu() - before)
    tick += pace
    time.sleep(max(0.0, tick - time.monotonic()))
print(json.dumps({
    "cycle_cpu_ms": round(statistics.median(samples) * 1000, 3),
    "cycle_cpu_ms_mean": round(sum(samples) / len(samples) * 1000, 3),
    "checks_per_cycle": len(report.records),
    "metrics_per_cycle": sum(len(r.metrics) for r in report.records),
}))
"""


def proc_cpu_seconds(pid: int) -> float:
    """User + system time of every thread of ``pid`` and of its waited-for children."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # Fields 14-17 of proc(5): utime, stime, cutime, cstime (index 11.. after the name).
    return sum(int(f) for f in fields[11:15]) / CLK_TCK


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NodeExporter:
    """node_exporter on a loopback port with its default collectors, scraped once a second."""

    def __init__(self, tmp: Path) -> None:
        if NODE_EXPORTER is None:
            raise SystemExit(
                "prometheus-node-exporter is not installed (apt-get install prometheus-node-exporter)"
            )
        self.url = f"http://127.0.0.1:{_free_port()}/metrics"
        self.log = (tmp / "node_exporter.log").open("wb")
        self.proc = subprocess.Popen(
            [NODE_EXPORTER, f"--web.listen-address={self.url.split('/')[2]}"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.scrapes = 0
        self.samples_per_scrape = 0
        self.errors = 0
        self._stop = threading.Event()
        deadline = time.monotonic() + 30
        while True:
            try:
                self._scrape()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("node_exporter did not answer within 30 s") from None
                time.sleep(0.2)
        self._thread = threading.Thread(target=self._loop, name="scraper", daemon=True)
        self._thread.start()

    def _scrape(self) -> None:
        body = urllib.request.urlopen(self.url, timeout=10).read()
        self.samples_per_scrape = sum(1 for ln in body.splitlines() if ln and not ln.startswith(b"#"))
        self.scrapes += 1

    def _loop(self) -> None:
        tick = time.monotonic()
        while not self._stop.is_set():
            tick += 1.0
            self._stop.wait(max(0.0, tick - time.monotonic()))
            if self._stop.is_set():
                return
            try:
                self._scrape()
            except OSError:
                self.errors += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)
        self.proc.terminate()
        self.proc.wait(15)
        self.log.close()


@dataclass
class Agent:
    """One ``diag-agent run --interval 1`` process with every default check due every second."""

    name: str
    root: Path
    tmp: Path
    collector: Collector | None
    env: dict[str, str]
    checks: list[str]
    proc: subprocess.Popen[bytes] | None = None
    rss: list[float] = field(default_factory=list)

    @property
    def agent_id(self) -> str:
        return f"bench-{self.name}"

    def start(self) -> None:
        self.tmp.mkdir(parents=True)
        lines = ["agent:", f"  id: {self.agent_id}", f"  state_dir: {self.tmp / 'state'}", "  interval_s: 1"]
        if self.collector is not None:
            token = self.collector.enroll(self.agent_id)
            lines += ["collector:", f"  address: {self.collector.address}", f"  token: {token}"]
        lines.append("checks:")
        lines += [f"  {name}: {{interval_s: 1}}" for name in self.checks]
        config = self.tmp / "agent.yaml"
        config.write_text("\n".join(lines) + "\n")
        config.chmod(0o600)
        self.log = (self.tmp / "agent.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent", "run", "--config", str(config), "--interval", "1"],
            cwd=self.root,  # `-m agent` looks in the working directory first
            env={**os.environ, "PYTHONPATH": str(self.root), **self.env},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int | None:
        assert self.proc is not None
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()
        return self.proc.returncode

    def results(self, since: float, until: float) -> dict[str, int]:
        """Results per check with a timestamp in [since, until): from the collector or the spool."""
        counts = dict.fromkeys(self.checks, 0)
        if self.collector is not None:
            with sqlite3.connect(self.collector.db) as conn:
                rows = conn.execute(
                    'SELECT "check", count(*) FROM check_results WHERE agent_id = ? AND ts >= ? AND ts < ?'
                    ' AND inspection_id IS NULL GROUP BY "check"',
                    (self.agent_id, since, until),
                ).fetchall()
            counts.update({str(check): int(n) for check, n in rows})
            return counts
        with sqlite3.connect(self.tmp / "state" / "spool.db") as conn:
            for (payload,) in conn.execute(
                "SELECT payload FROM entries WHERE kind = 'result' AND ts >= ? AND ts < ?", (since, until)
            ):
                check = json.loads(payload)["check"]
                counts[check] = counts.get(check, 0) + 1
        return counts


def measure_mode(mode: str, args: argparse.Namespace, roots: dict[str, Path], tmp: Path) -> dict[str, Any]:
    from checks.registry import all_checks

    checks = [name for name, check in all_checks().items() if check.default_enabled]
    skipped = skipped_here(roots["agent"])
    env = unit_environment()
    tmp.mkdir(parents=True)
    (tmp / "collector").mkdir()
    collector = Collector(tmp / "collector", "plain", None) if mode == "stream" else None
    node = NodeExporter(tmp)
    agents = [Agent(name, root, tmp / name, collector, env, checks) for name, root in roots.items()]
    try:
        for agent in agents:
            agent.start()
        time.sleep(args.warmup)
        for agent in agents:
            if not agent.alive():
                raise RuntimeError(
                    f"agent {agent.name} exited: {(agent.tmp / 'agent.log').read_text()[-2000:]}"
                )
        wall0, mono0 = time.time(), time.monotonic()
        cpu0 = {a.name: proc_cpu_seconds(a.proc.pid) for a in agents if a.proc}
        node_cpu0, scrapes0 = proc_cpu_seconds(node.proc.pid), node.scrapes
        node_rss: list[float] = []
        while time.monotonic() - mono0 < args.seconds:
            time.sleep(min(2.0, args.seconds - (time.monotonic() - mono0)))
            for agent in agents:
                if agent.proc is not None and agent.alive():
                    agent.rss.append(proc_rss_mb(agent.proc.pid))
            node_rss.append(proc_rss_mb(node.proc.pid))
        elapsed = time.monotonic() - mono0
        cpu1 = {a.name: proc_cpu_seconds(a.proc.pid) for a in agents if a.proc}
        node_cpu, scrapes = proc_cpu_seconds(node.proc.pid) - node_cpu0, node.scrapes - scrapes0
        wall1 = wall0 + elapsed
        time.sleep(3.0)  # the window's last results reach the spool / the collector
        exits = {a.name: a.stop() for a in agents}
        per_scrape_ms = node_cpu / scrapes * 1000
        out: dict[str, Any] = {
            "window_s": round(elapsed, 1),
            "skipped_here": sorted(skipped),
            "node_exporter": {
                "cpu_ms_per_scrape": round(per_scrape_ms, 2),
                "cpu_ms_per_s": round(node_cpu / elapsed * 1000, 2),
                "scrapes": scrapes,
                "scrape_errors": node.errors,
                "samples_per_scrape": node.samples_per_scrape,
                "rss_mb": round(statistics.median(node_rss), 1),
            },
        }
        for agent in agents:
            counts = {c: n for c, n in agent.results(wall0, wall1).items() if c not in skipped}
            total = sum(counts.values())
            full_cycles = total / len(counts)
            cpu = cpu1[agent.name] - cpu0[agent.name]
            seconds = int(elapsed)
            cycle_ms = cpu / full_cycles * 1000 if full_cycles else float("inf")
            out[agent.name] = {
                "cpu_ms_per_full_cycle": round(cycle_ms, 2),
                "cpu_ms_per_s": round(cpu / elapsed * 1000, 2),
                "ratio": round(cycle_ms / per_scrape_ms, 3),
                "rss_mb": round(statistics.median(agent.rss), 1),
                "checks": len(checks),
                "checks_with_results": len(counts),
                "results": total,
                "full_cycles": round(full_cycles, 1),
                "results_per_check": [min(counts.values()), max(counts.values())],
                "missing": {c: n for c, n in counts.items() if n < seconds - 1},
                "every_check_every_cycle": min(counts.values()) >= seconds - 1,
                "exit_code": exits[agent.name],
            }
        if "baseline" in out:
            out["ratio_vs_baseline"] = round(
                out["agent"]["cpu_ms_per_full_cycle"] / out["baseline"]["cpu_ms_per_full_cycle"], 3
            )
        return out
    finally:
        for agent in agents:
            if agent.alive():
                agent.stop()
        node.stop()
        if collector is not None:
            collector.stop()


def skipped_here(root: Path) -> set[str]:
    """Default checks that do not apply on this host (``SkipCheck``: no systemd, nothing
    configured): they run every cycle, and their cost is counted, but yield no result."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent",
            "checks",
            "--format",
            "json",
            "--show-skipped",
            "--sample-interval",
            "0",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    return {item["check"] for item in json.loads(out.stdout) if item.get("skipped")}


def in_process_cycle(cycles: int, roots: dict[str, Path]) -> dict[str, Any]:
    """``run_all`` once a second for ``cycles`` cycles in a fresh process per checkout, side by side."""
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-B", "-c", CYCLE_PROBE, str(cycles), "4", "1.0"],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(root), **unit_environment()},
        )
        for name, root in roots.items()
    }
    result: dict[str, Any] = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=cycles * 5 + 120)
        if proc.returncode != 0:
            raise RuntimeError(f"in-process cycle of {name} failed: {err[-2000:]}")
        result[name] = json.loads(out.strip().splitlines()[-1])
    if "baseline" in result:
        result["ratio_vs_baseline"] = round(
            result["agent"]["cycle_cpu_ms"] / result["baseline"]["cycle_cpu_ms"], 3
        )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="measured window per mode (>= 60)")
    parser.add_argument("--warmup", type=float, default=8.0, help="seconds before the window starts")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of spool,stream")
    parser.add_argument(
        "--baseline", type=Path, help="another checkout whose agent runs side by side (e.g. main)"
    )
    parser.add_argument(
        "--source-tree", action="store_true", help="run the agents from the checkouts as they are"
    )
    parser.add_argument(
        "--in-process", type=int, default=0, metavar="CYCLES", help="also time run_all in-process"
    )
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if set(modes) - set(MODES):
        parser.error(f"modes are {', '.join(MODES)}")
    if args.seconds < 60:
        print("note: windows shorter than 60 s are too coarse for 10 ms clock ticks", file=sys.stderr)
    report: dict[str, Any] = {"interval_s": 1, "seconds": args.seconds, "modes": {}}
    with tempfile.TemporaryDirectory(prefix="agent-overhead-") as tmp_name:
        tmp = Path(tmp_name)
        sources = {"agent": ROOT, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
        roots = (
            sources
            if args.source_tree
            else {name: installed_copy(tmp / "site" / name, root) for name, root in sources.items()}
        )
        for mode in modes:
            report["modes"][mode] = measure_mode(mode, args, roots, tmp / mode)
        if args.in_process:
            report["in_process"] = in_process_cycle(args.in_process, roots)
    ratios = [m["agent"]["ratio"] for m in report["modes"].values()]
    rss = [m["agent"]["rss_mb"] for m in report["modes"].values()]
    report["targets"] = {"ratio_max": 1.0, "rss_mb_max": 45.0}
    report["meets_targets"] = (
        all(r <= 1.0 for r in ratios)
        and all(r <= 45.0 for r in rss)
        and all(m["agent"]["every_check_every_cycle"] for m in report["modes"].values())
    )
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
