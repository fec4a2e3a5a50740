"""/metrics: the fleet gauges, process and Python collectors, build info; parsed with
prometheus_client's own parser, on SQLite and PostgreSQL (the ``store`` fixture)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from agent import __version__
from collector.http.app import create_app
from collector.http.metrics import FleetExposition
from collector.ingest.metrics import CollectorMetrics
from collector.store import HealthRow, IngestBatch, Store
from collector.store.cases import CaseContent, CaseRepo
from collector.store.fleet_state import ACTIVE_CASE_STATES, FleetStateRepo
from tests.collector.store.test_store import T0, result

FLEET = (
    "diag_agent_last_batch_age_seconds",
    "diag_agent_spool_backlog_entries",
    "diag_hosts",
    "diag_cases_open",
)


def _scrape(client: TestClient) -> tuple[dict[str, list[Sample]], str]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    families: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(response.text):
        assert family.name not in families, f"{family.name} exposed twice"
        families[family.name] = list(family.samples)
    return families, response.text


def _seed(store: Store, checks: int = 3) -> None:
    web, _ = store.enroll_agent("acme", host="web1", agent_id="acme-web1")
    db, _ = store.enroll_agent("acme", host="db1", agent_id="acme-db1")
    store.enroll_agent("globex", host="app1", agent_id="globex-app1")  # enrolled, never connected
    rows = [result(i + 1, f"host.check{i}", "WARN" if i == 1 else "OK") for i in range(checks)]
    store.ingest(
        web, IngestBatch(checks + 1, 1, rows, [], [], [HealthRow(checks + 1, T0, {"spool_depth": 42})])
    )
    store.ingest(db, IngestBatch(1, 1, [result(1, "host.load", "CRIT")], [], [], []))
    CaseRepo(store).open_case(
        CaseContent("inc-1", "acme", "DEGRADATION", "db1 degraded", "CRIT", ("db1",), [], [], {}, T0, T0),
        now=T0,
    )


def test_metrics_publish_the_fleet_process_and_build(store: Store) -> None:
    _seed(store)
    ingest = CollectorMetrics()
    ingest.batches_ingested(entries=3, points=6, received=[0.0])
    families, text = _scrape(TestClient(create_app(store, ingest.registry)))

    ages = {s.labels["agent"]: s for s in families["diag_agent_last_batch_age_seconds"]}
    assert sorted(ages) == ["acme-db1", "acme-web1"]  # globex-app1 never connected: no age
    assert ages["acme-web1"].labels == {"customer": "acme", "agent": "acme-web1"}
    assert all(0.0 <= s.value < 60.0 for s in ages.values())
    assert [(s.labels, s.value) for s in families["diag_agent_spool_backlog_entries"]] == [
        ({"customer": "acme", "agent": "acme-web1"}, 42.0)
    ]
    hosts = {(s.labels["customer"], s.labels["state"]): s.value for s in families["diag_hosts"]}
    assert hosts == {
        ("acme", "OK"): 0.0,
        ("acme", "WARN"): 1.0,
        ("acme", "UNKNOWN"): 0.0,
        ("acme", "CRIT"): 1.0,
        ("acme", "NONE"): 0.0,
        ("globex", "OK"): 0.0,
        ("globex", "WARN"): 0.0,
        ("globex", "UNKNOWN"): 0.0,
        ("globex", "CRIT"): 0.0,
        ("globex", "NONE"): 1.0,  # enrolment made the host; no result yet
    }
    cases = {tuple(s.labels.values()): s.value for s in families["diag_cases_open"] if s.value}
    assert cases == {("acme", "CRIT", "new"): 1.0}
    # zero-filled: customers x severities x states
    assert len(families["diag_cases_open"]) == 2 * 3 * len(
        ACTIVE_CASE_STATES
    )  # zero-filled: customers x severities x states

    (build,) = families["diag_build_info"]
    assert build.value == 1.0
    assert build.labels["version"] == __version__ and build.labels["store"] == store.dialect
    assert build.labels["python"].count(".") == 2
    assert families["process_resident_memory_bytes"][0].value > 0
    assert "python_gc_collections" in families and "python_info" in families
    # The ingest registry's series come through, without their _created twins.
    assert families["diag_ingest_batches"][0].value == 1.0
    assert "_created" not in text
    assert families["diag_store_up"][0].value == 1.0


def test_fleet_series_are_bounded_by_agents_and_customers_not_by_what_agents_send(store: Store) -> None:
    _seed(store, checks=60)
    families, _ = _scrape(TestClient(create_app(store, None)))
    per_agent = sum(len(families[name]) for name in FLEET[:2])
    per_customer = sum(len(families[name]) for name in FLEET[2:])
    assert per_agent == 2 + 1  # two ages, one spool backlog (only acme-web1 sent health)
    assert per_customer == 2 * 5 + 2 * 3 * len(ACTIVE_CASE_STATES)


def test_the_fleet_text_is_cached_for_the_ttl_then_read_and_rendered_again(store: Store) -> None:
    web, _ = store.enroll_agent("acme", host="web1", agent_id="web1")
    store.ingest(web, IngestBatch(1, 1, [result(1)], [], [], []))
    last = FleetStateRepo(store).snapshot().agents[0].last_batch_at
    assert last is not None
    now = {"wall": last + 30.0, "mono": 100.0}
    fleet = FleetExposition(store, ttl_s=5.0, clock=lambda: now["wall"], monotonic=lambda: now["mono"])

    def ages() -> dict[str, float]:
        (family,) = [
            f
            for f in text_string_to_metric_families(fleet.render().decode())
            if f.name == "diag_agent_last_batch_age_seconds"
        ]
        return {s.labels["agent"]: s.value for s in family.samples}

    assert ages() == {"web1": pytest.approx(30.0)}
    other, _ = store.enroll_agent("acme", host="db1", agent_id="db1")
    store.ingest(other, IngestBatch(1, 1, [result(1)], [], [], []))
    now["mono"] += 4.9  # within the TTL: the same text, byte for byte
    now["wall"] += 4.9
    assert ages() == {"web1": pytest.approx(30.0)}
    now["mono"] += 0.2  # past the TTL: read and rendered again, ages as of now
    assert ages() == {"web1": pytest.approx(34.9), "db1": pytest.approx(now["wall"] - last, abs=60.0)}


def test_an_agent_whose_batches_are_never_stored_ages_from_enrolment_whatever_its_hellos(
    store: Store,
) -> None:
    """The issue: a Hello refreshed last_seen_at, so an agent reconnecting while every batch
    was refused never looked silent. Only a stored batch counts now."""
    from tests.collector.store.test_store import facts

    clock = {"now": T0}
    timed = Store(store.engine, clock=lambda: clock["now"])
    agent, _ = timed.enroll_agent("acme", host="web1", agent_id="web1")
    clock["now"] = T0 + 3600
    timed.hello(agent, facts("web1"))  # connects; every batch it then sends is refused
    fleet = FleetExposition(store, ttl_s=0.0, clock=lambda: T0 + 3601)
    families = {f.name: f for f in text_string_to_metric_families(fleet.render().decode())}
    (age,) = families["diag_agent_last_batch_age_seconds"].samples
    assert age.value == pytest.approx(3601.0)
    timed.ingest(agent, IngestBatch(1, 1, [result(1)], [], [], []))  # one is stored at T0 + 3600
    families = {f.name: f for f in text_string_to_metric_families(fleet.render().decode())}
    (age,) = families["diag_agent_last_batch_age_seconds"].samples
    assert age.value == pytest.approx(1.0)


def test_a_broken_store_keeps_metrics_200_without_fleet_series(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'c.db'}")
    store.enroll_agent("acme", host="web1", agent_id="web1")
    client = TestClient(create_app(store, None))
    (tmp_path / "c.db").unlink()
    (tmp_path / "c.db").mkdir()  # the file is now a directory: SQLite cannot open it
    store.engine.dispose()
    families, text = _scrape(client)
    assert families["diag_store_up"][0].value == 0.0
    assert not any(name in families for name in FLEET)
    assert "diag_build_info" in families and "Traceback" not in text
    store.close()
