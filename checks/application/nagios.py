"""application.nagios: run Nagios-compatible plugins and map their verdict and perfdata.

The plugin API followed here is the Monitoring Plugins development guidelines
(https://nagios-plugins.org/doc/guidelines.html): exit code 0/1/2/3 means
OK/WARNING/CRITICAL/UNKNOWN; the first line of stdout is the summary, text after its
first ``|`` is performance data; later lines are long output, and once a later line
holds a ``|`` everything after it (that line's rest and all following lines) is more
performance data. Perfdata is ``'label'=value[UOM];[warn];[crit];[min];[max]`` with
optional single quotes around the label (``''`` is a literal quote).

Units (UOM) and where they go, each metric labelled ``plugin`` and ``label``:

=============================  ========================================================
UOM                            metric
=============================  ========================================================
``s``, ``ms``, ``us``          ``app_nagios_perf_seconds`` (converted to seconds)
``%``                          ``app_nagios_perf_percent``
``B``, ``KB``, ``MB``, ...     ``app_nagios_perf_bytes``
``c``                          ``app_nagios_perf_count`` (a continuous counter)
none (or an unknown UOM)       ``app_nagios_perf_value_count`` (a number of things)
=============================  ========================================================

Byte prefixes: the guidelines list ``B`` "also KB, MB, TB" without a base. We scale
``KB``/``MB``/``GB``/``TB``/``PB`` by powers of 1000 (SI), and ``KiB``/``MiB``/... by
powers of 1024, the same normalisation Icinga 2 documents for its metric writers.
(The unit-less metric is ``..._value_count`` rather than ``..._value`` because the
shared metric API requires every name to end with a known unit; the guidelines define
a missing UOM as "a number of things", which is a count.)

Sample of what :func:`collect_nagios` returns::

    NagiosSection(runs=(PluginRun(name='load', argv=('/usr/lib/nagios/plugins/check_load',
        '-w', '5,5,5', '-c', '9,9,9'), returncode=0,
        stdout='LOAD OK - total load average: 0.00, 0.06, 0.04|load1=0.000;5.000;9.000;0; ...\\n',
        stderr='', duration_s=0.004, failure=None, error=None),))

>>> parse_perfdata("'my ''disk'''=12.5MB;80;90;0; load1=0.5 x=U")[0][0]
PerfDatum(label="my 'disk'", value=12500000.0, uom='MB', warn='80', crit='90', min='0', max='')
>>> parse_range("@10:20")
Range(start=10.0, end=20.0, inside=True)
"""

from __future__ import annotations

import errno
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

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
)
from checks.probe import CommandTimeout, Probe

__all__ = [
    "NAGIOS",
    "NagiosParams",
    "NagiosSection",
    "PerfDatum",
    "PluginRun",
    "PluginSpec",
    "Range",
    "collect_nagios",
    "evaluate_nagios",
    "parse_output",
    "parse_perfdata",
    "parse_range",
]

MAX_SUMMARY_CHARS = 512
"""A summary longer than this is cut (a plugin that dumps a file on its first line)."""
MAX_LONG_OUTPUT_CHARS = 4096
"""Long output kept in the result details."""
MAX_PERF_ITEMS = 100
"""Perfdata items kept per plugin run; more would flood the store with series."""

Failure = Literal["not_found", "timeout", "budget"]


