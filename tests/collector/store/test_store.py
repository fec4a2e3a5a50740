"""Store behaviour on SQLite and PostgreSQL: exactly-once ingest, isolation, tokens, gaps."""

from __future__ import annotations

import json
import threading
import time

import pytest
import sqlalchemy as sa

from collector.store import (
    AgentRevoked,
    Conflict,
    GapRow,
    HealthRow,
    HostFactsRow,
    IngestBatch,
    InventoryRow,
    NotFound,
    PointRow,
    ResultRow,
    Scope,
    Store,
    StoreError,
)
from collector.store.fleet import FleetRepo
from collector.store.store import ColumnarBatch, point_count
from collector.store.tables import metadata

T0 = 1_700_000_000.0


def result(seq: int, check: str = "host.load", severity: str = "OK", ts: float | None = None) -> ResultRow:
    layer = check.split(".", 1)[0]
    key = "OK" if severity == "OK" else "LOAD_HIGH"
    findings = json.dumps([{"severity": severity, "key": key, "summary": f"s{seq}"}])
    return ResultRow(
        seq, ts if ts is not None else T0 + seq, check, layer, severity, key, f"s{seq}", 1.5, findings, None
    )


def batch(first: int, last: int, points_per_result: int = 2, check: str = "host.load") -> IngestBatch:
    results = [result(s, check) for s in range(first, last + 1)]
    points = [
        PointRow(r.seq, r.ts, r.check, f"m{i}_ratio", "ratio", (("core", str(i)),), float(r.seq * 10 + i))
        for r in results
        for i in range(points_per_result)
    ]
    return IngestBatch(max_seq=last, min_seq=first, results=results, points=points, inventories=[], health=[])


def count(store: Store, table: str) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one())


def facts(hostname: str = "web1") -> HostFactsRow:
    return HostFactsRow(hostname, "0.1.0", {"role": "db"}, "debian", "12", "6.1.0", "x86_64", 2, 4 << 30, T0)


# --------------------------------------------------------------------------- ingest


def test_ingest_stores_results_points_and_latest(store: Store) -> None:
    agent, _token = store.enroll_agent("acme", host="web1")
    assert store.hello(agent, facts()) == 0
    assert store.ingest(agent, batch(1, 5)) == 5
    assert count(store, "check_results") == 5
    assert count(store, "points") == 10
    assert count(store, "series") == 2
    assert count(store, "latest_results") == 1
    detail = FleetRepo(store).host_detail(Scope.of("acme"), "web1")
    assert [r.seq for r in detail.layers["host"]] == [5]
    assert detail.facts["os_id"] == "debian"
    assert detail.host.labels == {"role": "db"}
    assert store.hello(agent, facts()) == 5  # the resume point


def test_same_batch_twice_is_stored_once(store: Store) -> None:
    agent, _ = store.enroll_agent("acme", host="web1")
    assert store.ingest(agent, batch(1, 10)) == 10
    assert store.ingest(agent, batch(1, 10)) == 10
    assert count(store, "check_results") == 10
    assert count(store, "points") == 20


def test_overlapping_batch_stores_only_the_new_part(store: Store) -> None:
    agent, _ = store.enroll_agent("acme", host="web1")
    store.ingest(agent, batch(1, 10))
    assert store.ingest(agent, batch(6, 15)) == 15
    seqs = [r.seq for r in FleetRepo(store).results(Scope.everything(), "web1", limit=100)]
    assert sorted(seqs) == list(range(1, 16))
    assert count(store, "points") == 30


def columnar(b: IngestBatch) -> ColumnarBatch:
    """The same batch as the decoder builds it: points as columns, no PointRow objects."""
    refs = [(p.check, p.name, p.unit, p.labels) for p in b.points]
    spans: list[tuple[int, float, int]] = []
    for i, p in enumerate(b.points):
        if spans and spans[-1][0] == p.seq:
            spans[-1] = (p.seq, p.ts, i + 1)
        else:
            spans.append((p.seq, p.ts, i + 1))
    out = ColumnarBatch(
        b.max_seq, b.min_seq, b.results, [], b.inventories, b.health, refs, [p.value for p in b.points], spans
    )
    assert out.point_rows() == b.points and point_count(out) == point_count(b)
    return out


def stored_points(store: Store) -> list[tuple[str, str, float, float]]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT s.name, s.labels_key, p.ts, p.value FROM points p JOIN series s ON s.id = p.series_id"
            )
        )
        return sorted((r[0], r[1], float(r[2]), float(r[3])) for r in rows)


