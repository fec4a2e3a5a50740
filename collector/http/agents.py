"""API: agents (``/api/v1/agents``): list, enrol (the token is shown once), revoke.

Engineers enrol for any customer; a customer_admin only for its own; viewers read. An
agent of another customer answers 404, like one that does not exist.
"""

# No `from __future__ import annotations` here: FastAPI resolves the endpoints' annotations
# at runtime.

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response, status

from collector.http.deps import (
    EndpointDep,
    Principal,
    StoreDep,
    list_scope,
    require_write,
    store_errors,
)
from collector.http.models import (
    AgentOut,
    EnrollRequest,
    EnrollResponse,
    ListQuery,
    NoQuery,
    RevokeResponse,
)
from collector.http.pages import offset_of, page_by_offset
from collector.ingest.enrolment import EnrolmentError, enrol
from collector.store import customer_agent_id
from collector.store.fleet import FleetRepo

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")


@router.get("/agents", response_model=list[AgentOut], tags=["agents"])
def list_agents(
    store: StoreDep, who: Principal, q: Annotated[ListQuery, Query()], request: Request, response: Response
) -> list[AgentOut]:
    """Agents by customer, host and id: one page (``limit`` rows); a ``Link: <...>;
    rel="next"`` header gives the next page."""
    scope = list_scope(who, q.customer)
    offset = offset_of(q.cursor)
    rows = FleetRepo(store).agents(scope, limit=q.limit + 1, offset=offset)
    return page_by_offset(request, response, [AgentOut.of(a) for a in rows], offset, q.limit)


@router.post(
    "/agents",
    response_model=EnrollResponse,
    status_code=status.HTTP_201_CREATED,
    tags=["agents"],
)
def enroll(
    body: EnrollRequest,
    store: StoreDep,
    who: Principal,
    endpoint: EndpointDep,
    _q: Annotated[NoQuery, Query()],
) -> EnrollResponse:
    """Create an agent token bound to ``customer``; the token is shown only in this response."""
    require_write(who)
    if not who.scope.allows(body.customer):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"this token may not enroll for customer {body.customer!r}"
        )
    agent_id = body.agent_id
    if agent_id is not None and who.scope.customer is not None:
        # A customer's people choose ids inside their customer's namespace only.
        agent_id = customer_agent_id(body.customer, agent_id)
    try:  # the endpoint is checked before the token exists: a refusal leaves no agent behind
        with store_errors():
            enrolled = enrol(store, endpoint, body.customer, body.host, agent_id)
    except EnrolmentError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    identity, token, config = enrolled.identity, enrolled.token, enrolled.config
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


@router.post("/agents/{agent_id}/revoke", response_model=RevokeResponse, tags=["agents"])
def revoke(agent_id: str, store: StoreDep, who: Principal, _q: Annotated[NoQuery, Query()]) -> RevokeResponse:
    """Revoke an agent's token: its stream is refused from now on (within 5 s)."""
    owner = store.agent_customer(agent_id)
    if owner is None or not who.scope.allows(owner):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no agent {agent_id!r}")
    require_write(who)
    return RevokeResponse(agent_id=agent_id, revoked=store.revoke_agent(agent_id))
