"""What the findings engine reads: per-host facts gathered for one inspection run.

The wiring layer builds these from the store (latest results of the run, metric
history over the inspection period, inventory documents, gaps); the rules never touch
the store. Everything here is plain data, so rules are tested with facts built in code.

>>> m = MetricSummary.from_points("storage_fs_free_bytes", {"mountpoint": "/"},
...                               [(0.0, 100.0), (86400.0, 90.0), (172800.0, 80.0)])
>>> m.last, m.slope_per_day, m.label("mountpoint")
(80.0, -10.0, '/')
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from checks.api import Severity

if TYPE_CHECKING:
    from collector.store.inspections import HostEvidence

__all__ = ["HostFacts", "MetricSummary", "ResultFact"]

DAY_S = 86400.0
MAX_POINTS = 200
"""Points a summary keeps for charts (evenly thinned; aggregates use every point)."""


@dataclass(frozen=True, slots=True)
class ResultFact:
    """One result of a check's latest run on a host (the store's ``findings_json`` entries)."""

    check: str
    key: str
    severity: Severity
    summary: str
    item: str | None = None
    ts: float = 0.0

    @classmethod
    def from_dict(cls, check: str, data: Mapping[str, Any], ts: float = 0.0) -> ResultFact:
        """From a result as the agent records it (``ResultRecord.to_dict()``).

        Raises ValueError naming the check when the record is not one.
        """
        try:
            key, severity = data["key"], Severity(data["severity"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"{check}: not a result record ({type(exc).__name__}: {exc}): {data!r:.120}"
            ) from None
        if not isinstance(key, str):
            raise ValueError(f"{check}: result key must be a string, got {key!r:.60}")
        item = data.get("item")
        return cls(
            check, key, severity, str(data.get("summary", "")), None if item is None else str(item), ts
        )


@dataclass(frozen=True, slots=True)
class MetricSummary:
    """One series over the inspection period: aggregates, least-squares slope and points."""

    name: str
    labels: tuple[tuple[str, str], ...]
    count: int
    first_ts: float
    last_ts: float
    first: float
    last: float
    min: float
    max: float
    mean: float
    total: float
    """Sum of all points (for per-run counts such as OOM kills since the last run)."""
    slope_per_day: float | None
    """Least-squares growth per day (None with fewer than two points or no time span)."""
    points: tuple[tuple[float, float], ...] = field(default=(), repr=False)

    @classmethod
    def from_points(
        cls,
        name: str,
        labels: Mapping[str, str] | Iterable[tuple[str, str]],
        points: Sequence[tuple[float, float]],
    ) -> MetricSummary:
        """Summarise ``(ts, value)`` points (any order). Raises ValueError when empty."""
        if not points:
            raise ValueError(f"metric {name}: no points to summarise")
        ordered = sorted(points)
        values = [v for _, v in ordered]
        n = len(ordered)
        mean = sum(values) / n
        slope: float | None = None
        if n >= 2:
            mean_t = sum(t for t, _ in ordered) / n
            var = sum((t - mean_t) ** 2 for t, _ in ordered)
            if var > 0:
                cov = sum((t - mean_t) * (v - mean) for t, v in ordered)
                slope = round(cov / var * DAY_S, 9)
        step = max(1, -(-n // MAX_POINTS))
        kept = ordered[::step]
        if kept[-1] != ordered[-1]:
            kept.append(ordered[-1])
        pairs = labels.items() if isinstance(labels, Mapping) else labels
        return cls(
            name,
            tuple(sorted(pairs)),
            n,
            ordered[0][0],
            ordered[-1][0],
            values[0],
            values[-1],
            min(values),
            max(values),
            mean,
            sum(values),
            slope,
            tuple(kept),
        )

    def label(self, key: str) -> str | None:
        return dict(self.labels).get(key)


@dataclass(frozen=True, slots=True)
class HostFacts:
    """Everything known about one selected host for one inspection run."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    answered: bool = True
    """Whether the host answered the run's InspectionRequest before the deadline."""
    results: tuple[ResultFact, ...] = ()
    """Every result of the latest run of each check (OK ones included)."""
    metrics: tuple[MetricSummary, ...] = ()
    """Metric history over the inspection period."""
    inventory: Mapping[str, Any] | None = None
    """The latest inventory document (``checks/inventory.py`` shape)."""
    last_seen: float | None = None
    """Unix time the collector last heard from the host's agent."""
    lost_results: int = 0
    """Results the agent reported as dropped (gaps) during the period."""

    @classmethod
    def from_evidence(cls, evidence: HostEvidence) -> HostFacts:
        """From one host's rows as the store gathers them for a run."""
        return cls.build(
            evidence.name,
            labels=evidence.labels,
            answered=evidence.answered,
            latest=evidence.latest,
            series=evidence.series,
            inventory=evidence.inventory,
            last_seen=evidence.last_seen,
            lost_results=evidence.lost_results,
        )

    @classmethod
    def build(
        cls,
        name: str,
        *,
        labels: Mapping[str, str] | None = None,
        answered: bool = True,
        latest: Iterable[tuple[str, float, Iterable[Mapping[str, Any]]]] = (),
        series: Iterable[tuple[str, Mapping[str, str], Sequence[tuple[float, float]]]] = (),
        inventory: Mapping[str, Any] | None = None,
        last_seen: float | None = None,
        lost_results: int = 0,
    ) -> HostFacts:
        """From store-shaped rows: ``latest`` holds (check, ts, result dicts as the agent
        records them) per check; ``series`` (metric name, labels, points); empty series skipped.

        >>> facts = HostFacts.build("db1", latest=[("host.swap", 1.0, [{"severity": "WARN",
        ...     "key": "SWAP_IN_HIGH", "summary": "Swap-in 50/s"}])],
        ...     series=[("host_swap_in_pages_per_second", {}, [(0.0, 50.0)]), ("x_count", {}, [])])
        >>> [r.key for r in facts.results], [m.name for m in facts.metrics]
        (['SWAP_IN_HIGH'], ['host_swap_in_pages_per_second'])
        """
        results = tuple(
            ResultFact.from_dict(check, data, ts) for check, ts, entries in latest for data in entries
        )
        metrics = tuple(
            MetricSummary.from_points(metric, metric_labels, points)
            for metric, metric_labels, points in series
            if points
        )
        return cls(name, dict(labels or {}), answered, results, metrics, inventory, last_seen, lost_results)

    def results_with(self, keys: Iterable[str]) -> list[ResultFact]:
        """Non-OK results whose key is one of ``keys``, in the order given by the agent."""
        wanted = set(keys)
        return [r for r in self.results if r.key in wanted and r.severity is not Severity.OK]

    def series(self, name: str, **labels: str) -> Iterator[MetricSummary]:
        """Series named ``name`` whose labels include every ``labels`` pair."""
        for metric in self.metrics:
            if metric.name == name and all(metric.label(k) == v for k, v in labels.items()):
                yield metric

    def one(self, name: str, **labels: str) -> MetricSummary | None:
        """The first series named ``name`` with ``labels`` (None when there is none)."""
        return next(self.series(name, **labels), None)
