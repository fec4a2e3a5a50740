"""platform.reboot_required: updates installed that only take effect after a reboot.

Three indicators, cheapest first:

1. ``/var/run/reboot-required`` (Debian/Ubuntu, written by package hooks), with the
   packages that asked for it in ``/var/run/reboot-required.pkgs``;
2. a kernel in ``/boot/vmlinuz-<release>`` of the running kernel's flavour that is newer
   than the running one (``/proc/sys/kernel/osrelease``): any distribution;
3. ``needs-restarting -r`` (RHEL family, yum-utils/dnf-plugins-core), opt-in through
   ``use_needs_restarting`` because it starts dnf's Python and costs about a second of CPU.

Sample of what :func:`collect_reboot_required` returns::

    RebootSection(running_kernel='6.1.0-18-amd64', flag_file=True,
                  flag_packages=('linux-image-6.1.0-20-amd64',),
                  boot_kernels=('6.1.0-18-amd64', '6.1.0-20-amd64'), needs_restarting=None)

>>> newest_kernel("6.1.0-18-amd64", ["6.1.0-9-amd64", "6.1.0-20-amd64", "6.1.0-21-cloud-amd64"])
'6.1.0-20-amd64'
>>> newest_kernel("5.14.0-362.8.1.el9_3.x86_64", ["5.14.0-427.13.1.el9_4.x86_64", "5.14.0-70.el9.x86_64"])
'5.14.0-427.13.1.el9_4.x86_64'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from checks.api import (
    Check,
    CheckParams,
    Layer,
    Metric,
    MetricSpec,
    Result,
    Severity,
    Unit,
    ValueStore,
)
from checks.probe import Probe

FLAG_FILE = "/var/run/reboot-required"
NEEDS_RESTARTING = "/usr/bin/needs-restarting"
_TOKEN = re.compile(r"\d+|[A-Za-z]+")
_LEADING_VERSION = re.compile(r"^\d+(?:\.\d+)*(?:-\d+(?:\.\d+)*)?")


@dataclass(frozen=True, slots=True)
class RebootSection:
    running_kernel: str
    flag_file: bool
    flag_packages: tuple[str, ...]
    boot_kernels: tuple[str, ...]
    needs_restarting: bool | None
    """``needs-restarting -r`` verdict; None when not asked or not installed."""


class RebootParams(CheckParams):
    use_needs_restarting: bool = False
    """Also ask ``needs-restarting -r`` (RHEL family). Costs about 1 s of CPU per run."""
    needs_restarting_timeout_s: float = 60.0
    """Kill ``needs-restarting`` after this long."""


def version_key(release: str) -> tuple[tuple[int, int, str], ...]:
    """Sort key for kernel releases: numbers compare as numbers and rank above letters (rpm style).

    >>> sorted(["5.10.0-9", "5.10.0-10", "5.9.1-100"], key=version_key)
    ['5.9.1-100', '5.10.0-9', '5.10.0-10']
    """
    return tuple((1, int(t), "") if t.isdigit() else (0, 0, t) for t in _TOKEN.findall(release))


def flavour(release: str) -> str:
    """What follows the version numbers, without digits, dots and underscores.

    Kernels of one flavour compare; a ``-cloud-amd64`` kernel never makes an ``-amd64``
    host look outdated. RHEL's minor-release tags (``el9``, ``el9_3``) are one flavour.

    >>> flavour("6.1.0-18-cloud-amd64"), flavour("5.15.0-91-generic"), flavour("5.14.0-362.8.1.el9_3.x86_64")
    ('-cloud-amd', '-generic', 'elx')
    >>> flavour("5.14.0-70.el9.x86_64")
    'elx'
    """
    return re.sub(r"[\d._]+", "", _LEADING_VERSION.sub("", release))


def newest_kernel(running: str, installed: Iterable[str]) -> str | None:
    """The newest installed kernel of the running kernel's flavour, or None when there is none."""
    same = [k for k in installed if flavour(k) == flavour(running)]
    return max(same, key=version_key) if same else None


def collect_reboot_required(probe: Probe, params: RebootParams) -> RebootSection:
    running = probe.read_text("/proc/sys/kernel/osrelease").strip()
    if not running or " " in running:
        raise ValueError(f"/proc/sys/kernel/osrelease: expected one kernel release, got {running!r}")
    flag = probe.exists(FLAG_FILE)
    packages: tuple[str, ...] = ()
    if flag:
        try:
            text = probe.read_text(FLAG_FILE + ".pkgs")
        except FileNotFoundError:
            text = ""  # the flag alone is enough; the package list is a courtesy
        packages = tuple(dict.fromkeys(line.strip() for line in text.splitlines() if line.strip()))
    try:
        names = probe.listdir("/boot")
    except (FileNotFoundError, NotADirectoryError):
        names = []  # containers usually have no /boot: no kernel to compare
    kernels = tuple(
        sorted(
            (n[len("vmlinuz-") :] for n in names if n.startswith("vmlinuz-") and n[8:9].isdigit()),
            key=version_key,
        )
    )
    needs: bool | None = None
    if params.use_needs_restarting and probe.exists(NEEDS_RESTARTING):
        # CommandTimeout propagates: the agent reports it, a guess here would be worse.
        result = probe.run([NEEDS_RESTARTING, "-r"], timeout_s=params.needs_restarting_timeout_s)
        if result.returncode not in (0, 1):
            raise RuntimeError(
                f"needs-restarting -r exited {result.returncode}: {result.stderr.strip()[:200]}"
            )
        needs = result.returncode == 1
    return RebootSection(running, flag, packages, kernels, needs)


def evaluate_reboot_required(
    params: RebootParams, section: RebootSection, store: ValueStore
) -> Iterator[Result | Metric]:
    reasons = []
    if section.flag_file:
        pkgs = f" by {', '.join(section.flag_packages)}" if section.flag_packages else ""
        reasons.append(f"{FLAG_FILE} was written{pkgs}")
    newest = newest_kernel(section.running_kernel, section.boot_kernels)
    if newest is not None and version_key(newest) > version_key(section.running_kernel):
        reasons.append(f"kernel {newest} is installed, {section.running_kernel} is running")
    if section.needs_restarting:
        reasons.append("needs-restarting -r reports updated core libraries or services")
    yield Metric("platform_reboot_required_boolean", 1 if reasons else 0, Unit.BOOLEAN)
    if reasons:
        yield Result(Severity.WARN, "REBOOT_REQUIRED", "Reboot required: " + "; ".join(reasons))
    else:
        yield Result(Severity.OK, "OK", f"No reboot required (kernel {section.running_kernel})")


REBOOT_REQUIRED = Check(
    name="platform.reboot_required",
    layer=Layer.PLATFORM,
    summary="Updates waiting for a reboot (flag file, newer kernel, needs-restarting)",
    collect=collect_reboot_required,
    evaluate=evaluate_reboot_required,
    params=RebootParams,
    keys=("REBOOT_REQUIRED",),
    metrics=(
        MetricSpec(
            "platform_reboot_required_boolean", Unit.BOOLEAN, "1 when installed updates wait for a reboot"
        ),
    ),
    interval_s=900,
    timeout_s=90,
    blocking=True,
)
