"""What a probe keeps across cycles: the mount table until it changes, boot constants.

The mount-table test changes a real mount table: in a child process inside its own
user and mount namespace (``unshare -Urm``, or ``unshare -m`` as root), so the host's
mounts are never touched. It skips with the reason where neither is allowed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent.runner import AgentProbe
from checks.probe import Probe
from checks.storage._common import MOUNTS_FILE, parse_mounts, read_mounts

ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import json, os, subprocess, sys
    from agent.runner import AgentProbe
    from checks.storage._common import read_mounts, parse_mounts

    target = sys.argv[1]
    probe = AgentProbe()
    parses = []

    def counting(text):
        parses.append(1)
        return parse_mounts(text)

    def mounts():
        probe.new_cycle()
        mounts_file = "/proc/self/mounts"
        return probe.memo("mounts", lambda: probe.parsed_while_unchanged("mounts", mounts_file, counting))

    def has_target(table):
        return any(m.mountpoint == target for m in table)

    out = {}
    first = mounts()
    out["first"] = [len(parses), has_target(first)]
    second = mounts()
    out["unchanged_same_object"] = second is first
    out["unchanged"] = [len(parses), has_target(second)]
    subprocess.run(["mount", "-t", "tmpfs", "lasting-test", target], check=True)
    mounted = mounts()
    out["after_mount"] = [len(parses), has_target(mounted)]
    out["matches_fresh_read"] = mounted == parse_mounts(open("/proc/self/mounts").read())
    steady = mounts()
    out["steady"] = [steady is mounted, len(parses)]
    subprocess.run(["umount", target], check=True)
    unmounted = mounts()
    out["after_umount"] = [len(parses), has_target(unmounted)]
    print(json.dumps(out))
    """
)


def _namespace_prefix() -> list[str] | None:
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    for prefix in ([unshare, "-Urm"], [unshare, "-m", "--propagation", "private"]):
        if subprocess.run([*prefix, "true"], capture_output=True).returncode == 0:
            return prefix
    return None


def test_agent_probe_reparses_the_mount_table_only_after_the_kernel_signals_a_change(tmp_path):
    prefix = _namespace_prefix()
    if prefix is None:
        pytest.skip("needs unshare(1) with user or mount namespaces (util-linux; unprivileged userns)")
    target = tmp_path / "mnt"
    target.mkdir()
    proc = subprocess.run(
        [*prefix, sys.executable, "-c", CHILD, str(target)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["first"] == [1, False]
    assert out["unchanged"] == [1, False]  # no change signalled: neither read nor parsed
    assert out["unchanged_same_object"] is True
    assert out["after_mount"] == [2, True]  # the new mount is seen in the next cycle
    assert out["matches_fresh_read"] is True
    assert out["steady"] == [True, 2]
    assert out["after_umount"] == [3, False]


def test_agent_probe_mount_table_equals_a_fresh_read_on_this_host():
    probe = AgentProbe()
    kept = read_mounts(probe)
    probe.new_cycle()
    assert read_mounts(probe) is kept  # nothing changed between the two cycles here
    assert kept == parse_mounts(Path(MOUNTS_FILE).read_text())


def test_fixture_probe_reparses_when_the_file_bytes_change(tmp_path):
    (tmp_path / "proc" / "self").mkdir(parents=True)
    mounts = tmp_path / "proc" / "self" / "mounts"
    mounts.write_text("/dev/sda1 / ext4 rw 0 0\n")
    probe = AgentProbe(root=tmp_path)  # a fixture tree: compared by bytes, no descriptor kept
    first = read_mounts(probe)
    probe.new_cycle()
    assert read_mounts(probe) is first
    mounts.write_text("/dev/sda1 / ext4 rw 0 0\n/dev/sdb1 /data xfs ro 0 0\n")
    probe.new_cycle()
    second = read_mounts(probe)
    assert [m.mountpoint for m in second] == ["/", "/data"]
    assert probe._polled == {}


def test_a_parse_error_keeps_nothing_and_is_raised_again(tmp_path):
    (tmp_path / "proc" / "self").mkdir(parents=True)
    (tmp_path / "proc" / "self" / "mounts").write_text("garbage\n")
    probe = Probe(root=tmp_path)
    for _ in range(2):
        with pytest.raises(ValueError, match="line 1"):
            probe.parsed_while_unchanged("mounts", MOUNTS_FILE, parse_mounts)


def test_boot_constants_are_read_once_and_match_the_kernel(monkeypatch):
    probe = AgentProbe()
    expected = Path("/proc/sys/kernel/osrelease").read_bytes()
    assert probe.read_bytes("/proc/sys/kernel/osrelease") == expected
    reads: list[str] = []
    real = Probe.read_bytes

    def counting(self: Probe, absolute: str, limit: int = 1 << 20) -> bytes:
        reads.append(absolute)
        return real(self, absolute, limit)

    monkeypatch.setattr(Probe, "read_bytes", counting)
    assert probe.read_text("/proc/sys/kernel/osrelease").strip() == os.uname().release
    assert probe.read_bytes("/proc/sys/kernel/osrelease", 3) == expected[:3]
    assert reads == []  # served from what the first read kept
    rooted = AgentProbe(root=Path("/"))  # another probe reads its own copy once
    rooted.read_bytes("/proc/version")
    rooted.read_bytes("/proc/version")
    assert reads == ["/proc/version"]


def test_boot_constants_of_a_fixture_tree_are_read_every_time(tmp_path):
    (tmp_path / "proc" / "sys" / "kernel").mkdir(parents=True)
    release = tmp_path / "proc" / "sys" / "kernel" / "osrelease"
    release.write_text("6.1.0-18-amd64\n")
    probe = AgentProbe(root=tmp_path)
    assert probe.read_text("/proc/sys/kernel/osrelease") == "6.1.0-18-amd64\n"
    release.write_text("6.1.0-21-amd64\n")
    assert probe.read_text("/proc/sys/kernel/osrelease") == "6.1.0-21-amd64\n"
