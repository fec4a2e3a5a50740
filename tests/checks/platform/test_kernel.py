from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from checks.api import Metric, Result, Severity, Unit
from checks.platform.kernel import (
    KERNEL,
    KernelParams,
    KernelSection,
    collect_kernel,
    describe_taint,
    evaluate_kernel,
    taint_letters,
)
from checks.probe import Probe
from tests.conftest import FIXTURES, fixture_probe

P, W, OOT, D, M, L = 1 << 0, 1 << 9, 1 << 12, 1 << 7, 1 << 4, 1 << 14


def copy_host(tmp_path: Path, name: str = "x5-kernel-tainted") -> Path:
    shutil.copytree(FIXTURES / "hosts" / name, tmp_path, dirs_exist_ok=True)
    return tmp_path


def results(out: list[Any]) -> list[Result]:
    return [r for r in out if isinstance(r, Result)]


def test_collect_real_machine_without_loadable_modules():
    section = collect_kernel(fixture_probe("x5-kernel-real"), KernelParams())
    assert section == KernelSection("6.18.44-fc-v669", 0, 1, 0, None, False, None, False)


def test_collect_tainted_host_whose_running_kernel_lost_its_modules():
    section = collect_kernel(fixture_probe("x5-kernel-tainted"), KernelParams())
    assert section == KernelSection(
        "5.10.0-28-amd64", P | W | OOT, 0, 0, 4, False, ("5.10.0-21-amd64",), False
    )


def test_collect_modules_present_and_container(tmp_path):
    root = copy_host(tmp_path)
    (root / "lib/modules/5.10.0-28-amd64").mkdir()
    assert collect_kernel(Probe(root=root), KernelParams()).modules_dir_present is True
    shutil.rmtree(root / "lib")
    (root / ".dockerenv").write_text("")
    section = collect_kernel(Probe(root=root), KernelParams())
    assert (section.modules_dir_present, section.installed_releases, section.container) == (False, None, True)


@pytest.mark.parametrize(
    ("path", "content", "message"),
    [
        pytest.param(
            "proc/sys/kernel/tainted", "lots\n", r"/proc/sys/kernel/tainted: expected an integer", id="taint"
        ),
        pytest.param(
            "proc/sys/kernel/tainted", "", r"/proc/sys/kernel/tainted: expected an integer", id="empty"
        ),
        pytest.param("proc/sys/kernel/tainted", "-3\n", r"/proc/sys/kernel/tainted: negative", id="negative"),
        pytest.param(
            "proc/sys/kernel/panic", "yes\n", r"/proc/sys/kernel/panic: expected an integer", id="panic"
        ),
        pytest.param("proc/sys/kernel/osrelease", "\n", r"/proc/sys/kernel/osrelease", id="no release"),
        pytest.param(
            "proc/modules", "ext4 991232 2 - Live\ngarbage\n", r"/proc/modules: line 2", id="modules"
        ),
    ],
)
def test_collect_rejects_garbled_files(tmp_path, path, content, message):
    root = copy_host(tmp_path)
    (root / path).write_text(content)
    with pytest.raises(ValueError, match=message):
        collect_kernel(Probe(root=root), KernelParams())


def test_taint_decoding():
    assert taint_letters(0) == ""
    assert taint_letters(P | W | OOT) == "PWO"
    assert describe_taint(D | 1 << 25) == "D (kernel oopsed or hit a BUG), bit 25"


def sect(tainted: int, **kw: Any) -> KernelSection:
    values: dict[str, Any] = {
        "release": "5.10.0-28-amd64",
        "tainted": tainted,
        "panic": 0,
        "panic_on_oops": 0,
        "modules_loaded": None,
        "modules_dir_present": False,
        "installed_releases": None,
        "container": False,
    }
    return KernelSection(**{**values, **kw})


