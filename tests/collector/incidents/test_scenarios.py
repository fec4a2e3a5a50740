"""The issue's scenarios at the engine + decision level: timed signals in, incidents and case actions out.

Each scenario is a list of (seconds after T0, signal or tick); the expectation is the
summary of every incident (kind, status, hosts, top cause) and the log of case actions
the decision proposed (the driver acts on each like the wiring will).
"""

from __future__ import annotations

from typing import Any

import pytest

from checks.api import Severity
from collector.incidents import Incident, Signal, SignalKind
from tests.collector.incidents.drive import T0, Step, drive


def anomaly(host: str, series: str, onset: float, ts: float | None = None, *, score: float = 0.9) -> Signal:
    return Signal(
        SignalKind.METRIC_ANOMALY,
        "acme",
        host,
        series,
        T0 + (onset + 60 if ts is None else ts),
        T0 + onset,
        key="LEVEL_SHIFT_UP",
        score=score,
        severity=Severity.CRIT if score >= 0.8 else Severity.WARN,
        summary=f"{series} rose",
    )


def recovery(host: str, series: str, at: float) -> Signal:
    return Signal(
        SignalKind.RECOVERY,
        "acme",
        host,
        series,
        T0 + at,
        T0 + at,
        score=0.0,
        severity=Severity.OK,
        evidence={"reason": "back"},
    )


def silent(host: str, last_seen: float, at: float) -> Signal:
    return Signal.agent_silent("acme", host, last_seen_ts=T0 + last_seen, ts=T0 + at)


def upgrade(host: str, at: float) -> Signal:
    return Signal.product_upgrade("acme", host, "shop", "1.2", "1.3", ts=T0 + at)


def summary(inc: Incident) -> tuple[Any, ...]:
    top = inc.top_cause
    cause = (
        None
        if top is None
        else (top.kind.value, top.reason_key, top.host, top.layer.value if top.layer else None)
    )
    return (inc.kind.value, inc.status.value, inc.hosts, cause)


STORAGE = "storage_disk_await_seconds"
APP_LAT = "app_latency_seconds"
APP_ERR = "app_errors_per_second"
FOUR = {"acme": {"a": None, "b": None, "c": None, "d": None}}

