"""SLA gauges and counters for ``/metrics``, read from the store at scrape time.

- ``diag_sla_clocks{customer, state}``: clocks of open cases at risk (``at_risk``: 75% of
  the target used) or ``breached``. Cardinality is bounded: the :data:`MAX_CUSTOMERS`
  customers with the most such clocks are named, the rest are summed under ``_other``.
- ``diag_sla_warnings_total`` and ``diag_sla_breaches_total``: warnings and breaches raised
  (counted from the stored clocks, so every collector sharing the store reports the same).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from collector.store import Store
from collector.store.errors import DatabaseError
from collector.store.sla import SlaRepo

__all__ = ["MAX_CUSTOMERS", "SlaGauges"]

MAX_CUSTOMERS = 20
"""Customers named in ``diag_sla_clocks``; the others are summed as ``_other``."""


class SlaGauges(Collector):
    def __init__(self, store: Store) -> None:
        self._repo = SlaRepo(store)

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        try:
            counts = self._repo.counts()
            warned, breached = self._repo.totals()
        except DatabaseError:  # diag_store_up already says the store is down
            return
        clocks = GaugeMetricFamily(
            "diag_sla_clocks", "SLA clocks of open cases at risk or breached", labels=["customer", "state"]
        )
        per_customer: dict[str, int] = {}
        for customer, _, n in counts:
            per_customer[customer] = per_customer.get(customer, 0) + n
        named = set(sorted(per_customer, key=lambda c: (-per_customer[c], c))[:MAX_CUSTOMERS])
        summed: dict[tuple[str, str], int] = {}
        for customer, state, n in counts:
            key = (customer if customer in named else "_other", state)
            summed[key] = summed.get(key, 0) + n
        for state in ("at_risk", "breached"):
            clocks.add_metric(["_all", state], sum(n for (_, s), n in summed.items() if s == state))
        for (customer, state), n in sorted(summed.items()):
            clocks.add_metric([customer, state], n)
        warnings = CounterMetricFamily("diag_sla_warnings", "SLA warnings raised (75% of a target)")
        warnings.add_metric([], warned)
        breaches = CounterMetricFamily("diag_sla_breaches", "SLA breaches raised")
        breaches.add_metric([], breached)
        yield from (clocks, warnings, breaches)
