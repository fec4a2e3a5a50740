"""platform.failed_units: systemd units in the ``failed`` state.

One ``systemctl list-units --failed --plain --no-legend`` call. Skipped when the host
was not booted with systemd.

Sample output (some systemd versions print a ``●`` bullet first)::

    ● logrotate.service loaded failed failed Rotate log files
    mdmonitor.service   loaded failed failed Software RAID monitoring and management

Sample of what :func:`collect_failed_units` returns::

    FailedSection(units=('logrotate.service', 'mdmonitor.service'))
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase

from pydantic import Field

from checks.api import (
    Check,
    CheckParams,
    Direction,
    Layer,
    Levels,
    Metric,
    MetricSpec,
    Result,
    Unit,
    ValueStore,
    check_levels,
)
from checks.platform._common import require_systemd
from checks.probe import Probe

ARGV = ("systemctl", "list-units", "--failed", "--plain", "--no-legend", "--no-pager")
_BULLETS = frozenset({"\u25cf", "*", "\u00d7"})  # bullet, star, cross: unit state marks


@dataclass(frozen=True, slots=True)
class FailedSection:
    units: tuple[str, ...]


class FailedParams(CheckParams):
    levels_count: Levels = (1, 5)
    """(warn, crit) for the number of failed units (after ``ignore``)."""
    ignore: list[str] = Field(default_factory=list)
    """Unit name globs not to count (``["user@*.service"]``)."""
    timeout_s: float = Field(default=10.0, gt=0)
    """Kill ``systemctl`` after this long."""


def parse_failed_units(text: str) -> tuple[str, ...]:
    """Unit names from ``systemctl list-units --plain --no-legend`` output.

    >>> parse_failed_units("● a.service loaded failed failed A\\nb.timer loaded failed failed B b\\n")
    ('a.service', 'b.timer')
    """
    units = []
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] in _BULLETS:
            fields = fields[1:]
        if not fields:
            continue
        if len(fields) < 4 or "." not in fields[0]:
            raise ValueError(f"systemctl list-units: expected 'unit load active sub ...', got {line!r}")
        units.append(fields[0])
    return tuple(units)


def collect_failed_units(probe: Probe, params: FailedParams) -> FailedSection:
    require_systemd(probe)
    result = probe.run(ARGV, timeout_s=params.timeout_s)
    if result.returncode != 0:
        raise RuntimeError(f"systemctl list-units exited {result.returncode}: {result.stderr.strip()[:200]}")
    return FailedSection(parse_failed_units(result.stdout))


def evaluate_failed_units(
    params: FailedParams, section: FailedSection, store: ValueStore
) -> Iterator[Result | Metric]:
    failed = [u for u in section.units if not any(fnmatchcase(u, pattern) for pattern in params.ignore)]
    yield Metric("platform_systemd_failed_units_count", len(failed), Unit.COUNT)
    result = check_levels(
        len(failed),
        key="SYSTEMD_FAILED_UNITS",
        label="Failed units",
        levels_upper=params.levels_count,
        render=lambda v: f"{v:.0f}",
    )
    if failed:
        shown = ", ".join(failed[:10]) + (f" and {len(failed) - 10} more" if len(failed) > 10 else "")
        result = Result(result.severity, result.key, f"{result.summary}: {shown}", details="\n".join(failed))
    yield result


FAILED_UNITS = Check(
    name="platform.failed_units",
    layer=Layer.PLATFORM,
    summary="Failed systemd units",
    collect=collect_failed_units,
    evaluate=evaluate_failed_units,
    params=FailedParams,
    keys=("SYSTEMD_FAILED_UNITS",),
    metrics=(
        MetricSpec(
            "platform_systemd_failed_units_count",
            Unit.COUNT,
            "Failed systemd units (ignored ones excluded)",
            Direction.UP_IS_BAD,
        ),
    ),
    interval_s=60,
    timeout_s=15,
    blocking=True,
)