def test_columnar_batches_store_the_same_rows_and_replays_only_the_new_part(store: Store) -> None:
    """The decoder's column form and the PointRow form write identical rows, exactly once."""
    by_rows, _ = store.enroll_agent("acme", host="web1")
    by_columns, _ = store.enroll_agent("acme", host="web2")
    for first, last in ((1, 10), (1, 10), (6, 15), (14, 20)):  # a replay, two overlaps
        assert store.ingest(by_rows, batch(first, last, points_per_result=3)) == last
        assert store.ingest(by_columns, columnar(batch(first, last, points_per_result=3))) == last
    with store.engine.connect() as conn:
        per_host: dict[str, int] = dict(
            conn.execute(
                sa.text(
                    "SELECT h.name, COUNT(*) FROM points p JOIN series s ON s.id = p.series_id "
                    "JOIN hosts h ON h.id = s.host_id GROUP BY h.name"
                )
            ).all()
        )
    assert per_host == {"web1": 60, "web2": 60}
    assert count(store, "series") == 6
    both = stored_points(store)
    assert both[0::2] == both[1::2]  # every row of web1 has its twin in web2


def test_ingest_many_group_commits_and_reports_each_outcome(store: Store) -> None:
    agents = [store.enroll_agent("acme", host=f"h{i}")[0] for i in range(3)]
    store.revoke_agent(agents[1].agent_id)
    outcomes = store.ingest_many(
        [
            (agents[0], columnar(batch(1, 5))),
            (agents[1], batch(1, 5)),
            (agents[2], batch(1, 4)),
            (agents[0], columnar(batch(3, 8))),  # the same agent again, overlapping: in order
        ]
    )
    assert outcomes[0] == 5 and outcomes[2] == 4 and outcomes[3] == 8
    assert isinstance(outcomes[1], AgentRevoked)
    assert count(store, "check_results") == 8 + 4
    assert count(store, "points") == 2 * (8 + 4)
    assert store.ingest_many([]) == []


def test_batch_max_seq_covers_entries_not_sent(store: Store) -> None:
    """A batch may end with seqs the agent did not send (e.g. a dropped kind): still durable."""
    agent, _ = store.enroll_agent("acme", host="web1")
    b = batch(1, 3)
    b.max_seq = 7
    assert store.ingest(agent, b) == 7
    assert store.hello(agent, facts()) == 7


def test_concurrent_ingest_from_many_threads_is_exactly_once(store: Store) -> None:
    agents = [store.enroll_agent("acme", host=f"h{i}")[0] for i in range(4)]
    errors: list[Exception] = []

    def send(agent_index: int) -> None:
        agent = agents[agent_index]
        try:
            for start in range(1, 200, 10):
                store.ingest(agent, batch(start, start + 9))
                store.ingest(agent, batch(max(1, start - 5), start + 4))  # replay overlap
        except Exception as exc:  # collected and asserted below  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(4) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    assert count(store, "check_results") == 4 * 200
    assert count(store, "points") == 4 * 200 * 2
    assert {a.max_seq for a in FleetRepo(store).agents(Scope.everything())} == {200}


def test_ingest_uses_the_identity_host_never_the_payload(store: Store) -> None:
    a, _ = store.enroll_agent("acme", host="web1")
    b, _ = store.enroll_agent("globex", host="web1")
    store.hello(a, facts(hostname="db-of-globex"))  # a lying hostname changes nothing
    store.ingest(a, batch(1, 3, check="host.load"))
    store.ingest(b, batch(1, 2, check="storage.filesystem"))
    acme = FleetRepo(store).host_detail(Scope.of("acme"), "web1")
    globex = FleetRepo(store).host_detail(Scope.of("globex"), "web1")
    assert list(acme.layers) == ["host"]
    assert list(globex.layers) == ["storage"]
    assert [h.name for h in FleetRepo(store).list_hosts(Scope.of("acme"))] == ["web1"]
    assert len(FleetRepo(store).results(Scope.of("globex"), "web1")) == 2


def test_scoped_queries_hide_other_customers(store: Store) -> None:
    a, _ = store.enroll_agent("acme", host="web1")
    store.enroll_agent("globex", host="db1")
    store.ingest(a, batch(1, 2))
    with pytest.raises(NotFound):
        FleetRepo(store).host_detail(Scope.of("globex"), "web1")
    with pytest.raises(NotFound):
        FleetRepo(store).results(Scope.of("globex"), "web1")
    assert [x.customer for x in FleetRepo(store).agents(Scope.of("globex"))] == ["globex"]
    assert sorted(h.customer for h in FleetRepo(store).list_hosts(Scope.everything())) == ["acme", "globex"]


