from __future__ import annotations

import pytest

from checks.host._common import (
    cpu_percentages,
    parse_key_value_counters,
    parse_meminfo,
    parse_pressure,
    parse_proc_stat,
    read_meminfo,
    read_pressure,
    read_proc_stat,
)
from checks.probe import Probe
from tests.conftest import fixture_probe


def test_real_proc_stat_parses():
    stat = read_proc_stat(fixture_probe("host-real"))
    assert stat.total == (10130, 0, 5684, 164654, 462, 0, 126, 13)
    assert list(stat.cores) == ["cpu0", "cpu1"]
    assert (stat.ctxt, stat.intr, stat.btime, stat.procs_blocked) == (1234790, 526370, 1795629275, 0)


def test_real_meminfo_is_in_bytes_and_hugepages_are_counts():
    info = read_meminfo(fixture_probe("host-busy"))
    assert info["MemTotal"] == 16318852 * 1024
    assert info["HugePages_Total"] == 512
    assert info["Hugepagesize"] == 2048 * 1024


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("", "missing line", id="empty"),
        pytest.param("cpu  10 20 30\n", "3 of 8 time columns", id="short cpu line"),
        pytest.param("cpu  1 2 3 4 5 6 7 x\nctxt 1\n", "cannot parse", id="non-numeric"),
        pytest.param("cpu  1 2 3 4 5 6 7 8\nctxt 1\nintr 5 0\n", "btime, procs_running", id="truncated"),
    ],
)
def test_garbled_proc_stat_names_the_file(text, message):
    with pytest.raises(ValueError, match=f"^/proc/stat: .*{message}"):
        parse_proc_stat(text)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("MemTotal:       lots kB\n", id="non-numeric"),
        pytest.param("MemTotal 100 kB\n", id="no colon"),
        pytest.param("MemFree: 100 kB\n", id="no MemTotal"),
    ],
)
def test_garbled_meminfo_names_the_file(text):
    with pytest.raises(ValueError, match=r"^/proc/meminfo: "):
        parse_meminfo(text)


def test_garbled_vmstat_names_the_file_and_line():
    with pytest.raises(ValueError, match=r"^/proc/vmstat: line 2 "):
        parse_key_value_counters("nr_free_pages 1\npswpin\n", "/proc/vmstat")
    with pytest.raises(ValueError, match=r"^/proc/vmstat: empty"):
        parse_key_value_counters("", "/proc/vmstat")


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("some avg10=abc avg60=1 avg300=1 total=1\n", id="non-numeric"),
        pytest.param("some avg10=1.0\n", id="truncated"),
        pytest.param("most avg10=1 avg60=1 avg300=1 total=1\n", id="unknown kind"),
    ],
)
def test_garbled_pressure_names_the_file(text):
    with pytest.raises(ValueError, match=r"^/proc/pressure/cpu: "):
        parse_pressure(text, "/proc/pressure/cpu")


def test_pressure_absent_is_none(tmp_path):
    assert read_pressure(Probe(root=tmp_path), "cpu") is None


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(
            (0,) * 8,
            (50, 0, 20, 20, 5, 2, 1, 2),
            {"user": 50, "nice": 0, "system": 20, "idle": 20, "iowait": 5, "irq": 3, "steal": 2, "busy": 75},
            id="every mode",
        ),
        pytest.param((10,) * 8, (9,) + (10,) * 7, None, id="counter went backwards"),
        pytest.param((10,) * 8, (10,) * 8, None, id="no time passed"),
        pytest.param((10,) * 3, (10,) * 8, None, id="stored reading too short"),
    ],
)
def test_cpu_percentages(old, new, expected):
    assert cpu_percentages(old, new) == expected


def test_proc_stat_is_read_once_per_cycle(tmp_path):
    (tmp_path / "proc").mkdir()
    stat = tmp_path / "proc" / "stat"
    stat.write_text("cpu  1 2 3 4 5 6 7 8\nintr 1\nctxt 2\nbtime 3\nprocs_running 1\nprocs_blocked 0\n")
    probe = Probe(root=tmp_path)
    first = read_proc_stat(probe)
    stat.write_text("garbage")
    assert read_proc_stat(probe) is first
    probe.new_cycle()
    with pytest.raises(ValueError, match="/proc/stat"):
        read_proc_stat(probe)