SCENARIOS = [
    pytest.param(
        [(120, anomaly("db1", STORAGE, 0, 120)), (300, anomaly("db1", APP_LAT, 180, 300))],
        {},
        [("DEGRADATION", "OPEN", ("db1",), ("LAYER", "CAUSE_LAYER_FIRST", "db1", "storage"))],
        [("OPEN_CASE", "inc-1", "case-1"), ("UPDATE_CASE", "inc-1", "case-1")],
        id="storage latency then application latency: one incident, storage first",
    ),
    pytest.param(
        [(300, anomaly("web1", APP_LAT, 180, 300)), (320, anomaly("db1", STORAGE, 0, 320))],
        {},
        [("DEGRADATION", "OPEN", ("db1", "web1"), ("LAYER", "CAUSE_LAYER_FIRST", "db1", "storage"))],
        [("OPEN_CASE", "inc-1", "case-1"), ("UPDATE_CASE", "inc-1", "case-1")],
        id="storage on db1 reported after app on web1 but began first: one incident, storage first",
    ),
    pytest.param(
        [(0, upgrade("web1", 0)), (420, anomaly("web1", APP_ERR, 300, 420))],
        {},
        [("DEGRADATION", "OPEN", ("web1",), ("CHANGE", "CAUSE_CHANGE_BEFORE_ONSET", "web1", "application"))],
        [("OPEN_CASE", "inc-1", "case-1")],
        id="product version change then error rate rises: change first",
    ),
    pytest.param(
        [(420, anomaly("web1", APP_ERR, 300, 420)), (480, upgrade("web1", 0))],
        {},
        [("DEGRADATION", "OPEN", ("web1",), ("CHANGE", "CAUSE_CHANGE_BEFORE_ONSET", "web1", "application"))],
        [("OPEN_CASE", "inc-1", "case-1"), ("UPDATE_CASE", "inc-1", "case-1")],
        id="change reported after the anomaly: becomes the top cause, the case is updated",
    ),
    pytest.param(
        [(60, anomaly("web1", APP_ERR, 0, 60)), (300, upgrade("web1", 300))],
        {},
        [("DEGRADATION", "OPEN", ("web1",), ("LAYER", "CAUSE_LAYER_ONLY", "web1", "application"))],
        [("OPEN_CASE", "inc-1", "case-1")],
        id="change after the onset: a timeline note, not a candidate",
    ),
    pytest.param(
        [(-2000, upgrade("web1", -2000)), (60, anomaly("web1", APP_ERR, 0, 60))],
        {},
        [("DEGRADATION", "OPEN", ("web1",), ("LAYER", "CAUSE_LAYER_ONLY", "web1", "application"))],
        [("OPEN_CASE", "inc-1", "case-1")],
        id="change older than the lookback: not a candidate",
    ),
    pytest.param(
        [
            (60, anomaly("web1", APP_LAT, 0, 60)),
            (300, recovery("web1", APP_LAT, 300)),
            (460, anomaly("web1", APP_LAT, 400, 460)),
            (700, recovery("web1", APP_LAT, 700)),
            (860, anomaly("web1", APP_LAT, 800, 860)),
            (1100, recovery("web1", APP_LAT, 1100)),
            (1999, None),
            (2000, None),
        ],
        {},
        [("DEGRADATION", "RESOLVED", ("web1",), ("LAYER", "CAUSE_LAYER_ONLY", "web1", "application"))],
        [("OPEN_CASE", "inc-1", "case-1"), ("NOTE_RECOVERY", "inc-1", "case-1")],
        id="flapping series: one incident, one case, one recovery note",
    ),
    pytest.param(
        [(60, silent("web2", 0, 60)), (100, None), (150, None)],
        {"acme": {"web1": None, "web2": None, "db1": None}},
        [("AGENT_SILENT", "OPEN", ("web2",), ("AGENT_SILENT", "CAUSE_AGENT_SILENT", "web2", "host"))],
        [("OPEN_CASE", "inc-1", "case-1")],
        id="agent silent while its neighbours report: agent-silent incident",
    ),
    pytest.param(
        [(60, silent("web2", 0, 60)), (150, None)],
        {},
        [("AGENT_SILENT", "OPEN", ("web2",), ("AGENT_SILENT", "CAUSE_AGENT_SILENT_ALONE", "web2", "host"))],
        [("OPEN_CASE", "inc-1", "case-1")],
        id="single known agent silent: no neighbour to compare with",
    ),
    pytest.param(
        [
            (60, silent("a", 0, 60)),
            (75, silent("b", 10, 75)),
            (90, silent("c", 20, 90)),
            (100, silent("d", 30, 100)),
            (150, None),
            (400, None),
        ],
        FOUR,
        [
            (
                "SITE_OUTAGE",
                "OPEN",
                ("a", "b", "c", "d"),
                ("SITE_OUTAGE", "CAUSE_SITE_OUTAGE", None, "network"),
            )
        ],
        [("OPEN_CASE", "inc-1", "case-1")],
        id="whole customer silent: one site/network outage",
    ),
    pytest.param(
        [(60, silent("a", 0, 60)), (75, silent("b", 10, 75)), (90, silent("c", 20, 90)), (200, None)],
        FOUR,
        [("SITE_OUTAGE", "OPEN", ("a", "b", "c"), ("SITE_OUTAGE", "CAUSE_SITE_OUTAGE", None, "network"))],
        [("OPEN_CASE", "inc-1", "case-1")],
        id="most of the customer silent: outage",
    ),
    pytest.param(
        [(60, silent("a", 0, 60)), (75, silent("b", 10, 75)), (200, None)],
        {"acme": {h: None for h in "abcde"}},
        [("AGENT_SILENT", "OPEN", ("a", "b"), ("AGENT_SILENT", "CAUSE_AGENT_SILENT", "a", "host"))],
        [("OPEN_CASE", "inc-1", "case-1")],
        id="two of five silent: one agent-silent incident, not an outage",
    ),
    pytest.param(
        [(60, silent("a", 0, 60)), (70, silent("b", 5, 70)), (80, silent("c", 5, 80)), (200, None)],
        {"acme": {"a": "dc1", "b": "dc1", "c": "dc1", "d": "dc2", "e": "dc2"}},
        [("SITE_OUTAGE", "OPEN", ("a", "b", "c"), ("SITE_OUTAGE", "CAUSE_SITE_OUTAGE", None, "network"))],
        [("OPEN_CASE", "inc-1", "case-1")],
        id="one network of the customer silent: outage of that network",
    ),
    pytest.param(
        [(60, silent("a", 0, 60)), (100, Signal.agent_back("acme", "a", ts=T0 + 100)), (200, None)],
        FOUR,
        [],
        [],
        id="agent back before the settle time: no incident",
    ),
    pytest.param(
        [(60, anomaly("db1", "host_memory_used_bytes", 0, 60)), (300, silent("db1", 120, 300)), (400, None)],
        {"acme": {"db1": None, "web1": None}},
        [("DEGRADATION", "OPEN", ("db1",), ("LAYER", "CAUSE_LAYER_FIRST", "db1", "host"))],
        [("OPEN_CASE", "inc-1", "case-1"), ("UPDATE_CASE", "inc-1", "case-1")],
        id="host fault then its agent silent: one incident, host layer first",
    ),
    pytest.param(
        [(60, anomaly("db1", STORAGE, 0, 60)), (1260, anomaly("web1", APP_LAT, 1200, 1260))],
        {},
        [
            ("DEGRADATION", "OPEN", ("db1",), ("LAYER", "CAUSE_LAYER_ONLY", "db1", "storage")),
            ("DEGRADATION", "OPEN", ("web1",), ("LAYER", "CAUSE_LAYER_ONLY", "web1", "application")),
        ],
        [("OPEN_CASE", "inc-1", "case-1"), ("OPEN_CASE", "inc-2", "case-2")],
        id="two hosts beyond the grouping window: two incidents",
    ),
    pytest.param(
        [
            (60, anomaly("db1", STORAGE, 0, 60)),
            (600, recovery("db1", STORAGE, 600)),
            (1500, None),
            (2460, anomaly("db1", STORAGE, 2400, 2460)),
        ],
        {},
        [
            ("DEGRADATION", "RESOLVED", ("db1",), ("LAYER", "CAUSE_LAYER_ONLY", "db1", "storage")),
            ("DEGRADATION", "OPEN", ("db1",), ("LAYER", "CAUSE_LAYER_ONLY", "db1", "storage")),
        ],
        [
            ("OPEN_CASE", "inc-1", "case-1"),
            ("NOTE_RECOVERY", "inc-1", "case-1"),
            ("REOPEN_CASE", "inc-2", "case-1"),
        ],
        id="new incident within the reopen window: the case is reopened",
    ),
    pytest.param(
        [
            (60, anomaly("db1", STORAGE, 0, 60)),
            (600, recovery("db1", STORAGE, 600)),
            (1500, None),
            (5260, anomaly("db1", STORAGE, 5200, 5260)),
        ],
        {},
        [
            ("DEGRADATION", "RESOLVED", ("db1",), ("LAYER", "CAUSE_LAYER_ONLY", "db1", "storage")),
            ("DEGRADATION", "OPEN", ("db1",), ("LAYER", "CAUSE_LAYER_ONLY", "db1", "storage")),
        ],
        [
            ("OPEN_CASE", "inc-1", "case-1"),
            ("NOTE_RECOVERY", "inc-1", "case-1"),
            ("OPEN_CASE", "inc-2", "case-2"),
        ],
        id="new incident after the reopen window: a new case",
    ),
    pytest.param(
        [(60, anomaly("web1", APP_LAT, 0, 60, score=0.6))],
        {},
        [("DEGRADATION", "OPEN", ("web1",), ("LAYER", "CAUSE_LAYER_ONLY", "web1", "application"))],
        [],
        id="WARN-only incident: no case",
    ),
]


