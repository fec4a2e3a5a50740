"""SLA gauges and counters for ``/metrics``, read from the store at scrape time.

- ``diag_sla_clocks{customer, state}``: clocks of open cases at risk (``at_risk``: 75% of
  the target used) or ``breached``. Cardinality is bounded: the :data:`MAX_CUSTOMERS`
  customers with the most such clocks are named, the rest are summed under ``_other``.
- ``diag_sla_breached_cases{customer}``: open cases with a breached clock, 0 included (the
  ``DiagCaseSLABreached`` alert, deploy/prometheus/alerts.yaml); the same bound, as ``_other``.
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
            cases = self._repo.breached_cases()
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
        yield from (clocks, _breached_cases(cases), warnings, breaches)


def _breached_cases(rows: list[tuple[str, int]]) -> GaugeMetricFamily:
    """Per customer, the :data:`MAX_CUSTOMERS` with the most named, the rest as ``_other``."""
    family = GaugeMetricFamily(
        "diag_sla_breached_cases", "Open cases past an SLA target, per customer", labels=["customer"]
    )
    ranked = sorted(rows, key=lambda r: (-r[1], r[0]))
    for customer, n in sorted(ranked[:MAX_CUSTOMERS]):
        family.add_metric([customer], n)
    if len(ranked) > MAX_CUSTOMERS:
        family.add_metric(["_other"], sum(n for _, n in ranked[MAX_CUSTOMERS:]))
    return family
