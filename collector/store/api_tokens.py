"""API tokens: create, authenticate (who is calling), list (never the secret), revoke, expiry.

Tokens are created by :meth:`ApiTokenRepo.create_api_token` (stored as SHA-256 digests; the
plain token is shown once) and checked by :meth:`ApiTokenRepo.authenticate_api_token`, which
refuses revoked and expired ones (the store's methods of those names are the front door:
``store.tokens``). Listing and revoking work within a scope: an engineer's scope is every
token; a customer_admin's is its customer's tokens (never the engineers', which belong to
no customer).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from collector.store.errors import NotFound, StoreError
from collector.store.names import check_name
from collector.store.principal import ROLES, STAFF_ROLES, ApiPrincipal, Role
from collector.store.queries import Scope
from collector.store.schema import api_tokens, customers
from collector.store.tokens import API_TOKEN_KIND, digest_matches, display_prefix, hash_token, new_token

if TYPE_CHECKING:
    from collector.store.store import Store

__all__ = ["ROLES", "ApiPrincipal", "ApiTokenInfo", "ApiTokenRepo", "Role"]

_LAST_USED_EVERY_S = 60.0


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
    """API tokens: create and authenticate (internal), list and revoke within a scope."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._token_last_used: dict[int, float] = {}

    def create_api_token(
        self, name: str, role: str, customer: str | None = None, *, expires_at: float | None = None
    ) -> str:
        """Create an HTTP API token; the plain token is returned once and never stored.

        ``expires_at`` (epoch seconds): refused from then on; None: valid until revoked.
        """
        if role not in ROLES:
            raise StoreError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        if role in STAFF_ROLES and customer is not None:
            raise StoreError(f"{role} tokens see every customer: do not pass a customer")
        if role not in STAFF_ROLES and customer is None:
            raise StoreError(f"a {role} token belongs to one customer: pass --customer")
        check_name("token name", name)
        token = new_token(API_TOKEN_KIND)
        with self.store._write() as conn:
            customer_id = None if customer is None else self.store._ensure_customer(conn, customer)
            conn.execute(
                api_tokens.insert().values(
                    name=name,
                    role=role,
                    customer_id=customer_id,
                    token_hash=hash_token(token),
                    prefix=display_prefix(token),
                    created_at=self.store._clock(),
                    expires_at=expires_at,
                )
            )
        return token

    def authenticate_api_token(self, token: str) -> ApiPrincipal | None:
        digest = hash_token(token)
        with self.store.engine.connect() as conn:
            row = conn.execute(
                sa.select(api_tokens, customers.c.slug)
                .outerjoin(customers, customers.c.id == api_tokens.c.customer_id)
                .where(api_tokens.c.token_hash == digest)
            ).first()
        if row is None or row.revoked_at is not None or not digest_matches(row.token_hash, digest):
            return None
        if row.expires_at is not None and row.expires_at <= self.store._clock():
            return None
        principal = ApiPrincipal(int(row.id), row.name, row.role, row.slug)
        self._touch_token(principal.token_id)
        return principal

    def _touch_token(self, token_id: int) -> None:
        """Update last_used_at at most once a minute per token (not a write per request)."""
        now = time.monotonic()
        with self.store._cache_lock:
            if now - self._token_last_used.get(token_id, -_LAST_USED_EVERY_S) < _LAST_USED_EVERY_S:
                return
            self._token_last_used[token_id] = now
        with self.store._write() as conn:
            conn.execute(
                api_tokens.update()
                .where(api_tokens.c.id == token_id)
                .values(last_used_at=self.store._clock())
            )

    def revoke_api_token(self, token_id: int) -> bool:
        with self.store._write() as conn:
            done = conn.execute(
                api_tokens.update()
                .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=self.store._clock())
            ).rowcount
        return bool(done)

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
        changed = self.revoke_api_token(token_id)
        return self.get(scope, token_id), changed
