"""/metrics scrape cost for a large fleet, against /healthz measured in the same run.

Seeds a store (SQLite in a temp dir unless ``--store`` names a database) with ``--agents``
agents over ``--customers`` customers: each agent's host gets ``--checks`` latest results
(about one in ten WARN, one in fifty CRIT) and one health entry, one agent in twenty never
connects, and one customer in ten has an open CRIT case. Then starts ``diag-collector
serve`` on it as a separate process and, over real HTTP on loopback:

- ``healthz_ms``: ``--repeat`` GETs of /healthz (the baseline: one ping, two small queries);
- ``metrics_cold_ms``: /metrics right after the fleet snapshot's cache expired (the fleet
  query runs), ``--cold`` times, 5.2 s apart;
- ``metrics_warm_ms``: ``--repeat`` GETs of /metrics back to back (the snapshot cached for
  5 s: ages recomputed, text rendered);
- ``fleet_query_ms``: the collector's own ``diag_fleet_query_seconds`` after a cold scrape;
- ``server_cpu_ms_per_warm_scrape``: the serving process's CPU (``/proc/<pid>/stat``) per
  warm scrape; ``bytes`` and ``series`` of one exposition;
- ``ratio_cold`` and ``ratio_warm``: median /metrics over median /healthz.

Prints one JSON document.

    python bench/metrics_scrape.py --agents 10000 --customers 1000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def seed(url: str, agents: int, customers: int, checks: int) -> dict[str, int]:
    from collector.store import HealthRow, IngestBatch, ResultRow, Store
    from collector.store.cases import CaseContent, CaseRepo

    store = Store.open(url)
    now = time.time()
    batches = []
    for i in range(agents):
        customer = f"cust{i % customers:04d}"
        identity, _ = store.enroll_agent(customer, f"host{i:05d}", f"agent{i:05d}")
        if i % 20 == 0:
            continue  # enrolled, never connected
        rows = []
        for c in range(checks):
            severity = "CRIT" if (i + c) % 50 == 0 else "WARN" if (i + c) % 10 == 0 else "OK"
            rows.append(
                ResultRow(c + 1, now - 30, f"host.check{c}", "host", severity, severity, "s", 1.0, "[]", None)
            )
        health = [HealthRow(checks + 1, now - 30, {"spool_depth": i % 7, "rss_bytes": 30_000_000})]
        batches.append((identity, IngestBatch(checks + 1, 1, rows, [], [], health)))
    for start in range(0, len(batches), 200):
        store.ingest_many(batches[start : start + 200])
    repo = CaseRepo(store)
    for k in range(0, customers, 10):
        customer = f"cust{k:04d}"
        content = CaseContent(
            f"inc-{k}", customer, "DEGRADATION", "bench", "CRIT", ("h",), [], [], {}, now, now
        )
        repo.open_case(content, now=now)
    store.close()
    return {"agents": agents, "customers": customers, "connected": len(batches)}


def get(url: str) -> tuple[float, bytes]:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as resp:
        body: bytes = resp.read()
        assert resp.status == 200, resp.status
    return (time.perf_counter() - t0) * 1000.0, body


def cpu_ms(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000.0 / os.sysconf("SC_CLK_TCK")


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(statistics.median(values), 2),
        "min": round(min(values), 2),
        "max": round(max(values), 2),
    }


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="/metrics scrape cost vs /healthz for a large fleet")
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--customers", type=int, default=1_000)
    parser.add_argument("--checks", type=int, default=20, help="latest results per host")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--cold", type=int, default=3)
    parser.add_argument("--store", help="a database URL (default: SQLite in a temp dir); it must be empty")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        url = args.store or f"sqlite:///{tmp}/bench.db"
        t0 = time.perf_counter()
        seeded = seed(url, args.agents, args.customers, args.checks)
        seed_s = time.perf_counter() - t0
        port = free_port()
        env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        log = open(Path(tmp) / "serve.log", "wb")  # noqa: SIM115 (closed below)
        proc = subprocess.Popen(
            [sys.executable, "-m", "collector.cli", "serve", "--store", url,
             "--grpc-listen", f"127.0.0.1:{free_port()}", "--http-listen", f"127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    get(f"{base}/healthz")
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise SystemExit((Path(tmp) / "serve.log").read_text()) from None
                    time.sleep(0.2)
            healthz = [get(f"{base}/healthz")[0] for _ in range(args.repeat)]
            cold: list[float] = []
            body = b""
            query_ms: list[float] = []
            for _ in range(args.cold):
                time.sleep(5.2)  # past the snapshot's 5 s cache
                ms, body = get(f"{base}/metrics")
                cold.append(ms)
                for line in body.decode().splitlines():
                    if line.startswith("diag_fleet_query_seconds "):
                        query_ms.append(float(line.split()[1]) * 1000.0)
            cpu0 = cpu_ms(proc.pid)
            warm = [get(f"{base}/metrics")[0] for _ in range(args.repeat)]
            cpu1 = cpu_ms(proc.pid)
        finally:
            proc.terminate()
            proc.wait(30)
            log.close()
    text = body.decode()
    series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
    result: dict[str, Any] = {
        **seeded,
        "store": url.split(":", 1)[0],
        "seed_s": round(seed_s, 1),
        "healthz_ms": summary(healthz),
        "metrics_cold_ms": summary(cold),
        "metrics_warm_ms": summary(warm),
        "fleet_query_ms": summary(query_ms) if query_ms else None,
        "server_cpu_ms_per_warm_scrape": round((cpu1 - cpu0) / max(1, len(warm)), 2),
        "bytes": len(body),
        "series": series,
        "ratio_cold": round(statistics.median(cold) / statistics.median(healthz), 1),
        "ratio_warm": round(statistics.median(warm) / statistics.median(healthz), 1),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
