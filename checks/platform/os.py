"""platform.os: operating system, kernel, architecture and virtualisation facts.

Reads ``/etc/os-release`` (``/usr/lib/os-release`` when absent),
``/proc/sys/kernel/osrelease``, ``/proc/version``, the machine architecture
(``/proc/sys/kernel/arch``, else ``uname``) and virtualisation hints: container
markers (``/.dockerenv``, ``/run/.containerenv``, ``/proc/1/cgroup``), then the DMI
vendor (``/sys/class/dmi/id/sys_vendor``, ``product_name``) and
``/sys/hypervisor/type``. Every fact lands in the labels of ``platform_os_info``; a
distribution past its end of support (``eol`` param) warns.

Sample of what :func:`collect_os` returns (this project's build machine)::

    OsSection(ts=1764093600.0, id='debian', version_id='12', pretty_name='Debian GNU/Linux 12 (bookworm)',
              kernel='6.18.44-fc-v669', kernel_version='Linux version 6.18.44-fc-v669 (gcc ...) #1 SMP ...',
              arch='x86_64', virt='docker')

>>> parse_os_release('ID=ubuntu\\nVERSION_ID="22.04"\\n# comment\\nPRETTY_NAME="Ubuntu 22.04.3 LTS"\\n')
{'ID': 'ubuntu', 'VERSION_ID': '22.04', 'PRETTY_NAME': 'Ubuntu 22.04.3 LTS'}
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

from pydantic import Field

from checks.api import Check, CheckParams, Layer, Metric, MetricSpec, Result, Severity, Unit, ValueStore
from checks.probe import Probe

OS_RELEASE_FILES = ("/etc/os-release", "/usr/lib/os-release")

DMI_VENDORS = (
    ("QEMU", "kvm"),
    ("KVM", "kvm"),
    ("VMware", "vmware"),
    ("innotek", "virtualbox"),
    ("Xen", "xen"),
    ("Amazon EC2", "aws"),
    ("Google", "gce"),
    ("OpenStack", "openstack"),
    ("Parallels", "parallels"),
    ("Alibaba Cloud", "alibaba"),
)
"""Substrings of ``sys_vendor`` (or ``product_name``) and the virtualisation they mean."""

CGROUP_MARKERS = (("kubepods", "kubernetes"), ("docker", "docker"), ("lxc", "lxc"), ("libpod", "podman"))

DEFAULT_EOL = {
    "centos:7": dt.date(2024, 6, 30),
    "centos:8": dt.date(2021, 12, 31),
    "debian:9": dt.date(2022, 6, 30),
    "debian:10": dt.date(2024, 6, 30),
    "rhel:6": dt.date(2020, 11, 30),
    "ubuntu:16.04": dt.date(2021, 4, 30),
    "ubuntu:18.04": dt.date(2023, 5, 31),
}
"""End of free public support (LTS included, paid extended support excluded)."""


@dataclass(frozen=True, slots=True)
class OsSection:
    ts: float
    id: str
    version_id: str
    pretty_name: str
    kernel: str
    kernel_version: str
    arch: str
    virt: str
    """``none`` (bare metal), a hypervisor (``kvm``, ``vmware``...), a container runtime, or ``unknown``."""


class OsParams(CheckParams):
    eol: dict[str, dt.date] = Field(default_factory=lambda: dict(DEFAULT_EOL))
    """End-of-support dates by ``<ID>:<VERSION_ID>`` of os-release (``debian:10``); past one, OS_EOL warns."""


def parse_os_release(text: str) -> dict[str, str]:
    """Parse os-release ``KEY=value`` lines (shell quoting: single or double quotes, backslashes)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        quote = value[:1]
        if len(value) >= 2 and quote in "\"'" and value[-1] == quote:
            value = value[1:-1]
            if quote == '"':  # inside double quotes, a backslash escapes " \\ $ and `
                value = re.sub(r'\\([\\"$`])', r"\1", value)
        out[key.strip()] = value
    return out


