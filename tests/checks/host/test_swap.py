from __future__ import annotations

from typing import Any

import pytest

from checks.api import Metric, Result, Severity, Unit
from checks.host.swap import SwapParams, SwapSection, collect_swap, evaluate_swap
from checks.probe import Probe
from tests.conftest import fixture_probe

GiB = 1024**3


def keys(out):
    return [(r.severity, r.key) for r in out if isinstance(r, Result)]


def test_collect_busy_host():
    section = collect_swap(fixture_probe("host-busy", now=10.0), SwapParams())
    assert section == SwapSection(10.0, 4194300 * 1024, 629140 * 1024, 1234567, 2345678)


def test_collect_garbled_names_file():
    with pytest.raises(ValueError, match="/proc/meminfo"):
        collect_swap(fixture_probe("host-garbled"), SwapParams())


def test_collect_vmstat_without_swap_counters(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "meminfo").write_text("MemTotal: 100 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n")
    (tmp_path / "proc" / "vmstat").write_text("nr_free_pages 1\n")
    with pytest.raises(ValueError, match="/proc/vmstat: no pswpin"):
        collect_swap(Probe(root=tmp_path), SwapParams())


def test_no_swap_is_ok_with_metrics():
    section = collect_swap(fixture_probe("host-noswap-nopsi"), SwapParams())
    out = list(evaluate_swap(SwapParams(), section, {}))
    assert out == [
        Result(Severity.OK, "OK", "No swap configured"),
        Metric("host_swap_total_bytes", 0, Unit.BYTES),
        Metric("host_swap_used_bytes", 0, Unit.BYTES),
        Metric("host_swap_used_percent", 0, Unit.PERCENT),
    ]


@pytest.mark.parametrize(
    ("free", "expected"),
    [
        pytest.param(4 * GiB, (Severity.OK, "OK"), id="unused"),
        pytest.param(GiB + GiB // 2, (Severity.WARN, "SWAP_USAGE_HIGH"), id="62 percent used"),
        pytest.param(GiB // 2, (Severity.CRIT, "SWAP_USAGE_HIGH"), id="87 percent used"),
    ],
)
def test_usage_levels(free, expected):
    out = list(evaluate_swap(SwapParams(), SwapSection(0.0, 4 * GiB, free, 0, 0), {}))
    assert keys(out) == [expected]


@pytest.mark.parametrize(
    ("pages_in", "expected"),
    [
        pytest.param(600, (Severity.OK, "OK"), id="10 pages per second"),
        pytest.param(12_000, (Severity.WARN, "SWAP_IN_HIGH"), id="200 pages per second"),
        pytest.param(120_000, (Severity.CRIT, "SWAP_IN_HIGH"), id="2000 pages per second"),
    ],
)
def test_swap_in_rate_across_two_runs(pages_in, expected):
    store: dict[str, Any] = {}
    first = list(evaluate_swap(SwapParams(), SwapSection(100.0, 4 * GiB, 4 * GiB, 1000, 5000), store))
    assert keys(first) == [(Severity.OK, "OK")]  # no rate yet
    out = list(
        evaluate_swap(SwapParams(), SwapSection(160.0, 4 * GiB, 4 * GiB, 1000 + pages_in, 5600), store)
    )
    assert keys(out) == [(Severity.OK, "OK"), expected]
    assert Metric("host_swap_in_pages_per_second", pages_in / 60, Unit.PER_SECOND) in out
    assert Metric("host_swap_out_pages_per_second", 10.0, Unit.PER_SECOND) in out


def test_rates_also_without_swap_space():
    store: dict[str, Any] = {}
    list(evaluate_swap(SwapParams(), SwapSection(0.0, 0, 0, 0, 0), store))
    out = list(evaluate_swap(SwapParams(), SwapSection(60.0, 0, 0, 0, 0), store))
    assert Metric("host_swap_in_pages_per_second", 0.0, Unit.PER_SECOND) in out
