from __future__ import annotations

import json
from typing import Any

import pytest

from checks.api import Metric, Result, Severity, Unit
from checks.probe import Probe
from checks.storage.disk_io import (
    DISK_IO,
    DiskCounters,
    DiskIoParams,
    DiskIoSection,
    collect_disk_io,
    evaluate_disk_io,
)
from tests.conftest import fixture_probe


def test_collect_keeps_whole_disks_md_and_dm():
    section = collect_disk_io(fixture_probe("sp-diskstats", now=500.0), DiskIoParams())
    assert section.ts == 500.0
    assert [d.name for d in section.disks] == ["sda", "nvme0n1", "dm-0", "md0"]
    assert section.disks[0] == DiskCounters(
        "sda", 182315, 11690342, 95213, 561840, 24110922, 1021553, 612340, 1156032
    )


def test_collect_device_regexes_are_configurable():
    params = DiskIoParams(devices_regex=r"(sd[a-z]+\d*|loop\d+)", exclude_regex=r"loop\d+")
    section = collect_disk_io(fixture_probe("sp-diskstats"), params)
    assert [d.name for d in section.disks] == ["sda", "sda1"]


def test_params_reject_broken_regex():
    with pytest.raises(ValueError, match="devices_regex"):
        DiskIoParams(devices_regex="(sd")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("   8 0 sda 1 2 3\n", "line 1: expected at least 14 fields", id="truncated"),
        pytest.param("   8 0 sda 1 2 3 x 5 6 7 8 9 10 11\n", "line 1: non-numeric counter", id="garbled"),
    ],
)
def test_collect_rejects_bad_diskstats(tmp_path, text, message):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "diskstats").write_text(text)
    with pytest.raises(ValueError, match=f"/proc/diskstats {message}"):
        collect_disk_io(Probe(root=tmp_path), DiskIoParams())


def test_collect_empty_diskstats_gives_no_disks(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "diskstats").write_text("")
    section = collect_disk_io(Probe(root=tmp_path), DiskIoParams())
    assert list(evaluate_disk_io(DiskIoParams(), section, {})) == [
        Result(Severity.OK, "OK", "No disks match devices_regex")
    ]


BASE = DiskCounters("sda", 1000, 8000, 5000, 2000, 16000, 10000, 30000, 60000)


def _later(reads=0, rsec=0, rms=0, writes=0, wsec=0, wms=0, io_ms=0, weighted=0):
    b = BASE
    return DiskCounters(
        "sda",
        b.reads + reads,
        b.read_sectors + rsec,
        b.read_ms + rms,
        b.writes + writes,
        b.write_sectors + wsec,
        b.write_ms + wms,
        b.io_ms + io_ms,
        b.weighted_ms + weighted,
    )


def _metrics(rps, wps, rbps, wbps, rawait, wawait, util, queue):
    labels = {"device": "sda"}
    return [
        Metric("storage_disk_reads_per_second", rps, Unit.PER_SECOND, labels),
        Metric("storage_disk_writes_per_second", wps, Unit.PER_SECOND, labels),
        Metric("storage_disk_read_bytes_per_second", rbps, Unit.BYTES_PER_SECOND, labels),
        Metric("storage_disk_write_bytes_per_second", wbps, Unit.BYTES_PER_SECOND, labels),
        Metric("storage_disk_read_await_seconds", rawait, Unit.SECONDS, labels),
        Metric("storage_disk_write_await_seconds", wawait, Unit.SECONDS, labels),
        Metric("storage_disk_utilization_percent", util, Unit.PERCENT, labels),
        Metric("storage_disk_queue_depth_ratio", queue, Unit.RATIO, labels),
    ]


