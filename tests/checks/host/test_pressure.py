from __future__ import annotations

import pytest

from checks.api import Metric, Result, Severity, SkipCheck, Unit
from checks.host.pressure import PressureParams, PressureSection, collect_pressure, evaluate_pressure
from checks.probe import Probe
from tests.conftest import fixture_probe


def test_collect_real_sample():
    section = collect_pressure(fixture_probe("host-real"), PressureParams())
    assert set(section.resources) == {"cpu", "io", "memory"}
    assert section.resources["cpu"]["some"]["avg10"] == 1.01


def test_skip_without_psi():
    with pytest.raises(SkipCheck, match="/proc/pressure absent"):
        collect_pressure(fixture_probe("host-noswap-nopsi"), PressureParams())


def test_garbled_names_file():
    with pytest.raises(ValueError, match="/proc/pressure/cpu"):
        collect_pressure(fixture_probe("host-garbled"), PressureParams())


def test_missing_resource_is_left_out(tmp_path):
    (tmp_path / "proc/pressure").mkdir(parents=True)
    (tmp_path / "proc/pressure/io").write_text("some avg10=1.00 avg60=2.00 avg300=0.00 total=5\n")
    section = collect_pressure(Probe(root=tmp_path), PressureParams())
    out = list(evaluate_pressure(PressureParams(), section, {}))
    assert out == [
        Result(Severity.OK, "OK", "Stalled (avg over 60 s): 2.0%", item="io some"),
        Metric(
            "host_pressure_stall_percent",
            1.0,
            Unit.PERCENT,
            {"resource": "io", "kind": "some", "window": "10s"},
        ),
        Metric(
            "host_pressure_stall_percent",
            2.0,
            Unit.PERCENT,
            {"resource": "io", "kind": "some", "window": "60s"},
        ),
    ]


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        pytest.param(
            "avg60",
            [
                ("cpu some", Severity.WARN, "PRESSURE_CPU"),
                ("io some", Severity.WARN, "PRESSURE_IO"),
                ("io full", Severity.WARN, "PRESSURE_IO"),
                ("memory some", Severity.WARN, "PRESSURE_MEMORY"),
                ("memory full", Severity.WARN, "PRESSURE_MEMORY"),
            ],
            id="busy host over 60 s",
        ),
        pytest.param(
            "avg10",
            [
                ("cpu some", Severity.WARN, "PRESSURE_CPU"),
                ("io some", Severity.OK, "OK"),
                ("io full", Severity.OK, "OK"),
                ("memory some", Severity.WARN, "PRESSURE_MEMORY"),
                ("memory full", Severity.WARN, "PRESSURE_MEMORY"),
            ],
            id="busy host over 10 s",
        ),
    ],
)
def test_busy_host(window, expected):
    params = PressureParams(window=window)
    out = list(evaluate_pressure(params, collect_pressure(fixture_probe("host-busy"), params), {}))
    assert [(r.item, r.severity, r.key) for r in out if isinstance(r, Result)] == expected
    # cpu full is emitted as a metric but never judged
    assert len([m for m in out if isinstance(m, Metric)]) == 12


def test_crit_level():
    kinds = {"some": {"avg10": 95.0, "avg60": 90.0, "avg300": 50.0, "total": 1.0}}
    out = list(evaluate_pressure(PressureParams(), PressureSection({"cpu": kinds}), {}))
    assert out[0] == Result(
        Severity.CRIT,
        "PRESSURE_CPU",
        "Stalled (avg over 60 s): 90.0% (warn/crit at 50.0%/80.0%)",
        item="cpu some",
    )
