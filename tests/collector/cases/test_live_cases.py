"""Emergency cases from real ingest: the issue's scenarios, on SQLite and PostgreSQL.

Each test drives the real gRPC service, the real store and the live observer with sample
times it chooses (see :mod:`tests.collector.cases.scenario`).
"""

from __future__ import annotations

import json
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.store import Scope, Store
from tests.collector.cases.scenario import (
    STEP,
    T0,
    Scenario,
    app_latency,
    config,
    crit,
    disk_await,
    error_rate,
    inventory,
    noise,
)

WARM = 120
"""Samples of normal behaviour before the trouble (two hours at one a minute)."""


@pytest.fixture
def scenario(store: Store, tmp_path: Path) -> Iterator[Scenario]:
    s = Scenario(store, config(tmp_path))
    yield s
    s.close()


def normal_disk(n: int) -> list[float]:
    return [0.004 + 0.001 * noise(i) for i in range(n)]


def normal_app(n: int) -> list[float]:
    return [0.2 + 0.02 * noise(i + 3) for i in range(n)]


def test_storage_then_application_latency_is_one_case_with_storage_first(scenario: Scenario) -> None:
    scenario.enroll("acme", "db1")
    scenario.enroll("acme", "web1")
    scenario.send("db1", disk_await(normal_disk(WARM), T0))
    scenario.send("web1", app_latency(normal_app(WARM), T0))
    assert scenario.cases() == []
    t = T0 + WARM * STEP
    # storage latency rises at t; the application follows three minutes later
    for i in range(8):
        now = t + i * STEP
        scenario.send("db1", disk_await([0.09 + 0.002 * noise(i)], now))
        scenario.send("web1", app_latency([2.5 if i >= 3 else normal_app(i + 1)[-1]], now))
    cases = scenario.cases()
    assert len(cases) == 1
    case = cases[0]
    assert (case.customer, case.state, case.severity, case.kind) == ("acme", "new", "CRIT", "DEGRADATION")
    assert case.hosts == ("db1", "web1")
    assert case.id == "C-acme-1" and case.number == 1
    top = case.causes[0]
    assert (top["kind"], top["layer"], top["host"]) == ("LAYER", "storage", "db1")
    assert top["reason_key"] and top["evidence"]
    assert case.onset_at == t
    storage = next(m for m in case.members if m["layer"] == "storage")
    assert storage["metric"] == "storage_disk_read_await_seconds"
    assert storage["labels"] == {"device": "sdb"}
    assert storage["observed"] > 0.08 > storage["baseline"]
    assert storage["onset_ts"] == t and storage["key"].startswith("LEVEL_SHIFT")
    assert {m["host"] for m in case.members} == {"db1", "web1"}
    kinds = [e.kind for e in case.events]
    assert kinds[0] == "opened" and "updated" in kinds
    # detected within two check intervals of the onset
    assert case.detected_at - case.onset_at <= 2 * STEP


def test_product_upgrade_then_error_rate_ranks_the_change_first(scenario: Scenario) -> None:
    scenario.enroll("acme", "web1")
    normal = [2.0 + 0.5 * noise(i) for i in range(WARM)]
    scenario.send("web1", [(T0, inventory({"shop": "1.2"})), *error_rate(normal, T0 + 1)])
    t = T0 + WARM * STEP
    scenario.send("web1", [(t, inventory({"shop": "1.3"}))])
    scenario.send("web1", error_rate([2.1, 2.2, 2.0, 40.0, 45.0, 42.0], t + STEP))
    cases = scenario.cases()
    assert len(cases) == 1
    top = cases[0].causes[0]
    assert top["kind"] == "CHANGE", cases[0].causes
    assert top["host"] == "web1" and "shop" in top["reason"] and "1.3" in top["reason"]
    assert any(c["kind"] == "LAYER" and c["layer"] == "application" for c in cases[0].causes[1:])


