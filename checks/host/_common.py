"""What the host checks share: parsed ``/proc/stat``, ``/proc/meminfo``, ``/proc/vmstat`` and PSI.

Each file is read and parsed at most once per cycle (memoised on the probe under the
keys ``host.proc_stat``, ``host.meminfo``, ``host.vmstat`` and ``host.psi.<resource>``), so
``host.cpu`` and ``host.cpu_cores`` share one read of ``/proc/stat``, ``host.memory``,
``host.swap`` and ``host.top_consumers`` one of ``/proc/meminfo``, and so on.

A garbled file raises :class:`ValueError` naming the file (the agent turns it into an
UNKNOWN result); nothing here swallows an error.

>>> stat = parse_proc_stat(
...     "cpu  10 0 5 80 5 0 0 0 0 0\\ncpu0 10 0 5 80 5 0 0 0 0 0\\n"
...     "intr 900 1 2\\nctxt 4000\\nbtime 1700000000\\nprocs_running 2\\nprocs_blocked 1\\n")
>>> stat.total, stat.cores, stat.ctxt, stat.procs_blocked
((10, 0, 5, 80, 5, 0, 0, 0), {'cpu0': (10, 0, 5, 80, 5, 0, 0, 0)}, 4000, 1)
>>> cpu_percentages((10, 0, 5, 80, 5, 0, 0, 0), (40, 0, 15, 130, 15, 0, 0, 0))["busy"]
40.0
>>> parse_meminfo("MemTotal: 100 kB\\nHugePages_Total: 4\\n")
{'MemTotal': 102400, 'HugePages_Total': 4}
>>> parse_pressure("some avg10=1.50 avg60=0.80 avg300=0.10 total=123\\n", "/proc/pressure/io")
{'some': {'avg10': 1.5, 'avg60': 0.8, 'avg300': 0.1, 'total': 123.0}}
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from dataclasses import dataclass

from checks.probe import Probe

__all__ = [
    "CPU_FIELDS",
    "ProcStat",
    "cpu_percentages",
    "parse_key_value_counters",
    "parse_meminfo",
    "parse_pressure",
    "parse_proc_stat",
    "read_meminfo",
    "read_pressure",
    "read_proc_stat",
    "read_vmstat",
]

CPU_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
"""The first eight columns of a ``cpu`` line of ``/proc/stat`` (guest time is inside user/nice)."""


@dataclass(frozen=True, slots=True)
class ProcStat:
    """The parts of ``/proc/stat`` the host checks use; CPU times are in clock ticks."""

    total: tuple[int, ...]
    cores: dict[str, tuple[int, ...]]
    ctxt: int
    intr: int
    btime: int
    procs_running: int
    procs_blocked: int


def parse_proc_stat(text: str, path: str = "/proc/stat") -> ProcStat:
    """Parse ``/proc/stat``; raise ValueError naming ``path`` when a needed line is missing or bad."""
    total: tuple[int, ...] | None = None
    cores: dict[str, tuple[int, ...]] = {}
    scalars: dict[str, int] = {}
    try:
        for line in text.splitlines():
            if line.startswith("cpu"):
                name, _, rest = line.partition(" ")
                values = tuple(int(v) for v in rest.split()[:8])
                if len(values) < 8:
                    raise ValueError(f"{name!r} line has {len(values)} of 8 time columns")
                if name == "cpu":
                    total = values
                else:
                    cores[name] = values
            elif line.startswith(("intr ", "ctxt ", "btime ", "procs_running ", "procs_blocked ")):
                # The intr line carries one counter per IRQ after the total: only split off the total.
                key, value = line.split(" ", 2)[:2]
                scalars[key] = int(value)
    except ValueError as exc:
        raise ValueError(f"{path}: cannot parse: {exc}") from None
    missing = [k for k in ("intr", "ctxt", "btime", "procs_running", "procs_blocked") if k not in scalars]
    if total is None:
        missing.insert(0, "cpu")
    if missing:
        raise ValueError(f"{path}: missing line(s) {', '.join(missing)} (truncated or not /proc/stat?)")
    assert total is not None  # for mypy: checked through `missing` above
    return ProcStat(
        total=total,
        cores=cores,
        ctxt=scalars["ctxt"],
        intr=scalars["intr"],
        btime=scalars["btime"],
        procs_running=scalars["procs_running"],
        procs_blocked=scalars["procs_blocked"],
    )


def read_proc_stat(probe: Probe) -> ProcStat:
    """``/proc/stat`` parsed once per cycle (host.cpu and host.cpu_cores share it)."""
    return probe.memo("host.proc_stat", lambda: parse_proc_stat(probe.read_text("/proc/stat")))


def cpu_percentages(old: Sequence[int], new: Sequence[int]) -> dict[str, float] | None:
    """Percent of CPU time per mode between two readings of a ``cpu`` line.

    Keys: user, nice, system, idle, iowait, irq (hard + soft), steal, and busy
    (everything but idle and iowait). None when a counter went backwards (reboot,
    CPU hot-plug) or no time passed, so the caller stores the reading and waits.
    """
    if len(old) < 8 or len(new) < 8:
        return None
    deltas = [n - o for n, o in zip(new[:8], old[:8], strict=True)]
    if min(deltas) < 0:
        return None
    elapsed = sum(deltas)
    if elapsed <= 0:
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (100.0 * d / elapsed for d in deltas)
    return {
        "user": user,
        "nice": nice,
        "system": system,
        "idle": idle,
        "iowait": iowait,
        "irq": irq + softirq,
        "steal": steal,
        "busy": max(0.0, 100.0 - idle - iowait),
    }


def parse_key_value_counters(text: str, path: str) -> dict[str, int]:
    """Parse ``name value`` lines (``/proc/vmstat``); ValueError names ``path`` when garbled.

    >>> parse_key_value_counters("pswpin 3\\noom_kill 1\\n", "/proc/vmstat")
    {'pswpin': 3, 'oom_kill': 1}
    """
    out: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        name, _, value = line.partition(" ")
        try:
            out[name] = int(value)
        except ValueError:
            raise ValueError(f"{path}: line {number} is not 'name value': {line[:80]!r}") from None
    if not out:
        raise ValueError(f"{path}: empty file")
    return out


def read_vmstat(probe: Probe) -> dict[str, int]:
    """``/proc/vmstat`` parsed once per cycle (host.swap and host.oom_kills share it)."""
    return probe.memo(
        "host.vmstat", lambda: parse_key_value_counters(probe.read_text("/proc/vmstat"), "/proc/vmstat")
    )


def parse_meminfo(text: str, path: str = "/proc/meminfo") -> dict[str, int]:
    """``/proc/meminfo`` as bytes (``kB`` values times 1024; unit-less ``HugePages_*`` stay counts)."""
    out: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        name, sep, rest = line.partition(":")
        fields = rest.split()
        if not sep or not fields or len(fields) > 2:
            raise ValueError(f"{path}: line {number} is not 'Name: value [kB]': {line[:80]!r}")
        try:
            value = int(fields[0])
        except ValueError:
            raise ValueError(f"{path}: line {number} has a non-numeric value: {line[:80]!r}") from None
        out[name] = value * 1024 if len(fields) == 2 else value
    if "MemTotal" not in out:
        raise ValueError(f"{path}: no MemTotal line (empty or truncated file)")
    return out


def read_meminfo(probe: Probe) -> dict[str, int]:
    """``/proc/meminfo`` parsed once per cycle (memory, swap and top_consumers share it)."""
    return probe.memo("host.meminfo", lambda: parse_meminfo(probe.read_text("/proc/meminfo")))


def parse_pressure(text: str, path: str) -> dict[str, dict[str, float]]:
    """One ``/proc/pressure/<resource>`` file: ``{"some": {"avg10": ..., ...}, "full": {...}}``."""
    out: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        try:
            values = {k: float(v) for k, _, v in (f.partition("=") for f in rest.split())}
        except ValueError:
            raise ValueError(f"{path}: cannot parse line {line[:80]!r}") from None
        if kind not in ("some", "full") or not {"avg10", "avg60", "avg300"} <= values.keys():
            raise ValueError(f"{path}: expected 'some|full avg10=.. avg60=.. avg300=..', got {line[:80]!r}")
        out[kind] = values
    if "some" not in out:
        raise ValueError(f"{path}: no 'some' line (empty or truncated file)")
    return out


def read_pressure(probe: Probe, resource: str) -> dict[str, dict[str, float]] | None:
    """PSI of ``resource`` (cpu, io, memory) once per cycle; None when the kernel lacks it.

    None covers a missing file (kernel without CONFIG_PSI, or older than 4.20) and a
    kernel booted with ``psi=0``, whose files exist but refuse reads with EOPNOTSUPP.
    """
    path = f"/proc/pressure/{resource}"

    def read() -> dict[str, dict[str, float]] | None:
        try:
            text = probe.read_text(path)
        except FileNotFoundError:
            return None  # no PSI in this kernel: callers skip or omit the pressure part
        except OSError as exc:
            if exc.errno == errno.EOPNOTSUPP:
                return None  # psi=0 on the kernel command line: same as absent
            raise
        return parse_pressure(text, path)

    return probe.memo(f"host.psi.{resource}", read)
