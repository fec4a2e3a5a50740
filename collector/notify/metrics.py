"""Delivery counters for ``/metrics``: a small sink protocol and its Prometheus implementation.

``outcome`` values (every pair pre-created at zero):

- ``sent``: delivered;
- ``retried``: an attempt failed and the notification was rescheduled;
- ``failed``: given up (permanent error, ``max_attempts`` or ``max_age_s`` reached, unreadable entry);
- ``dropped``: pushed out of the full outbox before delivery;
- ``unroutable``: its destination is no longer configured.

>>> m = PrometheusNotifyMetrics()
>>> m.delivery("webhook", "sent")
>>> m.outbox_size(3)
>>> m.registry.get_sample_value("diag_notify_deliveries_total", {"channel": "webhook", "outcome": "sent"})
1.0
>>> m.registry.get_sample_value("diag_notify_outbox_entries")
3.0
"""

from __future__ import annotations

from typing import Final, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["CHANNELS", "OUTCOMES", "NotifyMetrics", "NullNotifyMetrics", "PrometheusNotifyMetrics"]

CHANNELS: Final = ("webhook", "email")
"""Every ``channel`` label value."""
OUTCOMES: Final = ("sent", "retried", "failed", "dropped", "unroutable")
"""Every ``outcome`` label value."""


class NotifyMetrics(Protocol):
    """Where the notifier reports what happened; any object with these two methods will do."""

    def delivery(self, channel: str, outcome: str) -> None:
        """Count one notification attempt outcome (see :data:`OUTCOMES`)."""

    def outbox_size(self, entries: int) -> None:
        """Report the number of pending notifications."""


class NullNotifyMetrics:
    """Discards everything (the default)."""

    def delivery(self, channel: str, outcome: str) -> None:
        """Ignore the outcome."""

    def outbox_size(self, entries: int) -> None:
        """Ignore the size."""


class PrometheusNotifyMetrics:
    """``diag_notify_deliveries_total{channel,outcome}`` and ``diag_notify_outbox_entries``.

    Pass the collector's registry (``CollectorMetrics.registry``) to serve them on ``/metrics``.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.deliveries = Counter(
            "diag_notify_deliveries_total",
            "Case notifications by channel and outcome",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.pending = Gauge(
            "diag_notify_outbox_entries", "Notifications waiting in the outbox", registry=self.registry
        )
        for channel in CHANNELS:
            for outcome in OUTCOMES:
                self.deliveries.labels(channel=channel, outcome=outcome)

    def delivery(self, channel: str, outcome: str) -> None:
        """Count one outcome; unknown labels are a programming error."""
        if channel not in CHANNELS or outcome not in OUTCOMES:
            raise ValueError(f"unknown channel/outcome {channel!r}/{outcome!r}")
        self.deliveries.labels(channel=channel, outcome=outcome).inc()

    def outbox_size(self, entries: int) -> None:
        """Set the pending gauge."""
        self.pending.set(entries)
