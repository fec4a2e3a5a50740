from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from checks.api import Metric, Result, Severity, Unit
from checks.network.conntrack import (
    CONNTRACK,
    ConntrackParams,
    ConntrackSection,
    collect_conntrack,
    evaluate_conntrack,
)
from checks.probe import Probe
from tests.conftest import FIXTURES, fixture_probe


def copy_host(tmp_path: Path, name: str = "x5-conntrack-full") -> Path:
    shutil.copytree(FIXTURES / "hosts" / name, tmp_path, dirs_exist_ok=True)
    return tmp_path


def results(out: list[Any]) -> list[Result]:
    return [r for r in out if isinstance(r, Result)]


def test_collect_this_machine():
    section = collect_conntrack(fixture_probe("x5-conntrack-real"), ConntrackParams())
    assert section == ConntrackSection(0, 262144, 0, 0, 0, 2)


def test_collect_sums_hex_counters_over_cpus_with_the_older_header():
    section = collect_conntrack(fixture_probe("x5-conntrack-full"), ConntrackParams())
    assert section == ConntrackSection(240000, 262144, 22, 5, 3, 4)


def test_collect_without_stat_file_or_with_legacy_max(tmp_path):
    root = copy_host(tmp_path)
    (root / "proc/net/stat/nf_conntrack").unlink()
    (root / "proc/sys/net/netfilter/nf_conntrack_max").rename(root / "proc/sys/net/nf_conntrack_max")
    assert collect_conntrack(Probe(root=root), ConntrackParams()) == ConntrackSection(
        240000, 262144, None, None, None, 0
    )


def test_conntrack_not_loaded_is_said_not_skipped(tmp_path):
    (tmp_path / "proc").mkdir()
    section = collect_conntrack(Probe(root=tmp_path), ConntrackParams())
    assert section == ConntrackSection(None, 0, None, None, None, 0)
    assert list(evaluate_conntrack(ConntrackParams(), section, {})) == [
        Result(Severity.OK, "OK", "Connection tracking is not loaded: no table to fill")
    ]


@pytest.mark.parametrize(
    ("path", "content", "message"),
    [
        pytest.param(
            "proc/sys/net/netfilter/nf_conntrack_count",
            "",
            "nf_conntrack_count: expected an integer",
            id="empty count",
        ),
        pytest.param(
            "proc/sys/net/netfilter/nf_conntrack_max", "-1\n", "nf_conntrack_max: negative", id="negative max"
        ),
        pytest.param("proc/net/stat/nf_conntrack", "", "nf_conntrack: expected a header", id="empty stat"),
        pytest.param(
            "proc/net/stat/nf_conntrack",
            "entries insert_failed drop early_drop\n00000001\n",
            "line 2 has 1 fields",
            id="truncated line",
        ),
        pytest.param(
            "proc/net/stat/nf_conntrack",
            "entries found\n1 2\n",
            "header lacks one of drop",
            id="other header",
        ),
        pytest.param(
            "proc/net/stat/nf_conntrack",
            "entries insert_failed drop early_drop\n0000001f 0000zz00 00000000 00000000\n",
            "/proc/net/stat/nf_conntrack: line 2 has a non-hex counter",
            id="not hex",
        ),
    ],
)
def test_collect_rejects_garbled_files(tmp_path, path, content, message):
    root = copy_host(tmp_path)
    (root / path).write_text(content)
    with pytest.raises(ValueError, match=message):
        collect_conntrack(Probe(root=root), ConntrackParams())