class PluginSpec(BaseModel):
    """One plugin to run."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    name: str = Field(min_length=1)
    """Item name of the results and the ``plugin`` label of the metrics."""
    command: tuple[str, ...] = Field(min_length=1)
    """argv, run without a shell (``["/usr/lib/nagios/plugins/check_load", "-w", "5,5,5"]``)."""
    timeout_s: float = Field(default=10.0, gt=0)
    """The plugin's process group is killed after this many seconds."""
    env: dict[str, str] = Field(default_factory=dict)
    """Extra environment variables for the plugin (LC_ALL=C is set unless given)."""

    @field_validator("command")
    @classmethod
    def _no_nul(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any("\0" in arg for arg in value) or not value[0]:
            raise ValueError("command arguments must be non-empty at [0] and hold no NUL bytes")
        return value


class NagiosParams(CheckParams):
    plugins: tuple[PluginSpec, ...] = ()
    """Plugins to run, sequentially, in this order."""
    budget_s: float = Field(default=50.0, gt=0)
    """Total seconds all plugins may take; keep it below the check's timeout. A plugin
    that would start after the budget is spent is reported as not run."""


@dataclass(frozen=True, slots=True)
class PluginRun:
    """What one plugin run produced. ``failure`` is set when it produced no verdict."""

    name: str
    argv: tuple[str, ...]
    returncode: int | None
    stdout: str
    stderr: str
    duration_s: float
    failure: Failure | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class NagiosSection:
    runs: tuple[PluginRun, ...]


@dataclass(frozen=True, slots=True)
class PerfDatum:
    """One perfdata item; ``value`` is already scaled to the base unit of ``uom``."""

    label: str
    value: float
    uom: str
    warn: str = ""
    crit: str = ""
    min: str = ""
    max: str = ""


@dataclass(frozen=True, slots=True)
class Range:
    """A threshold range: alert when the value is outside [start, end] (inside if ``inside``)."""

    start: float
    end: float
    inside: bool = False

    def alerts(self, value: float) -> bool:
        """True when ``value`` breaches this range.

        >>> parse_range("10").alerts(11), parse_range("10").alerts(-1), parse_range("10").alerts(5)
        (True, True, False)
        """
        within = self.start <= value <= self.end
        return within if self.inside else not within


@dataclass(frozen=True, slots=True)
class ParsedOutput:
    summary: str
    long_output: str
    perf: tuple[PerfDatum, ...]
    perf_errors: tuple[str, ...]


# --- perfdata parsing ------------------------------------------------------------------

_PERF_ITEM_RE = re.compile(r"\s*(?:'((?:[^']|'')*)'|([^'=\s][^=\s]*))=(\S*)")
_VALUE_RE = re.compile(r"^([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)([^\d;]*)$")
_NUMBER_RE = re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$")

_SECONDS_DIVISOR = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}
_BYTES = {
    "b": 1.0,
    "kb": 1e3,
    "mb": 1e6,
    "gb": 1e9,
    "tb": 1e12,
    "pb": 1e15,
    "kib": 1024.0,
    "mib": 1024.0**2,
    "gib": 1024.0**3,
    "tib": 1024.0**4,
    "pib": 1024.0**5,
}

UnitKind = Literal["seconds", "percent", "bytes", "counter", "value"]


def classify_uom(uom: str) -> tuple[UnitKind, float]:
    """Which metric a UOM maps to and the factor to its base unit (value x factor).

    ``B`` is bytes but lower-case ``b`` would be bits, which the guidelines do not
    define: it is treated as an unknown unit.

    >>> classify_uom("ms"), classify_uom("KiB"), classify_uom("c"), classify_uom("")
    (('seconds', 0.001), ('bytes', 1024.0), ('counter', 1.0), ('value', 1.0))
    """
    if uom in _SECONDS_DIVISOR:
        return "seconds", 1.0 / _SECONDS_DIVISOR[uom]
    if uom == "%":
        return "percent", 1.0
    if uom == "c":
        return "counter", 1.0
    if uom.endswith("B") and uom.lower() in _BYTES:
        return "bytes", _BYTES[uom.lower()]
    return "value", 1.0


def _to_base_unit(value: float, uom: str) -> float:
    # Dividing by 1e6 is exact where multiplying by 1e-6 is not (5us -> 5e-06, not 4.99e-06).
    if uom in _SECONDS_DIVISOR:
        return value / _SECONDS_DIVISOR[uom]
    return value * classify_uom(uom)[1]


