"""host.clock: is the kernel clock synchronised, and how far off is it?

Asks the kernel through ``adjtimex(2)`` with ``modes = 0`` (read-only, allowed without
privileges, works in containers): whichever NTP daemon disciplines the clock (chrony,
ntpd, systemd-timesyncd) reports to the kernel, so this needs no daemon-specific
command. The call returns ``TIME_ERROR`` (5) while the clock is unsynchronised
(``STA_UNSYNC``), which is CLOCK_UNSYNCHRONIZED. ``offset`` is the remaining phase
offset being slewed away (µs, or ns when ``STA_NANO`` is set) and ``maxerror`` /
``esterror`` the kernel's maximum and estimated error bounds (µs).

This is the one host check that does not read files, so fixture probes cannot fake
it: tests feed :func:`evaluate_clock` sections and call the real ``adjtimex`` once.

Sample of what :func:`collect_clock` returns (an unsynchronised VM)::

    ClockSection(state=5, status=64, offset_s=0.0, max_error_s=16.0, est_error_s=16.0)
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from checks.api import (
    Check,
    CheckParams,
    Direction,
    Layer,
    Levels,
    Metric,
    MetricSpec,
    Result,
    Severity,
    Unit,
    ValueStore,
    check_levels,
    render_seconds,
)
from checks.probe import Probe

TIME_ERROR = 5
STA_UNSYNC = 0x0040
STA_NANO = 0x2000
_STATES = {0: "TIME_OK", 1: "TIME_INS", 2: "TIME_DEL", 3: "TIME_OOP", 4: "TIME_WAIT", 5: "TIME_ERROR"}


@dataclass(frozen=True, slots=True)
class ClockSection:
    state: int
    """Return value of adjtimex: TIME_OK (0) ... TIME_ERROR (5)."""
    status: int
    """The ``STA_*`` status bits."""
    offset_s: float
    max_error_s: float
    est_error_s: float

    @property
    def synchronized(self) -> bool:
        return self.state != TIME_ERROR and not self.status & STA_UNSYNC


class ClockParams(CheckParams):
    levels_offset_s: Levels = (0.2, 0.5)
    """(warn, crit) absolute clock offset in seconds, while synchronised."""


@functools.cache
def _adjtimex() -> Callable[[], tuple[int, int, int, int, int]]:
    """Build the ``struct timex`` binding on first use (ctypes costs 0.3 MB: only load it here)."""
    import ctypes

    class Timeval(ctypes.Structure):
        _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]

    class Timex(ctypes.Structure):
        """``struct timex`` from <sys/timex.h> (Linux, glibc and musl); ctypes adds the C padding."""

        _fields_ = [
            ("modes", ctypes.c_uint),
            ("offset", ctypes.c_long),
            ("freq", ctypes.c_long),
            ("maxerror", ctypes.c_long),
            ("esterror", ctypes.c_long),
            ("status", ctypes.c_int),
            ("constant", ctypes.c_long),
            ("precision", ctypes.c_long),
            ("tolerance", ctypes.c_long),
            ("time", Timeval),
            ("tick", ctypes.c_long),
            ("ppsfreq", ctypes.c_long),
            ("jitter", ctypes.c_long),
            ("shift", ctypes.c_int),
            ("stabil", ctypes.c_long),
            ("jitcnt", ctypes.c_long),
            ("calcnt", ctypes.c_long),
            ("errcnt", ctypes.c_long),
            ("stbcnt", ctypes.c_long),
            ("tai", ctypes.c_int),
            ("reserved", ctypes.c_int * 11),
        ]

    libc = ctypes.CDLL(None, use_errno=True)  # the C library Python already loaded
    function = libc.adjtimex
    function.argtypes = [ctypes.POINTER(Timex)]
    function.restype = ctypes.c_int

    def call() -> tuple[int, int, int, int, int]:
        timex = Timex()  # zeroed: modes = 0 only reads, allowed without privileges
        state = function(ctypes.byref(timex))
        if state < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"adjtimex(2) failed: {os.strerror(err)}")
        return state, timex.status, timex.offset, timex.maxerror, timex.esterror

    return call


def collect_clock(probe: Probe, params: ClockParams) -> ClockSection:
    state, status, offset, maxerror, esterror = _adjtimex()()
    scale = 1e-9 if status & STA_NANO else 1e-6
    return ClockSection(
        state=state,
        status=status,
        offset_s=offset * scale,
        max_error_s=maxerror * 1e-6,
        est_error_s=esterror * 1e-6,
    )


def evaluate_clock(
    params: ClockParams, section: ClockSection, store: ValueStore
) -> Iterator[Result | Metric]:
    synced = section.synchronized
    if not synced:
        yield Result(
            Severity.WARN,
            "CLOCK_UNSYNCHRONIZED",
            f"Clock not synchronised ({_STATES.get(section.state, section.state)}, "
            f"max error {render_seconds(section.max_error_s)}): no time daemon has synchronised it",
        )
    else:
        result = check_levels(
            abs(section.offset_s),
            key="CLOCK_OFFSET_HIGH",
            label="Clock synchronised, offset",
            levels_upper=params.levels_offset_s,
            render=render_seconds,
        )
        yield Result(
            result.severity,
            result.key,
            f"{result.summary}; estimated error {render_seconds(section.est_error_s)}",
        )
    yield Metric("host_clock_offset_seconds", section.offset_s, Unit.SECONDS)
    yield Metric("host_clock_max_error_seconds", section.max_error_s, Unit.SECONDS)
    yield Metric("host_clock_estimated_error_seconds", section.est_error_s, Unit.SECONDS)
    yield Metric("host_clock_synchronized_boolean", 1.0 if synced else 0.0, Unit.BOOLEAN)


CLOCK = Check(
    name="host.clock",
    layer=Layer.HOST,
    summary="Clock synchronisation state, offset and error bound from adjtimex(2)",
    collect=collect_clock,
    evaluate=evaluate_clock,
    params=ClockParams,
    keys=("CLOCK_UNSYNCHRONIZED", "CLOCK_OFFSET_HIGH"),
    metrics=(
        MetricSpec(
            "host_clock_offset_seconds",
            Unit.SECONDS,
            "Clock offset the kernel is still correcting",
            Direction.BOTH_BAD,
        ),
        MetricSpec(
            "host_clock_max_error_seconds",
            Unit.SECONDS,
            "Kernel's maximum error bound of the clock",
            Direction.UP_IS_BAD,
        ),
        MetricSpec(
            "host_clock_estimated_error_seconds",
            Unit.SECONDS,
            "Kernel's estimated error of the clock",
            Direction.UP_IS_BAD,
        ),
        MetricSpec(
            "host_clock_synchronized_boolean",
            Unit.BOOLEAN,
            "Whether the clock is synchronised (1) or not (0)",
            Direction.DOWN_IS_BAD,
        ),
    ),
    interval_s=300,
    timeout_s=5,
)
