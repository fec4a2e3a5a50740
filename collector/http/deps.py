"""Dependencies every API router shares: the store, the caller, its scope, error mapping.

``create_app`` puts the store on ``app.state.store`` (and, under ``serve``, the gRPC
service on ``app.state.grpc``, for endpoints that talk to connected agents). A router
module declares endpoints with ``who: Principal`` and reaches the store through
``StoreDep``.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from collector.ingest.enrolment import AgentEndpoint
from collector.store import ApiPrincipal, Conflict, NotFound, Scope, Store, StoreError

__all__ = [
    "EndpointDep",
    "GrpcDep",
    "Principal",
    "StoreDep",
    "require_case_staff",
    "require_case_writer",
    "require_write",
    "scope_for",
    "store_errors",
]

_bearer = HTTPBearer(auto_error=False, description="API token from `diag-collector token create`")


def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def get_grpc(request: Request) -> Any:
    """The serving process's AgentStreamService, or None (an app without gRPC, in tests)."""
    return getattr(request.app.state, "grpc", None)


def get_agent_endpoint(request: Request) -> AgentEndpoint:
    """Where enrolled agents are told to connect (``create_app``'s ``agent_endpoint``)."""
    endpoint: AgentEndpoint = request.app.state.agent_endpoint
    return endpoint


StoreDep = Annotated[Store, Depends(get_store)]
GrpcDep = Annotated[Any, Depends(get_grpc)]
EndpointDep = Annotated[AgentEndpoint, Depends(get_agent_endpoint)]


def principal(
    store: StoreDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiPrincipal:
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing API token: send 'Authorization: Bearer <token>' "
            "(an engineer creates one with: diag-collector token create --name NAME)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    found = store.authenticate_api_token(credentials.credentials)
    if found is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "invalid or revoked API token (or expired: list tokens with diag-collector token list)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return found


Principal = Annotated[ApiPrincipal, Depends(principal)]


def scope_for(who: ApiPrincipal, customer: str | None) -> Scope:
    """The caller's scope; 403 when it asks for a customer it may not read."""
    if customer is not None and not who.scope.allows(customer):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"this token may not read customer {customer!r}")
    return who.scope


def list_scope(who: ApiPrincipal, customer: str | None) -> Scope:
    """What a list shows: ``customer``'s rows when asked (403 when the caller may not read
    it), else everything the caller may read. Filtered in the query, so pages stay full."""
    scope = scope_for(who, customer)
    return scope if customer is None else Scope.of(customer)


def require_write(who: ApiPrincipal) -> None:
    """403 for read-only (viewer) tokens."""
    if not who.can_write:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "viewer tokens are read-only")


def require_case_staff(who: ApiPrincipal) -> None:
    """403 unless an engineer or a service manager: they take, work, transfer and close cases."""
    if who.role == "viewer":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "viewer tokens are read-only")
    if not who.is_staff:  # the rule the dashboard shares
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"a {who.role} may open cases and add notes; engineers and service managers work them",
        )


def require_case_writer(who: ApiPrincipal) -> None:
    """403 for viewers: everyone else may add notes to the cases it can see."""
    if not who.adds_notes:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "viewer tokens are read-only")


@contextmanager
def store_errors() -> Iterator[None]:
    """Map store exceptions to HTTP statuses."""
    try:
        yield
    except NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except Conflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except StoreError as exc:
        raise HTTPException(422, str(exc)) from None  # the constant was renamed in Starlette 0.48
