from __future__ import annotations

import pytest

from checks.api import Metric, Result, Severity, Unit
from checks.host.clock import ClockParams, ClockSection, collect_clock, evaluate_clock
from checks.probe import Probe


def test_real_adjtimex_works_unprivileged_read():
    # The real system call (read-only modes = 0): works in containers and VMs.
    section = collect_clock(Probe(), ClockParams())
    assert 0 <= section.state <= 5
    assert 0 <= section.max_error_s <= 16.0 + 1e-6  # the kernel caps maxerror at NTP_PHASE_LIMIT (16 s)
    assert section.synchronized == (section.state != 5 and not section.status & 0x40)
    out = list(evaluate_clock(ClockParams(), section, {}))
    assert {m.name for m in out if isinstance(m, Metric)} == {
        "host_clock_offset_seconds",
        "host_clock_max_error_seconds",
        "host_clock_estimated_error_seconds",
        "host_clock_synchronized_boolean",
    }


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        pytest.param(
            ClockSection(state=5, status=0x40, offset_s=0.0, max_error_s=16.0, est_error_s=16.0),
            Result(
                Severity.WARN,
                "CLOCK_UNSYNCHRONIZED",
                "Clock not synchronised (TIME_ERROR, max error 16.0 s): no time daemon has synchronised it",
            ),
            id="unsynchronised VM",
        ),
        pytest.param(
            ClockSection(state=0, status=0x2001, offset_s=-0.000012, max_error_s=0.012, est_error_s=0.0004),
            Result(Severity.OK, "OK", "Clock synchronised, offset: 12 µs; estimated error 400 µs"),
            id="chrony in sync",
        ),
        pytest.param(
            ClockSection(state=0, status=0x1, offset_s=-0.3, max_error_s=0.5, est_error_s=0.1),
            Result(
                Severity.WARN,
                "CLOCK_OFFSET_HIGH",
                "Clock synchronised, offset: 300.0 ms (warn/crit at 200.0 ms/500.0 ms); "
                "estimated error 100.0 ms",
            ),
            id="offset 300 ms behind",
        ),
        pytest.param(
            ClockSection(state=1, status=0x11, offset_s=0.8, max_error_s=1.0, est_error_s=0.2),
            Result(
                Severity.CRIT,
                "CLOCK_OFFSET_HIGH",
                "Clock synchronised, offset: 800.0 ms (warn/crit at 200.0 ms/500.0 ms); "
                "estimated error 200.0 ms",
            ),
            id="offset 800 ms during leap second insert",
        ),
    ],
)
def test_evaluate(section, expected):
    out = list(evaluate_clock(ClockParams(), section, {}))
    assert [r for r in out if isinstance(r, Result)] == [expected]
    assert (
        Metric("host_clock_synchronized_boolean", float(expected.key != "CLOCK_UNSYNCHRONIZED"), Unit.BOOLEAN)
        in out
    )
    assert Metric("host_clock_offset_seconds", section.offset_s, Unit.SECONDS) in out
