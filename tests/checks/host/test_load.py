from __future__ import annotations

import pytest

from checks.api import Metric, Result, Severity, Unit
from checks.host.load import LoadParams, LoadSection, collect_load, evaluate_load
from tests.conftest import fixture_probe


def test_collect_reads_loadavg_and_online_cpus():
    section = collect_load(fixture_probe("busy"), LoadParams())
    assert section == LoadSection(9.5, 8.2, 6.0, 7, 412, 4)


def test_collect_rejects_garbled_loadavg(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "loadavg").write_text("garbage\n")
    from checks.probe import Probe

    with pytest.raises(ValueError, match="/proc/loadavg"):
        collect_load(Probe(root=tmp_path), LoadParams())


@pytest.mark.parametrize(
    ("load5", "severity", "key"),
    [
        pytest.param(2.0, Severity.OK, "OK", id="half a task per core"),
        pytest.param(8.0, Severity.WARN, "LOAD_HIGH", id="two per core warns"),
        pytest.param(17.0, Severity.CRIT, "LOAD_HIGH", id="over four per core is critical"),
    ],
)
def test_evaluate_levels(load5, severity, key):
    section = LoadSection(1.0, load5, 1.0, 1, 100, 4)
    out = list(evaluate_load(LoadParams(), section, {}))
    results = [r for r in out if isinstance(r, Result)]
    assert [(r.severity, r.key) for r in results] == [(severity, key)]
    assert Metric("host_load_per_core_ratio", load5 / 4, Unit.RATIO, {"window": "5m"}) in out
