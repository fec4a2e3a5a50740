from __future__ import annotations

import datetime as dt
import os

import pytest

from checks.api import Metric, Result, Severity, Unit
from checks.platform.os import OS, OsParams, OsSection, collect_os, evaluate_os, parse_os_release
from checks.probe import Probe
from tests.conftest import fixture_probe

JAN_2025 = dt.datetime(2025, 1, 15, tzinfo=dt.UTC).timestamp()


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        pytest.param(
            "sp-debian10",
            OsSection(
                JAN_2025,
                "debian",
                "10",
                "Debian GNU/Linux 10 (buster)",
                "4.19.0-26-amd64",
                "Linux version 4.19.0-26-amd64 (debian-kernel@lists.debian.org)"
                " (gcc version 8.3.0 (Debian 8.3.0-6))"
                " #1 SMP Debian 4.19.304-1 (2024-01-09)",
                "x86_64",
                "vmware",
            ),
            id="debian 10 on vmware",
        ),
        pytest.param(
            "sp-k8s",
            OsSection(
                JAN_2025,
                "ubuntu",
                "22.04",
                "Ubuntu 22.04.3 LTS",
                "5.15.0-91-generic",
                "Linux version 5.15.0-91-generic (buildd@lcy02-amd64-045)"
                " #101-Ubuntu SMP Tue Nov 14 13:30:08 UTC 2023",
                "aarch64",
                "kubernetes",
            ),
            id="ubuntu pod with os-release only in usr lib",
        ),
        pytest.param(
            "sp-rhel9",
            OsSection(
                JAN_2025,
                "rhel",
                "9.3",
                "Red Hat Enterprise Linux 9.3 (Plow)",
                "5.14.0-362.8.1.el9_3.x86_64",
                "Linux version 5.14.0-362.8.1.el9_3.x86_64 (mockbuild@x86-vm-07.build.eng.bos.redhat.com)"
                " #1 SMP PREEMPT_DYNAMIC Tue Oct 3 11:12:36 EDT 2023",
                "x86_64",
                "none",
            ),
            id="rhel bare metal with quoted ids",
        ),
    ],
)
def test_collect_fixture_hosts(host, expected):
    assert collect_os(fixture_probe(host, now=JAN_2025), OsParams()) == expected


def test_collect_this_host_matches_uname():
    section = collect_os(Probe(), OsParams())
    assert section.kernel == os.uname().release
    assert section.arch == os.uname().machine


@pytest.mark.parametrize(
    ("files", "virt"),
    [
        pytest.param({".dockerenv": ""}, "docker", id="docker marker"),
        pytest.param({"run/.containerenv": ""}, "podman", id="podman marker"),
        pytest.param({"proc/1/cgroup": "0::/lxc.payload.web\n"}, "lxc", id="lxc cgroup"),
        pytest.param(
            {".dockerenv": "", "sys/class/dmi/id/sys_vendor": "QEMU\n"}, "docker", id="container on a vm"
        ),
        pytest.param(
            {
                "sys/class/dmi/id/sys_vendor": "Microsoft Corporation\n",
                "sys/class/dmi/id/product_name": "Virtual Machine\n",
            },
            "hyperv",
            id="hyper-v",
        ),
        pytest.param({"sys/hypervisor/type": "xen\n"}, "xen", id="xen pv guest without dmi"),
    ],
)
def test_virtualisation_hints(tmp_path, files, virt):
    (tmp_path / "proc" / "sys" / "kernel").mkdir(parents=True)
    (tmp_path / "proc" / "sys" / "kernel" / "osrelease").write_text("6.1.0\n")
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert collect_os(Probe(root=tmp_path), OsParams()).virt == virt


def test_collect_without_os_release_defaults_to_linux(tmp_path):
    (tmp_path / "proc" / "sys" / "kernel").mkdir(parents=True)
    (tmp_path / "proc" / "sys" / "kernel" / "osrelease").write_text("6.1.0\n")
    (tmp_path / "proc" / "sys" / "kernel" / "arch").write_text("riscv64\n")
    section = collect_os(Probe(root=tmp_path, clock=lambda: 0.0), OsParams())
    assert (section.id, section.version_id, section.pretty_name, section.arch, section.virt) == (
        "linux",
        "",
        "linux",
        "riscv64",
        "unknown",
    )