def test_same_host_name_in_two_customers_needs_the_customer_for_engineers(store: Store) -> None:
    store.enroll_agent("acme", host="web1")
    store.enroll_agent("globex", host="web1")
    with pytest.raises(Conflict, match="several customers"):
        FleetRepo(store).host_detail(Scope.everything(), "web1")
    assert (
        FleetRepo(store).host_detail(Scope.everything(), "web1", customer="globex").host.customer == "globex"
    )


def test_results_filters_and_latest_per_check_by_layer(store: Store) -> None:
    agent, _ = store.enroll_agent("acme", host="web1")
    rows = [result(1, "storage.filesystem", "CRIT"), result(2, "host.load"), result(3, "host.load", "WARN")]
    store.ingest(agent, IngestBatch(3, 1, rows, [], [], []))
    detail = FleetRepo(store).host_detail(Scope.of("acme"), "web1")
    assert list(detail.layers) == ["host", "storage"]  # lowest layer first
    assert [(r.check, r.seq, r.severity) for r in detail.layers["host"]] == [("host.load", 3, "WARN")]
    assert detail.host.worst_severity == "CRIT"
    assert [r.seq for r in FleetRepo(store).results(Scope.of("acme"), "web1", check="host.load")] == [3, 2]
    assert [r.seq for r in FleetRepo(store).results(Scope.of("acme"), "web1", since=T0 + 2)] == [3, 2]
    assert [r.seq for r in FleetRepo(store).results(Scope.of("acme"), "web1", limit=1)] == [3]
    assert (
        FleetRepo(store).results(Scope.of("acme"), "web1", check="host.load")[0].findings[0]["key"]
        == "LOAD_HIGH"
    )


def test_an_older_result_does_not_replace_the_latest(store: Store) -> None:
    agent, _ = store.enroll_agent("acme", host="web1")
    store.ingest(agent, IngestBatch(2, 1, [result(1, ts=T0 + 100), result(2, ts=T0 + 50)], [], [], []))
    assert FleetRepo(store).host_detail(Scope.of("acme"), "web1").layers["host"][0].seq == 1


def test_health_entries_are_stored_once(store: Store) -> None:
    agent, _ = store.enroll_agent("acme", host="web1")
    health = [HealthRow(4, T0, {"rss_bytes": 30_000_000})]
    store.ingest(agent, IngestBatch(4, 4, [], [], [], health))
    store.ingest(agent, IngestBatch(4, 4, [], [], [], health))
    assert count(store, "agent_health") == 1


# --------------------------------------------------------------------------- enrollment, tokens


def test_tokens_authenticate_and_are_never_stored_in_plain(store: Store) -> None:
    agent, token = store.enroll_agent("acme", host="web1", agent_id="agent-web1")
    api_token = store.create_api_token("alice", "engineer")
    assert store.authenticate_agent(token) == agent
    assert store.authenticate_agent(token + "x") is None
    assert store.authenticate_agent(api_token) is None
    principal = store.authenticate_api_token(api_token)
    assert principal is not None and principal.role == "engineer" and principal.customer is None
    assert store.authenticate_api_token(token) is None
    with store.engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(sa.select(table)):
                text = " ".join(str(v) for v in row)
                assert token not in text and api_token not in text, table.name
                assert token[8:20] not in text and api_token[8:20] not in text, table.name


def test_revocation_takes_effect_and_stores_nothing(store: Store) -> None:
    agent, token = store.enroll_agent("acme", host="web1")
    store.ingest(agent, batch(1, 2))
    assert store.revoke_agent(agent.agent_id) is True
    assert store.revoke_agent(agent.agent_id) is False
    assert store.authenticate_agent(token) is None
    with pytest.raises(AgentRevoked):
        store.ingest(agent, batch(3, 4))
    with pytest.raises(AgentRevoked):
        store.record_gaps(agent, [GapRow(5, 6, 2, "spool_full", T0)])
    assert count(store, "check_results") == 2
    assert count(store, "gaps") == 0


