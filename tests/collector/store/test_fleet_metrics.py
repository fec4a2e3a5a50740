"""FleetMetricsRepo: the /metrics fleet snapshot, on SQLite and PostgreSQL."""

from __future__ import annotations

import time

from collector.store import HealthRow, IngestBatch, Store
from collector.store.cases import CaseContent, CaseRepo
from collector.store.fleet_metrics import FleetMetricsRepo
from collector.store.queries import Scope
from tests.collector.store.test_store import T0, result


def _case(incident: str, customer: str, severity: str) -> CaseContent:
    return CaseContent(
        incident, customer, "DEGRADATION", f"{incident} degraded", severity, ("h",), [], [], {}, T0, T0
    )


def test_snapshot_counts_agents_hosts_by_worst_state_and_unresolved_cases(store: Store) -> None:
    before = time.time()
    a1, _ = store.enroll_agent("acme", host="web1", agent_id="a1")
    a2, _ = store.enroll_agent("acme", host="db1", agent_id="a2")
    store.enroll_agent("acme", host="new1", agent_id="a3")  # never sends anything
    g1, _ = store.enroll_agent("globex", host="app1", agent_id="g1")
    gone, _ = store.enroll_agent("globex", host="old1", agent_id="gone")
    # web1: worst of its checks' latest results is WARN (an earlier CRIT was replaced).
    store.ingest(a1, IngestBatch(1, 1, [result(1, "host.load", "CRIT")], [], [], []))
    store.ingest(
        a1,
        IngestBatch(
            4,
            2,
            [result(2, "host.load", "OK"), result(3, "host.memory", "WARN")],
            [],
            [],
            # Two health entries: the newest (seq 4) counts, whatever its timestamp.
            [HealthRow(4, T0 + 1, {"spool_depth": 17}), HealthRow(2, T0 + 99, {"spool_depth": 900})],
        ),
    )
    # db1: CRIT beats UNKNOWN beats WARN.
    store.ingest(
        a2,
        IngestBatch(
            3,
            1,
            [
                result(1, "host.load", "WARN"),
                result(2, "host.memory", "UNKNOWN"),
                result(3, "host.cpu", "CRIT"),
            ],
            [],
            [],
            [],
        ),
    )
    store.ingest(g1, IngestBatch(1, 1, [result(1, "host.load", "OK")], [], [], []))
    store.ingest(gone, IngestBatch(1, 1, [result(1, "host.load", "OK")], [], [], []))
    assert store.revoke_agent("gone")
    after = time.time()

    cases = CaseRepo(store)
    cases.open_case(_case("i1", "acme", "CRIT"), now=T0)
    cases.open_case(_case("i2", "acme", "CRIT"), now=T0)
    acked = cases.open_case(_case("i3", "acme", "WARN"), now=T0)
    cases.acknowledge(Scope.everything(), acked, actor="alice", now=T0 + 1)
    done = cases.open_case(_case("i4", "globex", "CRIT"), now=T0)
    cases.resolve(Scope.everything(), done, actor="alice", now=T0 + 2)

    snap = FleetMetricsRepo(store).snapshot()

    by_id = {a.agent_id: a for a in snap.agents}
    assert sorted(by_id) == ["a1", "a2", "a3", "g1"]  # the revoked agent is gone
    assert by_id["a1"].customer == "acme" and by_id["g1"].customer == "globex"
    assert by_id["a1"].spool_depth == 17
    assert by_id["a2"].spool_depth is None  # no health entry yet
    assert by_id["a3"].last_seen_at is None and by_id["a3"].spool_depth is None
    seen = by_id["a1"].last_seen_at
    assert seen is not None and before <= seen <= after
    assert sorted(snap.customers) == ["acme", "globex"]
    # The revoked agent's host is still a host of globex (with an OK result).
    assert snap.hosts_by_state == {
        ("acme", "WARN"): 1,
        ("acme", "CRIT"): 1,
        ("acme", "NONE"): 1,
        ("globex", "OK"): 2,
    }
    assert snap.cases == {("acme", "CRIT", "new"): 2, ("acme", "WARN", "acknowledged"): 1}


def test_an_empty_store_gives_an_empty_snapshot(store: Store) -> None:
    snap = FleetMetricsRepo(store).snapshot()
    assert (snap.agents, snap.customers, snap.hosts_by_state, snap.cases) == ([], [], {}, {})
