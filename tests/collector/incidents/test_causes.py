"""Probable-cause ranking, table-driven: whole ranked lists (kind, reason key, host, layer, confidence)."""

from __future__ import annotations

import pytest

from checks.api import Severity
from collector.incidents import Change, ChangeKind, OutageFacts, Signal, SignalKind, rank_causes

T = 1_800_000_000.0


def bad(host: str, series: str, onset: float, score: float = 0.9) -> Signal:
    return Signal(SignalKind.METRIC_ANOMALY, "acme", host, series, T + onset + 60, T + onset, score=score)


def crit(host: str, check: str, onset: float) -> Signal:
    return Signal.check_crit("acme", host, check, "DOWN", ts=T + onset + 60, onset_ts=T + onset)


def change(host: str | None, kind: ChangeKind, at: float) -> Signal:
    return Signal.changed("acme", host, Change(kind, "shop", "1.2", "1.3"), ts=T + at)


def silent(host: str, last_seen: float, neighbours: int, reporting: int) -> Signal:
    s = Signal.agent_silent("acme", host, last_seen_ts=T + last_seen, ts=T + last_seen + 120)
    return s.with_evidence(neighbours=neighbours, neighbours_reporting=reporting)


CASES = [
    pytest.param([], [], None, [], id="nothing"),
    pytest.param(
        [bad("db1", "storage_await_seconds", 0), bad("db1", "app_latency_seconds", 180)],
        [],
        None,
        [
            ("LAYER", "CAUSE_LAYER_FIRST", "db1", "storage", 0.95),
            ("LAYER", "CAUSE_LAYER_SYMPTOM", "db1", "application", 0.05),
        ],
        id="storage first explains application on the same host",
    ),
    pytest.param(
        [bad("db1", "app_latency_seconds", 0), bad("db1", "storage_await_seconds", 300)],
        [],
        None,
        [
            ("LAYER", "CAUSE_LAYER_ONLY", "db1", "application", 0.535),
            ("LAYER", "CAUSE_LAYER_ONLY", "db1", "storage", 0.385),
        ],
        id="storage after application explains nothing: application first",
    ),
    pytest.param(
        [bad("db1", "storage_await_seconds", 30), bad("db1", "app_latency_seconds", 0)],
        [],
        None,
        [
            ("LAYER", "CAUSE_LAYER_FIRST", "db1", "storage", 0.95),
            ("LAYER", "CAUSE_LAYER_SYMPTOM", "db1", "application", 0.185),
        ],
        id="onsets within the tolerance count as simultaneous: lower layer wins",
    ),
    pytest.param(
        [bad("db1", "storage_await_seconds", 0), bad("web1", "app_latency_seconds", 120)],
        [],
        None,
        [
            ("LAYER", "CAUSE_LAYER_FIRST", "db1", "storage", 0.76),
            ("LAYER", "CAUSE_LAYER_SYMPTOM", "web1", "application", 0.05),
        ],
        id="another host's application: explained at half weight",
    ),
    pytest.param(
        [
            bad("h", "net_retrans_per_second", 0),
            bad("h", "storage_await_seconds", 120),
            bad("h", "app_latency_seconds", 200),
        ],
        [],
        None,
        [
            ("LAYER", "CAUSE_LAYER_FIRST", "h", "network", 0.76),
            ("LAYER", "CAUSE_LAYER_FIRST", "h", "storage", 0.61),
            ("LAYER", "CAUSE_LAYER_SYMPTOM", "h", "application", 0.05),
        ],
        id="two infrastructure layers: the earlier one first",
    ),
    pytest.param(
        [crit("h", "platform.services", 0), bad("h", "app_errors_per_second", 60, score=0.6)],
        [],
        None,
        [
            ("LAYER", "CAUSE_LAYER_FIRST", "h", "platform", 0.95),
            ("LAYER", "CAUSE_LAYER_SYMPTOM", "h", "application", 0.14),
        ],
        id="crit platform check explains application errors",
    ),
    pytest.param(
        [bad("web1", "app_errors_per_second", 300)],
        [change("web1", ChangeKind.PRODUCT_VERSION, 0)],
        None,
        [
            ("CHANGE", "CAUSE_CHANGE_BEFORE_ONSET", "web1", "application", 0.883),
            ("LAYER", "CAUSE_LAYER_ONLY", "web1", "application", 0.535),
        ],
        id="product version 5 min before the onset: change first",
    ),
    pytest.param(
        [bad("web1", "app_errors_per_second", 60)],
        [change("web1", ChangeKind.SERVICE_RESTARTED, 0)],
        None,
        [
            ("CHANGE", "CAUSE_CHANGE_BEFORE_ONSET", "web1", "platform", 0.843),
            ("LAYER", "CAUSE_LAYER_ONLY", "web1", "application", 0.535),
        ],
        id="restarted service weighs a little less",
    ),
    pytest.param(
        [bad("web1", "app_errors_per_second", 1790)],
        [change("web1", ChangeKind.INVENTORY, 0)],
        None,
        [
            ("LAYER", "CAUSE_LAYER_ONLY", "web1", "application", 0.535),
            ("CHANGE", "CAUSE_CHANGE_BEFORE_ONSET", "web1", "host", 0.442),
        ],
        id="inventory change at the end of the lookback: below the layer",
    ),
    pytest.param(
        [bad("web1", "app_errors_per_second", 300)],
        [
            change("web2", ChangeKind.PRODUCT_VERSION, 0),
            change("web1", ChangeKind.PRODUCT_VERSION, 400),
            change("web1", ChangeKind.PRODUCT_VERSION, -1600),
        ],
        None,
        [("LAYER", "CAUSE_LAYER_ONLY", "web1", "application", 0.535)],
        id="changes on other hosts, after the onset or before the lookback: ignored",
    ),
    pytest.param(
        [bad("web1", "app_errors_per_second", 300)],
        [change(None, ChangeKind.CONFIG, 240)],
        None,
        [
            ("CHANGE", "CAUSE_CHANGE_BEFORE_ONSET", None, "platform", 0.937),
            ("LAYER", "CAUSE_LAYER_ONLY", "web1", "application", 0.535),
        ],
        id="customer-wide config change",
    ),
    pytest.param(
        [bad("a", "app_x_seconds", 0), bad("b", "app_x_seconds", 0)],
        [],
        None,
        [
            ("LAYER", "CAUSE_LAYER_ONLY", "a", "application", 0.535),
            ("LAYER", "CAUSE_LAYER_ONLY", "b", "application", 0.535),
        ],
        id="ties break on host",
    ),
    pytest.param(
        [silent("web2", 0, 3, 3)],
        [],
        None,
        [("AGENT_SILENT", "CAUSE_AGENT_SILENT", "web2", "host", 0.8)],
        id="silent agent, all neighbours report",
    ),
    pytest.param(
        [bad("db1", "host_memory_used_bytes", 0), silent("db1", 120, 1, 1)],
        [],
        None,
        [
            ("LAYER", "CAUSE_LAYER_FIRST", "db1", "host", 0.95),
            ("AGENT_SILENT", "CAUSE_AGENT_SILENT_AFTER_FAULT", "db1", "host", 0.45),
        ],
        id="silent after a host fault: the fault first",
    ),
    pytest.param(
        [silent(h, 0, 3, 1) for h in "abc"],
        [],
        OutageFacts(3, 4),
        [("SITE_OUTAGE", "CAUSE_SITE_OUTAGE", None, "network", 0.862)],
        id="site outage 3 of 4",
    ),
]


