"""The dashboard's fleet page for 1,000 customers and 10,000 hosts: p50/p95 over real HTTP.

A real ``diag-collector serve`` on SQLite, seeded straight into its tables (10 hosts per
customer, 8 latest results per host across the five layers, one health entry per agent,
some gaps and cases), then the fleet state recounted from those rows
(``FleetStateRepo.rebuild``: what ingest keeps current). Measures, signed in as an engineer:

- ``fleet_page``: GET /fleet (the first page: 50 customers, neediest first, and the totals);
- ``fleet_page_last``: GET /fleet?page=20 (the last page);
- ``fleet_filtered``: GET /fleet?state=CRIT&customer=cust-0 (a filtered page);
- ``fleet_json``: GET /fleet.json (the first page's data, no render);
- ``healthz``: GET /healthz (the baseline: the same server's cheapest page).

Prints JSON; ``target_p95_ms`` is 300 for the fleet page. Usage: python bench/dashboard.py [--requests N]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import sqlalchemy as sa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from collector.store import Store  # noqa: E402
from collector.store.fleet_state import FleetStateRepo  # noqa: E402
from collector.store.schema import agent_health, agents, customers, gaps, hosts, latest_results  # noqa: E402
from tests.integration.harness import free_port  # noqa: E402

CHECKS = [
    ("host.load", "host"), ("host.memory", "host"), ("network.interfaces", "network"),
    ("storage.filesystem", "storage"), ("storage.io", "storage"), ("platform.services", "platform"),
    ("application.agent", "application"), ("application.http", "application"),
]  # fmt: skip
SEVS = ["OK"] * 17 + ["WARN", "CRIT", "UNKNOWN"]


def seed(store: Store, n_customers: int, hosts_per: int) -> None:
    now = time.time()
    with store.engine.begin() as conn:
        conn.execute(
            customers.insert(),
            [{"id": c + 1, "slug": f"cust-{c:04d}", "name": f"Customer {c}", "timezone": "UTC",
              "settings": {}, "created_at": now} for c in range(n_customers)],
        )  # fmt: skip
        host_rows, agent_rows, latest, health, gap_rows = [], [], [], [], []
        hid = 0
        for c in range(n_customers):
            for h in range(hosts_per):
                hid += 1
                name = f"h{h:02d}"
                host_rows.append({"id": hid, "customer_id": c + 1, "name": name, "labels": {}, "facts": {},
                                  "first_seen": now, "last_seen": now})  # fmt: skip
                agent_id = f"cust-{c:04d}-{name}"
                agent_rows.append({"agent_id": agent_id, "customer_id": c + 1, "host": name,
                                   "token_hash": f"{hid:064x}", "token_prefix": "x", "created_at": now,
                                   "max_seq": 10, "last_seen_at": now - (900 if hid % 97 == 0 else 10)})  # fmt: skip  # noqa: E501
                for i, (check, layer) in enumerate(CHECKS):
                    latest.append({"host_id": hid, "check": check, "agent_id": agent_id, "seq": i + 1,
                                   "ts": now, "layer": layer, "severity": SEVS[(hid * 7 + i) % len(SEVS)],
                                   "key": "K",
                                   "summary": "s", "duration_ms": 1.0, "findings": []})  # fmt: skip
                health.append({"agent_id": agent_id, "seq": 9, "ts": now,
                               "document": {"spool_depth": (hid % 50 == 0 and 120) or 0}})  # fmt: skip
                if hid % 200 == 0:
                    gap_rows.append({"agent_id": agent_id, "first_seq": 1, "last_seq": 5, "count": 5,
                                     "reason": "spool_full", "dropped_at": now - 60, "recorded_at": now})  # fmt: skip  # noqa: E501
        conn.execute(hosts.insert(), host_rows)
        conn.execute(agents.insert(), agent_rows)
        conn.execute(latest_results.insert(), latest)
        conn.execute(agent_health.insert(), health)
        conn.execute(gaps.insert(), gap_rows)
        assert conn.execute(sa.select(sa.func.count()).select_from(hosts)).scalar_one() == len(host_rows)


def timed(client: httpx.Client, path: str, n: int) -> dict[str, float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        response = client.get(path)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 1),
        "p95_ms": round(samples[max(0, int(len(samples) * 0.95) - 1)], 1),
        "max_ms": round(samples[-1], 1),
        "bytes": len(response.content),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--hosts-per-customer", type=int, default=10)
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/c.db"
        store = Store.open(url)
        seed(store, args.customers, args.hosts_per_customer)
        FleetStateRepo(store).rebuild()
        token = store.create_api_token("bench", "engineer")
        store.close()
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "collector.cli", "serve", "--store", url, "--grpc-listen",
             f"127.0.0.1:{free_port()}", "--http-listen", f"127.0.0.1:{port}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=REPO, text=True,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if "Ctrl-C stops" in line:
                    break
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                form = client.get("/sign-in").text
                csrf = re.search(r'name="csrf" value="([^"]+)"', form)
                assert csrf is not None
                client.post("/sign-in", data={"csrf": csrf.group(1), "token": token})
                client.get("/fleet")  # warm up
                out = {
                    "customers": args.customers,
                    "hosts": args.customers * args.hosts_per_customer,
                    "requests": args.requests,
                    "healthz": timed(client, "/healthz", args.requests),
                    "fleet_json": timed(client, "/fleet.json", args.requests),
                    "fleet_page": timed(client, "/fleet", args.requests),
                    "fleet_page_last": timed(
                        client, f"/fleet?page={-(-args.customers // 50)}", args.requests
                    ),
                    "fleet_filtered": timed(client, "/fleet?state=CRIT&customer=cust-0", args.requests),
                    "target_p95_ms": 300,
                }
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    out["fleet_page_within_target"] = out["fleet_page"]["p95_ms"] <= 300
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
