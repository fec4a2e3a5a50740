"""Engine mechanics: state round-trip at every step, real detector events end to end, bounds, errors."""

from __future__ import annotations

import json
import random

import pytest
from pydantic import ValidationError

from checks.api import Direction, Severity
from collector.detect.detector import SeriesDetector
from collector.incidents import (
    CaseAction,
    CaseDecision,
    EngineConfig,
    IncidentEngine,
    Signal,
    SignalKind,
)
from tests.collector.incidents.drive import T0, Ids, Run, drive, make_engine
from tests.collector.incidents.test_scenarios import SCENARIOS, anomaly, recovery


@pytest.mark.parametrize(("steps", "hosts", "incidents", "log"), SCENARIOS)
def test_state_round_trip_at_every_step_changes_nothing(steps, hosts, incidents, log):
    whole = drive(steps, hosts=hosts)
    for cut in range(1, len(steps)):
        first = drive(steps[:cut], hosts=hosts)
        saved = json.loads(json.dumps(first.engine.to_state()))  # through real JSON text
        restored = IncidentEngine.from_state(saved, clock=first.clock, new_id=first.engine._new_id)
        resumed = Run(restored, first.clock, first.log, first.case_ids)
        drive(steps[cut:], run=resumed)
        assert resumed.log == whole.log, f"cut at step {cut}"
        assert resumed.engine.to_state() == whole.engine.to_state(), f"cut at step {cut}"


def test_real_detector_storage_then_application_latency():
    """Series through the real SeriesDetector: storage latency steps up, 3 samples later app latency."""
    rng = random.Random(7)
    storage = SeriesDetector("storage_disk_await_seconds", Direction.UP_IS_BAD)
    app = SeriesDetector("app_latency_seconds", Direction.UP_IS_BAD)
    run = make_engine(hosts={"acme": {"db1": None}})
    for i in range(300):
        ts = T0 + 60.0 * i
        run.clock.now = ts + 5.0
        disk = (0.004 if i < 240 else 0.08) + rng.gauss(0, 0.0004)
        latency = (0.05 if i < 243 else 0.9) + rng.gauss(0, 0.004)
        signals = []
        for detector, value in ((storage, disk), (app, latency)):
            event = detector.update(ts, value)
            if event is not None:
                signals.append(Signal.from_detector(event, customer="acme", host="db1"))
        run.engine.feed_many(signals)
    (inc,) = run.engine.incidents()
    assert [m.signal.series for m in inc.members.values()] == [
        "storage_disk_await_seconds",
        "app_latency_seconds",
    ]
    top = inc.top_cause
    assert top is not None and top.layer is not None
    assert (top.layer.value, top.host, top.reason_key) == ("storage", "db1", "CAUSE_LAYER_FIRST")
    assert inc.onset_ts == T0 + 60.0 * 240
    assert inc.severity is Severity.CRIT


def test_recovery_for_an_unknown_series_is_ignored():
    run = drive([(60, anomaly("db1", "storage_x_seconds", 0)), (90, recovery("db1", "app_y_seconds", 90))])
    (inc,) = run.engine.incidents()
    assert inc.status.value == "OPEN"


def test_new_level_recovery_is_noted_and_ends_the_member():
    run = drive([(60, anomaly("db1", "storage_x_seconds", 0))])
    new_level = Signal(
        SignalKind.RECOVERY,
        "acme",
        "db1",
        "storage_x_seconds",
        T0 + 600,
        T0,
        score=0.0,
        severity=Severity.OK,
        evidence={"reason": "new_level"},
    )
    drive([(600, new_level)], run=run)
    (inc,) = run.engine.incidents()
    assert inc.status.value == "RECOVERING"
    assert "SIGNAL_NEW_LEVEL" in [t.key for t in inc.timeline]


def test_resolved_incidents_are_pruned_after_retention():
    config = EngineConfig(quiet_s=60, retain_resolved_s=100)
    run = drive(
        [
            (60, anomaly("db1", "storage_x_seconds", 0)),
            (100, recovery("db1", "storage_x_seconds", 100)),
            (160, None),
        ],
        config=config,
    )
    assert [i.status.value for i in run.engine.incidents()] == ["RESOLVED"]
    drive([(260, None)], run=run)
    assert [i.status.value for i in run.engine.incidents()] == ["RESOLVED"]
    drive([(261, None)], run=run)
    assert run.engine.incidents() == []


def test_timeline_is_bounded_and_keeps_its_beginning():
    config = EngineConfig(max_timeline=20)
    steps = []
    for i in range(30):
        steps += [
            (60 + 20 * i, anomaly("db1", "storage_x_seconds", 0, 60 + 20 * i)),
            (70 + 20 * i, recovery("db1", "storage_x_seconds", 70 + 20 * i)),
        ]
    run = drive(steps, config=config)
    (inc,) = run.engine.incidents()
    assert len(inc.timeline) == 20
    assert inc.timeline[0].key == "INCIDENT_OPENED"
    assert inc.timeline_dropped > 0
    assert [t.ts for t in inc.timeline] == sorted(t.ts for t in inc.timeline)


