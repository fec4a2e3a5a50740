"""Small builders for inspection facts used by the tests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from checks.api import Severity
from collector.inspections.facts import DAY_S, HostFacts, MetricSummary, ResultFact

T0 = 1_750_000_000.0
"""Start of the inspection period in the tests (2025-06-15)."""


def res(
    check: str, key: str, severity: str = "WARN", item: str | None = None, summary: str = "bad"
) -> ResultFact:
    return ResultFact(check, key, Severity(severity), summary, item, T0)


def flat(name: str, value: float, labels: Mapping[str, str] | None = None, n: int = 3) -> MetricSummary:
    """A series holding ``value`` for a day (``n`` points)."""
    return MetricSummary.from_points(
        name, labels or {}, [(T0 + i * DAY_S / max(n - 1, 1), value) for i in range(n)]
    )


def line(
    name: str, start: float, per_day: float, days: float = 2.0, labels: Mapping[str, str] | None = None
) -> MetricSummary:
    """A series growing linearly by ``per_day`` from ``start`` over ``days`` (hourly points)."""
    hours = int(days * 24)
    return MetricSummary.from_points(
        name, labels or {}, [(T0 + h * 3600.0, start + per_day * h / 24.0) for h in range(hours + 1)]
    )


def host(
    name: str = "db1",
    results: Iterable[ResultFact] = (),
    metrics: Iterable[MetricSummary] = (),
    inventory: Mapping[str, Any] | None = None,
    *,
    answered: bool = True,
    labels: Mapping[str, str] | None = None,
    lost_results: int = 0,
    last_seen: float | None = T0,
) -> HostFacts:
    return HostFacts(
        name,
        labels or {},
        answered,
        tuple(results),
        tuple(metrics),
        inventory,
        last_seen,
        lost_results,
    )


def inventory(
    os_version: str = "12", products: Mapping[str, str] | None = None, kernel: str = "6.1.0-26"
) -> dict[str, Any]:
    return {
        "hardware": {"cpu": {"count": 4}, "memory_bytes": 16 * 2**30},
        "os": {
            "id": "debian",
            "version_id": os_version,
            "name": f"Debian GNU/Linux {os_version}",
            "kernel": kernel,
        },
        "products": [{"name": n, "version": v} for n, v in sorted((products or {}).items())],
    }