@pytest.mark.parametrize(
    ("store", "section", "expected"),
    [
        pytest.param(
            {},
            ConntrackSection(240000, 262144, 22, 5, 3, 4),
            [
                Result(
                    Severity.CRIT,
                    "CONNTRACK_NEARLY_FULL",
                    "Conntrack table 240000 of 262144 entries: 91.6% (warn/crit at 80.0%/90.0%)",
                )
            ],
            id="first run: fill level only, drop counters become the baseline",
        ),
        pytest.param(
            {"drop": 22, "insert_failed": 5, "early_drop": 3},
            ConntrackSection(1000, 262144, 22, 5, 3, 4),
            [
                Result(Severity.OK, "OK", "Conntrack table 1000 of 262144 entries: 0.4%"),
                Result(Severity.OK, "OK", "Packets dropped by conntrack since the last run: 0"),
            ],
            id="quiet",
        ),
        pytest.param(
            {"drop": 20, "insert_failed": 5, "early_drop": 3},
            ConntrackSection(220000, 262144, 22, 5, 3, 4),
            [
                Result(
                    Severity.WARN,
                    "CONNTRACK_NEARLY_FULL",
                    "Conntrack table 220000 of 262144 entries: 83.9% (warn/crit at 80.0%/90.0%)",
                ),
                Result(
                    Severity.WARN,
                    "CONNTRACK_DROPS",
                    "Packets dropped by conntrack since the last run: 2 (warn/crit at 1/100): "
                    "2 for want of an entry, 0 insert races",
                ),
            ],
            id="nearly full and dropping",
        ),
        pytest.param(
            {"drop": 0, "insert_failed": 0, "early_drop": 0},
            ConntrackSection(500, 262144, 90, 40, 7, 4),
            [
                Result(
                    Severity.WARN,
                    "CONNTRACK_NEARLY_FULL",
                    "Conntrack table 500 of 262144 entries: 0.2%; the table reached its limit since the "
                    "last run (7 entries evicted early to make room)",
                ),
                Result(
                    Severity.CRIT,
                    "CONNTRACK_DROPS",
                    "Packets dropped by conntrack since the last run: 130 (warn/crit at 1/100): "
                    "90 for want of an entry, 40 insert races",
                ),
            ],
            id="full between two runs",
        ),
        pytest.param(
            {"drop": 500, "insert_failed": 90, "early_drop": 9},
            ConntrackSection(10, 262144, 1, 0, 0, 4),
            [Result(Severity.OK, "OK", "Conntrack table 10 of 262144 entries: 0.0%")],
            id="counters reset by a reboot: new baseline",
        ),
        pytest.param(
            {},
            ConntrackSection(5000, 0, None, None, None, 0),
            [Result(Severity.OK, "OK", "Conntrack table 5000 entries (no limit)")],
            id="no limit and no stat file",
        ),
    ],
)
def test_evaluate(store, section, expected):
    assert results(list(evaluate_conntrack(ConntrackParams(), section, store))) == expected


def test_metrics():
    store = {"drop": 20, "insert_failed": 5, "early_drop": 3}
    out = list(evaluate_conntrack(ConntrackParams(), ConntrackSection(131072, 262144, 22, 5, 3, 4), store))
    assert [m for m in out if isinstance(m, Metric)] == [
        Metric("network_conntrack_entries_count", 131072, Unit.COUNT),
        Metric("network_conntrack_drops_count", 2, Unit.COUNT, {"reason": "drop"}),
        Metric("network_conntrack_drops_count", 0, Unit.COUNT, {"reason": "insert_failed"}),
        Metric("network_conntrack_drops_count", 0, Unit.COUNT, {"reason": "early_drop"}),
        Metric("network_conntrack_max_count", 262144, Unit.COUNT),
        Metric("network_conntrack_used_percent", 50.0, Unit.PERCENT),
    ]
    assert store == {"drop": 22, "insert_failed": 5, "early_drop": 3}


def test_two_runs_on_a_changing_tree(tmp_path):
    root = copy_host(tmp_path)
    store: dict[str, Any] = {}
    probe, params = Probe(root=root), ConntrackParams()
    first = results(list(CONNTRACK.run(probe, params, store)))
    assert [r.key for r in first] == ["CONNTRACK_NEARLY_FULL"]
    (root / "proc/sys/net/netfilter/nf_conntrack_count").write_text("1200\n")
    stat = root / "proc/net/stat/nf_conntrack"
    stat.write_text(stat.read_text().replace("00000010", "00000050", 1))  # CPU0 drop 16 -> 80
    second = results(list(CONNTRACK.run(probe, params, store)))
    assert second == [
        Result(Severity.OK, "OK", "Conntrack table 1200 of 262144 entries: 0.5%"),
        Result(
            Severity.WARN,
            "CONNTRACK_DROPS",
            "Packets dropped by conntrack since the last run: 64 (warn/crit at 1/100): "
            "64 for want of an entry, 0 insert races",
        ),
    ]