@pytest.mark.parametrize(
    ("store", "section", "expected"),
    [
        pytest.param(
            {}, sect(0), [Result(Severity.OK, "OK", "Kernel 5.10.0-28-amd64 not tainted")], id="clean"
        ),
        pytest.param(
            {"tainted": P},
            sect(P | OOT),
            [
                Result(
                    Severity.OK,
                    "OK",
                    "Kernel 5.10.0-28-amd64 tainted: P (proprietary module loaded), O (out-of-tree module "
                    "loaded); newly set since the last run: O (out-of-tree module loaded)",
                )
            ],
            id="informational letters only, new one called out",
        ),
        pytest.param(
            {"tainted": P},
            sect(P | D),
            [
                Result(
                    Severity.CRIT,
                    "KERNEL_OOPSED",
                    "Kernel taint D: kernel oopsed or hit a BUG since the last run (sticky until reboot)",
                    details="Taint flags: P (proprietary module loaded), D (kernel oopsed or hit a BUG); "
                    "newly set since the last run: D (kernel oopsed or hit a BUG)",
                )
            ],
            id="oops since the last run",
        ),
        pytest.param(
            {"tainted": W | L | M},
            sect(W | L | M),
            [
                Result(
                    Severity.CRIT,
                    "KERNEL_MACHINE_CHECK",
                    "Kernel taint M: machine check reported since boot (sticky until reboot)",
                    details="Taint flags: M (machine check reported), W (kernel warning issued), "
                    "L (soft lockup occurred)",
                ),
                Result(
                    Severity.WARN,
                    "KERNEL_WARNED",
                    "Kernel taint W: kernel warning issued since boot",
                    details="Taint flags: M (machine check reported), W (kernel warning issued), "
                    "L (soft lockup occurred)",
                ),
                Result(
                    Severity.WARN,
                    "KERNEL_SOFT_LOCKUP",
                    "Kernel taint L: soft lockup occurred since boot",
                    details="Taint flags: M (machine check reported), W (kernel warning issued), "
                    "L (soft lockup occurred)",
                ),
            ],
            id="old warning, lockup and machine check",
        ),
        pytest.param(
            {},
            sect(0, modules_loaded=40, modules_dir_present=True),
            [
                Result(Severity.OK, "OK", "Kernel 5.10.0-28-amd64 not tainted"),
                Result(Severity.OK, "OK", "40 modules loaded; /lib/modules/5.10.0-28-amd64 present"),
            ],
            id="modules present",
        ),
        pytest.param(
            {},
            sect(0, modules_loaded=40, installed_releases=("5.10.0-21-amd64", "5.10.0-26-amd64")),
            [
                Result(Severity.OK, "OK", "Kernel 5.10.0-28-amd64 not tainted"),
                Result(
                    Severity.WARN,
                    "KERNEL_MODULES_MISSING",
                    "/lib/modules/5.10.0-28-amd64 is missing (installed: 5.10.0-21-amd64, 5.10.0-26-amd64): "
                    "the running kernel cannot load drivers or filesystem modules; was it removed by an "
                    "upgrade? Reboot into an installed kernel",
                ),
            ],
            id="botched upgrade",
        ),
        pytest.param(
            {},
            sect(0, modules_loaded=40, installed_releases=("5.10.0-21-amd64",), container=True),
            [
                Result(Severity.OK, "OK", "Kernel 5.10.0-28-amd64 not tainted"),
                Result(
                    Severity.OK,
                    "OK",
                    "40 modules loaded; modules of 5.10.0-28-amd64 not visible (in a container)",
                ),
            ],
            id="container image with another kernel's modules",
        ),
        pytest.param(
            {},
            sect(0, modules_loaded=40),
            [
                Result(Severity.OK, "OK", "Kernel 5.10.0-28-amd64 not tainted"),
                Result(
                    Severity.OK,
                    "OK",
                    "40 modules loaded; modules of 5.10.0-28-amd64 not visible (no /lib/modules tree here)",
                ),
            ],
            id="no module tree",
        ),
    ],
)
def test_evaluate(store, section, expected):
    assert results(list(evaluate_kernel(KernelParams(), section, store))) == expected
    assert store["tainted"] == section.tainted


def test_metrics_and_params():
    out = list(
        evaluate_kernel(KernelParams(), sect(P | OOT, modules_loaded=4, panic=10, panic_on_oops=1), {})
    )
    assert [m for m in out if isinstance(m, Metric)] == [
        Metric(
            "platform_kernel_info",
            1,
            Unit.INFO,
            {"release": "5.10.0-28-amd64", "taint": "PO", "panic": "10", "panic_on_oops": "1"},
        ),
        Metric("platform_kernel_tainted_boolean", 1, Unit.BOOLEAN),
        Metric("platform_kernel_modules_count", 4, Unit.COUNT),
    ]
    quiet_w = KernelParams(flag_severity={"W": "OK", "O": "WARN"})
    got = results(list(evaluate_kernel(quiet_w, sect(W | OOT), {})))
    assert [(r.severity, r.key) for r in got] == [(Severity.WARN, "KERNEL_TAINTED")]
    with pytest.raises(ValidationError, match="unknown taint letter"):
        KernelParams(flag_severity={"Z": "CRIT"})


def test_two_runs_on_a_changing_tree(tmp_path):
    root = copy_host(tmp_path)
    store: dict[str, Any] = {}
    probe, params = Probe(root=root), KernelParams()
    first = results(list(KERNEL.run(probe, params, store)))
    assert [(r.severity, r.key) for r in first] == [
        (Severity.WARN, "KERNEL_WARNED"),
        (Severity.WARN, "KERNEL_MODULES_MISSING"),
    ]
    assert "since boot" in first[0].summary
    (root / "proc/sys/kernel/tainted").write_text(f"{P | W | OOT | D}\n")
    (root / "lib/modules/5.10.0-28-amd64").mkdir()
    second = results(list(KERNEL.run(probe, params, store)))
    assert [(r.severity, r.key) for r in second] == [
        (Severity.CRIT, "KERNEL_OOPSED"),
        (Severity.WARN, "KERNEL_WARNED"),
        (Severity.OK, "OK"),
    ]
    assert second[0].summary.endswith("since the last run (sticky until reboot)")
    assert second[1].summary.endswith("since boot")
