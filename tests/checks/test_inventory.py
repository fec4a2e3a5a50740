from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Mapping, Sequence

import pytest

from checks.application.version import ProductSpec
from checks.inventory import collect_inventory
from checks.probe import CommandResult, Probe
from tests.conftest import FIXTURES, fixture_probe

PRODUCTS = (
    ProductSpec(name="zeta-missing", file="/opt/zeta/VERSION", regex=r"release=(\S+)"),
    ProductSpec(name="billing", file="/opt/app/VERSION", regex=r"release=(\S+)"),
)


def test_fixture_host_inventory():
    inventory = collect_inventory(
        fixture_probe("app-inventory"), PRODUCTS, addresses=lambda: {"eth0": ["fe80::1", "10.1.2.3"]}
    )
    assert inventory == {
        "hardware": {
            "cpu": {"count": 4, "mhz": 3400, "model": "Intel(R) Xeon(R) E-2224 CPU @ 3.40GHz"},
            "disks": [
                {"model": None, "name": "dm-0", "rotational": False, "size_bytes": 104857600 * 512},
                {
                    "model": "SAMSUNG MZ7LH480",
                    "name": "sda",
                    "rotational": False,
                    "size_bytes": 937703088 * 512,
                },
                {"model": "ST4000NM0035", "name": "sdb", "rotational": True, "size_bytes": 7814037168 * 512},
            ],
            "memory_bytes": 16320924 * 1024,
            "nics": [
                {
                    "addresses": ["10.1.2.3", "fe80::1"],
                    "mac": "52:54:00:12:34:56",
                    "mtu": 1500,
                    "name": "eth0",
                    "speed_mbps": 1000,
                },
                {
                    "addresses": [],
                    "mac": "52:54:00:ab:cd:ef",
                    "mtu": 9000,
                    "name": "eth1",
                    "speed_mbps": None,
                },
            ],
        },
        "os": {
            "arch": "x86_64",
            "boot_time": 1699990000,
            "hostname": "billing-db1",
            "id": "debian",
            "kernel": "6.1.0-26-amd64",
            "name": "Debian GNU/Linux 12 (bookworm)",
            "version_id": "12",
        },
        "products": [
            {"error": None, "name": "billing", "version": "7.4.2-lts"},
            {"error": "/opt/zeta/VERSION does not exist", "name": "zeta-missing", "version": None},
        ],
    }


def test_inventory_is_stable_and_json_serialisable():
    probe = fixture_probe("app-inventory")
    first = json.dumps(collect_inventory(probe, PRODUCTS))
    second = json.dumps(collect_inventory(probe, tuple(reversed(PRODUCTS))))
    assert first == second
    assert list(json.loads(first)) == ["hardware", "os", "products"]


def test_live_host_inventory():
    product = ProductSpec(name="python", command=(sys.executable, "--version"), regex=r"Python (\S+)")
    inventory = collect_inventory(Probe(), [product])
    json.dumps(inventory)
    assert inventory["hardware"]["cpu"]["count"] >= 1
    assert inventory["hardware"]["memory_bytes"] > 0
    assert inventory["os"]["hostname"] == socket.gethostname()
    assert inventory["os"]["kernel"] == os.uname().release
    assert inventory["products"] == [
        {"error": None, "name": "python", "version": ".".join(map(str, sys.version_info[:3]))}
    ]
    assert all("127.0.0.1" not in nic["addresses"] for nic in inventory["hardware"]["nics"])


@pytest.mark.parametrize(
    ("path", "content", "message"),
    [
        pytest.param("proc/cpuinfo", "", "/proc/cpuinfo", id="empty cpuinfo"),
        pytest.param("proc/cpuinfo", "processor : 0\ncpu MHz : fast\n", "/proc/cpuinfo", id="garbled MHz"),
        pytest.param("proc/meminfo", "MemTotal: lots\n", "/proc/meminfo", id="garbled meminfo"),
        pytest.param("proc/meminfo", "MemFree: 1 kB\n", "/proc/meminfo", id="no MemTotal"),
        pytest.param("proc/stat", "cpu 1 2 3\nbtime\n", "/proc/stat", id="truncated btime"),
    ],
)
def test_garbled_proc_files_name_the_file(tmp_path, path, content, message):
    root = tmp_path / "host"
    shutil.copytree(FIXTURES / "hosts" / "app-inventory", root)
    (root / path).write_text(content)
    with pytest.raises(ValueError, match=message):
        collect_inventory(Probe(root=root), [])


def test_missing_optional_files_become_none(tmp_path):
    root = tmp_path / "host"
    shutil.copytree(FIXTURES / "hosts" / "app-inventory", root)
    shutil.rmtree(root / "sys")
    (root / "etc/os-release").unlink()
    (root / "proc/sys/kernel/arch").unlink()
    inventory = collect_inventory(Probe(root=root), [])
    assert inventory["hardware"]["disks"] == []
    assert inventory["hardware"]["nics"] == []
    assert inventory["hardware"]["cpu"]["mhz"] == 3400  # from "cpu MHz" without cpufreq
    assert inventory["os"]["name"] is None
    assert inventory["os"]["arch"] is None


class _BrokenRunProbe(Probe):
    """A probe whose commands fail with an error no one planned for (a bug, say)."""

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout_s: float,
        input_text: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        raise RuntimeError("secret-looking text: dga_0123456789")


def test_one_products_failure_costs_only_that_product(tmp_path):
    root = tmp_path / "host"
    shutil.copytree(FIXTURES / "hosts" / "app-inventory", root)
    (root / "opt/loop").mkdir(parents=True)
    (root / "opt/loop/VERSION").symlink_to(root / "opt/loop/VERSION")  # ELOOP, not ENOENT
    products = [
        *PRODUCTS,
        ProductSpec(name="looping", file="/opt/loop/VERSION"),
        ProductSpec(name="crashing", command=("/opt/app/bin/app", "--version")),
    ]
    inventory = collect_inventory(_BrokenRunProbe(root=root), products, addresses=dict)
    assert inventory["products"] == [
        {"error": None, "name": "billing", "version": "7.4.2-lts"},
        {"error": "failed: RuntimeError", "name": "crashing", "version": None},
        {"error": "cannot read /opt/loop/VERSION: Too many levels of symbolic links", "name": "looping",
         "version": None},
        {"error": "/opt/zeta/VERSION does not exist", "name": "zeta-missing", "version": None},
    ]  # fmt: skip
    assert inventory["os"]["hostname"] and inventory["hardware"]["cpu"]["count"] == 4


def test_slow_products_share_one_time_budget():
    sleeper = (sys.executable, "-c", "import time; time.sleep(30)")
    products = [ProductSpec(name=f"slow{i}", command=sleeper, timeout_s=30) for i in range(3)]
    started = time.monotonic()
    inventory = collect_inventory(Probe(), products, products_budget_s=1.0)
    assert time.monotonic() - started < 20  # not 3 x 30 s: the inventory task would be abandoned
    first, *rest = inventory["products"]
    assert first["version"] is None and "did not finish within 1 s" in first["error"]
    assert [p["error"] for p in rest] == ["not read: earlier products used the inventory's 1 s"] * 2
