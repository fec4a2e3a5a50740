"""The public check API: what a check module imports, and all it may import from us.

A check is one module under ``checks/<layer>/`` holding one module-level, frozen
:class:`Check` declaration. Its ``collect`` function is the only code that touches
the system (through the :class:`~checks.probe.Probe` it is handed); its
``evaluate`` function is pure and yields :class:`Result` and :class:`Metric`
values.

>>> Severity.worst(Severity.OK, Severity.WARN, Severity.UNKNOWN)
<Severity.UNKNOWN: 'UNKNOWN'>
>>> Metric("host_load1_per_core_ratio", 0.5, Unit.RATIO)
Metric(name='host_load1_per_core_ratio', value=0.5, unit=<Unit.RATIO: 'ratio'>, labels=())
>>> check_levels(91.0, levels_upper=(80.0, 90.0), key="FS_NEARLY_FULL", label="Used").severity
<Severity.CRIT: 'CRIT'>
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from math import isfinite
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, Self, TypeVar, cast

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from checks.probe import Probe

__all__ = [
    "Check",
    "CheckParams",
    "Direction",
    "Layer",
    "Levels",
    "Metric",
    "MetricSpec",
    "Result",
    "Severity",
    "SkipCheck",
    "Unit",
    "ValueStore",
    "check_levels",
    "get_rate",
    "render_bytes",
    "render_percent",
    "render_seconds",
]


class Severity(enum.Enum):
    """State of a result. Ordered for :meth:`worst`: OK < WARN < UNKNOWN < CRIT."""

    OK = "OK"
    WARN = "WARN"
    CRIT = "CRIT"
    UNKNOWN = "UNKNOWN"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]

    @property
    def nagios_code(self) -> int:
        """The Nagios plugin exit code for this severity (0, 1, 2, 3)."""
        return _NAGIOS_CODE[self]

    @classmethod
    def worst(cls, *severities: Severity) -> Severity:
        """The most severe of ``severities`` (OK when none are given)."""
        return max(severities, key=_SEVERITY_RANK.__getitem__, default=cls.OK)


_SEVERITY_RANK = {Severity.OK: 0, Severity.WARN: 1, Severity.UNKNOWN: 2, Severity.CRIT: 3}
_NAGIOS_CODE = {Severity.OK: 0, Severity.WARN: 1, Severity.CRIT: 2, Severity.UNKNOWN: 3}


class Layer(enum.Enum):
    """The five inspection layers, lowest first: a lower layer's fault explains upper ones."""

    HOST = "host"
    NETWORK = "network"
    STORAGE = "storage"
    PLATFORM = "platform"
    APPLICATION = "application"


class Unit(enum.Enum):
    """Metric units. A metric's name ends with ``_<unit>`` (Prometheus convention)."""

    SECONDS = "seconds"
    BYTES = "bytes"
    PERCENT = "percent"
    RATIO = "ratio"
    COUNT = "count"
    PER_SECOND = "per_second"
    BYTES_PER_SECOND = "bytes_per_second"
    DAYS = "days"
    CELSIUS = "celsius"
    HERTZ = "hertz"
    INFO = "info"
    """A constant 1 whose labels carry the facts (``platform_os_info``)."""
    BOOLEAN = "boolean"
    """1 for true, 0 for false (``host_clock_synchronized_boolean``)."""


class Direction(enum.Enum):
    """Which way a metric moves when things get worse; the detector reads it."""

    UP_IS_BAD = "up"
    DOWN_IS_BAD = "down"
    BOTH_BAD = "both"
    NEUTRAL = "neutral"


