"""The collector's own Prometheus metrics, rendered by the HTTP ``/metrics`` endpoint.

One :class:`CollectorMetrics` per process owns a private
:class:`~prometheus_client.CollectorRegistry`, so tests can run several collectors
in one interpreter without clashing on the global registry.

>>> m = CollectorMetrics()
>>> m.batches_ingested(entries=80, points=400, received=[0.0, 0.0])
>>> m.registry.get_sample_value("diag_ingest_batches_total")
2.0
>>> m.reject("rate_limited")
>>> m.registry.get_sample_value("diag_ingest_points_total")
400.0
>>> m.registry.get_sample_value("diag_ingest_rejects_total", {"reason": "rate_limited"})
1.0
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from collector.store.errors import DatabaseError

__all__ = ["REJECT_REASONS", "CollectorMetrics"]

REJECT_REASONS: Final = (
    "unauthenticated",
    "permission_denied",
    "protocol",
    "invalid_argument",
    "batch_too_large",
    "message_too_large",
    "rate_limited",
    "replaced",
    "store_error",
)
"""Every ``reason`` label value of ``diag_ingest_rejects_total`` (pre-created at zero)."""

_ACK_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class CollectorMetrics:
    """Ingest counters, connected agents and the ack-latency histogram."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.entries = Counter(
            "diag_ingest_entries_total", "Spool entries (results, inventories, health) stored", registry=r
        )
        self.points = Counter("diag_ingest_points_total", "Metric points stored", registry=r)
        self.batches = Counter(
            "diag_ingest_batches_total", "Entry batches stored and acknowledged", registry=r
        )
        self.rejects = Counter(
            "diag_ingest_rejects_total",
            "Streams or batches rejected, by reason",
            ["reason"],
            registry=r,
        )
        self.connected_agents = Gauge("diag_connected_agents", "Agents with an open stream", registry=r)
        self.ack_latency = Histogram(
            "diag_ack_latency_seconds",
            "Time from receiving a batch to sending its Ack (decode, validate, commit)",
            buckets=_ACK_BUCKETS,
            registry=r,
        )
        self.gaps = Counter("diag_gaps_total", "Gap reports (dropped spool ranges) recorded", registry=r)
        for reason in REJECT_REASONS:
            self.rejects.labels(reason=reason)

    def watch_ingest_log(self, stats: Callable[[], Any], clock: Callable[[], float]) -> None:
        """Gauges of the ingest log's backlog, read from ``stats()`` (a LogStats) at each scrape.

        Costs one small query per scrape, and answers for every worker and collector
        sharing the store.
        """
        cached: dict[str, Any] = {"at": -1.0, "stats": None}

        def current() -> Any:
            now = clock()
            if now - cached["at"] > 0.5:  # one query per scrape, not one per gauge
                try:
                    cached["stats"] = stats()
                except (DatabaseError, OSError):  # a busy store must not break /metrics: NaN instead
                    cached["stats"] = None
                cached["at"] = now
            return cached["stats"]

        def read(field: str) -> Callable[[], float]:
            def value() -> float:
                s = current()
                if s is None:
                    return float("nan")
                return float(s.lag_seconds(clock()) if field == "lag" else getattr(s, field))

            return value

        r = self.registry
        for name, doc, field in (
            (
                "diag_ingest_log_pending_batches",
                "Acknowledged batches not yet materialised",
                "pending_batches",
            ),
            ("diag_ingest_log_pending_points", "Metric points in the ingest log's backlog", "pending_points"),
            ("diag_ingest_log_lag_seconds", "Age of the oldest batch not yet materialised", "lag"),
            ("diag_ingest_log_quarantined_batches", "Logged batches the materialiser refused", "quarantined"),
        ):
            Gauge(name, doc, registry=r).set_function(read(field))

    def batches_ingested(self, *, entries: int, points: int, received: Sequence[float]) -> None:
        """Count durable, acknowledged batches, acknowledged together now; ``received`` is when
        each was read (``time.perf_counter``)."""
        import time

        now = time.perf_counter()
        self.batches.inc(len(received))
        self.entries.inc(entries)
        self.points.inc(points)
        for t in received:
            self.ack_latency.observe(now - t)

    def reject(self, reason: str) -> None:
        """Count one rejection; ``reason`` must be one of :data:`REJECT_REASONS`."""
        if reason not in REJECT_REASONS:
            raise ValueError(f"unknown reject reason {reason!r}")
        self.rejects.labels(reason=reason).inc()
