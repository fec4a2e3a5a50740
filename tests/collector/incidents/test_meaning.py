"""A signal's meaning travels with the data: the layer is the check's (results carry it),
the ceiling comes from the samples' unit; names are read only for old stored data, counted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from checks.api import Layer
from collector.emergency.config import EmergencyConfig
from collector.emergency.live import LiveDetection, series_key
from collector.incidents.signals import NAME_FALLBACKS, Signal, SignalKind, ceiling_from, layer_from
from collector.store.observe import Committed
from collector.store.store import Store
from collector.store.types import IngestBatch, PointRow


def fallbacks() -> dict[str, int]:
    return dict(NAME_FALLBACKS)


def grew(before: dict[str, int], what: str) -> int:
    return NAME_FALLBACKS[what] - before.get(what, 0)


def test_the_carried_layer_wins_over_the_name_and_is_not_counted() -> None:
    before = fallbacks()
    assert layer_from("platform", "host.cpu", "host_cpu_busy_percent") is Layer.PLATFORM
    assert layer_from(Layer.STORAGE, "app_x") is Layer.STORAGE
    assert grew(before, "layer") == 0


def test_without_a_layer_the_name_tells_and_is_counted() -> None:
    before = fallbacks()
    assert layer_from("", "storage.disk_io") is Layer.STORAGE
    assert layer_from(None, "nothing", "net_tcp_retransmit_percent") is Layer.NETWORK
    assert layer_from("not-a-layer", "app_errors_per_second") is Layer.APPLICATION
    assert layer_from(None, "temperature") is None
    assert grew(before, "layer") == 3


def test_the_ceiling_comes_from_the_unit() -> None:
    before = fallbacks()
    assert ceiling_from("percent", "app_fill_level") == 100.0  # no _percent suffix: the unit tells
    assert ceiling_from("ratio", "app_cache_hit_percent") is None  # the suffix is not trusted
    assert ceiling_from("seconds", "app_latency_seconds") is None
    assert grew(before, "ceiling") == 0
    assert ceiling_from("", "host_cpu_busy_percent") == 100.0  # old data without a unit
    assert ceiling_from("", "app_latency_seconds") is None
    assert grew(before, "ceiling") == 2


def test_an_old_stored_signal_without_a_layer_reads_its_names_counted() -> None:
    signal = Signal.check_crit("acme", "db1", "storage.filesystem", "FS_FULL", ts=10.0, layer=Layer.PLATFORM)
    data = signal.to_dict()
    before = fallbacks()
    assert Signal.from_dict(data).layer is Layer.PLATFORM
    assert grew(before, "layer") == 0
    old = {**data, "layer": None}
    restored = Signal.from_dict(old)
    assert restored.kind is SignalKind.CHECK_CRIT and restored.layer is Layer.STORAGE
    assert grew(before, "layer") == 1


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[LiveDetection, Store]]:
    store = Store.open(f"sqlite:///{tmp_path / 'collector.db'}")
    detection = LiveDetection(store, EmergencyConfig(), clock=lambda: 1_700_000_000.0)
    yield detection, store
    detection.close()
    store.close()


def test_live_detection_takes_layer_and_ceiling_from_the_data(live: tuple[LiveDetection, Store]) -> None:
    detection, store = live
    identity, _token = store.enroll_agent("acme", "db1", "agent-1")
    host_id = 1  # the first host of a fresh store; live detection keys its series cache by it
    points = [
        # the check's layer (storage), not the metric name's prefix (host)
        PointRow(1, 1_700_000_000.0, "storage.disk_io", "host_queue_depth_count", "count", (), 1.0),
        # a percent by its unit, whatever its name
        PointRow(1, 1_700_000_000.0, "application.http", "app_fill_level", "percent", (), 50.0),
        # old stored data: no unit, so the suffix tells (counted)
        PointRow(1, 1_700_000_000.0, "application.http", "app_pool_used_percent", "", (), 50.0),
        # a check this version does not know: its name tells (counted)
        PointRow(1, 1_700_000_000.0, "vendor.custom", "net_custom_count", "count", (), 1.0),
    ]
    batch = IngestBatch(max_seq=1, min_seq=1, results=[], points=points, inventories=[], health=[])
    before = fallbacks()
    detection.observe([Committed(identity, host_id, 0, batch)])

    def detector_ceiling(name: str) -> float | None:
        return detection.bank.detectors[f"acme/db1/{series_key(name, ())}"].ceiling

    assert detector_ceiling("app_fill_level") == 100.0
    assert detector_ceiling("app_pool_used_percent") == 100.0
    assert detector_ceiling("host_queue_depth_count") is None
    # the live series' layers (the detection's series cache: what its signals will carry)
    layers = {name: s.layer for (_c, name, _u, _l), s in detection._series[host_id].items()}
    assert layers["host_queue_depth_count"] is Layer.STORAGE
    assert layers["app_fill_level"] is Layer.APPLICATION
    assert layers["net_custom_count"] is Layer.NETWORK
    assert grew(before, "ceiling") == 1 and grew(before, "layer") == 1