def test_a_flapping_series_makes_one_case(scenario: Scenario) -> None:
    scenario.enroll("acme", "db1")
    scenario.send("db1", disk_await(normal_disk(WARM), T0))
    t = T0 + WARM * STEP
    for _cycle in range(5):  # four bad minutes, four good ones, five times over
        for value in [0.09] * 4 + normal_disk(4):  # one sample a batch, as a live agent sends them
            scenario.send("db1", disk_await([value], t))
            t += STEP
    cases = scenario.cases()
    assert len(cases) == 1
    member = cases[0].members[0]
    assert (
        member["fired"] >= 2
    )  # it fired again within the same incident (the detector then learns the burstiness)
    assert [e.kind for e in cases[0].events].count("opened") == 1


def test_maintenance_window_suppresses_the_case_and_says_so(store: Store, tmp_path: Path) -> None:
    start = T0 + WARM * STEP
    window = {
        "name": "disk-swap",
        "customer": "acme",
        "timezone": "Asia/Shanghai",
        "hosts": ["db1"],
        "once": {"start": "2023-11-14T22:00:00+00:00", "end": "2023-11-15T03:00:00+00:00"},
        "reason": "replace sdb",
    }
    s = Scenario(store, config(tmp_path, windows=[window]))
    try:
        s.enroll("acme", "db1")
        s.send("db1", disk_await(normal_disk(WARM), T0))
        s.send("db1", disk_await([0.09] * 6, start))
        assert s.cases() == []
        incidents = s.repo.incidents(Scope.everything())
        assert len(incidents) == 1
        assert incidents[0].suppressed_by == ("disk-swap",)
        assert incidents[0].case_id is None
        keys = [e["key"] for e in incidents[0].snapshot["timeline"]]
        assert "SUPPRESSED_BY_MAINTENANCE" in keys
        # still in maintenance an hour later: still no case; once the window ends, it opens
        s.tick(start + 3600)
        assert s.cases() == []
        s.tick(1_700_017_200.0 + 1)  # 03:00 UTC, the end of the window
        (case,) = s.cases()
        assert case.hosts == ("db1",) and case.incident_id == incidents[0].id
    finally:
        s.close()


def test_a_killed_agent_is_an_agent_silent_case_and_neighbours_are_fine(scenario: Scenario) -> None:
    for host in ("web1", "web2", "web3"):
        scenario.enroll("acme", host)
        scenario.send(host, app_latency(normal_app(5), T0))
    t = T0 + 5 * STEP
    for i in range(6):  # web1 died; its neighbours keep reporting
        now = t + i * STEP
        scenario.send("web2", app_latency(normal_app(1), now))
        scenario.send("web3", app_latency(normal_app(1), now))
        scenario.tick(now + 1)
    cases = scenario.cases()
    assert len(cases) == 1
    case = cases[0]
    assert (case.kind, case.hosts) == ("AGENT_SILENT", ("web1",))
    assert case.causes[0]["kind"] == "AGENT_SILENT"
    assert case.causes[0]["params"]


def test_a_silent_customer_is_a_site_outage_and_other_customers_are_not(scenario: Scenario) -> None:
    for host in ("web1", "web2", "web3"):
        scenario.enroll("acme", host)
        scenario.send(host, app_latency(normal_app(5), T0))
    scenario.enroll("globex", "erp1")
    t = T0 + 5 * STEP
    for i in range(6):
        now = t + i * STEP
        scenario.send("erp1", app_latency(normal_app(1), now))
        scenario.tick(now + 1)
    cases = scenario.cases()
    assert len(cases) == 1
    case = cases[0]
    assert (case.customer, case.kind, case.hosts) == ("acme", "SITE_OUTAGE", ("web1", "web2", "web3"))
    assert case.causes[0]["kind"] == "SITE_OUTAGE"
    assert scenario.repo.list(Scope.of("globex")) == []