def parse_perfdata(text: str) -> tuple[list[PerfDatum], list[str]]:
    """Parse a perfdata string into items and a list of what could not be parsed.

    Values of ``U`` (undetermined) are reported as errors, not as zero.

    >>> items, errors = parse_perfdata("a=1s;2;3 'b c'=4% broken d=5x")
    >>> [(i.label, i.value, i.uom) for i in items], errors
    ([('a', 1.0, 's'), ('b c', 4.0, '%'), ('d', 5.0, 'x')], ["'broken'"])
    """
    items: list[PerfDatum] = []
    errors: list[str] = []
    pos = 0
    length = len(text)
    while pos < length and len(items) < MAX_PERF_ITEMS:
        while pos < length and text[pos].isspace():
            pos += 1
        if pos >= length:
            break
        match = _PERF_ITEM_RE.match(text, pos)
        if match is None:
            if len(errors) >= MAX_PERF_ITEMS:
                errors.append("too much unparsable perfdata; the rest was ignored")
                break
            end = pos
            while end < length and not text[end].isspace():
                end += 1
            errors.append(repr(text[pos:end][:80]))
            pos = end
            continue
        pos = match.end()
        quoted, bare, rest = match.groups()
        label = quoted.replace("''", "'") if quoted is not None else bare
        fields = [*rest.split(";"), "", "", "", ""][:5]
        value_match = _VALUE_RE.match(fields[0])
        if value_match is None:
            errors.append(f"{label!r}: value {fields[0][:40]!r}")
            continue
        uom = value_match.group(2)
        value = _to_base_unit(float(value_match.group(1)), uom)
        if not math.isfinite(value):
            errors.append(f"{label!r}: value {fields[0][:40]!r}")
            continue
        items.append(PerfDatum(label, value, uom, fields[1], fields[2], fields[3], fields[4]))
    if pos < length and len(items) >= MAX_PERF_ITEMS:
        errors.append(f"more than {MAX_PERF_ITEMS} items; the rest were ignored")
    return items, errors


def parse_range(text: str) -> Range:
    """Parse a threshold range (``10``, ``10:``, ``~:10``, ``10:20``, ``@10:20``).

    >>> parse_range("10:"), parse_range("~:10")
    (Range(start=10.0, end=inf, inside=False), Range(start=-inf, end=10.0, inside=False))
    >>> parse_range("20:10")
    Traceback (most recent call last):
    ...
    ValueError: range '20:10': start is greater than end
    """
    raw = text.strip()
    inside = raw.startswith("@")
    body = raw[1:] if inside else raw
    if not body:
        raise ValueError(f"range {text!r} is empty")
    if ":" in body:
        start_text, end_text = body.split(":", 1)
    else:
        start_text, end_text = "0", body
    if start_text == "~":
        start = -math.inf
    elif start_text == "":
        start = 0.0
    elif _NUMBER_RE.match(start_text):
        start = float(start_text)
    else:
        raise ValueError(f"range {text!r}: start {start_text!r} is not a number")
    if end_text == "":
        end = math.inf
    elif _NUMBER_RE.match(end_text):
        end = float(end_text)
    else:
        raise ValueError(f"range {text!r}: end {end_text!r} is not a number")
    if start > end:
        raise ValueError(f"range {text!r}: start is greater than end")
    return Range(start, end, inside)


def parse_output(stdout: str) -> ParsedOutput:
    """Split plugin output into summary, long output and perfdata (all lines).

    >>> out = parse_output("OK - fine | a=1\\nline 2\\nline 3 | b=2\\nc=3\\n")
    >>> out.summary, out.long_output, [p.label for p in out.perf]
    ('OK - fine', 'line 2\\nline 3', ['a', 'b', 'c'])
    """
    lines = stdout.replace("\r\n", "\n").split("\n")
    first = lines[0]
    summary, bar, perf_text = first.partition("|")
    perf_parts = [perf_text] if bar else []
    long_lines: list[str] = []
    in_perf = False
    for line in lines[1:]:
        if in_perf:
            perf_parts.append(line)
            continue
        text, bar, rest = line.partition("|")
        long_lines.append(text.rstrip() if bar else text)
        if bar:
            perf_parts.append(rest)
            in_perf = True
    while long_lines and not long_lines[-1].strip():
        long_lines.pop()
    perf, errors = parse_perfdata(" ".join(perf_parts))
    summary = summary.strip()
    if len(summary) > MAX_SUMMARY_CHARS:
        summary = summary[:MAX_SUMMARY_CHARS] + "…"
    long_output = "\n".join(long_lines)
    if len(long_output) > MAX_LONG_OUTPUT_CHARS:
        long_output = long_output[:MAX_LONG_OUTPUT_CHARS] + "\n… (long output cut)"
    return ParsedOutput(summary, long_output, tuple(perf), tuple(errors))


# --- collect -----------------------------------------------------------------------------


