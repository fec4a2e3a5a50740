"""The fleet state (collector.store.fleet_state) on SQLite and PostgreSQL.

Kept at ingest, read by the dashboard (``overview``) and /metrics (``snapshot``). The
reference for "correct" is :meth:`FleetStateRepo.rebuild`, which recounts everything from
the stored rows: after any sequence of ingests the incremental state must equal it.
"""

from __future__ import annotations

import math
import threading
import time

import sqlalchemy as sa
from alembic import command
from hypothesis import given
from hypothesis import strategies as st

from collector.ingest.decode import decode_logged
from collector.store import AgentIdentity, HealthRow, IngestBatch, PointRow, Store
from collector.store.cases import CaseContent, CaseRepo
from collector.store.engine import create_engine
from collector.store.fleet_state import FleetOverview, FleetStateRepo, spool_depth_of
from collector.store.migrate import alembic_config, upgrade
from collector.store.queries import Scope
from collector.store.schema_fleet import fleet_agents, fleet_cells, fleet_hosts
from collector.store.store import LogAppend
from tests.collector.store.test_ingest_log import payload
from tests.collector.store.test_migrations import empty_url
from tests.collector.store.test_store import T0, facts, result

__all__ = ["empty_url"]

SILENT = 300.0


def _case(incident: str, customer: str, severity: str) -> CaseContent:
    return CaseContent(
        incident, customer, "DEGRADATION", f"{incident} degraded", severity, ("h",), [], [], {}, T0, T0
    )


def _results(store: Store, agent: AgentIdentity, first: int, *checks: tuple[str, str]) -> int:
    """Ingest one batch of (check, severity) results from seq ``first``; the next free seq."""
    rows = [result(first + i, check, sev) for i, (check, sev) in enumerate(checks)]
    store.ingest(agent, IngestBatch(first + len(rows) - 1, 1, rows, [], [], []))
    return first + len(rows)


def _state(store: Store) -> tuple[set[tuple[object, ...]], set[tuple[object, ...]], dict[str, object]]:
    with store.engine.connect() as conn:
        cells = {tuple(r) for r in conn.execute(sa.select(fleet_cells))}
        hosts = {tuple(r) for r in conn.execute(sa.select(fleet_hosts))}
        spool = dict(conn.execute(sa.select(fleet_agents.c.agent_id, fleet_agents.c.spool_depth)).all())
    return cells, hosts, spool


def _assert_matches_rebuild(store: Store) -> None:
    before = _state(store)
    FleetStateRepo(store).rebuild()
    assert _state(store) == before


def _overview(
    store: Store,
    scope: Scope | None = None,
    now: float | None = None,
    *,
    search: str = "",
    state: str = "",
    offset: int = 0,
    limit: int = 50,
) -> FleetOverview:
    return FleetStateRepo(store).overview(
        scope or Scope.everything(),
        now=time.time() if now is None else now,
        silent_after_s=SILENT,
        recent_s=86400.0,
        search=search,
        state=state,
        offset=offset,
        limit=limit,
    )


def test_ingest_of_results_changes_the_cell_and_only_then(store: Store) -> None:
    a1, _ = store.enroll_agent("acme", host="web1", agent_id="a1")
    seq = _results(store, a1, 1, ("host.load", "CRIT"), ("host.memory", "OK"), ("storage.fs", "WARN"))
    (acme,) = _overview(store).rows
    assert acme.layers == {"host": {"CRIT": 1}, "storage": {"WARN": 1}}
    assert acme.worst("host") == "CRIT" and acme.state == "CRIT"
    with store.engine.connect() as conn:
        counts = conn.execute(
            sa.select(fleet_cells.c.layer, fleet_cells.c.worst, fleet_cells.c.n_ok, fleet_cells.c.n_crit)
        ).all()
    assert sorted(tuple(r) for r in counts) == [("host", 3, 1, 1), ("storage", 1, 0, 0)]
    # host.load recovers: the host cell goes to OK, the host's worst to WARN (storage).
    seq = _results(store, a1, seq, ("host.load", "OK"))
    (acme,) = _overview(store).rows
    assert acme.layers == {"host": {"OK": 1}, "storage": {"WARN": 1}}
    assert acme.hosts_by_worst == {"WARN": 1}
    # An older result (ts before the stored one) does not replace the latest: no change.
    store.ingest(a1, IngestBatch(seq, 1, [result(seq, "host.load", "CRIT", ts=T0 - 100)], [], [], []))
    assert _overview(store).rows[0].layers["host"] == {"OK": 1}
    # A batch of points only leaves the cells alone but still counts as a stored batch.
    point = PointRow(seq + 1, T0 + 50, "host.load", "host_load_ratio", "ratio", (), 0.5)
    store.ingest(a1, IngestBatch(seq + 1, 1, [], [point], [], []))
    assert FleetStateRepo(store).snapshot().hosts_by_state == {("acme", "WARN"): 1}
    # A severity this version does not know counts as UNKNOWN, never as OK.
    _results(store, a1, seq + 2, ("storage.fs", "PURPLE"))
    assert _overview(store).rows[0].layers["storage"] == {"UNKNOWN": 1}
    _assert_matches_rebuild(store)


