from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from checks.api import Metric, Result, Severity, Unit
from checks.network import neighbours
from checks.network.neighbours import (
    NEIGHBOURS,
    Gateway,
    NeighParams,
    NeighSection,
    NeighTable,
    collect_neighbours,
    evaluate_neighbours,
)
from checks.probe import Probe
from tests.conftest import FIXTURES, fixture_probe

GW_OK = Gateway("192.0.2.1", "eth0", "complete")
GW_BAD = Gateway("10.20.0.1", "bond0", "unresolved")


@pytest.fixture(autouse=True)
def fresh_limit_cache() -> Iterator[None]:
    # gc_thresh3 readings are reused for LIMIT_TTL_S per path: tests must not see each other's.
    neighbours._limits.clear()
    yield
    neighbours._limits.clear()


def copy_host(tmp_path: Path, name: str = "x5-neigh-big") -> Path:
    shutil.copytree(FIXTURES / "hosts" / name, tmp_path, dirs_exist_ok=True)
    return tmp_path


def results(out: list[Any]) -> list[Result]:
    return [r for r in out if isinstance(r, Result)]


def test_collect_this_machine():
    section = collect_neighbours(fixture_probe("x5-neigh-real"), NeighParams())
    assert section == NeighSection(
        (NeighTable("ipv4", 2, 1024, 0), NeighTable("ipv6", 4, 1024, 0)), 1, (), (GW_OK,)
    )


def test_collect_big_flat_network_without_ipv6():
    section = collect_neighbours(fixture_probe("x5-neigh-big"), NeighParams())
    assert section.tables == (NeighTable("ipv4", 964, 1024, 12),)
    assert section.arp_entries == 942
    assert len(section.incomplete) == 24
    assert section.incomplete[:2] == ("10.20.0.1 (bond0)", "10.20.0.40 (bond0)")
    assert section.gateways == (GW_BAD,)


def test_collect_without_stat_files_counts_arp_lines(tmp_path):
    root = copy_host(tmp_path)
    shutil.rmtree(root / "proc/net/stat")
    (root / "proc/net/route").unlink()
    section = collect_neighbours(Probe(root=root), NeighParams())
    assert section.tables == (NeighTable("ipv4", 942, 1024, None),)
    assert section.gateways == ()


def test_without_proc_net_arp_the_tables_are_still_reported(tmp_path):
    root = copy_host(tmp_path)
    (root / "proc/net/arp").unlink()
    section = collect_neighbours(Probe(root=root), NeighParams())
    assert section == NeighSection((NeighTable("ipv4", 964, 1024, 12),), None, (), ())
    assert results(list(evaluate_neighbours(NeighParams(), section, {})))[1:] == [
        Result(Severity.OK, "OK", "IPv4 neighbour entries are not exposed here (/proc/net/arp is absent)")
    ]
    shutil.rmtree(root / "proc")
    (root / "proc").mkdir()
    assert list(
        evaluate_neighbours(NeighParams(), collect_neighbours(Probe(root=root), NeighParams()), {})
    ) == [Result(Severity.OK, "OK", "IPv4 neighbour entries are not exposed here (/proc/net/arp is absent)")]


def test_collect_gateway_absent_from_the_table(tmp_path):
    root = copy_host(tmp_path)
    arp = root / "proc/net/arp"
    arp.write_text(
        "\n".join(line for line in arp.read_text().splitlines() if "10.20.0.1 " not in line) + "\n"
    )
    assert collect_neighbours(Probe(root=root), NeighParams()).gateways == (
        Gateway("10.20.0.1", "bond0", "absent"),
    )


def test_gc_thresh3_is_reread_after_its_ttl(tmp_path):
    root = copy_host(tmp_path)
    clock = [1000.0]
    probe = Probe(root=root, monotonic=lambda: clock[0])
    assert collect_neighbours(probe, NeighParams()).tables[0].limit == 1024
    (root / "proc/sys/net/ipv4/neigh/default/gc_thresh3").write_text("8192\n")
    clock[0] += 60
    assert collect_neighbours(probe, NeighParams()).tables[0].limit == 1024
    clock[0] += neighbours.LIMIT_TTL_S
    assert collect_neighbours(probe, NeighParams()).tables[0].limit == 8192