def collect_nagios(probe: Probe, params: NagiosParams) -> NagiosSection:
    if not params.plugins:
        raise SkipCheck("no Nagios plugins configured")
    runs: list[PluginRun] = []
    started = probe.monotonic()
    for spec in params.plugins:
        remaining = params.budget_s - (probe.monotonic() - started)
        if remaining <= 0.05:
            runs.append(
                PluginRun(spec.name, spec.command, None, "", "", 0.0, "budget", "check time budget spent")
            )
            continue
        runs.append(_run_plugin(probe, spec, min(spec.timeout_s, remaining)))
    return NagiosSection(tuple(runs))


def _run_plugin(probe: Probe, spec: PluginSpec, timeout_s: float) -> PluginRun:
    before = probe.monotonic()
    try:
        done = probe.run(spec.command, timeout_s=timeout_s, env=spec.env or None)
    except CommandTimeout:
        return PluginRun(
            spec.name,
            spec.command,
            None,
            "",
            "",
            probe.monotonic() - before,
            "timeout",
            f"no answer within {timeout_s:g} s; its process group was killed",
        )
    except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
        # Missing or not executable: a configuration problem on this host, not a crash.
        return PluginRun(spec.name, spec.command, None, "", "", 0.0, "not_found", _exec_error(exc))
    except OSError as exc:
        if exc.errno != errno.ENOEXEC:
            raise
        # A script without a shebang line, or a binary for another architecture.
        return PluginRun(spec.name, spec.command, None, "", "", 0.0, "not_found", _exec_error(exc))
    return PluginRun(spec.name, spec.command, done.returncode, done.stdout, done.stderr, done.duration_s)


def _exec_error(exc: OSError) -> str:
    return f"cannot execute {exc.filename or 'the command'}: {exc.strerror or exc}"


# --- evaluate ----------------------------------------------------------------------------

_EXIT_RESULT = {
    0: (Severity.OK, "OK"),
    1: (Severity.WARN, "PLUGIN_WARNING"),
    2: (Severity.CRIT, "PLUGIN_CRITICAL"),
    3: (Severity.UNKNOWN, "PLUGIN_UNKNOWN"),
}

_METRIC_BY_KIND: dict[UnitKind, tuple[str, Unit]] = {
    "seconds": ("app_nagios_perf_seconds", Unit.SECONDS),
    "percent": ("app_nagios_perf_percent", Unit.PERCENT),
    "bytes": ("app_nagios_perf_bytes", Unit.BYTES),
    "counter": ("app_nagios_perf_count", Unit.COUNT),
    "value": ("app_nagios_perf_value_count", Unit.COUNT),
}


def evaluate_nagios(
    params: NagiosParams, section: NagiosSection, store: ValueStore
) -> Iterator[Result | Metric]:
    for run in section.runs:
        yield from _evaluate_run(run)


def _evaluate_run(run: PluginRun) -> Iterator[Result | Metric]:
    item = run.name
    if run.failure == "not_found":
        yield Result(Severity.UNKNOWN, "PLUGIN_NOT_FOUND", run.error or "cannot execute", item)
        return
    if run.failure == "timeout":
        yield Result(Severity.UNKNOWN, "PLUGIN_TIMEOUT", f"Plugin timed out: {run.error}", item)
        yield _duration_metric(run)
        return
    if run.failure == "budget":
        yield Result(Severity.UNKNOWN, "PLUGIN_NOT_RUN", "Not run: the check's time budget was spent", item)
        return
    yield _duration_metric(run)
    parsed = parse_output(run.stdout)
    summary = parsed.summary
    if not summary:
        err = run.stderr.strip().splitlines()
        summary = f"(no output on stdout) {err[0][:MAX_SUMMARY_CHARS]}" if err else "(no output)"
    details = _details(parsed)
    code = run.returncode
    if code in _EXIT_RESULT:
        severity, key = _EXIT_RESULT[code]
        yield Result(severity, key, summary, item, details)
    else:
        yield Result(
            Severity.UNKNOWN,
            "PLUGIN_BAD_EXIT",
            f"Exit code {code} is not a Nagios state (0-3): {summary}",
            item,
            details,
        )
    labels = {"plugin": run.name}
    for perf in parsed.perf:
        kind, _ = classify_uom(perf.uom)
        name, unit = _METRIC_BY_KIND[kind]
        yield Metric(name, perf.value, unit, {**labels, "label": perf.label})