def test_a_host_going_silent_and_a_hello_not_waking_it(store: Store) -> None:
    clock = {"now": T0}
    timed = Store(store.engine, clock=lambda: clock["now"], log_decoder=decode_logged)
    a1, _ = timed.enroll_agent("acme", host="web1", agent_id="a1")
    timed.enroll_agent("acme", host="db1", agent_id="a2")
    timed.ingest(a1, IngestBatch(2, 1, [result(1)], [], [], [HealthRow(2, T0, {"spool_depth": 12})]))
    row = _overview(timed, now=T0 + 10).rows[0]
    # a2 never stored a batch: silent from the start.
    assert (row.agents_active, row.agents_silent, row.spool_backlog, row.agents_backlogged) == (2, 1, 12, 1)
    clock["now"] = T0 + SILENT + 60
    timed.hello(a1, facts("web1"))  # a Hello refreshes last_seen_at, not the last stored batch
    row = _overview(timed, now=T0 + SILENT + 61).rows[0]
    assert row.agents_silent == 2
    gauges = {g.agent_id: g for g in FleetStateRepo(timed).snapshot().agents}
    assert gauges["a1"].last_batch_at == T0 and gauges["a1"].connected
    assert gauges["a2"].last_batch_at is None and not gauges["a2"].connected
    # A stored batch wakes it; a replay of it (nothing new stored) would not.
    timed.ingest(a1, IngestBatch(3, 1, [result(3)], [], [], []))
    assert _overview(timed, now=T0 + SILENT + 61).rows[0].agents_silent == 1
    clock["now"] = T0 + 5 * SILENT
    timed.ingest(a1, IngestBatch(3, 1, [result(3)], [], [], []))
    gauges = {g.agent_id: g for g in FleetStateRepo(timed).snapshot().agents}
    assert gauges["a1"].last_batch_at == T0 + SILENT + 60


def test_batches_materialised_from_the_ingest_log_update_the_state(store: Store) -> None:
    a1, _ = store.enroll_agent("acme", host="web1", agent_id="a1")
    (outcome,) = store.append_log([LogAppend(a1, payload([1, 2]), 2, 4)])
    assert not isinstance(outcome, Exception)
    assert FleetStateRepo(store).snapshot().agents[0].last_batch_at is None  # acked, not yet stored
    while store.materialise().batches:
        pass
    snap = FleetStateRepo(store).snapshot()
    assert snap.agents[0].last_batch_at is not None
    assert sum(n for (c, s), n in snap.hosts_by_state.items() if s != "NONE") == 1
    _assert_matches_rebuild(store)


