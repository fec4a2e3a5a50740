"""The host inventory: hardware, operating system and product versions.

Not a check: the agent sends it at start and whenever it changes, and the collector
compares it between inspections (inventory changes, upgrade records). So it must be
JSON-serialisable and stable: lists sorted by name, dict keys sorted, no values that
move on their own (the CPU clock is the maximum frequency, not the current one).

Sample of what :func:`collect_inventory` returns (abridged)::

    {"hardware": {"cpu": {"count": 4, "mhz": 3400, "model": "Intel(R) Xeon(R) E-2224"},
                  "disks": [{"model": "SAMSUNG MZ7LH480", "name": "sda", "rotational": False,
                             "size_bytes": 480103981056}],
                  "memory_bytes": 16712626176,
                  "nics": [{"addresses": ["10.1.2.3", "fe80::1"], "mac": "52:54:00:12:34:56",
                            "mtu": 1500, "name": "eth0", "speed_mbps": 1000}]},
     "os": {"arch": "x86_64", "boot_time": 1699990000, "hostname": "billing-db1",
            "id": "debian", "kernel": "6.1.0-26-amd64",
            "name": "Debian GNU/Linux 12 (bookworm)", "version_id": "12"},
     "products": [{"error": None, "name": "billing", "version": "7.4.2-lts"}]}
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from checks.application.version import ProductSpec, VersionUnknown, discover_version
from checks.probe import Probe

__all__ = ["collect_inventory", "parse_os_release"]

SKIPPED_BLOCK_PREFIXES = ("loop", "ram", "zram")
"""Block devices that are not disks."""
PRODUCTS_BUDGET_S = 60.0
"""Time all product version commands get together; the agent's inventory task is
abandoned after 120 s, which would lose the hardware and OS facts too."""

AddressSource = Callable[[], Mapping[str, Sequence[str]]]


def collect_inventory(
    probe: Probe,
    products: Sequence[ProductSpec],
    *,
    addresses: AddressSource | None = None,
    products_budget_s: float = PRODUCTS_BUDGET_S,
) -> dict[str, Any]:
    """The host's inventory. ``addresses`` maps interface names to IP addresses; by
    default psutil's ``net_if_addrs`` on the live host, none under a fixture root.

    A product whose version cannot be read costs only its own entry (``version``
    None, ``error`` saying why); ``products_budget_s`` bounds the time all products'
    commands take together, so slow ones cannot time the whole inventory out.
    """
    if addresses is None:
        addresses = _live_addresses if probe.root == Path("/") else dict
    inventory = {
        "hardware": {
            "cpu": _cpu(probe),
            "memory_bytes": _memory_bytes(probe),
            "disks": _disks(probe),
            "nics": _nics(probe, addresses()),
        },
        "os": _os(probe),
        "products": _products(probe, products, products_budget_s),
    }
    ordered: dict[str, Any] = _sorted_keys(inventory)
    return ordered


def _sorted_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted_keys(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted_keys(v) for v in value]
    return value


def _optional_text(probe: Probe, path: str) -> str | None:
    """A small /sys or /etc file's stripped text, or None when absent or unreadable."""
    try:
        return probe.read_text(path).strip()
    except FileNotFoundError:
        return None
    except OSError:
        # /sys/class/net/<if>/speed raises EINVAL while the link is down: "unknown".
        return None


def _optional_int(probe: Probe, path: str) -> int | None:
    text = _optional_text(probe, path)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


# --- hardware -----------------------------------------------------------------------------