@pytest.mark.parametrize(("signals", "changes", "outage", "expected"), CASES)
def test_rank_causes(signals, changes, outage, expected):
    causes = rank_causes(signals, changes, outage=outage)
    got = [
        (c.kind.value, c.reason_key, c.host, c.layer.value if c.layer else None, c.confidence) for c in causes
    ]
    assert got == expected


def test_causes_keep_evidence_reason_and_params():
    causes = rank_causes(
        [bad("web1", "app_errors_per_second", 300)], [change("web1", ChangeKind.PRODUCT_VERSION, 0)]
    )
    top = causes[0]
    assert top.reason == (
        "product shop upgraded from 1.2 to 1.3 on web1 at 2027-01-15T08:00:00Z, 5 min before the degradation "
        "began: deployment or mis-operation"
    )
    assert (top.params["before"], top.params["after"], top.params["before_onset_s"]) == ("1.2", "1.3", 300.0)
    assert [e["kind"] for e in top.evidence] == ["CHANGE"]
    assert [e["series"] for e in causes[1].evidence] == ["app_errors_per_second"]
    assert top.label == "product shop upgraded from 1.2 to 1.3 on web1"
    assert type(top).from_dict(top.to_dict()) == top


def test_recoveries_and_changes_are_not_problems():
    ok = Signal.agent_back("acme", "a", ts=T)
    assert rank_causes([ok], [change("a", ChangeKind.CONFIG, 0)]) == []
    assert Severity.CRIT.rank > Severity.WARN.rank
