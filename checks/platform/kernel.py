"""platform.kernel: kernel health facts: taint flags, panic settings, modules.

``/proc/sys/kernel/tainted`` is a bit mask the kernel sets, and never clears until
reboot, when something happened that makes it less trustworthy. It is decoded into
the letters ``dmesg`` prints after ``Tainted:``. Some letters are merely facts
(``P`` proprietary module, ``O`` out-of-tree module, ``E`` unsigned module); some mean
the kernel is damaged or was close to it:

- ``D`` the kernel oopsed or hit a BUG: CRIT ``KERNEL_OOPSED`` (the oopsing task died
  holding whatever locks it held; a reboot is the only cure);
- ``M`` the CPU reported a machine check: CRIT ``KERNEL_MACHINE_CHECK``;
- ``B`` a bad page was referenced (memory corruption): CRIT ``KERNEL_BAD_PAGE``;
- ``W`` the kernel issued a warning: WARN ``KERNEL_WARNED``;
- ``L`` a soft lockup happened: WARN ``KERNEL_SOFT_LOCKUP``.

Severities per letter are params (any other letter may be raised to WARN/CRIT under
``KERNEL_TAINTED``). Letters set since the last run (mask kept in the store) are
called out in the summary. ``kernel.panic`` and ``kernel.panic_on_oops`` (does an oops
reboot the host, or leave it running damaged?) are labels of ``platform_kernel_info``.

Modules: when the kernel loads modules (``/proc/modules`` exists) the count of
loaded modules is a metric, and ``/lib/modules/<running release>`` must exist. A
package upgrade that removed the running kernel's modules leaves a host that cannot
load a driver or a filesystem module until it reboots into the new kernel:
WARN ``KERNEL_MODULES_MISSING``, naming the releases that are installed. A host with
no ``/lib/modules`` at all, or a container (whose image need not carry the host's
modules), is not warned about.

Sample of what :func:`collect_kernel` returns (this project's build machine: a
kernel without loadable modules, so no ``/proc/modules``; ``container`` is looked at
only when a modules directory is missing)::

    KernelSection(release='6.18.44-fc-v669', tainted=0, panic=1, panic_on_oops=0, modules_loaded=None,
                  modules_dir_present=False, installed_releases=None, container=False)

>>> taint_letters(4609)
'PWO'
>>> describe_taint(1 << 7 | 1 << 13)
'D (kernel oopsed or hit a BUG), E (unsigned module loaded)'
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, field_validator

from checks.api import (
    Check,
    CheckParams,
    Direction,
    Layer,
    Metric,
    MetricSpec,
    Result,
    Severity,
    Unit,
    ValueStore,
)
from checks.probe import Probe

__all__ = [
    "KERNEL",
    "TAINT_FLAGS",
    "KernelParams",
    "KernelSection",
    "collect_kernel",
    "describe_taint",
    "evaluate_kernel",
    "taint_letters",
]

TAINTED = "/proc/sys/kernel/tainted"
MODULES = "/proc/modules"
CONTAINER_MARKERS = ("/.dockerenv", "/run/.containerenv", "/run/systemd/container")

TAINT_FLAGS: tuple[tuple[str, str], ...] = (
    ("P", "proprietary module loaded"),
    ("F", "module force-loaded"),
    ("S", "out-of-spec system"),
    ("R", "module force-unloaded"),
    ("M", "machine check reported"),
    ("B", "bad page referenced"),
    ("U", "taint requested by user space"),
    ("D", "kernel oopsed or hit a BUG"),
    ("A", "ACPI table overridden"),
    ("W", "kernel warning issued"),
    ("C", "staging driver loaded"),
    ("I", "firmware bug workaround applied"),
    ("O", "out-of-tree module loaded"),
    ("E", "unsigned module loaded"),
    ("L", "soft lockup occurred"),
    ("K", "kernel live-patched"),
    ("X", "auxiliary taint (distribution-defined)"),
    ("T", "built with struct randomization"),
    ("N", "in-kernel test run"),
    ("J", "fwctl mutating debug operation used"),
)
"""Taint letters by bit number (``Documentation/admin-guide/tainted-kernels.rst``)."""

_LETTER_BIT = {letter: bit for bit, (letter, _) in enumerate(TAINT_FLAGS)}

FLAG_KEYS = {
    "D": "KERNEL_OOPSED",
    "M": "KERNEL_MACHINE_CHECK",
    "B": "KERNEL_BAD_PAGE",
    "W": "KERNEL_WARNED",
    "L": "KERNEL_SOFT_LOCKUP",
}
"""Result key of a letter; any other letter raised above OK uses ``KERNEL_TAINTED``."""

DEFAULT_FLAG_SEVERITY: dict[str, Literal["OK", "WARN", "CRIT"]] = {
    "D": "CRIT",
    "M": "CRIT",
    "B": "CRIT",
    "W": "WARN",
    "L": "WARN",
}


@dataclass(frozen=True, slots=True)
class KernelSection:
    release: str
    tainted: int
    panic: int
    """``kernel.panic``: seconds before rebooting after a panic (0: hang forever, <0: at once)."""
    panic_on_oops: int
    modules_loaded: int | None
    """Lines of ``/proc/modules``; None when the kernel cannot load modules at all."""
    modules_dir_present: bool
    installed_releases: tuple[str, ...] | None
    """Entries of ``/lib/modules`` when the running release is missing there (None: no such tree)."""
    container: bool


class KernelParams(CheckParams):
    flag_severity: dict[str, Literal["OK", "WARN", "CRIT"]] = Field(
        default_factory=lambda: dict(DEFAULT_FLAG_SEVERITY)
    )
    """Severity per taint letter while it is set (letters not named are OK), e.g. ``{"W": "OK"}``
    on a host whose driver warns harmlessly at boot."""

    @field_validator("flag_severity")
    @classmethod
    def _known_letters(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(_LETTER_BIT))
        if unknown:
            raise ValueError(f"unknown taint letter(s) {unknown}; known: {''.join(_LETTER_BIT)}")
        return value


def taint_letters(mask: int) -> str:
    """The letters of the set taint bits, in bit order (``G`` for bit 0 clear is omitted)."""
    return "".join(letter for bit, (letter, _) in enumerate(TAINT_FLAGS) if mask >> bit & 1)


def describe_taint(mask: int) -> str:
    """Letters with their meaning; unknown high bits as ``bit N``."""
    parts = [f"{letter} ({text})" for bit, (letter, text) in enumerate(TAINT_FLAGS) if mask >> bit & 1]
    parts += [f"bit {bit}" for bit in range(len(TAINT_FLAGS), mask.bit_length()) if mask >> bit & 1]
    return ", ".join(parts)


def _read_int(probe: Probe, path: str) -> int:
    text = probe.read_text(path).strip()
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{path}: expected an integer, got {text[:40]!r}") from None


def _count_modules(probe: Probe) -> int | None:
    try:
        text = probe.read_text(MODULES)
    except FileNotFoundError:
        return None  # a kernel built without loadable module support
    count = 0
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split(None, 3)
        if len(fields) < 3 or not fields[1].isdigit():
            raise ValueError(f"{MODULES}: line {number} is not 'name size refcount ...': {line[:80]!r}")
        count += 1
    return count


def collect_kernel(probe: Probe, params: KernelParams) -> KernelSection:
    release = probe.read_text("/proc/sys/kernel/osrelease").strip()
    if not release or "/" in release or " " in release:
        raise ValueError(f"/proc/sys/kernel/osrelease: expected one kernel release, got {release[:80]!r}")
    tainted = _read_int(probe, TAINTED)
    if tainted < 0:
        raise ValueError(f"{TAINTED}: negative taint mask {tainted}")
    modules = _count_modules(probe)
    present = probe.exists(f"/lib/modules/{release}")
    installed: tuple[str, ...] | None = None
    container = False
    if modules is not None and not present:  # the rare path: look closer only now
        try:
            installed = tuple(sorted(probe.listdir("/lib/modules")))
        except FileNotFoundError:
            installed = None  # no module tree at all: a container or a minimal image
        container = any(probe.exists(marker) for marker in CONTAINER_MARKERS)
    return KernelSection(
        release=release,
        tainted=tainted,
        panic=_read_int(probe, "/proc/sys/kernel/panic"),
        panic_on_oops=_read_int(probe, "/proc/sys/kernel/panic_on_oops"),
        modules_loaded=modules,
        modules_dir_present=present,
        installed_releases=installed,
        container=container,
    )


def evaluate_kernel(
    params: KernelParams, section: KernelSection, store: ValueStore
) -> Iterator[Result | Metric]:
    previous = store.get("tainted")
    store["tainted"] = section.tainted
    new_bits = section.tainted & ~previous if isinstance(previous, int) else 0
    letters = taint_letters(section.tainted)
    yield Metric(
        "platform_kernel_info",
        1,
        Unit.INFO,
        {
            "release": section.release,
            "taint": letters or "none",
            "panic": str(section.panic),
            "panic_on_oops": str(section.panic_on_oops),
        },
    )
    yield Metric("platform_kernel_tainted_boolean", 1 if section.tainted else 0, Unit.BOOLEAN)
    if section.modules_loaded is not None:
        yield Metric("platform_kernel_modules_count", section.modules_loaded, Unit.COUNT)

    new_note = f"; newly set since the last run: {describe_taint(new_bits)}" if new_bits else ""
    bad = False
    for bit, (letter, text) in enumerate(TAINT_FLAGS):
        if not section.tainted >> bit & 1:
            continue
        severity = Severity(params.flag_severity.get(letter, "OK"))
        if severity is Severity.OK:
            continue
        bad = True
        when = "since the last run" if new_bits >> bit & 1 else "since boot"
        reboot = " (sticky until reboot)" if letter in "DMB" else ""
        yield Result(
            severity,
            FLAG_KEYS.get(letter, "KERNEL_TAINTED"),
            f"Kernel taint {letter}: {text} {when}{reboot}",
            details=f"Taint flags: {describe_taint(section.tainted)}{new_note}",
        )
    if not bad:
        if section.tainted:
            summary = f"Kernel {section.release} tainted: {describe_taint(section.tainted)}{new_note}"
        else:
            summary = f"Kernel {section.release} not tainted"
        yield Result(Severity.OK, "OK", summary)

    yield from _modules_result(section)


def _modules_result(section: KernelSection) -> Iterator[Result]:
    if section.modules_loaded is None:
        return  # monolithic kernel: nothing to load, nothing to miss
    if section.modules_dir_present:
        yield Result(
            Severity.OK,
            "OK",
            f"{section.modules_loaded} modules loaded; /lib/modules/{section.release} present",
        )
    elif section.container or section.installed_releases is None:
        where = "in a container" if section.container else "no /lib/modules tree here"
        yield Result(
            Severity.OK,
            "OK",
            f"{section.modules_loaded} modules loaded; modules of {section.release} not visible ({where})",
        )
    else:
        installed = ", ".join(section.installed_releases[:5]) or "none"
        yield Result(
            Severity.WARN,
            "KERNEL_MODULES_MISSING",
            f"/lib/modules/{section.release} is missing (installed: {installed}): the running kernel "
            "cannot load drivers or filesystem modules; was it removed by an upgrade? Reboot into an "
            "installed kernel",
        )


KERNEL = Check(
    name="platform.kernel",
    layer=Layer.PLATFORM,
    summary="Kernel taint flags (oops, warnings, machine checks), panic settings and loadable modules",
    collect=collect_kernel,
    evaluate=evaluate_kernel,
    params=KernelParams,
    keys=(
        "KERNEL_OOPSED",
        "KERNEL_MACHINE_CHECK",
        "KERNEL_BAD_PAGE",
        "KERNEL_WARNED",
        "KERNEL_SOFT_LOCKUP",
        "KERNEL_TAINTED",
        "KERNEL_MODULES_MISSING",
    ),
    metrics=(
        MetricSpec(
            "platform_kernel_info",
            Unit.INFO,
            "Constant 1; labels carry the kernel release, taint letters and the panic/panic_on_oops sysctls",
            labels=("release", "taint", "panic", "panic_on_oops"),
        ),
        MetricSpec(
            "platform_kernel_tainted_boolean",
            Unit.BOOLEAN,
            "Whether any kernel taint flag is set (1) or not (0)",
            Direction.UP_IS_BAD,
        ),
        MetricSpec(
            "platform_kernel_modules_count", Unit.COUNT, "Loaded kernel modules (lines of /proc/modules)"
        ),
    ),
    interval_s=300,
    timeout_s=5,
)