def test_revocation_by_another_process_is_seen_within_five_seconds(store: Store) -> None:
    agent, token = store.enroll_agent("acme", host="web1")
    assert store.authenticate_agent(token) == agent  # now cached
    other = Store(store.engine)  # stands in for a second collector / the CLI
    assert other.revoke_agent(agent.agent_id)
    deadline = time.monotonic() + 5.0
    while store.authenticate_agent(token) is not None:
        assert time.monotonic() < deadline, "revocation not seen within 5 s"
        time.sleep(0.25)


def test_a_failing_batch_does_not_fail_the_others_in_its_group(store: Store) -> None:
    good, _ = store.enroll_agent("acme", host="web1")
    bad, _ = store.enroll_agent("acme", host="web2")
    store.revoke_agent(bad.agent_id)
    outcome: dict[str, object] = {}

    def send(name: str, agent_index: int) -> None:
        agent = (good, bad)[agent_index]
        try:
            outcome[name] = store.ingest(agent, batch(1, 5))
        except AgentRevoked as exc:
            outcome[name] = exc

    threads = [threading.Thread(target=send, args=(f"t{i}", i % 2)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(type(v).__name__ for v in outcome.values()) == ["AgentRevoked"] * 3 + ["int"] * 3
    assert count(store, "check_results") == 5


def test_enroll_validates_and_refuses_duplicates(store: Store) -> None:
    identity, token = store.enroll_agent("acme")
    assert identity.host == identity.agent_id and token.startswith("dga_")
    store.enroll_agent("acme", host="web1", agent_id="a1")
    with pytest.raises(Conflict):
        store.enroll_agent("globex", host="web1", agent_id="a1")
    with pytest.raises(StoreError, match="slug"):
        store.enroll_agent("Acme Corp")
    with pytest.raises(StoreError, match="host"):
        store.enroll_agent("acme", host=" web1")


def test_api_token_roles(store: Store) -> None:
    viewer = store.create_api_token("v", "viewer", customer="acme")
    principal = store.authenticate_api_token(viewer)
    assert principal is not None
    assert principal.scope == Scope.of("acme") and not principal.can_write
    with pytest.raises(StoreError, match="role"):
        store.create_api_token("x", "root")
    with pytest.raises(StoreError, match="customer"):
        store.create_api_token("x", "viewer")
    with pytest.raises(StoreError, match="engineer"):
        store.create_api_token("x", "engineer", customer="acme")
    assert store.revoke_api_token(principal.token_id)
    assert store.authenticate_api_token(viewer) is None


# --------------------------------------------------------------------------- gaps, inventory


def test_gaps_are_idempotent(store: Store) -> None:
    agent, _ = store.enroll_agent("acme", host="web1")
    gaps = [GapRow(10, 19, 10, "spool_full", T0), GapRow(30, 30, 1, "spool_full", T0 + 1)]
    assert store.record_gaps(agent, gaps) == [10, 30]
    assert store.record_gaps(agent, gaps[:1]) == [10]
    assert count(store, "gaps") == 2
    listed = FleetRepo(store).gaps(Scope.of("acme"), "web1")
    assert [(g.first_seq, g.count) for g in listed] == [(30, 1), (10, 10)]
    assert FleetRepo(store).gaps(Scope.of("globex")) == []
    with pytest.raises(StoreError, match="invalid gap"):
        store.record_gaps(agent, [GapRow(5, 4, 0, "spool_full", T0)])


def test_a_gap_reported_again_keeps_its_larger_extent(store: Store) -> None:
    # The spool kept dropping after its first report: the grown range replaces the old
    # one, and a stale, smaller re-report never shrinks it.
    agent, _ = store.enroll_agent("acme", host="web1")
    store.record_gaps(agent, [GapRow(10, 19, 10, "spool_full", T0)])
    store.record_gaps(agent, [GapRow(10, 29, 20, "spool_full", T0)])
    store.record_gaps(agent, [GapRow(10, 15, 6, "spool_full", T0)])
    listed = FleetRepo(store).gaps(Scope.of("acme"), "web1")
    assert [(g.first_seq, g.last_seq, g.count) for g in listed] == [(10, 29, 20)]


def _inventory(seq: int, products: object, sha: str) -> IngestBatch:
    doc = {"os": "debian", "products": products}
    return IngestBatch(seq, seq, [], [], [InventoryRow(seq, T0 + seq, doc, sha)], [])


def test_product_upgrades_recorded_from_inventory_changes(store: Store) -> None:
    agent, _ = store.enroll_agent("acme", host="web1")
    store.ingest(agent, _inventory(1, {"erp": "4.2.0", "db": "15.4"}, "a" * 64))
    assert FleetRepo(store).upgrades(Scope.of("acme"), "web1") == []  # the first inventory is a baseline
    store.ingest(agent, _inventory(2, {"erp": "4.2.0", "db": "15.4"}, "a" * 64))  # unchanged
    store.ingest(
        agent, _inventory(3, [{"name": "erp", "version": "4.3.0"}, {"name": "mq", "version": "3"}], "b" * 64)
    )
    store.ingest(agent, _inventory(3, {"erp": "9"}, "c" * 64))  # replay of seq 3: ignored
    ups = FleetRepo(store).upgrades(Scope.of("acme"), "web1")
    assert sorted((u.product, u.from_version, u.to_version) for u in ups) == [
        ("db", "15.4", None),
        ("erp", "4.2.0", "4.3.0"),
        ("mq", None, "3"),
    ]
    assert count(store, "inventory_changes") == 2
    assert FleetRepo(store).upgrades(Scope.of("globex")) == []


def test_an_identical_inventory_under_a_new_seq_is_recorded_as_a_confirmation(store: Store) -> None:
    """Exactly once per (agent, seq): a restarted agent re-sends its unchanged inventory under a
    new seq; no change is recorded, but the store records that seq as the document's latest."""
    agent, _ = store.enroll_agent("acme", host="web1")
    store.ingest(agent, _inventory(1, {"erp": "4.2.0"}, "a" * 64))
    store.ingest(agent, _inventory(7, {"erp": "4.2.0"}, "a" * 64))
    with store.engine.connect() as conn:
        current = conn.execute(sa.text("SELECT seq, ts, sha256 FROM inventory")).one()
        changes = conn.execute(sa.text("SELECT seq FROM inventory_changes")).scalars().all()
    assert (current.seq, current.ts, current.sha256) == (7, T0 + 7, "a" * 64)
    assert changes == [1]  # the change itself is recorded once, under the seq that made it
    assert FleetRepo(store).upgrades(Scope.of("acme"), "web1") == []


# --------------------------------------------------------------------------- retention, bench baseline


def test_retention_rolls_up_old_points_and_prunes(store: Store) -> None:
    agent, _ = store.enroll_agent("acme", host="web1")
    day = 86_400.0
    old = T0 - 20 * day  # beyond the 14-day raw retention
    bucket = (int(old) // 300) * 300
    rows = [result(i, ts=bucket + 10 * i) for i in range(1, 6)]  # one 5-minute bucket
    points = [PointRow(r.seq, r.ts, r.check, "load_ratio", "ratio", (), float(r.seq)) for r in rows]
    store.ingest(agent, IngestBatch(5, 1, rows, points, [], []))
    store.ingest(agent, batch(6, 7))  # fresh points (T0 + seq) stay raw
    deleted = store.apply_retention(now=T0)
    assert deleted["points"] == 5
    assert count(store, "points") == 4
    with store.engine.connect() as conn:
        rollup = conn.execute(
            sa.text("SELECT bucket_ts, min, max, avg, count, resolution_s FROM points_rollup")
        ).all()
    assert [tuple(r) for r in rollup] == [(float(bucket), 1.0, 5.0, 3.0, 5, 300)]
    # A late point in an already rolled bucket merges into it.
    late = PointRow(8, bucket + 299, "host.load", "load_ratio", "ratio", (), 9.0)
    store.ingest(agent, IngestBatch(8, 8, [result(8, ts=bucket + 299)], [late], [], []))
    store.apply_retention(now=T0)
    with store.engine.connect() as conn:
        merged = conn.execute(sa.text("SELECT min, max, avg, count FROM points_rollup")).one()
    assert tuple(merged) == (1.0, 9.0, 4.0, 6)
    # Results keep 90 days: the 20-day-old ones stay until then.
    assert count(store, "check_results") == 8
    assert store.apply_retention(now=T0 + 100 * day)["check_results"] == 8


def test_plain_insert_points_is_a_plain_insert(store: Store) -> None:
    store.plain_insert_points([(1, T0, 1.0), (1, T0 + 1, 2.0), (2, T0, 3.0)])
    assert count(store, "points") == 3


def test_ping_and_stats(store: Store) -> None:
    store.enroll_agent("acme", host="web1")
    assert store.ping()
    assert FleetRepo(store).stats() == {
        "customers": 1,
        "hosts": 1,
        "agents_active": 1,
        "agents_revoked": 0,
        "hosts_clock_skewed": 0,
    }
