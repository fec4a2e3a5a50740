"""platform.systemd_units and platform.failed_units.

This test machine is not booted with systemd (no /run/systemd/system), so ``systemctl``
cannot answer here: the probe's ``run`` is faked to return real systemctl output stored
under ``tests/fixtures/hosts/sp-systemd/commands/``. Everything else (the systemd
detection, parsing, evaluation) runs for real.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from checks.api import Metric, Result, Severity, SkipCheck, Unit
from checks.platform.failed_units import (
    FAILED_UNITS,
    FailedParams,
    FailedSection,
    collect_failed_units,
    evaluate_failed_units,
    parse_failed_units,
)
from checks.platform.systemd_units import (
    SYSTEMD_UNITS,
    UnitsParams,
    UnitsSection,
    UnitState,
    collect_systemd_units,
    evaluate_systemd_units,
    parse_show_output,
)
from checks.probe import CommandResult, CommandTimeout, Probe
from tests.conftest import FIXTURES, fixture_probe

COMMANDS = FIXTURES / "hosts" / "sp-systemd" / "commands"
UNITS = ["postgresql@15-main", "app-worker", "nginx", "ghost"]


class FakeRunProbe(Probe):
    """A fixture-rooted probe whose ``run`` returns stored systemctl output (no systemd here)."""

    def __init__(self, root: Path, outputs: dict[str, tuple[int, str]]) -> None:
        super().__init__(root=root, clock=lambda: 1_700_000_000.0, monotonic=lambda: 0.0)
        self.outputs = outputs
        self.calls: list[tuple[list[str], float]] = []

    def run(self, argv, *, timeout_s, input_text=None, env=None):
        self.calls.append((list(argv), timeout_s))
        if argv[1] not in self.outputs:
            raise CommandTimeout(argv, timeout_s)
        code, out = self.outputs[argv[1]]
        return CommandResult(tuple(argv), code, out, "boom" if code else "", 0.01)


def systemd_probe(**outputs: tuple[int, str]) -> FakeRunProbe:
    return FakeRunProbe(FIXTURES / "hosts" / "sp-systemd", outputs)


SHOW = (0, (COMMANDS / "systemctl-show.out").read_text())
FAILED = (0, (COMMANDS / "systemctl-list-failed.out").read_text())


# --- systemd_units ----------------------------------------------------------------------


def test_units_collect_parses_one_systemctl_call():
    probe = systemd_probe(show=SHOW)
    section = collect_systemd_units(probe, UnitsParams(units=UNITS, timeout_s=3))
    assert section == UnitsSection(
        90211.52,
        (
            UnitState(
                "postgresql@15-main",
                "postgresql@15-main.service",
                "loaded",
                "active",
                "running",
                0,
                5081234567,
            ),
            UnitState("app-worker", "app-worker.service", "loaded", "active", "running", 3, 90001000000),
            UnitState("nginx", "nginx.service", "loaded", "failed", "failed", 7, 0),
            UnitState("ghost", "ghost.service", "not-found", "inactive", "dead", 0, 0),
        ),
    )
    ((argv, timeout),) = probe.calls
    assert argv == [
        "systemctl",
        "show",
        "--no-pager",
        "--property=Id,ActiveState,SubState,LoadState,NRestarts,ExecMainStartTimestampMonotonic",
        "--",
        *UNITS,
    ]
    assert timeout == 3


def test_units_skip_without_config_or_systemd():
    with pytest.raises(SkipCheck, match="no units configured"):
        collect_systemd_units(systemd_probe(show=SHOW), UnitsParams())
    # This machine itself has no systemd: a real probe skips before running anything.
    with pytest.raises(SkipCheck, match="not booted with systemd"):
        collect_systemd_units(fixture_probe("sp-rhel9"), UnitsParams(units=["sshd"]))


@pytest.mark.parametrize(
    ("output", "message"),
    [
        pytest.param((0, ""), "expected 4 unit blocks, got 0", id="empty"),
        pytest.param((0, SHOW[1].rsplit("\n\n", 1)[0]), "expected 4 unit blocks, got 3", id="truncated"),
        pytest.param(
            (0, SHOW[1].replace("NRestarts=3", "NRestarts=x")), "app-worker: non-numeric", id="garbled"
        ),
        pytest.param(
            (0, SHOW[1].replace("ActiveState=failed\n", "")), "nginx: no ActiveState", id="missing key"
        ),
        pytest.param((1, ""), "systemctl show exited 1: boom", id="failing systemctl"),
    ],
)
def test_units_bad_output_is_a_clear_error(output, message):
    with pytest.raises((ValueError, RuntimeError), match=message):
        collect_systemd_units(systemd_probe(show=output), UnitsParams(units=UNITS))


def test_units_command_timeout_propagates():
    with pytest.raises(CommandTimeout):
        collect_systemd_units(systemd_probe(), UnitsParams(units=UNITS))


def _unit(name, active="active", restarts=0, start=1_000_000, load="loaded", sub="running"):
    return UnitState(name, f"{name}.service", load, active, sub, restarts, start)


def _m(name, active, restarts, uptime=None):
    labels = {"unit": name}
    out = [Metric("platform_unit_active_boolean", active, Unit.BOOLEAN, labels)]
    if restarts is not None:
        out.append(Metric("platform_unit_restarts_count", restarts, Unit.COUNT, labels))
    if uptime is not None:
        out.append(Metric("platform_unit_uptime_seconds", uptime, Unit.SECONDS, labels))
    return out


@pytest.mark.parametrize(
    ("runs", "expected_last"),
    [
        pytest.param(
            [[_unit("web")]],
            [
                *_m("web", 1, 0, 99.0),
                Result(Severity.OK, "OK", "Unit web.service is active (running)", "web"),
            ],
            id="active",
        ),
        pytest.param(
            [[_unit("web", active="failed", sub="failed", start=0)]],
            [
                *_m("web", 0, 0),
                Result(
                    Severity.CRIT,
                    "UNIT_NOT_ACTIVE",
                    "Unit web.service is failed (failed), load state loaded",
                    "web",
                ),
            ],
            id="failed",
        ),
        pytest.param(
            [[_unit("web", active="inactive", sub="dead", load="not-found", start=0)]],
            [
                *_m("web", 0, 0),
                Result(Severity.CRIT, "UNIT_NOT_FOUND", "Unit web.service does not exist", "web"),
            ],
            id="not found",
        ),
        pytest.param(
            [[_unit("web", restarts=2)], [_unit("web", restarts=5)]],
            [
                *_m("web", 1, 5, 99.0),
                Result(
                    Severity.WARN,
                    "UNIT_RESTARTED",
                    "Unit web.service was restarted 3 time(s) by systemd since the last run;"
                    " now active (running)",
                    "web",
                ),
            ],
            id="restarts grew",
        ),
        pytest.param(
            [[_unit("web", restarts=2)], [_unit("web", restarts=5)], [_unit("web", restarts=5)]],
            [
                *_m("web", 1, 5, 99.0),
                Result(Severity.OK, "OK", "Unit web.service is active (running)", "web"),
            ],
            id="restart warning clears next run",
        ),
        pytest.param(
            [[_unit("web", restarts=9)], [_unit("web", restarts=0)]],
            [
                *_m("web", 1, 0, 99.0),
                Result(Severity.OK, "OK", "Unit web.service is active (running)", "web"),
            ],
            id="counter reset by manual start",
        ),
        pytest.param(
            [[_unit("web", restarts=None)]],
            [
                *_m("web", 1, None, 99.0),
                Result(Severity.OK, "OK", "Unit web.service is active (running)", "web"),
            ],
            id="old systemd without NRestarts",
        ),
    ],
)
def test_units_evaluate_over_runs(runs, expected_last):
    store: dict[str, Any] = {}
    out: list[Any] = []
    for units in runs:
        out = list(
            evaluate_systemd_units(UnitsParams(units=["web"]), UnitsSection(100.0, tuple(units)), store)
        )
    assert out == expected_last


def test_units_store_forgets_unconfigured_units():
    store: dict[str, Any] = {"r:old": 4}
    list(evaluate_systemd_units(UnitsParams(units=["web"]), UnitsSection(None, (_unit("web"),)), store))
    assert store == {"r:web": 0}


def test_units_fixture_end_to_end_and_declaration():
    store: dict[str, Any] = {}
    params = UnitsParams(units=UNITS)
    list(SYSTEMD_UNITS.run(systemd_probe(show=SHOW), params, store))
    grown = (0, SHOW[1].replace("NRestarts=3", "NRestarts=4"))
    out = list(SYSTEMD_UNITS.run(systemd_probe(show=grown), params, store))
    assert [(r.item, r.key) for r in out if isinstance(r, Result)] == [
        ("postgresql@15-main", "OK"),
        ("app-worker", "UNIT_RESTARTED"),
        ("nginx", "UNIT_NOT_ACTIVE"),
        ("ghost", "UNIT_NOT_FOUND"),
    ]
    assert {m.name for m in out if isinstance(m, Metric)} == SYSTEMD_UNITS.metric_names
    assert {r.key for r in out if isinstance(r, Result)} - {"OK"} == set(SYSTEMD_UNITS.keys)
    uptime = next(m for m in out if isinstance(m, Metric) and m.name == "platform_unit_uptime_seconds")
    assert uptime.value == pytest.approx(90211.52 - 5081.234567)


def test_parse_show_output_maps_blocks_to_requested_names():
    text = "Id=ssh.service\nLoadState=loaded\nActiveState=active\nSubState=running\n"
    (unit,) = parse_show_output(text, ["sshd"])
    assert (unit.name, unit.id) == ("sshd", "ssh.service")  # an alias resolves to another id


# --- failed_units -------------------------------------------------------------------------


def test_failed_collect_from_fixture_output():
    probe = systemd_probe(**{"list-units": FAILED})
    section = collect_failed_units(probe, FailedParams())
    assert section == FailedSection(("logrotate.service", "mdmonitor.service", "user@1000.service"))
    assert probe.calls[0][0] == [
        "systemctl",
        "list-units",
        "--failed",
        "--plain",
        "--no-legend",
        "--no-pager",
    ]


def test_failed_skips_without_systemd():
    with pytest.raises(SkipCheck, match="/run/systemd/system"):
        collect_failed_units(Probe(), FailedParams())


@pytest.mark.parametrize(
    ("output", "error"),
    [
        pytest.param((0, "garbage\n"), ValueError, id="garbled line"),
        pytest.param((0, "● a.service loaded\n"), ValueError, id="truncated line"),
        pytest.param((1, ""), RuntimeError, id="systemctl failed"),
    ],
)
def test_failed_bad_output(output, error):
    with pytest.raises(error, match="systemctl list-units"):
        collect_failed_units(systemd_probe(**{"list-units": output}), FailedParams())


def test_parse_failed_units_tolerates_blank_lines_and_bullets():
    assert parse_failed_units("\n* x.mount loaded failed failed X\n\n") == ("x.mount",)


@pytest.mark.parametrize(
    ("units", "params", "expected"),
    [
        pytest.param((), FailedParams(), [0, Result(Severity.OK, "OK", "Failed units: 0")], id="none failed"),
        pytest.param(
            ("a.service",),
            FailedParams(),
            [
                1,
                Result(
                    Severity.WARN,
                    "SYSTEMD_FAILED_UNITS",
                    "Failed units: 1 (warn/crit at 1/5): a.service",
                    None,
                    "a.service",
                ),
            ],
            id="one failed warns",
        ),
        pytest.param(
            tuple(f"u{i}.service" for i in range(12)),
            FailedParams(),
            [
                12,
                Result(
                    Severity.CRIT,
                    "SYSTEMD_FAILED_UNITS",
                    "Failed units: 12 (warn/crit at 1/5): "
                    + ", ".join(f"u{i}.service" for i in range(10))
                    + " and 2 more",
                    None,
                    "\n".join(f"u{i}.service" for i in range(12)),
                ),
            ],
            id="many failed is critical and the summary stays short",
        ),
        pytest.param(
            ("user@1000.service",),
            FailedParams(ignore=["user@*.service"]),
            [0, Result(Severity.OK, "OK", "Failed units: 0")],
            id="ignored unit",
        ),
    ],
)
def test_failed_evaluate(units, params, expected):
    out = list(evaluate_failed_units(params, FailedSection(units), {}))
    assert out == [Metric("platform_systemd_failed_units_count", expected[0], Unit.COUNT), expected[1]]
    assert {m.name for m in out if isinstance(m, Metric)} == FAILED_UNITS.metric_names