def test_the_baseline_survives_a_collector_restart(store: Store, tmp_path: Path) -> None:
    cfg = config(tmp_path)
    first = Scenario(store, cfg)
    first.enroll("acme", "db1")
    first.send("db1", disk_await(normal_disk(WARM), T0))
    first.close()  # saves the state
    # a new collector process: a fresh Store object and observer on the same database
    second = Scenario(Store(store.engine), cfg, now=first.now)
    second.agents = first.agents
    try:
        detector = second.observer.bank.detectors["acme/db1/storage_disk_read_await_seconds{device=sdb}"]
        assert detector.baseline.n == WARM
        second.send("db1", disk_await([0.09, 0.09], first.now + STEP))
        cases = second.cases()
        assert len(cases) == 1 and cases[0].hosts == ("db1",)
    finally:
        second.close()


def test_saving_state_does_not_wait_for_the_store(scenario: Scenario) -> None:
    """The ingest path takes the snapshot; the (possibly slow) write happens behind it."""
    scenario.enroll("acme", "db1")
    scenario.send("db1", disk_await(normal_disk(WARM), T0))
    repo = scenario.observer.repo
    release = threading.Event()
    started = threading.Event()
    real_save = repo.save_state

    def slow_save(shard: str, blob: bytes, *, now: float) -> None:
        started.set()
        assert release.wait(10)
        real_save(shard, blob, now=now)

    repo.save_state = slow_save  # type: ignore[method-assign]
    scenario.observer.save_state()  # returns while the write is still blocked
    assert started.wait(10)
    assert repo.load_state(scenario.observer.config.detection.shard) is None
    scenario.send("db1", disk_await(normal_disk(2), scenario.now + STEP))  # ingest goes on meanwhile
    release.set()
    scenario.observer.wait_saved()
    blob = repo.load_state(scenario.observer.config.detection.shard)
    assert blob is not None
    saved = json.loads(zlib.decompress(blob))
    [detector] = saved["detectors"]["series"]
    assert detector["baseline"]["n"] == WARM  # the snapshot, taken before the later batch


def test_crit_check_opens_a_case_and_its_end_is_noted(scenario: Scenario) -> None:
    scenario.enroll("acme", "db1")
    scenario.send("db1", disk_await(normal_disk(5), T0))
    onset = T0 + 5 * STEP
    scenario.send("db1", [(onset, crit("storage.filesystem", "FS_FULL", "/var"))])
    scenario.send("db1", [(onset + STEP, crit("storage.filesystem", "FS_FULL", "/var"))])
    assert scenario.cases() == []  # soft: two CRIT results are not yet confirmed
    t = onset + 2 * STEP
    scenario.send("db1", [(t, crit("storage.filesystem", "FS_FULL", "/var"))])
    cases = scenario.cases()
    assert len(cases) == 1
    member = cases[0].members[0]
    assert (member["kind"], member["series"], member["key"], member["onset_ts"]) == (
        "CHECK_CRIT",
        "check:storage.filesystem[/var]",
        "FS_FULL",
        onset,  # the first CRIT result, not the confirming one
    )
    assert cases[0].detected_at - onset == 2 * STEP  # two check intervals
    ok = disk_await(normal_disk(1), t + STEP)
    from tests.collector.cases.scenario import metric

    scenario.send(
        "db1", [*ok, (t + STEP, metric("storage.filesystem", "storage_fs_used_percent", 50.0, "percent"))]
    )
    scenario.tick(t + 2 * STEP)
    quiet = scenario.cfg.emergency.engine.quiet_s
    scenario.tick(t + 3 * STEP + quiet)
    case = scenario.cases()[0]
    assert "recovered" in [e.kind for e in case.events]
    assert case.state == "new"  # a recovery is noted; an engineer resolves


