"""``/metrics`` of the follow-up step: satisfaction surveys and callbacks by outcome, so
nothing unanswered is lost from sight.

- ``diag_surveys{state}``: survey links by ``open`` (sent, not answered, not expired),
  ``answered`` and ``expired`` (expired without an answer); their sum is every link sent;
- ``diag_callbacks{state}``: closed cases drawn for a callback by ``due`` (nothing
  recorded yet), ``reached`` and ``no_answer`` (the last attempt got none).

Counts over every customer (no label per customer or case: bounded cardinality), read at
scrape time in two queries; a broken store yields no sample (``diag_store_up`` says why).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from collector.store import Store
from collector.store.errors import DatabaseError
from collector.store.queries import Scope
from collector.store.surveys import SurveyRepo

__all__ = ["FollowUpGauges"]


def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
    return (
        GaugeMetricFamily("diag_surveys", "Satisfaction survey links sent, by state", labels=["state"]),
        GaugeMetricFamily("diag_callbacks", "Closed cases drawn for a callback, by state", labels=["state"]),
    )


class FollowUpGauges(Collector):
    """Surveys and callbacks counted from the store at each scrape."""

    def __init__(self, store: Store) -> None:
        self._repo = SurveyRepo(store)

    def describe(self) -> Iterator[Metric]:
        yield from _families()

    def collect(self) -> Iterator[Metric]:
        surveys, callbacks = _families()
        try:
            c = self._repo.counts(Scope.everything(), now=time.time())
        except DatabaseError:
            return
        surveys.add_metric(["open"], c.surveys_open)
        surveys.add_metric(["answered"], c.surveys_answered)
        surveys.add_metric(["expired"], c.surveys_expired)
        callbacks.add_metric(["due"], c.callbacks_due)
        callbacks.add_metric(["reached"], c.callbacks_reached)
        callbacks.add_metric(["no_answer"], c.callbacks_no_answer)
        yield from (surveys, callbacks)