@pytest.mark.parametrize(("steps", "hosts", "incidents", "log"), SCENARIOS)
def test_scenario(
    steps: list[Step], hosts: dict[str, dict[str, str | None]], incidents: list[Any], log: list[Any]
):
    run = drive(steps, hosts=hosts)
    assert [summary(i) for i in run.engine.incidents()] == incidents
    assert run.log == log


def test_flapping_counts_the_refires_on_the_member():
    steps = SCENARIOS[6].values[0]
    assert isinstance(steps, list)
    run = drive(steps)
    (inc,) = run.engine.incidents()
    (member,) = inc.members.values()
    assert member.fired == 3
    assert [t.key for t in inc.timeline].count("SIGNAL_REFIRED") == 2
    assert inc.revision == 2  # opened (1) and resolved (2): the flaps were not material


def test_silent_agent_evidence_counts_the_neighbours():
    run = drive(
        [(60, silent("web2", 0, 60)), (150, None)], hosts={"acme": {"web1": None, "web2": None, "db1": None}}
    )
    (inc,) = run.engine.incidents()
    cause = inc.top_cause
    assert cause is not None
    assert (cause.params["neighbours"], cause.params["neighbours_reporting"]) == (2, 2)
    assert cause.confidence == 0.8
    assert "2 of 2 neighbour(s) keep reporting" in cause.reason