def test_two_collectors_on_one_store_keep_one_state(store: Store) -> None:
    """Two Store objects with their own engines and caches (two collectors), writing at once."""
    url = store.engine.url.render_as_string(hide_password=False)
    other = Store(create_engine(url), log_decoder=decode_logged)
    try:
        agents = [store.enroll_agent(f"c{i % 3}", host=f"h{i}", agent_id=f"a{i}")[0] for i in range(12)]
        sevs = ("OK", "WARN", "CRIT", "UNKNOWN")

        def run(collector: Store, parity: int) -> None:
            for round_ in range(6):
                for i, agent in enumerate(agents):
                    if (i + round_) % 2 != parity:
                        continue
                    seq = 10 * round_ + 1
                    rows = [
                        result(seq, "host.load", sevs[(i + round_) % 4], ts=T0 + seq),
                        result(seq + 1, f"storage.fs{round_ % 2}", sevs[(i * round_) % 4], ts=T0 + seq),
                    ]
                    health = [HealthRow(seq + 2, T0 + seq, {"spool_depth": i + round_})]
                    collector.ingest(agent, IngestBatch(seq + 2, 1, rows, [], [], health))

        threads = [threading.Thread(target=run, args=(s, p)) for s, p in ((store, 0), (other, 1))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # Both collectors read the same state, and it is what a recount from the rows gives.
        assert FleetStateRepo(store).snapshot() == FleetStateRepo(other).snapshot()
        _assert_matches_rebuild(store)
        (row,) = _overview(other, Scope.of("c1")).rows
        assert row.hosts == 4 and sum(row.hosts_by_worst.values()) == 4
        assert {g.spool_depth for g in FleetStateRepo(store).snapshot().agents} == {i + 5 for i in range(12)}
    finally:
        other.engine.dispose()


def test_overview_pages_filters_and_scopes_with_totals_for_the_whole_scope(store: Store) -> None:
    seq = 1
    for customer, host, sev in (
        ("acme", "web1", "CRIT"),
        ("acme", "web2", "OK"),
        ("globex", "app1", "WARN"),
        ("initech", "box1", "OK"),
    ):
        agent, _ = store.enroll_agent(customer, host=host, agent_id=f"{customer}-{host}")
        _results(store, agent, seq, ("host.load", sev))
    store.enroll_agent("umbrella", host="new1", agent_id="umbrella-new1")  # no result yet
    CaseRepo(store).open_case(_case("i1", "initech", "CRIT"), now=T0)

    everything = _overview(store)
    # A CRIT case beats a CRIT host; no result at all sorts last.
    assert [r.customer for r in everything.rows] == ["initech", "acme", "globex", "umbrella"]
    assert everything.total.hosts == 5 and everything.total.cases_crit == 1
    assert everything.total.hosts_by_worst == {"CRIT": 1, "OK": 2, "WARN": 1}
    assert everything.total.layers == {"host": {"CRIT": 1, "OK": 2, "WARN": 1}}

    page2 = _overview(store, offset=2, limit=2)
    assert [r.customer for r in page2.rows] == ["globex", "umbrella"]
    assert (page2.matched, page2.customers) == (4, 4)
    assert page2.rows[0].layers == {"host": {"WARN": 1}}

    crit = _overview(store, state="CRIT")
    assert [r.customer for r in crit.rows] == ["acme"] and crit.matched == 1
    assert crit.total.hosts == 5  # the totals ignore the filter
    assert [r.customer for r in _overview(store, state="NONE").rows] == ["umbrella"]
    assert [r.customer for r in _overview(store, search="GLO").rows] == ["globex"]

    mine = _overview(store, Scope.of("acme"))
    assert [r.customer for r in mine.rows] == ["acme"] and mine.customers == 1
    assert mine.total.hosts == 2 and mine.total.layers == {"host": {"CRIT": 1, "OK": 1}}
    assert _overview(store, Scope.of("nobody")).rows == []


def test_snapshot_counts_agents_hosts_by_worst_state_and_unresolved_cases(store: Store) -> None:
    before = time.time()
    a1, _ = store.enroll_agent("acme", host="web1", agent_id="a1")
    a2, _ = store.enroll_agent("acme", host="db1", agent_id="a2")
    store.enroll_agent("acme", host="new1", agent_id="a3")  # never sends anything
    g1, _ = store.enroll_agent("globex", host="app1", agent_id="g1")
    gone, _ = store.enroll_agent("globex", host="old1", agent_id="gone")
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

    snap = FleetStateRepo(store).snapshot()

    by_id = {a.agent_id: a for a in snap.agents}
    assert sorted(by_id) == ["a1", "a2", "a3", "g1"]  # the revoked agent is gone
    assert by_id["a1"].customer == "acme" and by_id["g1"].customer == "globex"
    assert by_id["a1"].spool_depth == 17
    assert by_id["a2"].spool_depth is None  # no health entry yet
    assert by_id["a3"].last_batch_at is None and by_id["a3"].spool_depth is None
    seen = by_id["a1"].last_batch_at
    assert seen is not None and before <= seen <= after
    assert sorted(snap.customers) == ["acme", "globex"]
    assert snap.hosts_by_state == {
        ("acme", "WARN"): 1,
        ("acme", "CRIT"): 1,
        ("acme", "NONE"): 1,
        ("globex", "OK"): 2,  # the revoked agent's host is still a host of globex
    }
    assert snap.cases == {("acme", "CRIT", "new"): 2, ("acme", "WARN", "acknowledged"): 1}
    _assert_matches_rebuild(store)


def test_an_empty_store_gives_an_empty_snapshot_and_overview(store: Store) -> None:
    snap = FleetStateRepo(store).snapshot()
    assert (snap.agents, snap.customers, snap.hosts_by_state, snap.cases) == ([], [], {}, {})
    empty = _overview(store)
    assert (empty.rows, empty.customers, empty.matched, empty.total.hosts) == ([], 0, 0, 0)


@given(
    st.one_of(
        st.none(),
        st.booleans(),
        st.text(max_size=5),
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(min_value=-(2**80), max_value=2**80),
        st.lists(st.integers(), max_size=2),
    )
)
def test_a_hostile_spool_depth_is_a_bounded_whole_number_or_none(value: object) -> None:
    depth = spool_depth_of({"spool_depth": value})
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and math.isfinite(value):  # type: ignore[arg-type]
        assert depth is not None and 0 <= depth <= 2**62
    else:
        assert depth is None
    assert spool_depth_of("not a document") is None


def test_migration_backfills_the_state_from_existing_rows(empty_url: str) -> None:
    engine = create_engine(empty_url)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "0006_report_version_token_expiry")
        old = Store(engine, log_decoder=decode_logged)  # the code is new, the schema is 0006:
        with engine.begin() as conn:  # so rows are written as a 0006 collector wrote them
            conn.execute(
                sa.text(
                    "INSERT INTO customers (id, slug, name, timezone, settings, created_at) "
                    "VALUES (1, 'acme', 'Acme', 'UTC', '{}', 0)"
                )
            )
            for hid, name in ((1, "web1"), (2, "db1")):
                conn.execute(
                    sa.text(
                        "INSERT INTO hosts (id, customer_id, name, labels, facts) "
                        "VALUES (:i, 1, :n, '{}', '{}')"
                    ),
                    {"i": hid, "n": name},
                )
            conn.execute(
                sa.text(
                    "INSERT INTO agents (agent_id, customer_id, host, token_hash, token_prefix, created_at, "
                    "max_seq, last_seen_at) VALUES ('a1', 1, 'web1', :h, 'x', 0, 5, :t), "
                    "('a2', 1, 'db1', :h2, 'x', 0, 0, :t)"
                ),
                {"h": "1" * 64, "h2": "2" * 64, "t": T0},
            )
            for check, layer, sev in (
                ("host.load", "host", "CRIT"),
                ("host.mem", "host", "OK"),
                ("net.if", "network", "WARN"),
            ):
                conn.execute(
                    sa.text(
                        'INSERT INTO latest_results (host_id, "check", agent_id, seq, ts, layer, severity, '
                        '"key", summary, duration_ms, findings) '
                        "VALUES (1, :c, 'a1', 1, 0, :l, :s, 'K', '', 0, '[]')"
                    ),
                    {"c": check, "l": layer, "s": sev},
                )
            for seq, depth in ((4, "7"), (5, "9")):
                conn.execute(
                    sa.text(
                        "INSERT INTO agent_health (agent_id, seq, ts, document) "
                        f"VALUES ('a1', :s, 0, '{{\"spool_depth\": {depth}}}')"
                    ),
                    {"s": seq},
                )
        upgrade(engine)
        cells, hosts, spool = _state(old)
        assert cells == {(1, "host", 1, 3, 1, 0, 0, 1), (1, "network", 1, 1, 0, 1, 0, 0)}
        assert hosts == {(1, 1, 3)}
        assert spool == {"a1": 9}  # a2 stored nothing: no row, silent
        snap = FleetStateRepo(old).snapshot()
        assert {a.agent_id: a.last_batch_at for a in snap.agents} == {"a1": T0, "a2": None}
        assert snap.hosts_by_state == {("acme", "CRIT"): 1, ("acme", "NONE"): 1}
        _assert_matches_rebuild(old)
    finally:
        engine.dispose()
