"""The collector's HTTP side: JSON API under /api/v1, /healthz and /metrics.

Every endpoint is a plain ``def``: FastAPI runs it in its threadpool, so the synchronous
store never blocks the asyncio loop the gRPC server shares. Callers authenticate with
an API token (``Authorization: Bearer ...``, created by ``diag-collector token create``);
what they see is scoped by role:

- engineer: every customer, may enroll and revoke agents;
- customer_admin: its own customer, may enroll and revoke that customer's agents;
- viewer: its own customer, read-only.

A host or agent of another customer answers 404, exactly like one that does not exist.
"""

# No `from __future__ import annotations` here: FastAPI resolves the endpoints' annotations
# at runtime.

import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query, Request, Response, status
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from collector.enrolment import AgentEndpoint, EnrolmentError, agent_config_text
from collector.http import problems
from collector.http.body_limits import BodyLimits
from collector.http.cases import router as cases_router
from collector.http.deps import Principal, require_write, scope_for, store_errors
from collector.http.inspections import router as inspections_router
from collector.http.models import (
    AgentOut,
    CustomerQuery,
    EnrollRequest,
    EnrollResponse,
    GapOut,
    GapsQuery,
    HostDetailOut,
    HostOut,
    HostQuery,
    NoQuery,
    QuarantinedOut,
    QuarantineQuery,
    ResultOut,
    ResultsQuery,
    RevokeResponse,
    UpgradeOut,
)
from collector.http.pages import decode_cursor, page
from collector.http.tokens import router as tokens_router
from collector.store import Scope, Store, customer_agent_id

