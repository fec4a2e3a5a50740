"""Signal construction, layer mapping, validation and JSON round-trip."""

from __future__ import annotations

import json

import pytest

from checks.api import Layer, Severity
from collector.detect.detector import Anomaly, Recovery
from collector.incidents import Change, ChangeKind, Signal, SignalKind, layer_of


@pytest.mark.parametrize(
    ("name", "layer"),
    [
        pytest.param("host_cpu_busy_percent", Layer.HOST, id="host metric"),
        pytest.param("net_tcp_out_resets_per_second", Layer.NETWORK, id="network metric"),
        pytest.param("storage_fs_size_bytes", Layer.STORAGE, id="storage metric"),
        pytest.param("platform_units_failed_count", Layer.PLATFORM, id="platform metric"),
        pytest.param("app_latency_seconds", Layer.APPLICATION, id="application metric"),
        pytest.param("network.dns", Layer.NETWORK, id="network check"),
        pytest.param("check:platform.services[nginx]", Layer.PLATFORM, id="check series"),
        pytest.param("hostname_length", None, id="no separator after host"),
        pytest.param("", None, id="empty"),
    ],
)
def test_layer_of(name, layer):
    assert layer_of(name) is layer


ANOMALY = Anomaly("app_latency_seconds", "SPIKE_SUSTAINED", "up", 700.0, 600.0, 0.5, 0.05, 0.04, 0.06, 0.7)


@pytest.mark.parametrize(
    ("signal", "expected"),
    [
        pytest.param(
            Signal.from_detector(ANOMALY, customer="acme", host="web1"),
            ("METRIC_ANOMALY", "application", "WARN", 600.0, 700.0, "app_latency_seconds"),
            id="anomaly below crit score is WARN",
        ),
        pytest.param(
            Signal.from_detector(ANOMALY, customer="acme", host="web1", crit_score=0.6),
            ("METRIC_ANOMALY", "application", "CRIT", 600.0, 700.0, "app_latency_seconds"),
            id="anomaly at crit score is CRIT",
        ),
        pytest.param(
            Signal.from_detector(
                Recovery("app_latency_seconds", "SPIKE_SUSTAINED", 900.0, 600.0, 0.05, 0.05, 0.7, "back"),
                customer="acme",
                host="web1",
            ),
            ("RECOVERY", "application", "OK", 600.0, 900.0, "app_latency_seconds"),
            id="detector recovery",
        ),
        pytest.param(
            Signal.check_crit(
                "acme", "db1", "storage.filesystem", "FS_FULL", ts=50.0, onset_ts=20.0, item="/var"
            ),
            ("CHECK_CRIT", "storage", "CRIT", 20.0, 50.0, "check:storage.filesystem[/var]"),
            id="crit check with item",
        ),
        pytest.param(
            Signal.check_recovered("acme", "db1", "storage.filesystem", ts=90.0, item="/var"),
            ("RECOVERY", "storage", "OK", 90.0, 90.0, "check:storage.filesystem[/var]"),
            id="check recovered: same series",
        ),
        pytest.param(
            Signal.agent_silent("acme", "db1", last_seen_ts=10.0, ts=100.0),
            ("AGENT_SILENT", "host", "CRIT", 10.0, 100.0, "agent"),
            id="agent silent",
        ),
        pytest.param(
            Signal.agent_back("acme", "db1", ts=200.0),
            ("RECOVERY", None, "OK", 200.0, 200.0, "agent"),
            id="agent back",
        ),
        pytest.param(
            Signal.changed("acme", None, Change(ChangeKind.CONFIG, "/etc/shop.yaml"), ts=5.0),
            ("CHANGE", "platform", "OK", 5.0, 5.0, "change:CONFIG:/etc/shop.yaml"),
            id="customer-wide config change",
        ),
    ],
)
def test_constructors(signal: Signal, expected):
    layer = None if signal.layer is None else signal.layer.value
    got = (signal.kind.value, layer, signal.severity.value, signal.onset_ts, signal.ts, signal.series)
    assert got == expected
    assert Signal.from_dict(json.loads(json.dumps(signal.to_dict()))) == signal


@pytest.mark.parametrize(
    ("change", "text"),
    [
        pytest.param(
            Change(ChangeKind.PRODUCT_VERSION, "shop", "1", "2"), "product shop upgraded from 1 to 2", id="up"
        ),
        pytest.param(
            Change(ChangeKind.PRODUCT_VERSION, "shop", "1", None), "product shop removed (was 1)", id="rm"
        ),
        pytest.param(Change(ChangeKind.INVENTORY, "packages"), "inventory packages changed", id="inventory"),
        pytest.param(Change(ChangeKind.CONFIG, "/etc/x"), "configuration /etc/x changed", id="config"),
    ],
)
def test_change_describe(change, text):
    assert change.describe() == text


def _sig(**kw):
    base = dict(
        kind=SignalKind.METRIC_ANOMALY,
        customer="acme",
        host="db1",
        series="app_x_seconds",
        ts=1.0,
        onset_ts=1.0,
    )
    return Signal(**{**base, **kw})


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        pytest.param({"customer": ""}, "customer is empty", id="no customer"),
        pytest.param({"host": None}, "only a CHANGE may be customer-wide", id="no host"),
        pytest.param({"series": ""}, "series is empty", id="no series"),
        pytest.param({"ts": float("nan")}, "must be finite", id="nan ts"),
        pytest.param({"score": 1.5}, "score 1.5 outside 0..1", id="score above 1"),
        pytest.param({"series": "temperature"}, "cannot tell its layer", id="unknown layer"),
        pytest.param({"kind": SignalKind.CHANGE}, "carries a change", id="change without change"),
        pytest.param({"evidence": {"x": object()}}, "evidence is not JSON-able", id="evidence not json"),
        pytest.param({"evidence": {"x": float("inf")}}, "evidence is not JSON-able", id="evidence infinite"),
    ],
)
def test_bad_signals_are_clear_errors(kw, message):
    with pytest.raises(ValueError, match=message):
        _sig(**kw)


def test_explicit_layer_wins_and_severity_round_trips():
    s = _sig(series="temperature", layer=Layer.HOST, severity=Severity.WARN, evidence={"a": [1, 2]})
    assert s.layer is Layer.HOST
    assert Signal.from_dict(s.to_dict()) == s
