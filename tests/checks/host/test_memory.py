from __future__ import annotations

import shutil

import pytest

from checks.api import Metric, Result, Severity, Unit
from checks.host.memory import MemoryParams, MemorySection, collect_memory, evaluate_memory
from checks.probe import Probe
from tests.conftest import FIXTURES, fixture_probe

GiB = 1024**3


def only_results(out: list[Result | Metric]) -> list[Result]:
    return [r for r in out if isinstance(r, Result)]


def meminfo(available=8 * GiB, committed=4 * GiB, limit=8 * GiB):
    return {
        "MemTotal": 16 * GiB,
        "MemAvailable": available,
        "Buffers": 1 * GiB,
        "Cached": 5 * GiB,
        "Dirty": 100,
        "Writeback": 0,
        "SReclaimable": 2 * GiB,
        "SUnreclaim": 1 * GiB,
        "CommitLimit": limit,
        "Committed_AS": committed,
    }


def psi(some, full):
    return {
        "some": {"avg10": some, "avg60": 0.0, "avg300": 0.0, "total": 0.0},
        "full": {"avg10": full, "avg60": 0.0, "avg300": 0.0, "total": 0.0},
    }


def keys(out):
    return [(r.severity, r.key) for r in out if isinstance(r, Result)]


def test_collect_real_machine_sample():
    section = collect_memory(fixture_probe("host-real"), MemoryParams())
    assert section.meminfo["MemTotal"] == 24684084 * 1024
    assert section.overcommit_mode == 0
    assert section.pressure is not None and section.pressure["some"]["avg10"] == 0.0


def test_collect_busy_host_end_to_end():
    probe = fixture_probe("host-busy")
    out = list(evaluate_memory(MemoryParams(), collect_memory(probe, MemoryParams()), {}))
    assert keys(out) == [
        (Severity.WARN, "MEM_LOW"),
        (Severity.CRIT, "MEM_OVERCOMMITTED"),
        (Severity.WARN, "MEM_PRESSURE"),
        (Severity.WARN, "MEM_PRESSURE"),
    ]
    assert Metric("host_memory_hugepages_free_count", 128, Unit.COUNT) in out
    assert Metric("host_memory_dirty_bytes", 184320 * 1024, Unit.BYTES) in out
    assert Metric("host_memory_pressure_percent", 12.0, Unit.PERCENT, {"kind": "full"}) in out


def test_collect_without_psi_and_strict_overcommit():
    section = collect_memory(fixture_probe("host-noswap-nopsi"), MemoryParams())
    assert section.pressure is None
    assert section.overcommit_mode == 2
    out = list(evaluate_memory(MemoryParams(), section, {}))
    # 980000/1015000 = 0.966 is over the strict warn level 0.9
    assert keys(out) == [(Severity.OK, "OK"), (Severity.WARN, "MEM_OVERCOMMITTED")]
    assert "strict overcommit" in only_results(out)[1].summary
    assert not any(isinstance(m, Metric) and m.name == "host_memory_pressure_percent" for m in out)


def test_collect_garbled_names_file():
    with pytest.raises(ValueError, match="/proc/meminfo"):
        collect_memory(fixture_probe("host-garbled"), MemoryParams())


def test_collect_old_kernel_without_memavailable(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "meminfo").write_text("MemTotal: 100 kB\nMemFree: 50 kB\n")
    with pytest.raises(ValueError, match="/proc/meminfo: missing MemAvailable, CommitLimit, Committed_AS"):
        collect_memory(Probe(root=tmp_path), MemoryParams())


@pytest.mark.parametrize(
    ("info", "mode", "pressure", "expected"),
    [
        pytest.param(meminfo(), 0, None, [(Severity.OK, "OK"), (Severity.OK, "OK")], id="healthy"),
        pytest.param(
            meminfo(available=int(1.2 * GiB)),
            0,
            None,
            [(Severity.WARN, "MEM_LOW"), (Severity.OK, "OK")],
            id="7.5 percent available",
        ),
        pytest.param(
            meminfo(available=GiB // 2),
            0,
            None,
            [(Severity.CRIT, "MEM_LOW"), (Severity.OK, "OK")],
            id="3 percent available",
        ),
        pytest.param(
            meminfo(committed=13 * GiB),
            0,
            None,
            [(Severity.OK, "OK"), (Severity.WARN, "MEM_OVERCOMMITTED")],
            id="heuristic commit 1.6",
        ),
        pytest.param(
            meminfo(committed=13 * GiB),
            2,
            None,
            [(Severity.OK, "OK"), (Severity.CRIT, "MEM_OVERCOMMITTED")],
            id="strict commit 1.6",
        ),
        pytest.param(
            meminfo(),
            0,
            psi(25.0, 1.0),
            [(Severity.OK, "OK"), (Severity.OK, "OK"), (Severity.WARN, "MEM_PRESSURE"), (Severity.OK, "OK")],
            id="pressure some",
        ),
        pytest.param(
            meminfo(),
            None,
            psi(60.0, 20.0),
            [
                (Severity.OK, "OK"),
                (Severity.OK, "OK"),
                (Severity.CRIT, "MEM_PRESSURE"),
                (Severity.CRIT, "MEM_PRESSURE"),
            ],
            id="pressure full",
        ),
    ],
)
def test_evaluate(info, mode, pressure, expected):
    out = list(evaluate_memory(MemoryParams(), MemorySection(info, mode, pressure), {}))
    assert keys(out) == expected


def test_metrics_and_summary():
    out = list(evaluate_memory(MemoryParams(), MemorySection(meminfo(), 0, None), {}))
    assert out[0] == Result(Severity.OK, "OK", "Available 8.0 GiB of 16.0 GiB: 50.0%")
    metrics = {m.name: m.value for m in out if isinstance(m, Metric)}
    assert metrics == {
        "host_memory_total_bytes": 16 * GiB,
        "host_memory_available_bytes": 8 * GiB,
        "host_memory_available_percent": 50.0,
        "host_memory_used_bytes": 8 * GiB,
        "host_memory_buffers_bytes": GiB,
        "host_memory_cached_bytes": 5 * GiB,
        "host_memory_dirty_bytes": 100,
        "host_memory_writeback_bytes": 0,
        "host_memory_slab_reclaimable_bytes": 2 * GiB,
        "host_memory_slab_unreclaimable_bytes": GiB,
        "host_memory_commit_ratio": 0.5,
    }


def test_collect_garbled_overcommit_names_file(tmp_path):
    shutil.copytree(FIXTURES / "hosts" / "host-noswap-nopsi", tmp_path, dirs_exist_ok=True)
    (tmp_path / "proc" / "sys" / "vm" / "overcommit_memory").write_text("strict\n")
    with pytest.raises(ValueError, match="/proc/sys/vm/overcommit_memory: not an integer"):
        collect_memory(Probe(root=tmp_path), MemoryParams())
    (tmp_path / "proc" / "sys" / "vm" / "overcommit_memory").unlink()
    assert collect_memory(Probe(root=tmp_path), MemoryParams()).overcommit_mode is None
