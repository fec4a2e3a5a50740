"""What keeping the fleet state at ingest costs: ingest with it against ingest without it, same run.

Two fresh stores (SQLite in a temp dir unless ``--store`` names an empty database; with
``--store`` both runs use it one after the other, truncated between) ingest the same
batches through ``Store.ingest_many`` (the worker's path: group commits): ``--agents``
agents, ``--batches`` rounds, each batch ``--results`` results (one in ten changes
severity from the round before, so cells do change) with ``--metrics`` points each, and a
health entry. The baseline run replaces the two fleet-state writes
(``fleet_state.refresh_host`` and ``touch_agent`` as the store calls them) with no-ops.
Prints JSON: batches per second of each run and ``ratio`` = with / without.

    python bench/fleet_ingest.py --agents 500 --batches 6
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest import mock

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import collector.store.store as store_module  # noqa: E402
from collector.store import HealthRow, IngestBatch, PointRow, ResultRow, Store  # noqa: E402
from collector.store.tables import metadata  # noqa: E402


def batches(
    agents: list[Any], rounds: int, results: int, metrics: int
) -> list[list[tuple[Any, IngestBatch]]]:
    out = []
    now = time.time() - 3600
    for r in range(rounds):
        group = []
        for i, agent in enumerate(agents):
            seq = r * (results + 1)
            rows, points = [], []
            for c in range(results):
                seq += 1
                sev = "WARN" if (c + i + r // 2) % 10 == 0 else "OK"
                ts = now + r * 60
                rows.append(
                    ResultRow(
                        seq,
                        ts,
                        f"host.check{c}",
                        "host" if c % 2 else "storage",
                        sev,
                        sev,
                        "s",
                        1.0,
                        "[]",
                        None,
                    )
                )
                points += [
                    PointRow(seq, ts, f"host.check{c}", f"m{m}_ratio", "ratio", (), 0.5)
                    for m in range(metrics)
                ]
            seq += 1
            health = [HealthRow(seq, now + r * 60, {"spool_depth": r})]
            group.append((agent, IngestBatch(seq, 1, rows, points, [], health)))
        out.append(group)
    return out  # fmt: skip


def run(url: str, args: argparse.Namespace, fleet: bool) -> float:
    store = Store.open(url)
    try:
        agents = [
            store.enroll_agent(f"c{i % 50:02d}", f"h{i:05d}", f"a{i:05d}")[0] for i in range(args.agents)
        ]
        work = batches(agents, args.batches, args.results, args.metrics)
        with contextlib.ExitStack() as stack:
            if not fleet:  # the baseline: the store's two fleet-state writes do nothing
                stack.enter_context(mock.patch.object(store_module, "refresh_host", lambda *a, **k: False))
                stack.enter_context(mock.patch.object(store_module, "touch_agent", lambda *a, **k: None))
            store.ingest_many(work[0])  # warm-up round: series created, caches filled
            started = time.perf_counter()
            for group in work[1:]:
                for start in range(0, len(group), 200):
                    for outcome in store.ingest_many(group[start : start + 200]):
                        assert not isinstance(outcome, Exception), outcome
            return (len(work) - 1) * len(agents) / (time.perf_counter() - started)
    finally:
        if args.store:
            with store.engine.begin() as conn:
                names = ", ".join(t.name for t in metadata.sorted_tables)
                conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=500)
    parser.add_argument("--batches", type=int, default=6, help="rounds (the first is an untimed warm-up)")
    parser.add_argument("--results", type=int, default=20)
    parser.add_argument("--metrics", type=int, default=3)
    parser.add_argument("--store", help="an empty PostgreSQL database URL (default: SQLite in a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        without = run(args.store or f"sqlite:///{tmp}/without.db", args, fleet=False)
        with_ = run(args.store or f"sqlite:///{tmp}/with.db", args, fleet=True)
    print(
        json.dumps(
            {
                "store": (args.store or "sqlite").split(":", 1)[0],
                "agents": args.agents,
                "timed_batches": (args.batches - 1) * args.agents,
                "results_per_batch": args.results,
                "batches_per_s_without_fleet_state": round(without, 1),
                "batches_per_s_with_fleet_state": round(with_, 1),
                "ratio": round(with_ / without, 3),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