def test_changes_are_bounded_per_customer():
    run = make_engine(EngineConfig(max_changes_per_customer=3))
    for i in range(5):
        run.engine.feed(Signal.product_upgrade("acme", "web1", f"p{i}", "1", "2", ts=T0 + i))
    assert [c["series"] for c in run.engine.to_state()["changes"]["acme"]] == [
        "change:PRODUCT_VERSION:p2",
        "change:PRODUCT_VERSION:p3",
        "change:PRODUCT_VERSION:p4",
    ]


@pytest.mark.parametrize(
    ("state", "message"),
    [
        pytest.param({"v": 99}, "state version 99", id="other version"),
        pytest.param({"v": 1, "incidents": []}, "malformed incident engine state", id="missing keys"),
        pytest.param(
            {"v": 1, "incidents": [{"id": "x"}], "pending": [], "changes": {}, "hosts": {}},
            "malformed incident engine state",
            id="truncated incident",
        ),
    ],
)
def test_bad_state_is_a_clear_error(state, message):
    engine = IncidentEngine(clock=lambda: T0, new_id=Ids())
    with pytest.raises(ValueError, match=message):
        engine.load_state(state)


def test_record_decision_errors():
    run = drive([(60, anomaly("db1", "storage_x_seconds", 0))], policy=None)
    engine = run.engine
    with pytest.raises(ValueError, match="unknown incident 'nope'"):
        engine.record_decision(CaseDecision(CaseAction.UPDATE_CASE, "nope", 1, "case-1"))
    fresh = make_engine()
    fresh.engine.feed(anomaly("db1", "storage_x_seconds", 0))
    with pytest.raises(ValueError, match="pass the new case_id"):
        fresh.engine.record_decision(CaseDecision(CaseAction.OPEN_CASE, "inc-1", 1))


def test_duplicate_ids_are_refused():
    engine = IncidentEngine(clock=lambda: T0, new_id=lambda: "same")
    engine.feed(anomaly("db1", "storage_x_seconds", 0))
    with pytest.raises(ValueError, match="returned the id 'same' twice"):
        engine.feed(anomaly("web9", "app_x_seconds", 5000))


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"window_s": 0}, id="zero window"),
        pytest.param({"outage_fraction": 1.5}, id="fraction above 1"),
        pytest.param({"outage_min_hosts": 1}, id="outage of one host"),
        pytest.param({"windw_s": 5}, id="unknown key"),
    ],
)
def test_config_is_validated(bad):
    with pytest.raises(ValidationError):
        EngineConfig(**bad)


def test_customers_never_share_an_incident():
    other = Signal(
        SignalKind.METRIC_ANOMALY, "globex", "db1", "storage_x_seconds", T0 + 60, T0 + 10, score=0.9
    )
    run = drive([(60, anomaly("db1", "storage_x_seconds", 0)), (61, other)])
    assert [(i.customer, i.hosts) for i in run.engine.incidents()] == [
        ("acme", ("db1",)),
        ("globex", ("db1",)),
    ]


def _host_then_network(gap_s: float, second_host: str = "db1", second: str = "net_tcp_time_wait_count"):
    """CPU anomaly on db1, recovered; ``gap_s`` after the first onset another series fires."""
    cpu = anomaly("db1", "host_cpu_busy_percent", 0)
    return [
        (60, cpu),
        (120, recovery("db1", "host_cpu_busy_percent", 120)),
        (gap_s + 60, anomaly(second_host, second, gap_s)),
    ]


def test_an_unrelated_signal_after_recovery_opens_a_new_incident():
    """Host CPU recovered; seven minutes later TCP sockets on the same host: not the same incident."""
    run = drive(_host_then_network(420))
    first, second = run.engine.incidents()
    assert [m.signal.series for m in first.members.values()] == ["host_cpu_busy_percent"]
    assert [m.signal.series for m in second.members.values()] == ["net_tcp_time_wait_count"]


@pytest.mark.parametrize(
    ("gap_s", "series"),
    [
        pytest.param(90, "net_tcp_time_wait_count", id="close onset"),
        pytest.param(420, "app_latency_seconds", id="same host, chained layer (application above host)"),
        pytest.param(420, "host_load1", id="same host, same layer"),
    ],
)
def test_a_related_signal_after_recovery_joins_the_incident(gap_s, series):
    run = drive(_host_then_network(gap_s, second=series))
    (inc,) = run.engine.incidents()
    assert [m.signal.series for m in inc.members.values()] == ["host_cpu_busy_percent", series]
    assert inc.status.value == "OPEN"


def test_an_open_incident_still_takes_any_signal_of_its_host():
    cpu = anomaly("db1", "host_cpu_busy_percent", 0)
    run = drive([(60, cpu), (480, anomaly("db1", "net_tcp_time_wait_count", 420))])
    (inc,) = run.engine.incidents()
    assert len(inc.members) == 2