def _duration_metric(run: PluginRun) -> Metric:
    return Metric("app_nagios_plugin_duration_seconds", run.duration_s, Unit.SECONDS, {"plugin": run.name})


def _details(parsed: ParsedOutput) -> str | None:
    parts: list[str] = []
    if parsed.long_output:
        parts.append(parsed.long_output)
    thresholds = [line for perf in parsed.perf if (line := _threshold_line(perf))]
    if thresholds:
        parts.append("Thresholds: " + "; ".join(thresholds))
    if parsed.perf_errors:
        parts.append("Unparsable perfdata: " + ", ".join(parsed.perf_errors[:10]))
    unknown = sorted({p.uom for p in parsed.perf if p.uom and classify_uom(p.uom)[0] == "value"})
    if unknown:
        parts.append("Unknown units reported as plain values: " + ", ".join(unknown))
    return "\n".join(parts) or None


def _threshold_line(perf: PerfDatum) -> str:
    """``label: warn 50 (alert outside 0..50), crit 100`` for the items that carry levels.

    >>> _threshold_line(PerfDatum("load1", 0.5, "", "~:5", "@1:2"))
    'load1: warn ~:5 (alert above 5), crit @1:2 (alert within 1..2)'
    >>> _threshold_line(PerfDatum("x", 1, "", "abc"))
    'x: warn abc (not a valid range)'
    """
    texts = [
        f"{name} {raw} ({_explain(raw)})" for name, raw in (("warn", perf.warn), ("crit", perf.crit)) if raw
    ]
    return f"{perf.label}: {', '.join(texts)}" if texts else ""


def _explain(raw: str) -> str:
    try:
        rng = parse_range(raw)
    except ValueError:
        return "not a valid range"

    def num(v: float) -> str:
        return f"{v:g}"

    if rng.inside:
        return f"alert within {num(rng.start)}..{num(rng.end)}"
    if rng.start == -math.inf:
        return f"alert above {num(rng.end)}"
    if rng.end == math.inf:
        return f"alert below {num(rng.start)}"
    return f"alert outside {num(rng.start)}..{num(rng.end)}"


NAGIOS = Check(
    name="application.nagios",
    layer=Layer.APPLICATION,
    summary="Nagios-compatible plugins: state and performance data",
    collect=collect_nagios,
    evaluate=evaluate_nagios,
    params=NagiosParams,
    keys=(
        "PLUGIN_WARNING",
        "PLUGIN_CRITICAL",
        "PLUGIN_UNKNOWN",
        "PLUGIN_BAD_EXIT",
        "PLUGIN_NOT_FOUND",
        "PLUGIN_TIMEOUT",
        "PLUGIN_NOT_RUN",
    ),
    metrics=(
        MetricSpec(
            "app_nagios_perf_seconds",
            Unit.SECONDS,
            "Plugin perfdata in seconds (s, ms, us converted)",
            labels=("plugin", "label"),
        ),
        MetricSpec(
            "app_nagios_perf_percent", Unit.PERCENT, "Plugin perfdata in percent", labels=("plugin", "label")
        ),
        MetricSpec(
            "app_nagios_perf_bytes",
            Unit.BYTES,
            "Plugin perfdata in bytes (KB/MB/GB/TB x1000, KiB/MiB/... x1024)",
            labels=("plugin", "label"),
        ),
        MetricSpec(
            "app_nagios_perf_count",
            Unit.COUNT,
            "Plugin perfdata continuous counter (UOM c)",
            labels=("plugin", "label"),
        ),
        MetricSpec(
            "app_nagios_perf_value_count",
            Unit.COUNT,
            "Plugin perfdata without a unit: a number of things (users, processes, load)",
            labels=("plugin", "label"),
        ),
        MetricSpec(
            "app_nagios_plugin_duration_seconds",
            Unit.SECONDS,
            "Wall time one plugin run took",
            Direction.UP_IS_BAD,
            labels=("plugin",),
        ),
    ),
    interval_s=60,
    timeout_s=60,
    default_enabled=False,
    blocking=True,
)
