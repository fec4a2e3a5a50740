"""How an inspection rule is declared (:func:`rule`), what it returns (:class:`Hit`), its
typed thresholds (:class:`Thresholds`, which a plan may override) and the helpers the rules share.

A rule with thresholds declares their defaults (``thresholds=Above(warn=85, crit=95)``) and
its function takes them as a second argument; :meth:`Rule.apply` passes the plan's
override or the defaults. :func:`results_else_level` is the shape most of them share: the
check's own verdict of the latest run, else the history against the thresholds.

>>> Above(warn=85, crit=95).level(90).value, Below(warn=30, crit=7).level(5).value
('WARN', 'CRIT')
>>> Above(warn=95, crit=85)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for Above
...
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from checks.api import Layer, Severity
from collector.inspections.facts import DAY_S, HostFacts, ResultFact

__all__ = [
    "Above",
    "AboveWarn",
    "Below",
    "BelowWarn",
    "Hit",
    "Rule",
    "RuleKind",
    "Thresholds",
    "by_item",
    "days",
    "declared",
    "dedupe",
    "drift",
    "from_results",
    "level",
    "num",
    "pct",
    "results_else_level",
    "rule",
    "version_key",
    "worst_one",
]

MIN_SPAN_S = DAY_S / 4
"""History shorter than this is not used for growth rates."""
SERIOUS_KERNEL_KINDS = frozenset({"hardware_error", "lockup", "hung_task", "fs_error", "io_error"})


Limit = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class Thresholds(BaseModel):
    """A rule's thresholds. The rule declares its defaults; a plan overrides any field."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    lower: ClassVar[bool] = False
    """Lower values are worse (days left, share of the period an endpoint answered)."""

    def level(self, value: float) -> Severity | None:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    def describe(self) -> str:
        """``warn >= 85, crit >= 95``: how each field is compared (the report prints it)."""
        sign = "<=" if self.lower else ">="
        return ", ".join(f"{name} {sign} {num(value)}" for name, value in self.model_dump().items())


class Above(Thresholds):
    """WARN at or above ``warn``, CRIT at or above ``crit``."""

    warn: Limit
    crit: Limit

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.crit < self.warn:
            raise ValueError(
                f"expected crit >= warn (higher values are worse), got warn {self.warn}, crit {self.crit}"
            )
        return self

    def level(self, value: float) -> Severity | None:
        return level(value, self.warn, self.crit)


class Below(Thresholds):
    """WARN at or below ``warn``, CRIT at or below ``crit`` (lower values are worse)."""

    lower: ClassVar[bool] = True
    warn: Limit
    crit: Limit

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.crit > self.warn:
            raise ValueError(
                f"expected crit <= warn (lower values are worse), got warn {self.warn}, crit {self.crit}"
            )
        return self

    def level(self, value: float) -> Severity | None:
        return level(value, self.warn, self.crit, lower=True)


class AboveWarn(Thresholds):
    """WARN at or above ``warn``; never CRIT from the history."""

    warn: Limit

    def level(self, value: float) -> Severity | None:
        return Severity.WARN if value >= self.warn else None


class BelowWarn(Thresholds):
    """WARN below ``warn`` (lower values are worse); never CRIT from the history."""

    lower: ClassVar[bool] = True
    warn: Limit

    def describe(self) -> str:
        return f"warn < {num(self.warn)}"

    def level(self, value: float) -> Severity | None:
        return Severity.WARN if value < self.warn else None


class RuleKind(enum.Enum):
    HOST = "host"
    FLEET = "fleet"


@dataclass(frozen=True, slots=True)
class Hit:
    """One place a rule fired. ``template`` "rule" fills the catalogue's evidence with
    ``values``; "result" repeats the check's verdict (``result``)."""

    severity: Severity
    item: str | None = None
    values: Mapping[str, object] = field(default_factory=dict)
    result: ResultFact | None = None
    host: str | None = None
    """Fleet rules name the host; host rules leave it None."""

    @property
    def template(self) -> str:
        return "result" if self.result is not None and not self.values else "rule"


HostFn = Callable[..., Iterable[Hit]]
"""``fn(host)``, or ``fn(host, thresholds)`` for a rule declared with thresholds."""
FleetFn = Callable[[Sequence[HostFacts]], Iterable[Hit]]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Rule:
    key: str
    layer: Layer
    description: str
    checks: tuple[str, ...] = ()
    result_keys: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    inventory: bool = False
    host: HostFn | None = None
    fleet: FleetFn | None = None
    thresholds: Thresholds | None = None
    """The defaults; None for a rule that only repeats verdicts or counts events."""

    @property
    def kind(self) -> RuleKind:
        return RuleKind.FLEET if self.fleet is not None else RuleKind.HOST

    def apply(self, host: HostFacts, thresholds: Thresholds | None = None) -> Iterable[Hit]:
        """The host rule's hits on ``host``, with ``thresholds`` (a plan's) or the defaults."""
        if self.host is None:
            raise TypeError(f"inspection rule {self.key} is a fleet rule")
        if self.thresholds is None:
            return self.host(host)
        return self.host(host, thresholds or self.thresholds)

    def override(self, values: Mapping[str, object]) -> Thresholds:
        """The defaults with ``values`` replacing some fields, validated (pydantic's
        ``ValidationError`` names the field). A rule without thresholds raises ``LookupError``."""
        if self.thresholds is None:
            raise LookupError(f"inspection rule {self.key} has no thresholds")
        return type(self.thresholds).model_validate({**self.thresholds.model_dump(), **values})


