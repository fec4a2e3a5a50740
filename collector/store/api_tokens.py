"""API tokens as people manage them: list (never the secret), revoke, expiry.

Tokens are created by :meth:`Store.create_api_token` (stored as SHA-256 digests; the
plain token is shown once) and checked by :meth:`Store.authenticate_api_token`, which
refuses revoked and expired ones. This module lists and revokes them within a scope: an
engineer's scope is every token; a customer_admin's is its customer's tokens (never the
engineers', which belong to no customer).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from collector.store.errors import NotFound
from collector.store.queries import Scope
from collector.store.schema import api_tokens, customers
from collector.store.store import Store
from collector.store.tokens import hash_token

__all__ = ["ApiTokenInfo", "ApiTokenRepo"]


@dataclass(frozen=True, slots=True)
class ApiTokenInfo:
    """A token as listings show it: its first 8 characters, never the token or its digest."""

    id: int
    name: str
    role: str
    customer: str | None
    prefix: str
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    last_used_at: float | None

    def state(self, now: float) -> str:
        """``active``, ``expired`` or ``revoked``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


_COLUMNS = (
    api_tokens.c.id,
    api_tokens.c.name,
    api_tokens.c.role,
    api_tokens.c.prefix,
    api_tokens.c.created_at,
    api_tokens.c.expires_at,
    api_tokens.c.revoked_at,
    api_tokens.c.last_used_at,
    customers.c.slug,
)


def _info(row: sa.Row[tuple[object, ...]]) -> ApiTokenInfo:
    m = row._mapping
    return ApiTokenInfo(
        id=int(m["id"]),
        name=str(m["name"]),
        role=str(m["role"]),
        customer=m["slug"],
        prefix=str(m["prefix"]),
        created_at=float(m["created_at"]),
        expires_at=m["expires_at"],
        revoked_at=m["revoked_at"],
        last_used_at=m["last_used_at"],
    )


class ApiTokenRepo:
    """Listing and revoking API tokens within a scope."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _query(self, scope: Scope) -> sa.Select[tuple[object, ...]]:
        query = sa.select(*_COLUMNS).outerjoin(customers, customers.c.id == api_tokens.c.customer_id)
        if scope.customer is not None:
            # A customer's scope: its own tokens; engineers' tokens have no customer.
            query = query.where(customers.c.slug == scope.customer)
        return query

    def list(self, scope: Scope, *, customer: str | None = None, limit: int = 100) -> list[ApiTokenInfo]:
        """Tokens in ``scope`` (optionally of one customer), newest first."""
        query = self._query(scope)
        if customer is not None:
            query = query.where(customers.c.slug == customer)
        query = query.order_by(api_tokens.c.id.desc()).limit(limit)
        with self.store.engine.connect() as conn:
            return [_info(r) for r in conn.execute(query)]

    def get(self, scope: Scope, token_id: int) -> ApiTokenInfo:
        """One token; NotFound outside ``scope`` (as for one that does not exist)."""
        with self.store.engine.connect() as conn:
            row = conn.execute(self._query(scope).where(api_tokens.c.id == token_id)).first()
        if row is None:
            raise NotFound(f"no API token {token_id} (list them with: diagctl tokens list)")
        return _info(row)

    def by_token(self, token: str) -> ApiTokenInfo:
        """The token's row, found by its digest (just after creating it)."""
        with self.store.engine.connect() as conn:
            row = conn.execute(
                self._query(Scope.everything()).where(api_tokens.c.token_hash == hash_token(token))
            ).first()
        if row is None:
            raise NotFound("no such API token")
        return _info(row)

    def revoke(self, scope: Scope, token_id: int) -> tuple[ApiTokenInfo, bool]:
        """Revoke a token in ``scope``: (the token now, whether this call revoked it)."""
        self.get(scope, token_id)
        changed = self.store.revoke_api_token(token_id)
        return self.get(scope, token_id), changed
