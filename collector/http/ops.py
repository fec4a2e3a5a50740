"""Operations endpoints: ``/healthz`` (the store and the ingest log's backlog) and ``/metrics``.

Unauthenticated, like every health and metrics endpoint a load balancer or Prometheus
scrapes; they show counts, never a customer's data.
"""

# No `from __future__ import annotations` here: FastAPI resolves the endpoints' annotations
# at runtime.

import time
from typing import Any

from fastapi import APIRouter, Request, Response, status
from prometheus_client import generate_latest

from collector.http.deps import StoreDep
from collector.store.errors import DatabaseError
from collector.store.fleet import FleetRepo

__all__ = ["PROMETHEUS_CONTENT_TYPE", "router"]

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

router = APIRouter()


@router.get("/healthz", tags=["ops"])
def healthz(response: Response, store: StoreDep) -> dict[str, Any]:
    """200 when the store answers, 503 otherwise; with the ingest log's backlog.

    ``ingest_log``: batches acknowledged but not yet materialised (readable), how old the
    oldest is, and quarantined batches (kept, counted, never applied: listed by
    ``GET /api/v1/ingest/quarantine``).
    The same figures are in /metrics as ``diag_ingest_log_*``.
    """
    if not store.ping():
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return {"status": "store unreachable"}
    try:
        backlog = store.log_stats()
        skewed = FleetRepo(store).stats()["hosts_clock_skewed"]
    except DatabaseError:  # answered the ping, failed this: say so, stay "ok"
        return {"status": "ok", "ingest_log": None}
    return {
        "status": "ok",
        # Agents whose clocks run ahead (see GET /api/v1/hosts, clock_skew_s): a health
        # problem of theirs, not of the collector.
        "hosts_clock_skewed": skewed,
        "ingest_log": {
            "pending_batches": backlog.pending_batches,
            "pending_points": backlog.pending_points,
            "lag_seconds": round(backlog.lag_seconds(time.time()), 3),
            "quarantined_batches": backlog.quarantined,
        },
    }


@router.get("/metrics", tags=["ops"], response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus text: the collector's ingest metrics plus store gauges."""
    body = generate_latest(request.app.state.store_registry) + request.app.state.fleet_exposition.render()
    metrics_registry = request.app.state.metrics_registry
    if metrics_registry is not None:
        body = generate_latest(metrics_registry) + body
    return Response(body, media_type=PROMETHEUS_CONTENT_TYPE)