@pytest.mark.parametrize(
    ("path", "content", "message"),
    [
        pytest.param("proc/net/arp", "", r"/proc/net/arp: missing the", id="empty arp"),
        pytest.param(
            "proc/net/arp",
            "IP address HW type Flags HW address Mask Device\n10.0.0.1 0x1 0x2 52:54:00:00:00:01\n",
            r"/proc/net/arp: line 2",
            id="truncated arp line",
        ),
        pytest.param(
            "proc/net/arp",
            "IP address HW type Flags HW address Mask Device\n10.0.0.1 0x1 zz 52:54:00:00:00:01 * eth0\n",
            r"/proc/net/arp: line 2",
            id="bad arp flags",
        ),
        pytest.param(
            "proc/net/stat/arp_cache", "entries allocs\n", r"arp_cache: missing the", id="stat header"
        ),
        pytest.param(
            "proc/net/stat/arp_cache",
            "entries table_fulls\n",
            r"arp_cache: no per-CPU lines",
            id="stat no cpus",
        ),
        pytest.param(
            "proc/net/stat/arp_cache",
            "entries table_fulls\n0000000a\n",
            r"arp_cache: line 2 has 1",
            id="stat short",
        ),
        pytest.param(
            "proc/net/stat/arp_cache",
            "entries table_fulls\n0000000a 0000xx\n",
            r"arp_cache: line 2",
            id="not hex",
        ),
        pytest.param(
            "proc/sys/net/ipv4/neigh/default/gc_thresh3", "many\n", r"gc_thresh3: expected", id="limit"
        ),
        pytest.param("proc/net/route", "eth0 0 0\n", r"/proc/net/route: missing the", id="route header"),
        pytest.param(
            "proc/net/route",
            "Iface Destination Gateway Flags RefCnt Use Metric Mask MTU Window IRTT\neth0 00000000 zz 0003\n",
            r"/proc/net/route: line 2",
            id="route line",
        ),
    ],
)
def test_collect_rejects_garbled_files(tmp_path, path, content, message):
    root = copy_host(tmp_path)
    (root / path).write_text(content)
    with pytest.raises(ValueError, match=message):
        collect_neighbours(Probe(root=root), NeighParams())


def sect(*tables: NeighTable, incomplete: int = 0, gateways: tuple[Gateway, ...] = ()) -> NeighSection:
    return NeighSection(tables, 100, tuple(f"10.0.0.{i} (eth0)" for i in range(incomplete)), gateways)


V4 = NeighTable("ipv4", 100, 1024, 3)


@pytest.mark.parametrize(
    ("store", "section", "expected"),
    [
        pytest.param(
            {},
            sect(V4, gateways=(GW_OK,)),
            [
                Result(Severity.OK, "OK", "Neighbour table 100 of 1024 entries (gc_thresh3): 9.8%", "ipv4"),
                Result(Severity.OK, "OK", "0 of 100 IPv4 neighbours unresolved"),
                Result(Severity.OK, "OK", "Default gateway 192.0.2.1 on eth0: resolved", "gateway 192.0.2.1"),
            ],
            id="healthy, first run",
        ),
        pytest.param(
            {"table_fulls:ipv4": 3},
            sect(NeighTable("ipv4", 800, 1024, 3), NeighTable("ipv6", 990, 1024, 9)),
            [
                Result(
                    Severity.WARN,
                    "NEIGH_TABLE_NEARLY_FULL",
                    "Neighbour table 800 of 1024 entries (gc_thresh3): 78.1% (warn/crit at 75.0%/90.0%)",
                    "ipv4",
                ),
                Result(
                    Severity.CRIT,
                    "NEIGH_TABLE_NEARLY_FULL",
                    "Neighbour table 990 of 1024 entries (gc_thresh3): 96.7% (warn/crit at 75.0%/90.0%)",
                    "ipv6",
                ),
                Result(Severity.OK, "OK", "0 of 100 IPv4 neighbours unresolved"),
            ],
            id="nearly full per family; first look at ipv6 overflow counter is a baseline",
        ),
        pytest.param(
            {"table_fulls:ipv4": 1},
            sect(V4),
            [
                Result(Severity.OK, "OK", "Neighbour table 100 of 1024 entries (gc_thresh3): 9.8%", "ipv4"),
                Result(
                    Severity.CRIT,
                    "NEIGH_TABLE_OVERFLOW",
                    "Neighbour table overflowed 2 time(s) since the last run: new peers could not be "
                    "resolved; raise net.ipv4.neigh.default.gc_thresh3",
                    "ipv4",
                ),
                Result(Severity.OK, "OK", "0 of 100 IPv4 neighbours unresolved"),
            ],
            id="overflow since the last run",
        ),
        pytest.param(
            {"table_fulls:ipv4": 3},
            sect(V4, incomplete=21),
            [
                Result(Severity.OK, "OK", "Neighbour table 100 of 1024 entries (gc_thresh3): 9.8%", "ipv4"),
                Result(
                    Severity.WARN,
                    "NEIGH_INCOMPLETE",
                    "21 of 100 IPv4 neighbours unresolved (warn at 20): 10.0.0.0 (eth0), 10.0.0.1 (eth0), "
                    "10.0.0.2 (eth0), 10.0.0.3 (eth0), 10.0.0.4 (eth0), ...",
                ),
            ],
            id="many unresolved neighbours",
        ),
        pytest.param(
            {"unresolved_gateways": []},
            sect(gateways=(GW_BAD,)),
            [
                Result(Severity.OK, "OK", "0 of 100 IPv4 neighbours unresolved"),
                Result(
                    Severity.WARN,
                    "NEIGH_GATEWAY_UNRESOLVED",
                    "Default gateway 10.20.0.1 on bond0: ARP unresolved (INCOMPLETE or FAILED)",
                    "gateway 10.20.0.1",
                ),
            ],
            id="gateway unresolved once warns",
        ),
        pytest.param(
            {"unresolved_gateways": ["10.20.0.1"]},
            sect(gateways=(GW_BAD, Gateway("10.30.0.1", "eth1", "absent"))),
            [
                Result(Severity.OK, "OK", "0 of 100 IPv4 neighbours unresolved"),
                Result(
                    Severity.CRIT,
                    "NEIGH_GATEWAY_UNRESOLVED",
                    "Default gateway 10.20.0.1 on bond0: ARP unresolved (INCOMPLETE or FAILED) "
                    "at this and the previous run: off-subnet traffic cannot leave",
                    "gateway 10.20.0.1",
                ),
                Result(
                    Severity.OK,
                    "OK",
                    "Default gateway 10.30.0.1 on eth1: not in the ARP table (no traffic through it lately)",
                    "gateway 10.30.0.1",
                ),
            ],
            id="gateway unresolved twice is critical; absent is fine",
        ),
    ],
)
def test_evaluate(store, section, expected):
    assert results(list(evaluate_neighbours(NeighParams(), section, store))) == expected


