"""The whole severity order and ``Severity.worst`` (checks/api.py).

Everything downstream leans on this order: a host's worst result, an inspection
layer's state, whether an incident is severe enough to open a case. UNKNOWN ranks
between WARN and CRIT (Checkmk's order): a check that could not tell must not hide a
CRIT, and must not look as bad as one (an UNKNOWN-only incident opens no case).
"""

from __future__ import annotations

import itertools

import pytest

from checks.api import Severity

ORDER = [Severity.OK, Severity.WARN, Severity.UNKNOWN, Severity.CRIT]
"""Least to most severe."""


def test_every_severity_is_ranked_in_this_order() -> None:
    assert set(ORDER) == set(Severity)
    assert sorted(Severity, key=lambda s: s.rank) == ORDER
    assert [s.rank for s in ORDER] == sorted({s.rank for s in ORDER})  # strictly increasing


@pytest.mark.parametrize(
    ("a", "b"),
    list(itertools.product(ORDER, repeat=2)),
    ids=lambda s: s.value if isinstance(s, Severity) else "",
)
def test_worst_of_every_pair(a: Severity, b: Severity) -> None:
    expected = ORDER[max(ORDER.index(a), ORDER.index(b))]
    assert Severity.worst(a, b) is expected
    assert Severity.worst(b, a) is expected


def test_worst_of_more_and_of_none() -> None:
    assert Severity.worst() is Severity.OK
    for n in range(1, len(ORDER) + 1):
        for combo in itertools.permutations(ORDER, n):
            assert Severity.worst(*combo) is max(combo, key=ORDER.index)
    assert Severity.worst(Severity.CRIT, Severity.UNKNOWN) is Severity.CRIT
    assert Severity.worst(Severity.UNKNOWN, Severity.WARN, Severity.OK) is Severity.UNKNOWN


def test_nagios_codes_are_the_plugin_api_not_the_rank() -> None:
    assert {s: s.nagios_code for s in Severity} == {
        Severity.OK: 0,
        Severity.WARN: 1,
        Severity.CRIT: 2,
        Severity.UNKNOWN: 3,
    }