@pytest.mark.parametrize(
    ("path", "text", "message"),
    [
        pytest.param(
            "etc/os-release", "\x00\x01\x02garbage", "/etc/os-release: no ID= line", id="garbled os-release"
        ),
        pytest.param("proc/sys/kernel/osrelease", "", "/proc/sys/kernel/osrelease", id="empty osrelease"),
        pytest.param(
            "proc/sys/kernel/osrelease", "two words\n", "/proc/sys/kernel/osrelease", id="garbled osrelease"
        ),
    ],
)
def test_collect_bad_input_names_the_file(tmp_path, path, text, message):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "os-release").write_text("ID=debian\n")
    (tmp_path / "proc" / "sys" / "kernel").mkdir(parents=True)
    (tmp_path / "proc" / "sys" / "kernel" / "osrelease").write_text("6.1.0\n")
    (tmp_path / path).write_text(text)
    with pytest.raises(ValueError, match=message):
        collect_os(Probe(root=tmp_path), OsParams())


def test_collect_missing_kernel_release_propagates(tmp_path):
    with pytest.raises(FileNotFoundError):
        collect_os(Probe(root=tmp_path), OsParams())


def test_parse_os_release_quoting():
    text = 'A="say \\"hi\\" for \\$5"\nB=\'single\'\nC=bare\n  # comment\nnot a pair\nD=""\n'
    assert parse_os_release(text) == {"A": 'say "hi" for $5', "B": "single", "C": "bare", "D": ""}


def _section(ts, os_id="debian", version="10"):
    return OsSection(ts, os_id, version, f"{os_id} {version}", "4.19.0-26-amd64", "", "x86_64", "kvm")


INFO = Metric(
    "platform_os_info",
    1,
    Unit.INFO,
    {"id": "debian", "version_id": "10", "kernel": "4.19.0-26-amd64", "arch": "x86_64", "virt": "kvm"},
)
SUMMARY = "debian 10, kernel 4.19.0-26-amd64, x86_64, virt: kvm"


@pytest.mark.parametrize(
    ("section", "params", "expected"),
    [
        pytest.param(
            _section(JAN_2025),
            OsParams(),
            [
                INFO,
                Result(
                    Severity.WARN, "OS_EOL", f"debian 10 is past its end of support (2024-06-30): {SUMMARY}"
                ),
            ],
            id="debian 10 past default eol",
        ),
        pytest.param(
            _section(dt.datetime(2024, 6, 30, 23, 0, tzinfo=dt.UTC).timestamp()),
            OsParams(),
            [INFO, Result(Severity.OK, "OK", SUMMARY)],
            id="on the eol day itself still ok",
        ),
        pytest.param(
            _section(JAN_2025),
            OsParams(eol={}),
            [INFO, Result(Severity.OK, "OK", SUMMARY)],
            id="eol table emptied by config",
        ),
        pytest.param(
            _section(JAN_2025),
            OsParams.model_validate({"eol": {"debian:10": "2030-01-01"}}),
            [INFO, Result(Severity.OK, "OK", SUMMARY)],
            id="config extends support (paid lts)",
        ),
    ],
)
def test_evaluate(section, params, expected):
    assert list(evaluate_os(params, section, {})) == expected


def test_fixture_host_runs_end_to_end_and_declaration_matches():
    out = list(OS.run(fixture_probe("sp-debian10", now=JAN_2025), OsParams(), {}))
    assert {m.name for m in out if isinstance(m, Metric)} == OS.metric_names
    assert [r.key for r in out if isinstance(r, Result)] == ["OS_EOL"]


def test_params_reject_bad_dates():
    with pytest.raises(ValueError, match="eol"):
        OsParams.model_validate({"eol": {"debian:10": "next year"}})
