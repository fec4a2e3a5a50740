"""How an inspection rule is declared (:func:`rule`), what it returns (:class:`Hit`), and the
helpers and history thresholds the rules share."""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from checks.api import Layer, Severity
from collector.inspections.facts import DAY_S, HostFacts, ResultFact

__all__ = [
    "Hit",
    "Rule",
    "RuleKind",
    "by_item",
    "days",
    "declared",
    "dedupe",
    "drift",
    "from_results",
    "level",
    "num",
    "pct",
    "rule",
    "version_key",
    "worst_one",
]

# History-only thresholds (documented in the rule descriptions).
DAYS_FULL_WARN, DAYS_FULL_CRIT = 30.0, 7.0
MEMORY_DAYS_WARN, MEMORY_DAYS_CRIT = 30.0, 7.0
SWAP_IN_WARN, SWAP_IN_CRIT = 10.0, 100.0
CPU_BUSY_WARN, CPU_BUSY_CRIT = 85.0, 95.0
STEAL_WARN = 10.0
RETRANS_WARN, RETRANS_CRIT = 2.0, 5.0
CONNTRACK_WARN, CONNTRACK_CRIT = 80.0, 90.0
IFACE_ERRORS_WARN = 1.0
CERT_DAYS_WARN, CERT_DAYS_CRIT = 30.0, 7.0
LOG_PER_MIN_WARN, LOG_PER_MIN_CRIT = 1.0, 60.0
HTTP_UP_WARN = 0.99
MIN_SPAN_S = DAY_S / 4
"""History shorter than this is not used for growth rates."""
SERIOUS_KERNEL_KINDS = frozenset({"hardware_error", "lockup", "hung_task", "fs_error", "io_error"})


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


HostFn = Callable[[HostFacts], Iterable[Hit]]
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

    @property
    def kind(self) -> RuleKind:
        return RuleKind.FLEET if self.fleet is not None else RuleKind.HOST


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
) -> Callable[[F], F]:
    """Declare the function below as the rule ``key``: what it reads (checks, result keys,
    metric names, the inventory) and its layer, beside the code that reads them.

    A host rule's function takes one :class:`HostFacts`; with ``fleet`` it takes every
    selected host of the customer. Keys are unique: a second declaration is an error.
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
