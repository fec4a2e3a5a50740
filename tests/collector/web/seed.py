"""A small seeded store for the dashboard's tests: two customers, results, metric history, a case.

- acme: ``db1`` (storage CRIT, host WARN; a load series with a spike), ``web1`` (all OK);
- globex: ``app1`` (all OK);
- an emergency case opened for acme/db1 the way the live observer opens one;
- tokens: engineer, acme admin, acme viewer, globex admin.
"""

from __future__ import annotations

import json
import time

from collector.emergency.case_content import case_content
from collector.incidents import IncidentEngine, Signal
from collector.store import IngestBatch, PointRow, ResultRow, Store
from collector.store.cases import CaseRepo


def seed(store: Store, now: float | None = None) -> dict[str, str]:
    """Seed ``store``; returns the tokens by role name and the case id under ``"case"``."""
    now = time.time() if now is None else now
    results = {
        ("acme", "db1"): [
            ("storage.filesystem", "storage", "CRIT", "FS_NEARLY_FULL", "/data is 97% full"),
            ("host.load", "host", "WARN", "LOAD_HIGH", "load 3.1 per CPU"),
            ("network.interfaces", "network", "OK", "OK", "all up"),
        ],
        ("acme", "web1"): [
            ("storage.filesystem", "storage", "OK", "OK", "fine"),
            ("host.load", "host", "OK", "OK", "load 0.2"),
        ],
        ("globex", "app1"): [("host.load", "host", "OK", "OK", "load 0.1")],
    }
    for (customer, host), checks in results.items():
        agent, _ = store.enroll_agent(customer, host=host, agent_id=f"{customer}-{host}")
        seq = 0
        rows = []
        for check, layer, sev, key, summary in checks:
            seq += 1
            rows.append(ResultRow(seq, now - 60, check, layer, sev, key, summary, 1.0, json.dumps([]), None))
        points = []
        if host == "db1":
            for i in range(120):  # every 5 minutes for 10 hours, with a spike near the end
                value = 1.0 + 0.05 * (i % 4) + (6.0 if i == 110 else 0.0)
                seq += 1
                points.append(
                    PointRow(seq, now - (120 - i) * 300, "host.load", "host_load_ratio", "ratio", (), value)
                )
        store.ingest(agent, IngestBatch(seq, 1, rows, points, [], []))
    engine = IncidentEngine(clock=lambda: now - 600)
    (incident,) = engine.feed(
        Signal.check_crit("acme", "db1", "storage.filesystem", "FS_FULL", ts=now - 600, item="/data")
    )
    case_id = CaseRepo(store).open_case(case_content(incident), now=now - 600)
    return {
        "engineer": store.create_api_token("eng", "engineer"),
        "admin": store.create_api_token("acme-admin", "customer_admin", customer="acme"),
        "viewer": store.create_api_token("acme-viewer", "viewer", customer="acme"),
        "globex": store.create_api_token("globex-admin", "customer_admin", customer="globex"),
        "case": case_id,
    }
