"""The collector's HTTP side: JSON API under /api/v1, /healthz and /metrics.

:func:`create_app` only assembles: the endpoints are declared in routers, one module per
group (:mod:`.ops`, :mod:`.fleet`, :mod:`.agents`, :mod:`.cases`, :mod:`.inspections`,
:mod:`.reports`, :mod:`.tokens`), reaching the store through :mod:`.deps`.

Every endpoint is a plain ``def``: FastAPI runs it in its threadpool, so the synchronous
store never blocks the asyncio loop the gRPC server shares. Callers authenticate with
an API token (``Authorization: Bearer ...``, created by ``diag-collector token create``);
what they see is scoped by role:

- engineer: every customer, may enroll and revoke agents;
- customer_admin: its own customer, may enroll and revoke that customer's agents;
- viewer: its own customer, read-only;
- service_manager: every customer, reads all and works cases (the service desk's view).

A host or agent of another customer answers 404, exactly like one that does not exist.
"""

# No `from __future__ import annotations` here: FastAPI resolves the endpoints' annotations
# at runtime.

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from prometheus_client import CollectorRegistry

from collector.http import problems
from collector.http.agents import router as agents_router
from collector.http.body_limits import BodyLimits
from collector.http.cases import router as cases_router
from collector.http.customers import router as customers_router
from collector.http.desk import router as desk_router
from collector.http.fleet import router as fleet_router
from collector.http.inspections import router as inspections_router
from collector.http.metrics import FleetExposition, scrape_registry
from collector.http.ops import router as ops_router
from collector.http.records import install as install_records
from collector.http.sessions import router as sessions_router
from collector.http.survey_page import router as survey_page_router
from collector.http.surveys import router as surveys_router
from collector.http.tokens import router as tokens_router
from collector.ingest.enrolment import AgentEndpoint
from collector.store import Store
from collector.web import install as install_web

__all__ = ["create_app"]

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def create_app(
    store: Store,
    metrics_registry: CollectorRegistry | None = None,
    *,
    grpc_address: str = "127.0.0.1:50051",
    grpc_service: Any = None,
    agent_endpoint: AgentEndpoint | None = None,
    public_url: str = "",
    sessions: Any = None,
    followup: Any = None,
) -> FastAPI:
    """The FastAPI app; ``agent_endpoint`` is what enrolment tells agents (default:
    ``grpc_address`` without TLS).

    ``grpc_service``: the serving process's AgentStreamService, for endpoints that talk to
    connected agents (None in an app without gRPC). ``public_url``: where people reach the
    collector (the dashboard's cookies are ``Secure`` when it is https). ``followup``: the
    follow-up step (:class:`collector.desk.followup.FollowUp`): resolving a case starts it
    (None: resolving leaves the case resolved; the survey page answers 404).
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
    store_registry = scrape_registry(store)  # store, fleet, process, build (collector.http.metrics)
    endpoint = agent_endpoint or AgentEndpoint(grpc_address, tls=False, server_name=None)

    app.state.store = store
    app.state.grpc = grpc_service
    app.state.store_registry = store_registry
    app.state.fleet_exposition = FleetExposition(store)  # the fleet series, cached as text
    app.state.metrics_registry = metrics_registry
    app.state.agent_endpoint = endpoint
    app.state.sessions = sessions  # the serving process's SessionHub (collector.sessions.relay), or None
    routers = (ops_router, fleet_router, agents_router, cases_router, desk_router, inspections_router)
    for router in (*routers, tokens_router):
        app.include_router(router)
    app.include_router(customers_router)
    app.include_router(sessions_router)
    app.state.public_url = public_url
    install_records(app)  # service records, their sign-off page, customer documents
    app.state.followup = followup
    app.include_router(surveys_router)
    app.include_router(survey_page_router)  # /survey/{token}: public, the token is the credential

    install_web(app, public_url=public_url)  # the dashboard (collector.web): /, /fleet, /cases, ...

    @app.middleware("http")
    async def no_store_cache(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        if request.url.path.startswith("/api/"):
            response.headers["Cache-Control"] = "no-store"  # responses may carry tokens
        return response

    return app