@pytest.mark.parametrize(
    ("later", "expected"),
    [
        pytest.param(
            # 60 s: 600 reads of 4 KiB taking 5 ms each, 1200 writes of 8 KiB at 2 ms, busy 6 s.
            _later(
                reads=600, rsec=4800, rms=3000, writes=1200, wsec=19200, wms=2400, io_ms=6000, weighted=5400
            ),
            [
                *_metrics(10.0, 20.0, 40960.0, 163840.0, 0.005, 0.002, 10.0, 0.09),
                Result(Severity.OK, "OK", "Average read latency: 5.0 ms", "sda"),
                Result(Severity.OK, "OK", "Utilisation: 10.0%", "sda"),
            ],
            id="healthy disk",
        ),
        pytest.param(
            _later(reads=100, rms=30000, writes=100, wms=1000, io_ms=58800, weighted=31000),
            [
                *_metrics(100 / 60, 100 / 60, 0.0, 0.0, 0.3, 0.01, 98.0, 31 / 60),
                Result(
                    Severity.WARN,
                    "DISK_LATENCY_HIGH",
                    "Average read latency: 300.0 ms (warn/crit at 100.0 ms/500.0 ms)",
                    "sda",
                ),
                Result(
                    Severity.CRIT, "DISK_SATURATED", "Utilisation: 98.0% (warn/crit at 90.0%/98.0%)", "sda"
                ),
            ],
            id="slow reads and saturated",
        ),
        pytest.param(
            _later(writes=3, wms=6000, io_ms=6000, weighted=6000),
            [
                *_metrics(0.0, 0.05, 0.0, 0.0, 0.0, 2.0, 10.0, 0.1),
                Result(Severity.OK, "OK", "Utilisation: 10.0%", "sda"),
            ],
            id="too few ios to judge latency",
        ),
        pytest.param(
            _later(io_ms=90000),
            [
                *_metrics(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 100.0, 0.0),
                Result(
                    Severity.CRIT, "DISK_SATURATED", "Utilisation: 100.0% (warn/crit at 90.0%/98.0%)", "sda"
                ),
            ],
            id="utilisation is capped at 100",
        ),
    ],
)
def test_evaluate_rates(later, expected):
    store: dict[str, Any] = {}
    assert list(evaluate_disk_io(DiskIoParams(), DiskIoSection(1000.0, (BASE,)), store)) == [
        Result(Severity.OK, "OK", "Rates from the next run on: sda")
    ]
    out = list(evaluate_disk_io(DiskIoParams(), DiskIoSection(1060.0, (later,)), store))
    _assert_close(out, expected)
    json.dumps(store)


def _assert_close(out, expected):
    assert len(out) == len(expected), out
    for got, want in zip(out, expected, strict=True):
        if isinstance(want, Metric):
            assert (got.name, got.labels) == (want.name, want.labels)
            assert got.value == pytest.approx(want.value), got.name
        else:
            assert got == want


@pytest.mark.parametrize(
    ("second_ts", "second"),
    [
        pytest.param(1060.0, DiskCounters("sda", 5, 0, 0, 0, 0, 0, 0, 0), id="counter reset after reboot"),
        pytest.param(990.0, BASE, id="clock went back"),
    ],
)
def test_no_rates_without_a_sane_previous_sample(second_ts, second):
    store: dict[str, Any] = {}
    list(evaluate_disk_io(DiskIoParams(), DiskIoSection(1000.0, (BASE,)), store))
    out = list(evaluate_disk_io(DiskIoParams(), DiskIoSection(second_ts, (second,)), store))
    assert out == [Result(Severity.OK, "OK", "Rates from the next run on: sda")]


def test_vanished_disks_leave_the_store():
    store: dict[str, Any] = {"d:sdz": [1.0, 0, 0, 0, 0, 0, 0, 0, 0]}
    list(evaluate_disk_io(DiskIoParams(), DiskIoSection(1000.0, (BASE,)), store))
    assert list(store) == ["d:sda"]


def test_collect_then_evaluate_on_fixture_and_declaration():
    probe = fixture_probe("sp-diskstats", now=1000.0)
    store: dict[str, Any] = {}
    list(DISK_IO.run(probe, DiskIoParams(), store))
    out = list(DISK_IO.run(fixture_probe("sp-diskstats", now=1060.0), DiskIoParams(), store))
    metrics = [m for m in out if isinstance(m, Metric)]
    assert {m.name for m in metrics} == DISK_IO.metric_names
    assert {m.label_dict["device"] for m in metrics} == {"sda", "nvme0n1", "dm-0", "md0"}
    assert all(m.value == 0 for m in metrics)  # same counters twice: nothing happened
