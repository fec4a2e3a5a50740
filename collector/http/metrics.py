"""What ``/metrics`` adds to the ingest counters: store gauges, the fleet, the process, the build.

:func:`scrape_registry` builds the app's registry:

- :class:`StoreGauges`: row counts (customers, hosts, agents by state) and ``diag_store_up``;
- ``process_*`` and ``python_*`` (prometheus_client's process, platform and GC collectors);
- ``diag_build_info{version,python,implementation,store} 1``.

:class:`FleetExposition` is the fleet part, appended to that registry's text by ``/metrics``:
:class:`FleetGauges` (per active agent the age of its last stored batch and its spool
backlog; per customer the hosts by worst state and the cases not yet resolved by severity
and state), read from the fleet state kept at ingest
(:meth:`~collector.store.fleet_state.FleetStateRepo.snapshot`) and rendered to text at most
once per ``ttl_s`` seconds (10,000 agents: ``bench/metrics_scrape.py``).

``_created`` series are dropped (:func:`prometheus_client.disable_created_metrics`): they
double the counters' series and no dashboard or alert here reads them.

Threat model: /metrics is unauthenticated, like every scrape target (bind it to loopback or
a monitoring network; ``http.listen`` defaults to loopback). It shows agent ids, customer
slugs and counts, never a host's results, findings, labels or a token. Cardinality is bounded
by what is enrolled (two series per active agent, five per customer for hosts, six per
customer for cases), never by anything an agent sends: a hostile agent can change its own
two values, not add series.
"""

from __future__ import annotations

import logging
import platform
import threading
import time
from collections.abc import Callable, Iterator
from typing import Final

import prometheus_client
from prometheus_client import CollectorRegistry, Info, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from collector.desk.metrics import SlaGauges
from collector.http.metrics_followup import FollowUpGauges
from collector.store import Store
from collector.store.errors import DatabaseError
from collector.store.fleet import FleetRepo
from collector.store.fleet_state import ACTIVE_CASE_STATES, HOST_STATES, FleetStateRepo

__all__ = ["CASE_SEVERITIES", "FleetExposition", "FleetGauges", "StoreGauges", "scrape_registry"]

log = logging.getLogger(__name__)

CASE_SEVERITIES: Final = ("CRIT", "WARN", "UNKNOWN")
"""Case severities the per-customer case gauges are zero-filled over."""

DEFAULT_TTL_S: Final = 5.0


class StoreGauges(Collector):
    """Store-side gauges, read at scrape time."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def describe(self) -> Iterator[Metric]:
        yield from _store_families()

    def collect(self) -> Iterator[Metric]:
        up, customers, hosts, agents, skewed = _store_families()
        try:
            stats = FleetRepo(self._store).stats()
        except DatabaseError:  # a broken store is a metric value, not a failed scrape
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        customers.add_metric([], stats["customers"])
        hosts.add_metric([], stats["hosts"])
        agents.add_metric(["active"], stats["agents_active"])
        agents.add_metric(["revoked"], stats["agents_revoked"])
        skewed.add_metric([], stats["hosts_clock_skewed"])
        yield from (up, customers, hosts, agents, skewed)


def _store_families() -> tuple[GaugeMetricFamily, ...]:
    return (
        GaugeMetricFamily("diag_store_up", "1 if the store answered the scrape's query"),
        GaugeMetricFamily("diag_store_customers", "Customers in the store"),
        GaugeMetricFamily("diag_store_hosts", "Hosts in the store"),
        GaugeMetricFamily("diag_store_agents", "Enrolled agents by state", labels=["state"]),
        GaugeMetricFamily(
            "diag_hosts_clock_skewed",
            "Hosts whose agent's latest batch was stamped too far ahead of the collector's clock",
        ),
    )


class FleetGauges(Collector):
    """Per-agent and per-customer fleet gauges: one fleet-state read per :meth:`collect`."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self._repo = FleetStateRepo(store)
        self._clock = clock

    def describe(self) -> Iterator[Metric]:
        yield from _fleet_families()

    def collect(self) -> Iterator[Metric]:
        age, spool, hosts, open_cases, query = _fleet_families()
        t0 = time.perf_counter()
        try:
            snap = self._repo.snapshot()
        except DatabaseError as exc:  # diag_store_up says so; no stale fleet figures
            log.warning("fleet metrics: the store did not answer: %s", exc)
            snap = None
        query.add_metric([], time.perf_counter() - t0)
        yield query
        if snap is None:
            return
        now = self._clock()
        for a in snap.agents:
            # Connected but nothing stored yet (every batch refused): silent since enrolment.
            since = a.last_batch_at if a.last_batch_at is not None else a.enrolled_at if a.connected else None
            if since is not None:
                age.add_metric([a.customer, a.agent_id], max(0.0, now - since))
            if a.spool_depth is not None:
                spool.add_metric([a.customer, a.agent_id], float(a.spool_depth))
        host_counts = dict.fromkeys(((c, s) for c in snap.customers for s in HOST_STATES), 0)
        host_counts.update(snap.hosts_by_state)
        for (customer, state), n in host_counts.items():
            hosts.add_metric([customer, state], float(n))
        case_counts = dict.fromkeys(
            ((c, sev, st) for c in snap.customers for sev in CASE_SEVERITIES for st in ACTIVE_CASE_STATES), 0
        )
        case_counts.update(snap.cases)
        for (customer, severity, state), n in case_counts.items():
            open_cases.add_metric([customer, severity, state], float(n))
        yield from (age, spool, hosts, open_cases)


