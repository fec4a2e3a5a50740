from __future__ import annotations

import stat

import pytest

from checks.api import Metric, Result, Severity, Unit
from checks.platform.reboot_required import (
    REBOOT_REQUIRED,
    RebootParams,
    RebootSection,
    collect_reboot_required,
    evaluate_reboot_required,
    newest_kernel,
    version_key,
)
from checks.probe import Probe
from tests.conftest import fixture_probe


def test_collect_debian_flag_file_and_kernels():
    section = collect_reboot_required(fixture_probe("sp-debian10"), RebootParams())
    assert section == RebootSection(
        running_kernel="4.19.0-26-amd64",
        flag_file=True,
        flag_packages=("linux-image-4.19.0-27-amd64", "libc6"),
        boot_kernels=("4.19.0-25-amd64", "4.19.0-26-amd64", "4.19.0-27-amd64", "4.19.0-28-cloud-amd64"),
        needs_restarting=None,
    )


def test_collect_rhel_ignores_rescue_and_bare_vmlinuz():
    section = collect_reboot_required(fixture_probe("sp-rhel9"), RebootParams())
    assert section.boot_kernels == (
        "0-rescue-6f1e2d3c4b5a",
        "5.14.0-284.11.1.el9_2.x86_64",
        "5.14.0-362.8.1.el9_3.x86_64",
    )
    assert list(evaluate_reboot_required(RebootParams(), section, {})) == [
        Metric("platform_reboot_required_boolean", 0, Unit.BOOLEAN),
        Result(Severity.OK, "OK", "No reboot required (kernel 5.14.0-362.8.1.el9_3.x86_64)"),
    ]


def test_collect_container_without_boot():
    section = collect_reboot_required(fixture_probe("sp-k8s"), RebootParams())
    assert (section.flag_file, section.boot_kernels) == (False, ())


def test_needs_restarting_is_run_when_enabled(tmp_path):
    # A real executable stands in for needs-restarting (not installed on Debian): exit 1 = reboot needed.
    (tmp_path / "proc" / "sys" / "kernel").mkdir(parents=True)
    (tmp_path / "proc" / "sys" / "kernel" / "osrelease").write_text("5.14.0-362.el9.x86_64\n")
    script = tmp_path / "usr" / "bin" / "needs-restarting"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n[ \"$1\" = -r ] && echo 'Reboot is required' && exit 1\nexit 3\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)

    class RootedProbe(Probe):
        def run(self, argv, **kwargs):
            return super().run([str(self.path(argv[0])), *argv[1:]], **kwargs)

    probe = RootedProbe(root=tmp_path)
    assert collect_reboot_required(probe, RebootParams()).needs_restarting is None
    section = collect_reboot_required(probe, RebootParams(use_needs_restarting=True))
    assert section.needs_restarting is True
    script.write_text("#!/bin/sh\nexit 3\n")
    with pytest.raises(RuntimeError, match="needs-restarting -r exited 3"):
        collect_reboot_required(probe, RebootParams(use_needs_restarting=True))


@pytest.mark.parametrize(
    "text",
    [pytest.param("", id="empty"), pytest.param("4.19 garbage here\n", id="garbled")],
)
def test_bad_osrelease_names_the_file(tmp_path, text):
    (tmp_path / "proc" / "sys" / "kernel").mkdir(parents=True)
    (tmp_path / "proc" / "sys" / "kernel" / "osrelease").write_text(text)
    with pytest.raises(ValueError, match="/proc/sys/kernel/osrelease"):
        collect_reboot_required(Probe(root=tmp_path), RebootParams())


@pytest.mark.parametrize(
    ("running", "installed", "newest"),
    [
        pytest.param(
            "6.1.0-9-amd64", ["6.1.0-10-amd64", "6.1.0-9-amd64"], "6.1.0-10-amd64", id="abi 10 beats 9"
        ),
        pytest.param(
            "5.15.0-91-generic",
            ["5.15.0-91-lowlatency", "5.15.0-88-generic"],
            "5.15.0-88-generic",
            id="flavour",
        ),
        pytest.param("6.7.4-arch1-1", ["6.7.4-arch1-1", "6.7.5-arch1-1"], "6.7.5-arch1-1", id="arch"),
        pytest.param(
            "6.8.0-rc1", ["6.8.0", "6.8.0-rc1"], "6.8.0-rc1", id="release candidate is its own flavour"
        ),
        pytest.param("6.1.0-9-amd64", [], None, id="nothing installed"),
    ],
)
def test_newest_kernel(running, installed, newest):
    assert newest_kernel(running, installed) == newest


def test_version_key_numeric_segments():
    assert version_key("4.19.0-100") > version_key("4.19.0-99") > version_key("4.9.0-200")


def _out(required, summary):
    severity, key = (Severity.WARN, "REBOOT_REQUIRED") if required else (Severity.OK, "OK")
    return [
        Metric("platform_reboot_required_boolean", int(required), Unit.BOOLEAN),
        Result(severity, key, summary),
    ]


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        pytest.param(
            RebootSection("6.1.0-18-amd64", False, (), ("6.1.0-18-amd64",), None),
            _out(False, "No reboot required (kernel 6.1.0-18-amd64)"),
            id="nothing pending",
        ),
        pytest.param(
            RebootSection("6.1.0-18-amd64", True, ("libc6", "dbus"), ("6.1.0-18-amd64",), None),
            _out(True, "Reboot required: /var/run/reboot-required was written by libc6, dbus"),
            id="flag file with packages",
        ),
        pytest.param(
            RebootSection("6.1.0-18-amd64", True, (), (), None),
            _out(True, "Reboot required: /var/run/reboot-required was written"),
            id="flag file without package list",
        ),
        pytest.param(
            RebootSection("6.1.0-18-amd64", False, (), ("6.1.0-18-amd64", "6.1.0-20-amd64"), None),
            _out(True, "Reboot required: kernel 6.1.0-20-amd64 is installed, 6.1.0-18-amd64 is running"),
            id="newer kernel installed",
        ),
        pytest.param(
            RebootSection("6.1.0-20-amd64", False, (), ("6.1.0-18-amd64",), None),
            _out(False, "No reboot required (kernel 6.1.0-20-amd64)"),
            id="running kernel newer than boot (removed old)",
        ),
        pytest.param(
            RebootSection("5.14.0-362.el9.x86_64", False, (), (), True),
            _out(True, "Reboot required: needs-restarting -r reports updated core libraries or services"),
            id="needs-restarting",
        ),
    ],
)
def test_evaluate(section, expected):
    assert list(evaluate_reboot_required(RebootParams(), section, {})) == expected


def test_fixture_debian_needs_reboot_for_both_reasons():
    out = list(REBOOT_REQUIRED.run(fixture_probe("sp-debian10"), RebootParams(), {}))
    assert out[1] == Result(
        Severity.WARN,
        "REBOOT_REQUIRED",
        "Reboot required: /var/run/reboot-required was written by linux-image-4.19.0-27-amd64, libc6;"
        " kernel 4.19.0-27-amd64 is installed, 4.19.0-26-amd64 is running",
    )
