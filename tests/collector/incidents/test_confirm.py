"""Soft and hard states of check results (collector.incidents.confirm)."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from collector.incidents.confirm import CheckConfirmer, ConfirmConfig, Confirmed

HOST = ("acme", "web1")
NAGIOS = "application.nagios"
DB = "check:application.nagios[db]"
CRIT = {DB: "PLUGIN_CRITICAL"}


def run(confirmer: CheckConfirmer, results: list[tuple[float, dict[str, str]]]) -> list[Confirmed]:
    out: list[Confirmed] = []
    for ts, crit in results:
        out += confirmer.update(HOST, NAGIOS, crit, ts=ts)
    return out


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        pytest.param([(0.0, CRIT)], [], id="one CRIT is soft"),
        pytest.param([(0.0, CRIT), (2.0, {}), (4.0, CRIT), (6.0, {})], [], id="CRIT once among OKs"),
        pytest.param([(0.0, CRIT), (2.0, CRIT), (4.0, {}), (6.0, CRIT), (8.0, CRIT)], [], id="two, OK, two"),
        pytest.param(
            [(0.0, CRIT), (2.0, CRIT), (4.0, CRIT)],
            [Confirmed(DB, 0.0, 3, "3 consecutive CRIT results")],
            id="three in a row: hard, onset at the first",
        ),
        pytest.param(
            [
                (0.0, CRIT),
                (2.0, {DB: "PLUGIN_CRITICAL", "check:application.nagios[web]": "PLUGIN_CRITICAL"}),
                (4.0, {"check:application.nagios[web]": "PLUGIN_CRITICAL"}),
            ],
            [],
            id="another item CRIT instead breaks the streak",
        ),
        pytest.param(
            [(0.0, CRIT), (300.0, CRIT)],
            [Confirmed(DB, 0.0, 2, "CRIT for 300 s (2 results)")],
            id="slow check: two results spanning the minimum duration",
        ),
    ],
)
def test_default_rule(results: list[tuple[float, dict[str, str]]], expected: list[Confirmed]) -> None:
    assert run(CheckConfirmer(), results) == expected


def test_conclusive_keys_are_hard_at_once() -> None:
    c = CheckConfirmer()
    oom = c.update(HOST, "host.oom_kills", {"check:host.oom_kills": "OOM_KILLS"}, ts=5.0)
    ro = c.update(HOST, "storage.readonly", {"check:storage.readonly[/srv]": "FS_REMOUNTED_RO"}, ts=5.0)
    assert [(x.series, x.results, x.reason) for x in oom + ro] == [
        ("check:host.oom_kills", 1, "conclusive key OOM_KILLS"),
        ("check:storage.readonly[/srv]", 1, "conclusive key FS_REMOUNTED_RO"),
    ]
    assert len(c) == 0


def test_conclusive_keys_are_real_check_keys() -> None:
    """The defaults name keys that checks really emit (a renamed key would silently stop confirming)."""
    from checks.registry import all_checks

    keys = {key for check in all_checks().values() for key in check.keys}
    assert set(ConfirmConfig().immediate_keys) <= keys


def test_per_check_rule_overrides_the_default() -> None:
    cfg = ConfirmConfig.model_validate({"checks": {NAGIOS: {"attempts": 1}}, "attempts": 5})
    c = CheckConfirmer(cfg)
    assert [x.reason for x in run(c, [(0.0, CRIT)])] == ["1 consecutive CRIT results"]
    other = [c.update(HOST, "host.cpu", {"check:host.cpu": "CPU_BUSY"}, ts=t) for t in (0.0, 2.0, 4.0, 6.0)]
    assert other == [[], [], [], []]  # 5 attempts, and 6 s is below the 120 s minimum


def test_unknown_settings_are_refused() -> None:
    with pytest.raises(ValidationError, match="atempts"):
        ConfirmConfig.model_validate({"checks": {NAGIOS: {"atempts": 2}}})
    with pytest.raises(ValidationError):
        ConfirmConfig.model_validate({"attempts": 0})


def test_state_round_trip_continues_the_streak() -> None:
    c = CheckConfirmer()
    run(c, [(0.0, CRIT), (2.0, CRIT)])
    saved = json.loads(json.dumps(c.to_state()))
    restored = CheckConfirmer()
    restored.load_state(saved)
    assert restored.pending(HOST, NAGIOS)
    assert run(restored, [(4.0, CRIT)]) == [Confirmed(DB, 0.0, 3, "3 consecutive CRIT results")]


@pytest.mark.parametrize(
    "row", [["a", "b", "c"], ["a", "b", "c", "d", "nan", 1], ["a", "b", "c", "d", 1.0, 0]]
)
def test_malformed_state_is_a_clear_error(row: list[object]) -> None:
    with pytest.raises(ValueError, match="soft check state row"):
        CheckConfirmer().load_state([row])


def test_a_clock_going_backwards_starts_a_new_streak() -> None:
    assert run(CheckConfirmer(), [(100.0, CRIT), (50.0, CRIT), (52.0, CRIT)]) == []