_NAME_RE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
_KEY_RE = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$")
_CHECK_NAME_RE = re.compile(r"^(host|network|storage|platform|application)\.[a-z][a-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One catalogue entry: a metric name, its unit, what it means and which way is bad."""

    name: str
    unit: Unit
    description: str
    direction: Direction = Direction.NEUTRAL
    labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _validate_metric_name(self.name, self.unit)
        if not self.description.strip():
            raise ValueError(f"metric {self.name!r} needs a description")
        for label in self.labels:
            if not _NAME_RE.match(label):
                raise ValueError(f"metric {self.name!r}: label {label!r} is not snake_case")


def _validate_metric_name(name: str, unit: Unit) -> None:
    if not _NAME_RE.match(name):
        raise ValueError(f"metric name {name!r} is not snake_case")
    if not name.endswith("_" + unit.value):
        raise ValueError(f"metric name {name!r} must end with its unit: _{unit.value}")


_VALID_NAMES: dict[str, Unit] = {}
"""Metric names already validated, with their unit (keyed by the name: an Enum member's
``__hash__`` runs in Python, a string's does not)."""
_VALID_LABELS: set[str] = set()
_VALID_KEYS: set[str] = set()


class _MetricFields(NamedTuple):
    name: str
    value: float
    unit: Unit
    labels: tuple[tuple[str, str], ...]


class Metric(_MetricFields):
    """One measured value. Labels are stored as sorted ``(key, value)`` pairs.

    A validated tuple: a cycle builds hundreds of these, and a tuple costs a third of
    a frozen dataclass to construct.
    """

    __slots__ = ()

    def __new__(
        cls,
        name: str,
        value: float,
        unit: Unit,
        labels: Mapping[str, str] | tuple[tuple[str, str], ...] = (),
    ) -> Metric:
        if _VALID_NAMES.get(name) is not unit:  # validate each name once per process: hot path
            _validate_metric_name(name, unit)
            _VALID_NAMES[name] = unit
        value = float(value)
        if not isfinite(value):
            raise ValueError(f"metric {name!r}: value {value!r} is not a finite number")
        if labels:
            # ``type() is dict`` first: the Mapping ABC check is the slow path.
            items = labels.items() if type(labels) is dict or isinstance(labels, Mapping) else labels
            pairs = tuple(sorted(items))
            for key, val in pairs:
                if key not in _VALID_LABELS:
                    if not _NAME_RE.match(key):
                        raise ValueError(f"metric {name!r}: label {key!r} is not snake_case")
                    _VALID_LABELS.add(key)
                if type(val) is not str and not isinstance(val, str):
                    raise ValueError(f"metric {name!r}: label {key!r} must be a string, got {val!r}")
        else:
            pairs = ()
        return tuple.__new__(cls, (name, value, unit, pairs))

    @property
    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)


@dataclass(frozen=True, slots=True)
class Result:
    """One verdict of a check.

    ``key`` is stable and machine-readable (``FS_NEARLY_FULL``); the collector keys
    findings and cases on it, never on ``summary``. ``item`` names the subject when a
    check covers many (a mount point, an interface, a unit).
    """

    severity: Severity
    key: str
    summary: str
    item: str | None = None
    details: str | None = None

    def __post_init__(self) -> None:
        if self.key not in _VALID_KEYS:  # a cycle builds dozens of results with a few keys
            if not _KEY_RE.match(self.key):
                raise ValueError(f"result key {self.key!r} must be UPPER_SNAKE_CASE")
            _VALID_KEYS.add(self.key)
        if not isinstance(self.severity, Severity):
            raise ValueError(f"result severity {self.severity!r} is not a Severity")