def test_a_new_incident_soon_after_recovery_reopens_the_case_later_opens_a_new_one(
    scenario: Scenario,
) -> None:
    from tests.collector.cases.scenario import metric

    scenario.enroll("acme", "db1")
    quiet = scenario.cfg.emergency.engine.quiet_s
    reopen = scenario.cfg.emergency.cases.reopen_window_s

    def outage(at: float) -> float:
        """A full filesystem at ``at``, fixed a minute later; returns when the incident resolved."""
        scenario.send(
            "db1", [(at + i * STEP, crit("storage.filesystem", "FS_FULL", "/var")) for i in range(3)]
        )
        ok = at + 3 * STEP
        scenario.send("db1", [(ok, metric("storage.filesystem", "storage_fs_used_percent", 50.0, "percent"))])
        scenario.tick(ok + quiet + 1)
        return ok + quiet + 1

    resolved = outage(T0)
    (case,) = scenario.cases()
    assert "recovered" in [e.kind for e in case.events]
    scenario.repo.resolve(Scope.everything(), case.id, actor="li", note="cleaned /var", now=resolved)
    resolved = outage(resolved + 600)  # within the reopen window: the same case, open again
    (case,) = scenario.cases()
    assert (case.state, case.reopened, case.resolved_at) == ("new", 1, None)
    assert [e.kind for e in case.events].count("reopened") == 1
    outage(resolved + reopen + 600)  # long after: a new case
    assert [c.id for c in scenario.cases()] == ["C-acme-2", "C-acme-1"]


def test_detection_never_breaks_ingest_on_odd_input(scenario: Scenario) -> None:
    from protos.diag.v1 import agent_pb2 as pb

    scenario.enroll("acme", "db1")
    broken = pb.Entry(
        inventory=pb.Inventory(document_json='{"products": "not-a-map", "x": [1, {"y": null}]}')
    )
    broken.inventory.sha256 = (
        __import__("hashlib").sha256(broken.inventory.document_json.encode()).hexdigest()
    )
    scenario.send("db1", [(T0, broken), *((T0 + i, crit("custom.thing", "ODD_KEY")) for i in (1, 2, 3))])
    assert scenario.store.observer_failures == 0
    (case,) = scenario.cases()
    assert case.members[0]["layer"] == "application"  # unknown layer prefix: the application's


def test_one_crit_result_among_oks_opens_no_case(scenario: Scenario) -> None:
    """A CRIT result is soft until confirmed: once among OKs, or twice, never a case."""
    from tests.collector.cases.scenario import metric

    scenario.enroll("acme", "web1")

    def ok(at: float) -> tuple[float, Any]:
        return (at, metric("host.cpu", "host_cpu_busy_percent", 12.0, "percent"))

    def busy(at: float) -> tuple[float, Any]:
        return (at, crit("host.cpu", "CPU_BUSY"))

    scenario.send("web1", [busy(T0), ok(T0 + 2), ok(T0 + 4), busy(T0 + 6), busy(T0 + 8), ok(T0 + 10)])
    scenario.tick(T0 + 30)
    assert scenario.cases() == []
    assert scenario.observer.engine.incidents() == []


def test_a_conclusive_crit_result_opens_a_case_at_once(scenario: Scenario) -> None:
    scenario.enroll("acme", "web1")
    scenario.send("web1", [(T0, crit("host.oom_kills", "OOM_KILLS"))])
    (case,) = scenario.cases()
    assert case.members[0]["key"] == "OOM_KILLS"
    (incident,) = scenario.observer.engine.incidents()
    (member,) = incident.members.values()
    assert member.signal.evidence["confirmed"] == "conclusive key OOM_KILLS"


def test_a_soft_crit_state_survives_a_collector_restart(store: Store, tmp_path: Path) -> None:
    cfg = config(tmp_path)
    first = Scenario(store, cfg)
    first.enroll("acme", "db1")
    first.send("db1", [(T0 + i * STEP, crit("storage.filesystem", "FS_FULL", "/var")) for i in range(2)])
    assert first.cases() == []
    first.close()  # saves the state
    second = Scenario(Store(store.engine), cfg, now=first.now)
    second.agents = first.agents
    try:
        second.send("db1", [(T0 + 2 * STEP, crit("storage.filesystem", "FS_FULL", "/var"))])
        (case,) = second.cases()
        assert case.members[0]["onset_ts"] == T0
    finally:
        second.close()