def test_outage_title_and_late_joiner():
    hosts = {"acme": {"a": "dc1", "b": "dc1", "c": "dc1", "d": "dc1"}}
    run = drive(
        [(60, silent("a", 0, 60)), (70, silent("b", 5, 70)), (80, silent("c", 5, 80)), (200, None)],
        hosts=hosts,
    )
    (inc,) = run.engine.incidents()
    assert inc.title == "Site or network outage: 3 of 4 agents of network dc1 of acme silent"
    drive([(400, silent("d", 300, 400)), (500, None)], run=run)
    (inc,) = run.engine.incidents()
    assert inc.hosts == ("a", "b", "c", "d")
    assert inc.title == "Site or network outage: 4 of 4 agents of network dc1 of acme silent"
    assert run.log == [("OPEN_CASE", "inc-1", "case-1"), ("UPDATE_CASE", "inc-1", "case-1")]


def test_outage_recovers_when_the_agents_come_back():
    steps: list[Step] = [(60 + i, silent(h, 0, 60 + i)) for i, h in enumerate("abcd")]
    steps += [(200, None)]
    steps += [(1000 + i, Signal.agent_back("acme", h, ts=T0 + 1000 + i)) for i, h in enumerate("abcd")]
    steps += [(1003 + 900, None)]
    run = drive(steps, hosts=FOUR)
    (inc,) = run.engine.incidents()
    assert inc.status.value == "RESOLVED"
    assert run.log == [("OPEN_CASE", "inc-1", "case-1"), ("NOTE_RECOVERY", "inc-1", "case-1")]


def test_maintenance_suppresses_once_then_opens_when_the_window_ends():
    signal = anomaly("db1", STORAGE, 0, 60)
    run = drive([(60, signal), (120, anomaly("db1", STORAGE, 0, 120))], maintenance={"db1": ["mw-1"]})
    assert run.log == [("SUPPRESSED", "inc-1", None)]
    (inc,) = run.engine.incidents()
    assert inc.suppressed_by == ("mw-1",)
    assert "SUPPRESSED_BY_MAINTENANCE" in [t.key for t in inc.timeline]
    drive([(4000, anomaly("db1", STORAGE, 0, 4000))], run=run)  # window over, still degraded
    assert run.log[-1] == ("OPEN_CASE", "inc-1", "case-1")


def test_maintenance_on_some_hosts_does_not_hide_the_others():
    run = drive(
        [(60, anomaly("db1", STORAGE, 0, 60)), (90, anomaly("web1", APP_LAT, 30, 90))],
        maintenance={"db1": ["mw-1"]},
    )
    assert run.log == [("SUPPRESSED", "inc-1", None), ("OPEN_CASE", "inc-1", "case-1")]