class SkipCheck(Exception):
    """Raised by ``collect`` or ``evaluate`` when the check does not apply on this host."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CheckParams(BaseModel):
    """Base of every check's params model: frozen, unknown keys are errors.

    Each field's docstring becomes its description (shown by ``diag-agent
    check-config`` errors and the generated docs).
    """

    # defer_build: the validator is built on the first model_validate, not at import. The
    # agent validates only the params a config sets and takes :meth:`defaults` for the
    # rest, so most checks' validators are never built (about 0.5 MB of the agent's RSS).
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True, defer_build=True)

    @classmethod
    def defaults(cls) -> Self:
        """The params with every field at its default, as ``model_validate({})`` gives them.

        Built without the validator when nothing would run on defaults (no model
        validator, no ``validate_default`` field), so the validator is not built at all.
        """
        fields_validate = any(f.validate_default for f in cls.__pydantic_fields__.values())
        if cls.__pydantic_decorators__.model_validators or fields_validate:
            return cls.model_validate({})
        return cast("Self", cls.model_construct())  # pydantic's mypy plugin types it as the base


Levels = tuple[float, float]
"""(warn, crit) thresholds."""

ValueStore = MutableMapping[str, Any]
"""Per-check state that survives between runs (counters for rates, file offsets)."""

P = TypeVar("P", bound=CheckParams)
S = TypeVar("S")

Collect = Callable[["Probe", P], S]
Evaluate = Callable[[P, S, ValueStore], Iterable["Result | Metric"]]


@dataclass(frozen=True, slots=True)
class Check(Generic[P, S]):
    """The declaration of one check. Found by type in its module, never by name.

    ``interval_s`` and ``timeout_s`` are defaults that config may override.
    ``default_enabled`` False means the check runs only when config turns it on.
    """

    name: str
    layer: Layer
    summary: str
    collect: Callable[[Probe, P], S]
    evaluate: Callable[[P, S, ValueStore], Iterable[Result | Metric]]
    params: type[P]
    metrics: tuple[MetricSpec, ...] = ()
    keys: tuple[str, ...] = ()
    """Every non-OK result key the check can emit (conformance-tested)."""
    interval_s: float = 60.0
    timeout_s: float = 10.0
    default_enabled: bool = True
    blocking: bool = False
    """True when the check waits on something outside the kernel (network peers,
    subprocesses). The agent runs such checks on their own threads; the rest run one
    after another on one thread, which costs far less CPU than contending for the GIL."""
    rates: bool = False
    """True when the check's main figures are rates or utilisation between two readings
    (kept in its store), so its first run has none. ``diag-agent checks`` samples such a
    check twice, a short interval apart, when it has no previous reading (as ``vmstat 1
    2`` does). Counts of events "since the last run" are not rates: their first run
    reports the figure since boot, more useful than a one-second delta."""
    metric_names: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        if not _CHECK_NAME_RE.match(self.name):
            raise ValueError(f"check name {self.name!r} must be '<layer>.<snake_case>'")
        if self.name.split(".", 1)[0] != self.layer.value:
            raise ValueError(f"check {self.name!r} is declared in layer {self.layer.value!r}")
        for key in self.keys:
            if not _KEY_RE.match(key):
                raise ValueError(f"check {self.name!r}: key {key!r} must be UPPER_SNAKE_CASE")
        object.__setattr__(self, "metric_names", frozenset(m.name for m in self.metrics))

    def run(self, probe: Probe, params: P, store: ValueStore) -> Iterator[Result | Metric]:
        """Collect and evaluate once. Exceptions propagate; the agent isolates them."""
        section = self.collect(probe, params)
        yield from self.evaluate(params, section, store)


# --- helpers shared by checks -------------------------------------------------------


def render_percent(value: float) -> str:
    return f"{value:.1f}%"


def render_seconds(value: float) -> str:
    if value < 1e-3:
        return f"{value * 1e6:.0f} µs"
    if value < 1:
        return f"{value * 1e3:.1f} ms"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.0f} min"
    if value < 172800:
        return f"{value / 3600:.1f} h"
    return f"{value / 86400:.1f} d"


def render_bytes(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def check_levels(
    value: float,
    *,
    key: str,
    label: str,
    levels_upper: Levels | None = None,
    levels_lower: Levels | None = None,
    render: Callable[[float], str] = lambda v: f"{v:.2f}",
    item: str | None = None,
    key_lower: str | None = None,
) -> Result:
    """Compare ``value`` with (warn, crit) levels and return one :class:`Result`.

    The result's key is ``key`` when an upper level is breached, ``key_lower`` (or
    ``key``) when a lower level is, and ``OK`` otherwise.

    >>> check_levels(5, key="X_HIGH", label="Load", levels_upper=(4, 8)).summary
    'Load: 5.00 (warn/crit at 4.00/8.00)'
    >>> check_levels(1, key="X_LOW", label="Free", levels_lower=(2, 1)).severity
    <Severity.CRIT: 'CRIT'>
    >>> check_levels(3, key="X", label="Free", levels_lower=(2, 1)).key
    'OK'
    """
    text = f"{label}: {render(value)}"
    if levels_upper is not None:
        warn, crit = levels_upper
        if value >= crit:
            return Result(Severity.CRIT, key, f"{text} (warn/crit at {render(warn)}/{render(crit)})", item)
        if value >= warn:
            return Result(Severity.WARN, key, f"{text} (warn/crit at {render(warn)}/{render(crit)})", item)
    if levels_lower is not None:
        warn, crit = levels_lower
        low_key = key_lower or key
        if value <= crit:
            return Result(
                Severity.CRIT, low_key, f"{text} (warn/crit below {render(warn)}/{render(crit)})", item
            )
        if value <= warn:
            return Result(
                Severity.WARN, low_key, f"{text} (warn/crit below {render(warn)}/{render(crit)})", item
            )
    return Result(Severity.OK, "OK", text, item)


def get_rate(store: ValueStore, key: str, now: float, counter: float) -> float | None:
    """Per-second rate of a monotonic counter since the previous call with ``key``.

    Returns None on the first call and after a counter reset (reboot, wrap), storing the
    new reading either way, so the next call yields a rate. Checkmk's ``get_rate``
    without its exception-driven control flow.

    >>> s: dict = {}
    >>> get_rate(s, "c", 100.0, 10.0) is None
    True
    >>> get_rate(s, "c", 110.0, 60.0)
    5.0
    """
    previous = store.get(key)
    store[key] = (now, counter)
    if not previous:
        return None
    then, old = previous
    elapsed = now - then
    if elapsed <= 0 or counter < old:
        return None
    return float((counter - old) / elapsed)


def get_delta(store: ValueStore, key: str, counter: float) -> float | None:
    """Increase of a monotonic counter since the previous call (None first time or on reset).

    >>> s: dict = {}
    >>> get_delta(s, "oom", 3), get_delta(s, "oom", 5)
    (None, 2.0)
    """
    previous = store.get(key)
    store[key] = counter
    if previous is None or counter < previous:
        return None
    return float(counter - previous)