_DECLARED: dict[str, Rule] = {}


def rule(
    key: str,
    layer: Layer,
    description: str,
    *,
    checks: tuple[str, ...] = (),
    result_keys: tuple[str, ...] = (),
    metrics: tuple[str, ...] = (),
    inventory: bool = False,
    fleet: bool = False,
    thresholds: Thresholds | None = None,
) -> Callable[[F], F]:
    """Declare the function below as the rule ``key``: what it reads (checks, result keys,
    metric names, the inventory) and its layer, beside the code that reads them.

    A host rule's function takes one :class:`HostFacts` (and, declared with
    ``thresholds``, the thresholds to use); with ``fleet`` it takes every selected host
    of the customer. Keys are unique: a second declaration is an error.
    """

    def declare(fn: F) -> F:
        if key in _DECLARED:
            raise ValueError(f"inspection rule {key} is declared twice")
        _DECLARED[key] = Rule(
            key,
            layer,
            description,
            checks,
            result_keys,
            metrics,
            inventory,
            host=None if fleet else fn,
            fleet=fn if fleet else None,
            thresholds=thresholds,
        )
        return fn

    return declare


def declared() -> list[Rule]:
    """Every rule declared so far, in declaration order."""
    return list(_DECLARED.values())


# --------------------------------------------------------------------------- helpers


def pct(value: float) -> str:
    return f"{value:.1f}%"


def num(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 10 or value == int(value) else f"{value:.1f}"


def days(value: float) -> str:
    return f"{max(value, 0.0):.0f}" if value >= 10 else f"{max(value, 0.0):.1f}"


def from_results(host: HostFacts, keys: Iterable[str]) -> list[Hit]:
    return [Hit(r.severity, r.item, {}, r) for r in host.results_with(keys)]


def results_else_level(
    host: HostFacts,
    keys: Iterable[str],
    value: float | None,
    values: Mapping[str, object] | None,
    thresholds: Thresholds,
) -> list[Hit]:
    """The shape most threshold rules share: the check's own non-OK verdict of the latest
    run (one hit, the worst, with ``values`` as evidence); else, when the latest run was
    fine, ``value`` (the history's mean or peak; None when there is none) against
    ``thresholds``."""
    hits = from_results(host, keys)
    if value is None:
        return worst_one(hits)
    if hits:
        return worst_one(hits, values)
    severity = thresholds.level(value)
    return [Hit(severity, None, values or {})] if severity else []


def by_item(hits: Iterable[Hit], extra: Iterable[Hit]) -> list[Hit]:
    """``hits`` plus those of ``extra`` whose item no hit of ``hits`` covers."""
    found = list(hits)
    seen = {h.item for h in found}
    found.extend(h for h in extra if h.item not in seen)
    return found


def level(value: float, warn: float, crit: float, *, lower: bool = False) -> Severity | None:
    if lower:
        return Severity.CRIT if value <= crit else Severity.WARN if value <= warn else None
    return Severity.CRIT if value >= crit else Severity.WARN if value >= warn else None


def worst_one(hits: list[Hit], values: Mapping[str, object] | None = None) -> list[Hit]:
    """Fold hits into one per host (item None) with the worst severity."""
    if not hits:
        return []
    worst = max(hits, key=lambda h: h.severity.rank)
    return [Hit(worst.severity, None, values or {}, worst.result)]


def dedupe(hits: list[Hit]) -> list[Hit]:
    """One hit per item, the worst."""
    best: dict[str | None, Hit] = {}
    for hit in hits:
        if hit.item not in best or hit.severity.rank > best[hit.item].severity.rank:
            best[hit.item] = hit
    return list(best.values())


def drift(hosts: Sequence[HostFacts], components: Callable[[HostFacts], Mapping[str, str]]) -> list[Hit]:
    """A WARN for every host whose component version differs from the most common one."""
    by_component: dict[str, dict[str, str]] = {}
    for host in hosts:
        for name, version in components(host).items():
            by_component.setdefault(name, {})[host.name] = version
    found = []
    for name in sorted(by_component):
        versions = by_component[name]
        counts = Counter(versions.values())
        if len(counts) < 2:
            continue
        # Most common first; ties broken by the highest version string, so the result is stable.
        common = sorted(counts.items(), key=lambda kv: (-kv[1], version_key(kv[0])))[0][0]
        for host_name in sorted(versions):
            if versions[host_name] != common:
                values = {"component": name, "version": versions[host_name], "common": common}
                found.append(Hit(Severity.WARN, name, values, host=host_name))
    return found


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key placing higher versions first."""
    parts = version.replace("-", ".").split(".")
    return tuple((0, -int(p)) if p.isdigit() else (1, p) for p in parts)
