"""Host inventory for the agent: the full collector when it is installed, basic facts otherwise.

``checks/inventory.py`` (``collect_inventory(probe, products) -> dict``) collects
hardware, OS and product versions. When that module is absent this falls back to the
facts readable cheaply here, and says what is missing.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import socket
from collections.abc import Sequence
from typing import Any

from checks.application.version import ProductSpec
from checks.probe import Probe

__all__ = ["basic_facts", "collect"]

INVENTORY_MODULE = "checks.inventory"


def collect(probe: Probe, products: Sequence[ProductSpec]) -> dict[str, Any]:
    """The host's inventory. Errors of the inventory collector propagate to the caller."""
    if importlib.util.find_spec(INVENTORY_MODULE) is None:
        return basic_facts(probe)
    module = importlib.import_module(INVENTORY_MODULE)
    result = module.collect_inventory(probe, list(products))
    if not isinstance(result, dict):
        raise TypeError(f"{INVENTORY_MODULE}.collect_inventory returned {type(result).__name__}, not a dict")
    return result


def basic_facts(probe: Probe) -> dict[str, Any]:
    """Hostname, kernel, OS, CPU count and memory: what the agent can tell without the collector."""
    uname = os.uname()
    facts: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "kernel": uname.release,
        "arch": uname.machine,
        "cpu_count": os.cpu_count() or 0,
        "products": [],
        "incomplete": f"{INVENTORY_MODULE} is not installed: no hardware details or product versions",
    }
    try:
        facts["os"] = _os_release(probe.read_text("/etc/os-release"))
    except OSError as exc:
        facts["os"] = {"error": f"/etc/os-release: {exc.strerror or type(exc).__name__}"}
    try:
        facts["memory_total_bytes"] = _mem_total(probe.read_text("/proc/meminfo"))
    except (OSError, ValueError) as exc:
        facts["memory_total_bytes"] = None
        facts["memory_error"] = f"/proc/meminfo: {exc}"
    return facts


def _os_release(text: str) -> dict[str, str]:
    """The useful fields of os-release(5).

    >>> _os_release('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\\nID=debian\\nVERSION_ID="12"\\n')
    {'pretty_name': 'Debian GNU/Linux 12 (bookworm)', 'id': 'debian', 'version_id': '12'}
    """
    wanted = {"PRETTY_NAME", "ID", "VERSION_ID"}
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key in wanted:
            out[key.lower()] = value.strip().strip("\"'")
    return out


def _mem_total(text: str) -> int:
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise ValueError("no MemTotal line")
