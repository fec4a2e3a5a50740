from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from checks.api import Metric, Result, Severity, Unit
from checks.probe import Probe
from checks.storage.forecast import (
    FORECAST,
    ForecastParams,
    ForecastSection,
    FsPoint,
    collect_forecast,
    evaluate_forecast,
    least_squares_slope,
)
from tests.conftest import fixture_probe

GIB = 1024**3
DAY = 86400.0


def test_collect_skips_unreadable_mounts_and_stamps_time():
    section = collect_forecast(fixture_probe("sp-mounts", now=1234.0), ForecastParams())
    assert section.ts == 1234.0
    assert "/mnt/gone" not in [fs.mountpoint for fs in section.filesystems]
    assert [fs.mountpoint for fs in section.filesystems][:2] == ["/", "/data"]


def test_collect_shares_statvfs_with_filesystem_check():
    from checks.storage.filesystem import FilesystemParams, collect_filesystem

    probe = fixture_probe("sp-mounts")
    collect_filesystem(probe, FilesystemParams())
    cached = dict(probe.cache["statvfs"])
    collect_forecast(probe, ForecastParams())
    assert probe.cache["statvfs"] == cached


def test_collect_rejects_empty_mounts(tmp_path):
    (tmp_path / "proc" / "self").mkdir(parents=True)
    (tmp_path / "proc" / "self" / "mounts").write_text("")
    with pytest.raises(ValueError, match="/proc/self/mounts is empty"):
        collect_forecast(Probe(root=tmp_path), ForecastParams())


@pytest.mark.parametrize(
    ("points", "slope"),
    [
        pytest.param([], 0.0, id="no points"),
        pytest.param([(5.0, 1.0)], 0.0, id="one point"),
        pytest.param([(5.0, 1.0), (5.0, 9.0)], 0.0, id="same time"),
        pytest.param(
            [(1.7e9, 100.0), (1.7e9 + 10, 80.0), (1.7e9 + 20, 60.0)], -2.0, id="shrinking at epoch times"
        ),
        pytest.param([(0.0, 0.0), (1.0, 1.0), (2.0, 0.0), (3.0, 1.0)], 0.2, id="noisy"),
    ],
)
def test_least_squares_slope(points, slope):
    assert least_squares_slope(points) == pytest.approx(slope)


def _run(samples, free_gib=100.0, size=1000 * GIB, params=None, store=None):
    """Feed (ts, used GiB) samples through evaluate; return the last output and the store."""
    params = params or ForecastParams()
    store = {} if store is None else store
    out: list[Any] = []
    for ts, used_gib in samples:
        section = ForecastSection(ts, (FsPoint("/", int(used_gib * GIB), int(free_gib * GIB), size),))
        out = list(evaluate_forecast(params, section, store))
    return out, store


def test_growing_one_gib_per_hour_with_100_gib_free_is_critical():
    hourly = [(h * 3600.0, 500.0 + h) for h in range(5)]
    out, _ = _run(hourly)
    growth = GIB / 3600
    assert out == [
        Metric("storage_fs_growth_bytes_per_second", growth, Unit.BYTES_PER_SECOND, {"mountpoint": "/"}),
        Metric("storage_fs_days_until_full_days", 100 * GIB / growth / DAY, Unit.DAYS, {"mountpoint": "/"}),
        Result(
            Severity.CRIT,
            "FS_FILLING_UP",
            "Growing 24.0 GiB/day, full in: 4.2 days (warn/crit below 30.0 days/7.0 days)",
            "/",
        ),
    ]


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        pytest.param(
            [(0.0, 500.0), (1800.0, 510.0)],
            [
                Result(
                    Severity.OK,
                    "OK",
                    "Collecting history: 2 samples over 30 min (forecast after 60 min)",
                    "/",
                )
            ],
            id="too little history",
        ),
        pytest.param(
            [(0.0, 500.0), (3600.0, 500.0)],
            [
                Metric("storage_fs_growth_bytes_per_second", 0.0, Unit.BYTES_PER_SECOND, {"mountpoint": "/"}),
                Result(Severity.OK, "OK", "Not growing (0 B/day)", "/"),
            ],
            id="flat",
        ),
        pytest.param(
            [(0.0, 500.0), (DAY, 501.0)],
            [
                Metric(
                    "storage_fs_growth_bytes_per_second",
                    GIB / DAY,
                    Unit.BYTES_PER_SECOND,
                    {"mountpoint": "/"},
                ),
                Metric("storage_fs_days_until_full_days", 100.0, Unit.DAYS, {"mountpoint": "/"}),
                Result(Severity.OK, "OK", "Growing 1.0 GiB/day, full in: 100.0 days", "/"),
            ],
            id="slow growth is fine",
        ),
        pytest.param(
            [(0.0, 500.0), (DAY, 520.0)],
            [
                Metric(
                    "storage_fs_growth_bytes_per_second",
                    20 * GIB / DAY,
                    Unit.BYTES_PER_SECOND,
                    {"mountpoint": "/"},
                ),
                Metric("storage_fs_days_until_full_days", 5.0, Unit.DAYS, {"mountpoint": "/"}),
                Result(
                    Severity.CRIT,
                    "FS_FILLING_UP",
                    "Growing 20.0 GiB/day, full in: 5.0 days (warn/crit below 30.0 days/7.0 days)",
                    "/",
                ),
            ],
            id="full within a week is critical",
        ),
    ],
)
def test_evaluate_table(samples, expected):
    out, _ = _run(samples)
    assert out == expected


def test_history_is_bounded_sampled_and_json_serialisable():
    params = ForecastParams(max_samples=5, sample_every_s=300)
    samples = [(float(t), 500.0) for t in range(0, 20000, 60)]  # a run every minute
    _, store = _run(samples, params=params)
    history = store["h:/"]["samples"]
    assert len(history) == 5
    assert all(b[0] - a[0] >= 300 for a, b in itertools.pairwise(history))
    json.dumps(store)


def test_resize_restarts_history():
    _, store = _run([(0.0, 500.0), (3600.0, 510.0)], size=1000 * GIB)
    out, store = _run([(7200.0, 520.0)], size=2000 * GIB, store=store)
    assert out == [
        Result(Severity.OK, "OK", "Collecting history: 1 samples over 0 µs (forecast after 60 min)", "/")
    ]


def test_unmounted_filesystems_leave_the_store():
    _, store = _run([(0.0, 500.0)])
    out = list(evaluate_forecast(ForecastParams(), ForecastSection(10.0, ()), store))
    assert store == {}
    assert out == [Result(Severity.OK, "OK", "No filesystems selected")]


def test_garbage_in_store_is_replaced():
    out, store = _run([(0.0, 500.0)], store={"h:/": "garbage"})
    assert store["h:/"]["samples"] == [[0.0, 500.0 * GIB]]
    assert out[0].key == "OK"


def test_declaration_covers_emitted_metrics():
    out, _ = _run([(0.0, 500.0), (DAY, 520.0)])
    assert {m.name for m in out if isinstance(m, Metric)} == FORECAST.metric_names
    assert {r.key for r in out if isinstance(r, Result)} == set(FORECAST.keys)


def test_a_run_slightly_early_still_samples():
    _, store = _run([(0.0, 500.0), (295.0, 501.0), (400.0, 502.0)])
    assert [s[0] for s in store["h:/"]["samples"]] == [0.0, 295.0]