def test_metrics_and_store():
    store: dict[str, Any] = {"table_fulls:ipv4": 1}
    out = list(evaluate_neighbours(NeighParams(), sect(V4, incomplete=2, gateways=(GW_BAD,)), store))
    assert [m for m in out if isinstance(m, Metric)] == [
        Metric("network_neigh_entries_count", 100, Unit.COUNT, {"family": "ipv4"}),
        Metric("network_neigh_limit_count", 1024, Unit.COUNT, {"family": "ipv4"}),
        Metric("network_neigh_used_percent", 100 * 100 / 1024, Unit.PERCENT, {"family": "ipv4"}),
        Metric("network_neigh_table_overflows_count", 2, Unit.COUNT, {"family": "ipv4"}),
        Metric("network_neigh_incomplete_count", 2, Unit.COUNT),
        Metric("network_neigh_gateway_resolved_boolean", 0, Unit.BOOLEAN, {"gateway": "10.20.0.1"}),
    ]
    assert store == {"table_fulls:ipv4": 3, "unresolved_gateways": ["10.20.0.1"]}


def test_two_runs_on_a_changing_tree(tmp_path):
    root = copy_host(tmp_path)
    store: dict[str, Any] = {}
    probe, params = Probe(root=root), NeighParams()
    first = results(list(NEIGHBOURS.run(probe, params, store)))
    assert [(r.severity, r.key) for r in first] == [
        (Severity.CRIT, "NEIGH_TABLE_NEARLY_FULL"),
        (Severity.WARN, "NEIGH_INCOMPLETE"),
        (Severity.WARN, "NEIGH_GATEWAY_UNRESOLVED"),
    ]
    stat = root / "proc/net/stat/arp_cache"
    stat.write_text(stat.read_text().replace("00000007\n", "00000009\n"))
    second = results(list(NEIGHBOURS.run(probe, params, store)))
    assert [(r.severity, r.key) for r in second] == [
        (Severity.CRIT, "NEIGH_TABLE_NEARLY_FULL"),
        (Severity.CRIT, "NEIGH_TABLE_OVERFLOW"),
        (Severity.WARN, "NEIGH_INCOMPLETE"),
        (Severity.CRIT, "NEIGH_GATEWAY_UNRESOLVED"),
    ]
    assert second[1].summary.startswith("Neighbour table overflowed 2 time(s)")
