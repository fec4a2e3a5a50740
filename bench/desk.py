"""The SLA sweep over 100,000 open cases, on SQLite and on PostgreSQL: JSON out.

Seeds a migrated store with ``--cases`` open emergency cases spread over ``--customers``
customers (each with a contract on a Shanghai/CN business calendar with split hours),
opened over the five business days before *now*, a third of them acknowledged; then
times, per dialect:

- ``full_s``: the first sweep, which computes every case's clocks from its history (the
  baseline: what a sweep that recomputed everything would cost every time);
- ``quiet_s``: a sweep with nothing changed (median of 5, after the first one, which reads
  the alerts the full sweep raised): two indexed range queries. On PostgreSQL the tables
  are analysed after the bulk load first, as autovacuum would within a minute;
- ``changed_s``: a sweep after 1% of the cases changed state (new timeline rows) and an
  hour has passed, so clocks cross their thresholds and warnings and breaches are raised
  (median of 3, each after its own changes; ``changed_passes`` has each one with the
  alerts it raised: at 16:30 on a Monday every weekend case's restore clock reaches 75%
  at once, a burst of about a quarter of all cases; ``changed_max_s`` is that pass);
- ``target_s``: 1.0; ``ok``: quiet and changed sweeps both within it.

Usage: ``python bench/desk.py [--cases 100000] [--customers 50] [--dialects sqlite,postgresql]``.
PostgreSQL is the server at 127.0.0.1:5432 (trust auth, database ``test``); a fresh
database is created and dropped. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from collector.desk.sweep import SlaSweep  # noqa: E402
from collector.store import Scope, Store  # noqa: E402
from collector.store.customer_file import CustomerFileRepo  # noqa: E402
from collector.store.schema import customers  # noqa: E402
from collector.store.schema_cases import case_events, cases  # noqa: E402
from collector.store.sla import SlaRepo  # noqa: E402

TARGET_S = 1.0
SHANGHAI = ZoneInfo("Asia/Shanghai")
CALENDAR = {
    "timezone": "Asia/Shanghai",
    "country": "CN",
    "hours": {d: ["09:00-12:00", "13:30-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
}


def seed(store: Store, n_cases: int, n_customers: int, now: float, rng: random.Random) -> list[str]:
    """Customers with contracts, and ``n_cases`` open cases with their timelines (bulk inserts)."""
    desk = CustomerFileRepo(store)
    with store.engine.begin() as conn:
        conn.execute(
            customers.insert(),
            [
                {
                    "slug": f"c{i:03d}",
                    "name": f"Customer {i}",
                    "timezone": "Asia/Shanghai",
                    "settings": {},
                    "created_at": now,
                }
                for i in range(n_customers)
            ],
        )
        ids = dict(conn.execute(sa.select(customers.c.slug, customers.c.id)).all())
    for slug in ids:
        desk.add_contract(
            Scope.everything(),
            slug,
            {
                "name": "2026",
                "tier": "gold",
                "starts_on": date(2020, 1, 1),
                "ends_on": date(2030, 12, 31),
                "targets": {"emergency": {"first_response": 60, "restore": 480, "resolve": 2400}},
                "rate_onsite": 1500,
                "rate_remote": 900,
                "currency": "CNY",
                "calendar": CALENDAR,
            },
            now=now,
        )
    case_rows: list[dict[str, Any]] = []
    event_rows: list[dict[str, Any]] = []
    numbers: dict[str, int] = {}
    for i in range(n_cases):
        slug = f"c{i % n_customers:03d}"
        numbers[slug] = numbers.get(slug, 0) + 1
        case_id = f"C-{slug}-{numbers[slug]}"
        opened = now - rng.uniform(0, 7 * 86400)
        acked = rng.random() < 0.33
        state = "acknowledged" if acked else "open"
        case_rows.append(
            {
                "id": case_id,
                "customer_id": ids[slug],
                "number": numbers[slug],
                "incident_id": f"i{i}",
                "kind": "DEGRADATION",
                "title": f"case {i}",
                "severity": "CRIT",
                "state": state,
                "owner": "eng" if acked else None,
                "hosts": [f"h{i % 500}"],
                "causes": [],
                "members": [],
                "incident": {},
                "onset_at": opened,
                "detected_at": opened,
                "opened_at": opened,
                "updated_at": opened,
                "reopened": 0,
            }
        )
        event_rows.append(
            {"case_id": case_id, "ts": opened, "kind": "opened", "actor": None, "text": "opened", "data": {}}
        )
        if acked:
            event_rows.append(
                {
                    "case_id": case_id,
                    "ts": opened + rng.uniform(60, 7200),
                    "kind": "acknowledged",
                    "actor": "eng",
                    "text": "acknowledged",
                    "data": {},
                }
            )
    with store.engine.begin() as conn:
        for start in range(0, len(case_rows), 10_000):
            conn.execute(cases.insert(), case_rows[start : start + 10_000])
        for start in range(0, len(event_rows), 10_000):
            conn.execute(case_events.insert(), event_rows[start : start + 10_000])
    return [row["id"] for row in case_rows if row["state"] == "open"]


def change(store: Store, open_ids: list[str], n: int, at: float, rng: random.Random) -> None:
    """``n`` cases change state (acknowledged: a new timeline row each), as the API would."""
    chosen = rng.sample(open_ids, min(n, len(open_ids)))
    for case_id in chosen:
        open_ids.remove(case_id)
    with store.engine.begin() as conn:
        conn.execute(cases.update().where(cases.c.id.in_(chosen)).values(state="acknowledged"))
        conn.execute(
            case_events.insert(),
            [
                {
                    "case_id": c,
                    "ts": at,
                    "kind": "acknowledged",
                    "actor": "eng",
                    "text": "acknowledged",
                    "data": {"from": "open", "to": "acknowledged"},
                }
                for c in chosen
            ],
        )


def bench(url: str, dialect: str, n_cases: int, n_customers: int) -> dict[str, Any]:
    rng = random.Random(14)
    now = datetime(2026, 12, 7, 15, 0, tzinfo=SHANGHAI).timestamp()  # a Monday afternoon
    store = Store.open(url)
    try:
        started = time.perf_counter()
        open_ids = seed(store, n_cases, n_customers, now, rng)
        seeded_s = time.perf_counter() - started
        sweep = SlaSweep(SlaRepo(store), CustomerFileRepo(store))
        first = sweep.run(now)
        if dialect == "postgresql":  # what autovacuum does within a minute of a bulk load
            with store.engine.begin() as conn:
                conn.execute(sa.text("ANALYZE case_sla; ANALYZE case_events; ANALYZE cases"))
        sweep.run(now + 1)  # reads the timeline events the full sweep added
        quiet = [sweep.run(now + 2 + i).seconds for i in range(5)]
        changed = []
        passes = []
        for i in range(3):
            at = now + 3600.0 * (i + 1)
            change(store, open_ids, n_cases // 100, at - 60, rng)
            report = sweep.run(at)
            changed.append(report.seconds)
            passes.append(
                {
                    "seconds": round(report.seconds, 4),
                    "recomputed": report.recomputed,
                    "warnings": report.warnings,
                    "breaches": report.breaches,
                }
            )
            assert report.recomputed == n_cases // 100, report
        with store.engine.connect() as conn:
            clocks = conn.execute(sa.text("SELECT count(*) FROM case_sla")).scalar_one()
        quiet_s, changed_s = statistics.median(quiet), statistics.median(changed)
        return {
            "dialect": dialect,
            "cases": n_cases,
            "customers": n_customers,
            "clocks": int(clocks),
            "seed_s": round(seeded_s, 2),
            "full_s": round(first.seconds, 3),
            "quiet_s": round(quiet_s, 4),
            "changed_s": round(changed_s, 4),
            "changed_max_s": round(max(changed), 4),
            "changed_passes": passes,
            "full_raised": {"warnings": first.warnings, "breaches": first.breaches},
            "speedup_vs_full": round(first.seconds / max(changed_s, 1e-9), 1),
            "target_s": TARGET_S,
            "ok": quiet_s <= TARGET_S and changed_s <= TARGET_S,
        }
    finally:
        store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--dialects", default="sqlite,postgresql")
    args = parser.parse_args()
    results = []
    for dialect in args.dialects.split(","):
        if dialect == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                results.append(bench(f"sqlite:///{tmp}/bench.db", dialect, args.cases, args.customers))
        elif dialect == "postgresql":
            from tests.collector.store.pg import SKIP_REASON, fresh_database, pg_listening

            if not pg_listening():
                results.append({"dialect": dialect, "skipped": SKIP_REASON})
                continue
            with fresh_database() as url:
                results.append(bench(url, dialect, args.cases, args.customers))
        else:
            parser.error(f"unknown dialect {dialect!r}: expected sqlite or postgresql")
    print(json.dumps({"bench": "desk.sla_sweep", "results": results}, indent=2))
    return 0 if all(r.get("ok") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
