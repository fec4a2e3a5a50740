from __future__ import annotations

from typing import Any

import pytest

from checks.api import Metric, Result, Severity, Unit
from checks.host.uptime import UptimeParams, UptimeSection, collect_uptime, evaluate_uptime
from tests.conftest import fixture_probe

OLD = "11111111-2222-3333-4444-555555555555"
NEW = "5f1b7c2e-8d0a-4b7e-9c3f-2a6d4e8b1c90"
T0 = 1_700_000_000.0


def only_results(out: list[Result | Metric]) -> list[Result]:
    return [r for r in out if isinstance(r, Result)]


def test_collect_real_sample():
    got = collect_uptime(fixture_probe("host-real", now=T0), UptimeParams())
    assert got == UptimeSection(T0, 911.85, "84d5cd65-dd0a-4123-ae3e-f8303ab231ba")


@pytest.mark.parametrize(
    ("uptime", "boot_id", "message"),
    [
        pytest.param("\n", NEW, "/proc/uptime: expected 'uptime idle'", id="empty uptime"),
        pytest.param("abc 1\n", NEW, "/proc/uptime: expected 'uptime idle'", id="garbled uptime"),
        pytest.param(
            "5.0 1.0\n", "not-a-uuid\n", "/proc/sys/kernel/random/boot_id: expected a UUID", id="bad boot id"
        ),
    ],
)
def test_collect_garbled_names_file(tmp_path, uptime, boot_id, message):
    from checks.probe import Probe

    (tmp_path / "proc/sys/kernel/random").mkdir(parents=True)
    (tmp_path / "proc/uptime").write_text(uptime)
    (tmp_path / "proc/sys/kernel/random/boot_id").write_text(boot_id)
    with pytest.raises(ValueError, match=message):
        collect_uptime(Probe(root=tmp_path), UptimeParams())


def test_collect_garbled_fixture():
    with pytest.raises(ValueError, match="/proc/uptime"):
        collect_uptime(fixture_probe("host-garbled"), UptimeParams())


def test_first_run_and_same_boot_are_ok():
    store: dict[str, Any] = {}
    out = list(evaluate_uptime(UptimeParams(), UptimeSection(T0, 3600.0, OLD), store))
    assert out == [
        Result(Severity.OK, "OK", "Up 60 min (booted 2023-11-14 21:13:20 UTC)"),
        Metric("host_uptime_seconds", 3600.0, Unit.SECONDS),
        Metric("host_boot_time_seconds", T0 - 3600.0, Unit.SECONDS),
    ]
    assert store == {"boot_id": OLD, "last_seen": T0, "last_uptime": 3600.0}
    out = list(evaluate_uptime(UptimeParams(), UptimeSection(T0 + 60, 3660.0, OLD), store))
    assert only_results(out)[0].key == "OK"


# Previous boot last seen at T0; the new boot started at T0 + gap; the agent runs 100 s after boot.
@pytest.mark.parametrize(
    ("clean", "gap", "severity", "key", "start"),
    [
        pytest.param(
            True, 120.0, Severity.WARN, "HOST_REBOOTED", "Rebooted after a clean agent stop", id="clean stop"
        ),
        pytest.param(
            False,
            120.0,
            Severity.CRIT,
            "HOST_REBOOTED_UNEXPECTEDLY",
            "Host went down under a running agent",
            id="died under the agent",
        ),
        pytest.param(
            False,
            7200.0,
            Severity.WARN,
            "HOST_REBOOTED",
            "Rebooted, cause unknown",
            id="agent silent long before",
        ),
        pytest.param(
            None,
            120.0,
            Severity.WARN,
            "HOST_REBOOTED",
            "Rebooted, cause unknown",
            id="agent does not set the flag",
        ),
    ],
)
def test_reboot_detection(clean, gap, severity, key, start):
    store: dict[str, Any] = {"boot_id": OLD, "last_seen": T0, "last_uptime": 86400.0}
    if clean is not None:
        store["clean_shutdown"] = clean
    now = T0 + gap + 100.0
    out = list(evaluate_uptime(UptimeParams(), UptimeSection(now, 100.0, NEW), store))
    result = only_results(out)[0]
    assert (result.severity, result.key) == (severity, key)
    assert result.summary.startswith(start)
    assert "previous boot last seen 2023-11-14 22:13:20 UTC" in result.summary
    assert store["boot_id"] == NEW and store["last_seen"] == now
    if clean is not None:
        assert store["clean_shutdown"] is False  # armed again: the agent is running
    # the next run is OK again
    assert (
        only_results(list(evaluate_uptime(UptimeParams(), UptimeSection(now + 60, 160.0, NEW), store)))[0].key
        == "OK"
    )


def test_crit_summary_names_the_gap():
    store: dict[str, Any] = {"boot_id": OLD, "last_seen": T0, "clean_shutdown": False}
    result = only_results(
        list(evaluate_uptime(UptimeParams(), UptimeSection(T0 + 190.0, 100.0, NEW), store))
    )[0]
    assert result.summary == (
        "Host went down under a running agent: Up 100.0 s (booted 2023-11-14 22:14:50 UTC); "
        "previous boot last seen 2023-11-14 22:13:20 UTC, 90.0 s before the new boot"
    )
