"""API: API tokens (``/api/v1/tokens``): list, create with an expiry, revoke.

- ``GET  /tokens``               tokens in the caller's scope, newest first (no secret)
- ``POST /tokens``               create one; the token is in this response only
- ``POST /tokens/{id}/revoke``   revoke one: refused from the next request on

Threat model. A token is the whole credential of a person or script, so:

- the plain token exists only in the create response; the store keeps its SHA-256, and
  listings show its first 8 characters (to tell tokens apart), never the digest;
- viewers may do none of this (403): a read-only token must not mint or end tokens;
- a customer_admin sees, creates and revokes only its own customer's tokens, and only
  ``customer_admin`` or ``viewer`` ones (an engineer token sees every customer); another
  customer's token answers 404, exactly like a token that does not exist;
- an engineer may manage every token; an engineer may revoke its own token (a lost
  laptop), after which that token is refused like any other;
- revoked and expired tokens are refused by authentication itself (401), for every
  endpoint and before any request body is read (:mod:`collector.http.body_limits`).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field

from collector.http.deps import Principal, StoreDep, require_write, scope_for, store_errors
from collector.http.problems import responses
from collector.store import ApiPrincipal
from collector.store.api_tokens import ApiTokenInfo, ApiTokenRepo

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["tokens"], responses=responses(401, 403, 404, 422))

SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
TokenId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The token's id, from GET /tokens.")]


def _time(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


class TokenOut(BaseModel):
    """An API token as listed: never the token itself."""

    model_config = ConfigDict(frozen=True)

    id: int
    name: str
    role: str
    customer: str | None
    prefix: str = Field(description="The token's first 8 characters, to tell tokens apart.")
    state: Literal["active", "expired", "revoked"]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def of(cls, t: ApiTokenInfo, now: float) -> TokenOut:
        return cls(
            id=t.id,
            name=t.name,
            role=t.role,
            customer=t.customer,
            prefix=t.prefix,
            state=t.state(now),
            created_at=datetime.fromtimestamp(t.created_at, UTC),
            expires_at=_time(t.expires_at),
            revoked_at=_time(t.revoked_at),
            last_used_at=_time(t.last_used_at),
        )


class TokenCreated(TokenOut):
    token: str = Field(description="The token: shown only in this response, stored hashed.")


class TokenRevoked(TokenOut):
    revoked: bool = Field(description="False when it was already revoked.")


class TokensQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer: str | None = Field(default=None, pattern=SLUG_PATTERN, description="Only this customer.")
    limit: int = Field(default=100, ge=1, le=1000)


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
    role: Literal["engineer", "customer_admin", "viewer", "service_manager"] = "viewer"
    customer: str | None = Field(
        default=None, pattern=SLUG_PATTERN, description="Required for customer_admin and viewer tokens."
    )
    expires_in_days: int | None = Field(
        default=None, ge=1, le=3650, description="Refused this many days from now; omitted: until revoked."
    )


def _manage(who: ApiPrincipal) -> None:
    if who.role == "service_manager":
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "service managers do not manage API tokens: ask an engineer"
        )
    require_write(who)


@router.get("/tokens", response_model=list[TokenOut])
def list_tokens(store: StoreDep, who: Principal, q: Annotated[TokensQuery, Query()]) -> list[TokenOut]:
    """API tokens in the caller's scope, newest first (engineers: all; customer admins: their customer's)."""
    _manage(who)
    rows = ApiTokenRepo(store).list(scope_for(who, q.customer), customer=q.customer, limit=q.limit)
    now = time.time()
    return [TokenOut.of(t, now) for t in rows]


@router.post(
    "/tokens", response_model=TokenCreated, status_code=status.HTTP_201_CREATED, responses=responses(409, 413)
)
def create_token(body: TokenCreate, store: StoreDep, who: Principal) -> TokenCreated:
    """Create an API token; it is shown only in this response."""
    _manage(who)
    customer = body.customer
    if who.role != "engineer":
        if body.role in ("engineer", "service_manager"):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"only engineers create {body.role} tokens")
        customer = customer or who.customer
        scope_for(who, customer)
    expires_at = None if body.expires_in_days is None else time.time() + body.expires_in_days * 86400
    with store_errors():
        token = store.create_api_token(body.name, body.role, customer, expires_at=expires_at)
    created = ApiTokenRepo(store).by_token(token)
    return TokenCreated(**TokenOut.of(created, time.time()).model_dump(), token=token)


@router.post("/tokens/{token_id}/revoke", response_model=TokenRevoked)
def revoke_token(token_id: TokenId, store: StoreDep, who: Principal) -> TokenRevoked:
    """Revoke an API token: every request with it is refused (401) from now on."""
    _manage(who)
    with store_errors():
        info, changed = ApiTokenRepo(store).revoke(who.scope, token_id)
    return TokenRevoked(**TokenOut.of(info, time.time()).model_dump(), revoked=changed)