def _cpu(probe: Probe) -> dict[str, Any]:
    text = probe.read_text("/proc/cpuinfo")
    count = 0
    model: str | None = None
    current_mhz: float | None = None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip()
        value = value.strip()
        if key == "processor":
            count += 1
        elif key in ("model name", "Hardware", "cpu model") and model is None:
            model = value
        elif key == "cpu MHz" and current_mhz is None:
            try:
                current_mhz = float(value)
            except ValueError:
                raise ValueError(f"/proc/cpuinfo: 'cpu MHz' is not a number: {value[:40]!r}") from None
    if count == 0:
        raise ValueError("/proc/cpuinfo: no 'processor' lines")
    max_khz = _optional_int(probe, "/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    mhz = round(max_khz / 1000) if max_khz else (round(current_mhz) if current_mhz else None)
    return {"count": count, "model": model, "mhz": mhz}


def _memory_bytes(probe: Probe) -> int:
    for line in probe.read_text("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            fields = line.split()
            if len(fields) >= 2 and fields[1].isdigit():
                return int(fields[1]) * 1024
            break
    raise ValueError("/proc/meminfo: no valid 'MemTotal:' line")


def _disks(probe: Probe) -> list[dict[str, Any]]:
    try:
        names = probe.listdir("/sys/block")
    except FileNotFoundError:
        return []
    disks: list[dict[str, Any]] = []
    for name in sorted(names):
        if name.startswith(SKIPPED_BLOCK_PREFIXES):
            continue
        base = f"/sys/block/{name}"
        sectors = _optional_int(probe, f"{base}/size")
        rotational = _optional_int(probe, f"{base}/queue/rotational")
        disks.append(
            {
                "name": name,
                "size_bytes": sectors * 512 if sectors is not None else None,  # always 512-byte units
                "rotational": bool(rotational) if rotational is not None else None,
                "model": _optional_text(probe, f"{base}/device/model") or None,
            }
        )
    return disks


def _nics(probe: Probe, addresses: Mapping[str, Sequence[str]]) -> list[dict[str, Any]]:
    try:
        names = probe.listdir("/sys/class/net")
    except FileNotFoundError:
        return []
    nics: list[dict[str, Any]] = []
    for name in sorted(names):
        if name == "lo":
            continue
        base = f"/sys/class/net/{name}"
        speed = _optional_int(probe, f"{base}/speed")
        nics.append(
            {
                "name": name,
                "mac": _optional_text(probe, f"{base}/address"),
                "mtu": _optional_int(probe, f"{base}/mtu"),
                "speed_mbps": speed if speed is not None and speed > 0 else None,  # -1: unknown
                "addresses": sorted(addresses.get(name, ())),
            }
        )
    return nics


def _live_addresses() -> dict[str, list[str]]:
    import psutil  # only the live host needs it

    found: dict[str, list[str]] = {}
    for name, addrs in psutil.net_if_addrs().items():
        found[name] = [
            a.address.split("%", 1)[0] for a in addrs if a.family in (socket.AF_INET, socket.AF_INET6)
        ]
    return found


# --- operating system -----------------------------------------------------------------------


def parse_os_release(text: str) -> dict[str, str]:
    """Parse os-release(5): ``KEY=value`` lines, values optionally quoted.

    >>> parse_os_release('NAME="Debian GNU/Linux"\\nVERSION_ID="12"\\n# comment\\nID=debian\\n')
    {'NAME': 'Debian GNU/Linux', 'VERSION_ID': '12', 'ID': 'debian'}
    """
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        values[key.strip()] = value
    return values


def _os(probe: Probe) -> dict[str, Any]:
    release_text = _optional_text(probe, "/etc/os-release") or _optional_text(probe, "/usr/lib/os-release")
    release = parse_os_release(release_text or "")
    arch = _optional_text(probe, "/proc/sys/kernel/arch")
    if arch is None and probe.root == Path("/"):
        arch = os.uname().machine
    return {
        "name": release.get("PRETTY_NAME") or release.get("NAME"),
        "id": release.get("ID"),
        "version_id": release.get("VERSION_ID"),
        "kernel": probe.read_text("/proc/sys/kernel/osrelease").strip(),
        "arch": arch,
        "hostname": probe.read_text("/proc/sys/kernel/hostname").strip(),
        "boot_time": _boot_time(probe),
    }


def _boot_time(probe: Probe) -> int:
    for line in probe.read_text("/proc/stat").splitlines():
        if line.startswith("btime "):
            value = line.split()[1] if len(line.split()) > 1 else ""
            if value.isdigit():
                return int(value)
            break
    raise ValueError("/proc/stat: no valid 'btime' line")


# --- products -----------------------------------------------------------------------------


def _products(probe: Probe, products: Sequence[ProductSpec], budget_s: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + budget_s
    found = []
    for product in sorted(products, key=lambda p: p.name):
        left = deadline - time.monotonic()
        if left <= 0:
            error = f"not read: earlier products used the inventory's {budget_s:g} s"
            found.append({"name": product.name, "version": None, "error": error})
        else:
            found.append(_product(probe, product, left))
    return found


def _product(probe: Probe, product: ProductSpec, timeout_s: float) -> dict[str, Any]:
    try:
        return {"name": product.name, "version": discover_version(probe, product, timeout_s), "error": None}
    except VersionUnknown as exc:
        return {"name": product.name, "version": None, "error": exc.reason}
    except Exception as exc:  # noqa: BLE001 - one product's failure costs only its own entry
        # The type only: an exception's text may quote the command line or the file.
        return {"name": product.name, "version": None, "error": f"failed: {type(exc).__name__}"}
