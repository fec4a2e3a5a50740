"""host.uptime: time since boot, and reboots noticed between two runs.

A reboot is detected by ``/proc/sys/kernel/random/boot_id`` (a random UUID the kernel
draws at every boot) differing from the one in the store. The first run after a
reboot reports it once, naming when the previous boot was last seen and when the
new one started; the run after that is OK again.

How bad a reboot is depends on whether the agent was stopped cleanly before it. The
store holds a ``clean_shutdown`` flag for that:

* the agent sets ``clean_shutdown = True`` in this check's store when it stops
  cleanly (service stop, shutdown);
* every run of this check sets it back to False once it exists (the agent is running
  again, so the next reboot is unplanned until the agent says otherwise).

On a new boot id:

* flag True: a planned stop came first: WARN HOST_REBOOTED;
* flag False and the previous boot was last seen at most ``max_gap_s`` before the
  new boot started: the host died under a running agent: CRIT HOST_REBOOTED_UNEXPECTEDLY;
* anything else (no flag because the agent does not set it, or the agent had been
  silent for longer than ``max_gap_s``): the cause is unknown: WARN HOST_REBOOTED.

Sample of what :func:`collect_uptime` returns::

    UptimeSection(now=1700000000.0, uptime_s=486.66, boot_id='84d5cd65-dd0a-4123-ae3e-f8303ab231ba')
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from pydantic import Field

from checks.api import (
    Check,
    CheckParams,
    Layer,
    Metric,
    MetricSpec,
    Result,
    Severity,
    Unit,
    ValueStore,
    render_seconds,
)
from checks.probe import Probe

BOOT_ID = "/proc/sys/kernel/random/boot_id"


@dataclass(frozen=True, slots=True)
class UptimeSection:
    now: float
    uptime_s: float
    boot_id: str


class UptimeParams(CheckParams):
    max_gap_s: float = Field(default=600.0, gt=0)
    """A reboot whose previous boot was last seen at most this long before the new boot started,
    with the agent not stopped cleanly, is HOST_REBOOTED_UNEXPECTEDLY (CRIT)."""


def collect_uptime(probe: Probe, params: UptimeParams) -> UptimeSection:
    text = probe.read_text("/proc/uptime")
    try:
        uptime_s = float(text.split()[0])
    except (IndexError, ValueError):
        raise ValueError(f"/proc/uptime: expected 'uptime idle', got {text.strip()[:80]!r}") from None
    boot_id = probe.read_text(BOOT_ID).strip()
    if len(boot_id) != 36 or boot_id.count("-") != 4:
        raise ValueError(f"{BOOT_ID}: expected a UUID, got {boot_id[:80]!r}")
    return UptimeSection(now=probe.now(), uptime_s=uptime_s, boot_id=boot_id)


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def evaluate_uptime(
    params: UptimeParams, section: UptimeSection, store: ValueStore
) -> Iterator[Result | Metric]:
    boot_time = section.now - section.uptime_s
    previous_boot = store.get("boot_id")
    last_seen = store.get("last_seen")
    clean = store.get("clean_shutdown")
    up = f"Up {render_seconds(section.uptime_s)} (booted {_when(boot_time)})"
    if previous_boot is None or previous_boot == section.boot_id:
        yield Result(Severity.OK, "OK", up)
    else:
        if isinstance(last_seen, int | float):
            seen = f"; previous boot last seen {_when(last_seen)}"
            gap: float | None = boot_time - last_seen
        else:
            seen, gap = "", None
        if clean is True:
            yield Result(Severity.WARN, "HOST_REBOOTED", f"Rebooted after a clean agent stop: {up}{seen}")
        elif clean is False and gap is not None and gap <= params.max_gap_s:
            yield Result(
                Severity.CRIT,
                "HOST_REBOOTED_UNEXPECTEDLY",
                f"Host went down under a running agent: {up}{seen}, "
                f"{render_seconds(max(gap, 0.0))} before the new boot",
            )
        else:
            yield Result(Severity.WARN, "HOST_REBOOTED", f"Rebooted, cause unknown: {up}{seen}")
    store["boot_id"] = section.boot_id
    store["last_seen"] = section.now
    store["last_uptime"] = section.uptime_s
    if "clean_shutdown" in store:
        store["clean_shutdown"] = False
    yield Metric("host_uptime_seconds", section.uptime_s, Unit.SECONDS)
    yield Metric("host_boot_time_seconds", boot_time, Unit.SECONDS)


UPTIME = Check(
    name="host.uptime",
    layer=Layer.HOST,
    summary="Uptime and reboots between runs (expected or not)",
    collect=collect_uptime,
    evaluate=evaluate_uptime,
    params=UptimeParams,
    keys=("HOST_REBOOTED", "HOST_REBOOTED_UNEXPECTEDLY"),
    metrics=(
        MetricSpec("host_uptime_seconds", Unit.SECONDS, "Seconds since the kernel booted"),
        MetricSpec("host_boot_time_seconds", Unit.SECONDS, "Boot time as a Unix timestamp"),
    ),
    interval_s=60,
    timeout_s=5,
)