def _read_optional(probe: Probe, path: str) -> str | None:
    try:
        return probe.read_text(path).strip()
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None  # an absent or root-only hint is simply no hint


def detect_virt(probe: Probe) -> str:
    """Container runtime first (a container on a VM is a container), then hypervisor."""
    if probe.exists("/.dockerenv"):
        return "docker"
    if probe.exists("/run/.containerenv"):
        return "podman"
    cgroup = _read_optional(probe, "/proc/1/cgroup") or ""
    for marker, runtime in CGROUP_MARKERS:
        if marker in cgroup:
            return runtime
    dmi = (_read_optional(probe, f"/sys/class/dmi/id/{name}") for name in ("sys_vendor", "product_name"))
    vendor = " ".join(filter(None, dmi))
    if vendor:
        for marker, virt in DMI_VENDORS:
            if marker in vendor:
                return virt
        if "Microsoft" in vendor and "Virtual" in vendor:
            return "hyperv"
        return "none"
    hypervisor = _read_optional(probe, "/sys/hypervisor/type")
    return hypervisor or "unknown"


def collect_os(probe: Probe, params: OsParams) -> OsSection:
    release: dict[str, str] | None = None
    for path in OS_RELEASE_FILES:
        text = _read_optional(probe, path)
        if text is not None:
            release = parse_os_release(text)
            if "ID" not in release:
                raise ValueError(f"{path}: no ID= line in {text[:80]!r}")
            break
    if release is None:
        release = {"ID": "linux"}  # os-release(5): ID defaults to "linux"
    kernel = probe.read_text("/proc/sys/kernel/osrelease").strip()
    if not kernel or " " in kernel:
        raise ValueError(f"/proc/sys/kernel/osrelease: expected one kernel release, got {kernel!r}")
    arch = _read_optional(probe, "/proc/sys/kernel/arch") or os.uname().machine
    return OsSection(
        ts=probe.now(),
        id=release["ID"],
        version_id=release.get("VERSION_ID", ""),
        pretty_name=release.get("PRETTY_NAME", release.get("NAME", release["ID"])),
        kernel=kernel,
        kernel_version=_read_optional(probe, "/proc/version") or "",
        arch=arch,
        virt=detect_virt(probe),
    )


def evaluate_os(params: OsParams, section: OsSection, store: ValueStore) -> Iterator[Result | Metric]:
    yield Metric(
        "platform_os_info",
        1,
        Unit.INFO,
        {
            "id": section.id,
            "version_id": section.version_id,
            "kernel": section.kernel,
            "arch": section.arch,
            "virt": section.virt,
        },
    )
    summary = f"{section.pretty_name}, kernel {section.kernel}, {section.arch}, virt: {section.virt}"
    eol = params.eol.get(f"{section.id}:{section.version_id}")
    today = dt.datetime.fromtimestamp(section.ts, dt.UTC).date()
    if eol is not None and today > eol:
        yield Result(
            Severity.WARN,
            "OS_EOL",
            f"{section.pretty_name} is past its end of support ({eol.isoformat()}): {summary}",
            details=section.kernel_version or None,
        )
    else:
        yield Result(Severity.OK, "OK", summary, details=section.kernel_version or None)


OS = Check(
    name="platform.os",
    layer=Layer.PLATFORM,
    summary="Operating system, kernel and virtualisation facts; end-of-support warning",
    collect=collect_os,
    evaluate=evaluate_os,
    params=OsParams,
    keys=("OS_EOL",),
    metrics=(
        MetricSpec(
            "platform_os_info",
            Unit.INFO,
            "Constant 1; labels carry the distribution, kernel release, architecture and virtualisation",
            labels=("id", "version_id", "kernel", "arch", "virt"),
        ),
    ),
    interval_s=3600,
    timeout_s=5,
)