__all__ = ["create_app"]

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class StoreGauges(Collector):
    """Store-side gauges, read at scrape time."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("diag_store_up", "1 if the store answered the scrape's query")
        try:
            stats = self._store.stats()
        except SQLAlchemyError:  # a broken store is a metric value, not a failed scrape
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        customers = GaugeMetricFamily("diag_store_customers", "Customers in the store")
        customers.add_metric([], stats["customers"])
        hosts = GaugeMetricFamily("diag_store_hosts", "Hosts in the store")
        hosts.add_metric([], stats["hosts"])
        agents = GaugeMetricFamily("diag_store_agents", "Enrolled agents by state", labels=["state"])
        agents.add_metric(["active"], stats["agents_active"])
        agents.add_metric(["revoked"], stats["agents_revoked"])
        skewed = GaugeMetricFamily(
            "diag_hosts_clock_skewed",
            "Hosts whose agent's latest batch was stamped too far ahead of the collector's clock",
        )
        skewed.add_metric([], stats["hosts_clock_skewed"])
        yield from (up, customers, hosts, agents, skewed)


def create_app(
    store: Store,
    metrics_registry: CollectorRegistry | None = None,
    *,
    grpc_address: str = "127.0.0.1:50051",
    grpc_service: Any = None,
    agent_endpoint: AgentEndpoint | None = None,
) -> FastAPI:
    """The FastAPI app; ``agent_endpoint`` is what enrolment tells agents (default:
    ``grpc_address`` without TLS).

    ``grpc_service``: the serving process's AgentStreamService, for endpoints that talk to
    connected agents (None in an app without gRPC).
    """
    app = FastAPI(
        title="diag-collector",
        version="1",
        description="Remote diagnostics collector API. Authenticate with `Authorization: Bearer <token>`.",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )
    problems.install(app)
    problems.install_openapi(app)
    app.add_middleware(BodyLimits, store=store)
    store_registry = CollectorRegistry(auto_describe=True)
    endpoint = agent_endpoint or AgentEndpoint(grpc_address, tls=False, server_name=None)
    store_registry.register(StoreGauges(store))

    app.state.store = store
    app.state.grpc = grpc_service
    app.include_router(cases_router)
    app.include_router(inspections_router)
    app.include_router(tokens_router)

    @app.get("/healthz", tags=["ops"])
    def healthz(response: Response) -> dict[str, Any]:
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
            skewed = store.stats()["hosts_clock_skewed"]
        except SQLAlchemyError:  # answered the ping, failed this: say so, stay "ok"
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

    @app.get("/metrics", tags=["ops"], response_class=Response)
    def metrics() -> Response:
        """Prometheus text: the collector's ingest metrics plus store gauges."""
        body = generate_latest(store_registry)
        if metrics_registry is not None:
            body = generate_latest(metrics_registry) + body
        return Response(body, media_type=PROMETHEUS_CONTENT_TYPE)

    @app.get("/api/v1/hosts", response_model=list[HostOut], tags=["hosts"])
    def list_hosts(who: Principal, q: Annotated[CustomerQuery, Query()]) -> list[HostOut]:
        hosts = store.list_hosts(scope_for(who, q.customer))
        return [HostOut.of(h) for h in hosts if q.customer is None or h.customer == q.customer]

    @app.get("/api/v1/hosts/{name}", response_model=HostDetailOut, tags=["hosts"])
    def host_detail(name: str, who: Principal, q: Annotated[CustomerQuery, Query()]) -> HostDetailOut:
        """Latest result per check, grouped by layer; ``customer`` disambiguates a shared name."""
        with store_errors():
            return HostDetailOut.of(store.host_detail(scope_for(who, q.customer), name, q.customer))

    @app.get("/api/v1/results", response_model=list[ResultOut], tags=["results"])
    def results(
        who: Principal, q: Annotated[ResultsQuery, Query()], request: Request, response: Response
    ) -> list[ResultOut]:
        """Results of one host, newest first: one page (``limit`` rows, at most 4 MiB of JSON);
        a ``Link: <...>; rel="next"`` header gives the next page."""
        since = q.since.timestamp() if q.since is not None else None
        before = decode_cursor(q.cursor)
        with store_errors():
            rows = store.results(
                scope_for(who, q.customer), q.host, q.check, since, q.limit + 1, q.customer, before=before
            )
        return page(
            request, response, [ResultOut.of(r) for r in rows], [(r.ts, r.row_id) for r in rows], q.limit
        )

    @app.get("/api/v1/agents", response_model=list[AgentOut], tags=["agents"])
    def list_agents(who: Principal, q: Annotated[CustomerQuery, Query()]) -> list[AgentOut]:
        rows = store.agents(scope_for(who, q.customer))
        return [AgentOut.of(a) for a in rows if q.customer is None or a.customer == q.customer]

    @app.post(
        "/api/v1/agents",
        response_model=EnrollResponse,
        status_code=status.HTTP_201_CREATED,
        tags=["agents"],
    )
    def enroll(body: EnrollRequest, who: Principal, _q: Annotated[NoQuery, Query()]) -> EnrollResponse:
        """Create an agent token bound to ``customer``; the token is shown only in this response."""
        require_write(who)
        if not who.scope.allows(body.customer):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"this token may not enroll for customer {body.customer!r}"
            )
        try:  # before the token exists: a refusal leaves no enrolled agent behind
            address = endpoint.require()
        except EnrolmentError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        agent_id = body.agent_id
        if agent_id is not None and who.scope.customer is not None:
            # A customer's people choose ids inside their customer's namespace only.
            agent_id = customer_agent_id(body.customer, agent_id)
        with store_errors():
            identity, token = store.enroll_agent(body.customer, body.host, agent_id)
        config = agent_config_text(
            identity.agent_id,
            identity.customer,
            address,
            token,
            tls=endpoint.tls,
            server_name=endpoint.server_name,
        )
        # The token travels in the config file only, never on a command line (ps, shell history).
        command = "diag-agent run --config /etc/diag-agent/agent.yaml"
        return EnrollResponse(
            agent_id=identity.agent_id,
            customer=identity.customer,
            host=identity.host,
            token=token,
            config=config,
            command=command,
        )

    @app.post("/api/v1/agents/{agent_id}/revoke", response_model=RevokeResponse, tags=["agents"])
    def revoke(agent_id: str, who: Principal, _q: Annotated[NoQuery, Query()]) -> RevokeResponse:
        """Revoke an agent's token: its stream is refused from now on (within 5 s)."""
        owner = store.agent_customer(agent_id)
        if owner is None or not who.scope.allows(owner):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no agent {agent_id!r}")
        require_write(who)
        return RevokeResponse(agent_id=agent_id, revoked=store.revoke_agent(agent_id))

    @app.get("/api/v1/gaps", response_model=list[GapOut], tags=["results"])
    def gaps(
        who: Principal, q: Annotated[GapsQuery, Query()], request: Request, response: Response
    ) -> list[GapOut]:
        """Sequence ranges agents dropped (spool full): results that will never arrive, newest
        first; one page, with a ``Link: <...>; rel="next"`` header when more follow."""
        scope = scope_for(who, q.customer)
        if q.customer is not None:
            scope = Scope.of(q.customer)
        with store_errors():
            rows = store.gaps(scope, q.host, q.customer, limit=q.limit + 1, before=decode_cursor(q.cursor))
        return page(
            request, response, [GapOut.of(g) for g in rows], [(g.dropped_at, g.row_id) for g in rows], q.limit
        )

    @app.get("/api/v1/ingest/quarantine", response_model=list[QuarantinedOut], tags=["ops"])
    def quarantine(who: Principal, q: Annotated[QuarantineQuery, Query()]) -> list[QuarantinedOut]:
        """Acknowledged batches the materialiser could not apply, kept aside with the reason (engineers).

        They are counted in /healthz and /metrics (``quarantined_batches``); this lists
        which agents and sequence ranges they hold and why, newest first. Engineers only:
        the reason is the collector's own error, which can name its internals.
        """
        if who.role != "engineer":
            raise HTTPException(status.HTTP_403_FORBIDDEN, "only engineers see the ingest quarantine")
        with store_errors():
            rows = store.quarantined_log_rows(scope_for(who, q.customer), q.host, q.customer, q.limit)
        return [QuarantinedOut.of(r) for r in rows]

    @app.get("/api/v1/upgrades", response_model=list[UpgradeOut], tags=["hosts"])
    def upgrades(who: Principal, q: Annotated[HostQuery, Query()]) -> list[UpgradeOut]:
        """Product version changes seen between consecutive inventories of a host."""
        with store_errors():
            rows = store.upgrades(scope_for(who, q.customer), q.host, q.customer)
        return [UpgradeOut.of(u) for u in rows if q.customer is None or u.customer == q.customer]

    @app.middleware("http")
    async def no_store_cache(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        if request.url.path.startswith("/api/"):
            response.headers["Cache-Control"] = "no-store"  # responses may carry tokens
        return response

    return app