class FleetExposition:
    """The fleet part of /metrics as exposition text, rendered at most once per ``ttl_s``.

    Formatting 20,000 per-agent samples costs far more than reading them, so the text
    itself is cached: several Prometheus servers (or a dashboard refreshing) cost one read
    and one rendering per ``ttl_s``, and a warm scrape copies bytes. Ages are as of the
    rendering (at most ``ttl_s`` old).
    """

    def __init__(
        self,
        store: Store,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(FleetGauges(store, clock=clock))
        self._ttl_s = ttl_s
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._text = b""
        self._taken_at = float("-inf")

    def render(self) -> bytes:
        with self._lock:  # concurrent scrapes share one rendering
            now = self._monotonic()
            if now - self._taken_at >= self._ttl_s:
                self._text = generate_latest(self._registry)
                self._taken_at = now
            return self._text


def _fleet_families() -> tuple[GaugeMetricFamily, ...]:
    return (
        GaugeMetricFamily(
            "diag_agent_last_batch_age_seconds",
            "Seconds since the collector last stored a batch of this active agent (a Hello does not "
            "count; connected but none stored: since enrolment); agents that never connected have no series",
            labels=["customer", "agent"],
        ),
        GaugeMetricFamily(
            "diag_agent_spool_backlog_entries",
            "Entries waiting in the agent's spool, from its newest health entry",
            labels=["customer", "agent"],
        ),
        GaugeMetricFamily(
            "diag_hosts",
            "Hosts by worst state: the worst severity of their checks' latest results (NONE: no result yet)",
            labels=["customer", "state"],
        ),
        GaugeMetricFamily(
            "diag_cases_open",
            "Cases not yet resolved, by severity and state (new, acknowledged, in progress, waiting)",
            labels=["customer", "severity", "state"],
        ),
        GaugeMetricFamily("diag_fleet_query_seconds", "Time the last fleet snapshot query for /metrics took"),
    )


def scrape_registry(store: Store) -> CollectorRegistry:
    """The app's registry: store gauges, process and Python collectors, build info (the fleet
    is :class:`FleetExposition`, appended as cached text)."""
    from agent import __version__  # one version for the distribution; agent/__init__ imports nothing

    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    registry = CollectorRegistry(auto_describe=True)
    registry.register(StoreGauges(store))
    registry.register(FollowUpGauges(store))  # surveys and callbacks (collector.http.metrics_followup)
    registry.register(SlaGauges(store))  # SLA clocks, warnings, breaches (collector.desk.metrics)
    prometheus_client.ProcessCollector(registry=registry)
    prometheus_client.PlatformCollector(registry=registry)
    prometheus_client.GCCollector(registry=registry)
    Info("diag_build", "The collector's version, Python and store dialect", registry=registry).info(
        {
            "version": __version__,
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "store": store.dialect,
        }
    )
    return registry
