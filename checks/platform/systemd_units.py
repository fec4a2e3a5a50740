"""platform.systemd_units: configured systemd units are active and not crash-looping.

One ``systemctl show --property=... <units>`` call covers every configured unit; its
output has one block per unit, in the order asked, blocks separated by a blank line.
``NRestarts`` counts automatic restarts (``Restart=`` after a crash); growth since the
previous run warns. The unit's uptime (``/proc/uptime`` minus
``ExecMainStartTimestampMonotonic``) is a metric, so a manual restart shows as a change
too. Skipped when no units are configured or the host was not booted with systemd.

Sample ``systemctl show`` output for one unit (systemd 252)::

    Id=postgresql@15-main.service
    NRestarts=0
    ExecMainStartTimestampMonotonic=5081234567
    LoadState=loaded
    ActiveState=active
    SubState=running

Sample of what :func:`collect_systemd_units` returns::

    UnitsSection(uptime_s=90211.5, units=(
        UnitState(name='postgresql@15-main', id='postgresql@15-main.service', load_state='loaded',
                  active_state='active', sub_state='running', restarts=0, main_start_us=5081234567),
    ))
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from pydantic import Field

from checks.api import (
    Check,
    CheckParams,
    Direction,
    Layer,
    Metric,
    MetricSpec,
    Result,
    Severity,
    SkipCheck,
    Unit,
    ValueStore,
    get_delta,
)
from checks.platform._common import require_systemd
from checks.probe import Probe

PROPERTIES = ("Id", "ActiveState", "SubState", "LoadState", "NRestarts", "ExecMainStartTimestampMonotonic")
HEALTHY_STATES = frozenset({"active", "reloading"})


@dataclass(frozen=True, slots=True)
class UnitState:
    name: str
    """The name as configured (an alias resolves to another ``id``)."""
    id: str
    load_state: str
    active_state: str
    sub_state: str
    restarts: int | None
    """None on systemd older than 235 (no NRestarts property)."""
    main_start_us: int
    """Start of the main process in µs of CLOCK_MONOTONIC (0 when not running)."""


@dataclass(frozen=True, slots=True)
class UnitsSection:
    uptime_s: float | None
    units: tuple[UnitState, ...]


class UnitsParams(CheckParams):
    units: list[str] = Field(default_factory=list)
    """Units that must be active (``nginx.service``, ``postgresql@15-main``; no suffix means .service)."""
    timeout_s: float = Field(default=10.0, gt=0)
    """Kill ``systemctl show`` after this long (a stuck D-Bus makes it hang)."""


def parse_show_output(text: str, names: Sequence[str]) -> tuple[UnitState, ...]:
    """Parse ``systemctl show`` blocks, one per name in ``names`` (same order).

    >>> parse_show_output("Id=a.service\\nLoadState=loaded\\nActiveState=failed\\nSubState=failed\\n", ["a"])
    (UnitState(name='a', id='a.service', load_state='loaded', active_state='failed', sub_state='failed', \
restarts=None, main_start_us=0),)
    """
    blocks = [block for block in text.strip().split("\n\n") if block.strip()]
    if len(blocks) != len(names):
        raise ValueError(
            f"systemctl show: expected {len(names)} unit blocks, got {len(blocks)}: {text[:200]!r}"
        )
    units = []
    for name, block in zip(names, blocks, strict=True):
        props = dict(line.partition("=")[::2] for line in block.splitlines() if "=" in line)
        missing = [p for p in ("Id", "LoadState", "ActiveState", "SubState") if not props.get(p)]
        if missing:
            raise ValueError(f"systemctl show: {name}: no {', '.join(missing)} in {block[:200]!r}")
        try:
            restarts = int(props["NRestarts"]) if props.get("NRestarts") else None
            start = int(props.get("ExecMainStartTimestampMonotonic") or 0)
        except ValueError:
            raise ValueError(f"systemctl show: {name}: non-numeric counter in {block[:200]!r}") from None
        units.append(
            UnitState(
                name,
                props["Id"],
                props["LoadState"],
                props["ActiveState"],
                props["SubState"],
                restarts,
                start,
            )
        )
    return tuple(units)


def read_uptime(probe: Probe) -> float | None:
    try:
        return float(probe.read_text("/proc/uptime").split()[0])
    except (OSError, IndexError, ValueError):
        return None  # only the uptime metric needs it; the unit states stand without it


def collect_systemd_units(probe: Probe, params: UnitsParams) -> UnitsSection:
    if not params.units:
        raise SkipCheck("no units configured (params.units)")
    require_systemd(probe)
    argv = ["systemctl", "show", "--no-pager", f"--property={','.join(PROPERTIES)}", "--", *params.units]
    result = probe.run(argv, timeout_s=params.timeout_s)
    if result.returncode != 0:
        raise RuntimeError(f"systemctl show exited {result.returncode}: {result.stderr.strip()[:200]}")
    return UnitsSection(read_uptime(probe), parse_show_output(result.stdout, params.units))


def evaluate_systemd_units(
    params: UnitsParams, section: UnitsSection, store: ValueStore
) -> Iterator[Result | Metric]:
    current = {f"r:{unit.name}" for unit in section.units}
    for key in [k for k in store if k.startswith("r:") and k not in current]:
        del store[key]  # unit no longer configured
    for unit in section.units:
        labels = {"unit": unit.name}
        active = unit.active_state in HEALTHY_STATES
        yield Metric("platform_unit_active_boolean", 1 if active else 0, Unit.BOOLEAN, labels)
        grew = None
        if unit.restarts is not None:
            yield Metric("platform_unit_restarts_count", unit.restarts, Unit.COUNT, labels)
            grew = get_delta(store, f"r:{unit.name}", unit.restarts)
        if active and unit.main_start_us > 0 and section.uptime_s is not None:
            uptime = max(0.0, section.uptime_s - unit.main_start_us / 1e6)
            yield Metric("platform_unit_uptime_seconds", uptime, Unit.SECONDS, labels)
        state = f"{unit.active_state} ({unit.sub_state})"
        if unit.load_state == "not-found":
            yield Result(Severity.CRIT, "UNIT_NOT_FOUND", f"Unit {unit.id} does not exist", unit.name)
        elif not active:
            yield Result(
                Severity.CRIT,
                "UNIT_NOT_ACTIVE",
                f"Unit {unit.id} is {state}, load state {unit.load_state}",
                unit.name,
            )
        elif grew:
            yield Result(
                Severity.WARN,
                "UNIT_RESTARTED",
                f"Unit {unit.id} was restarted {grew:.0f} time(s) by systemd since the last run; now {state}",
                unit.name,
            )
        else:
            yield Result(Severity.OK, "OK", f"Unit {unit.id} is {state}", unit.name)


SYSTEMD_UNITS = Check(
    name="platform.systemd_units",
    layer=Layer.PLATFORM,
    summary="Configured systemd units are active and not restarting",
    collect=collect_systemd_units,
    evaluate=evaluate_systemd_units,
    params=UnitsParams,
    keys=("UNIT_NOT_ACTIVE", "UNIT_NOT_FOUND", "UNIT_RESTARTED"),
    metrics=(
        MetricSpec(
            "platform_unit_active_boolean",
            Unit.BOOLEAN,
            "1 when the unit is active (or reloading)",
            Direction.DOWN_IS_BAD,
            labels=("unit",),
        ),
        MetricSpec(
            "platform_unit_restarts_count",
            Unit.COUNT,
            "Automatic restarts by systemd (NRestarts)",
            Direction.UP_IS_BAD,
            labels=("unit",),
        ),
        MetricSpec(
            "platform_unit_uptime_seconds",
            Unit.SECONDS,
            "Time since the unit's main process started; drops on every restart",
            labels=("unit",),
        ),
    ),
    interval_s=60,
    timeout_s=15,
    blocking=True,
)
