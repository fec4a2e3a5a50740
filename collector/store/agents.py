"""Agents in the store: enrolment, agent login (token to identity, cached briefly), Hello.

:class:`AgentRepo` is one part of :class:`~collector.store.Store` (``store.agents``); the
store's ``enroll_agent``, ``authenticate_agent`` … are its front door. Agent tokens are kept
as SHA-256 digests with a display prefix; the plain token is returned once, at enrolment.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict
from typing import TYPE_CHECKING

import sqlalchemy as sa

from collector.store.errors import Conflict, StoreError
from collector.store.names import check_name, check_slug
from collector.store.schema import agents, customers, hosts
from collector.store.tokens import AGENT_TOKEN_KIND, digest_matches, display_prefix, hash_token, new_token
from collector.store.types import AgentIdentity, HostFactsRow

if TYPE_CHECKING:
    from collector.store.store import Store

__all__ = ["AgentRepo"]

_AUTH_CACHE_TTL_S = 2.0  # revocation by another process takes effect within this
_AUTH_CACHE_MAX = 10_000


class AgentRepo:
    """See the module docstring."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._agent_auth: dict[str, tuple[float, AgentIdentity | None]] = {}

    def enroll_agent(
        self, customer: str, host: str | None = None, agent_id: str | None = None
    ) -> tuple[AgentIdentity, str]:
        """Create an agent bound to ``customer`` (created if new); the plain token is returned once."""
        check_slug(customer)
        agent_id = check_name("agent id", agent_id) if agent_id else f"ag-{uuid.uuid4().hex[:12]}"
        if "." in agent_id and not agent_id.startswith(f"{customer}."):
            # '<customer>.' is that customer's namespace (see customer_agent_id): nobody
            # else, engineers included, may enroll an id in it or in another one.
            raise StoreError(
                f"agent id {agent_id!r}: an id with a '.' must start with its customer, "
                f"'{customer}.<name>'; or choose an id without '.'"
            )
        host = check_name("host", host) if host else agent_id
        token = new_token(AGENT_TOKEN_KIND)
        with self.store._write() as conn:
            exists = conn.execute(sa.select(agents.c.id).where(agents.c.agent_id == agent_id)).first()
            if exists is not None:
                raise Conflict(f"agent id {agent_id!r} is already enrolled; revoke it or choose another id")
            customer_id = self.store._ensure_customer(conn, customer)
            self.store._ensure_host(conn, customer_id, host)
            token_id = conn.execute(
                agents.insert().values(
                    agent_id=agent_id,
                    customer_id=customer_id,
                    host=host,
                    token_hash=hash_token(token),
                    token_prefix=display_prefix(token),
                    created_at=self.store._clock(),
                    max_seq=0,
                )
            ).inserted_primary_key
            assert token_id is not None
        return AgentIdentity(agent_id, customer, host, int(token_id[0])), token

    def revoke_agent(self, agent_id: str) -> bool:
        """Revoke the agent's token; False if unknown or already revoked."""
        with self.store._write() as conn:
            done = conn.execute(
                agents.update()
                .where(agents.c.agent_id == agent_id, agents.c.revoked_at.is_(None))
                .values(revoked_at=self.store._clock())
            ).rowcount
        with self.store._cache_lock:
            self._agent_auth.clear()
        return bool(done)

    def agent_customer(self, agent_id: str) -> str | None:
        """The customer slug an agent belongs to (None if unknown)."""
        with self.store.engine.connect() as conn:
            slug = conn.execute(
                sa.select(customers.c.slug)
                .join(agents, agents.c.customer_id == customers.c.id)
                .where(agents.c.agent_id == agent_id)
            ).scalar_one_or_none()
        return None if slug is None else str(slug)

    def authenticate_agent(self, token: str) -> AgentIdentity | None:
        """The identity behind an agent token; None for unknown or revoked tokens.

        Answers are cached for 2 s, so a revocation made by another process takes
        effect within that time (this process's own revocations at once).
        """
        digest = hash_token(token)
        now = time.monotonic()
        with self.store._cache_lock:
            cached = self._agent_auth.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        with self.store.engine.connect() as conn:
            row = conn.execute(
                sa.select(agents, customers.c.slug)
                .join(customers, customers.c.id == agents.c.customer_id)
                .where(agents.c.token_hash == digest)
            ).first()
        identity = None
        if row is not None and row.revoked_at is None and digest_matches(row.token_hash, digest):
            identity = AgentIdentity(row.agent_id, row.slug, row.host, int(row.id))
        with self.store._cache_lock:
            if len(self._agent_auth) >= _AUTH_CACHE_MAX:
                self._agent_auth.clear()
            self._agent_auth[digest] = (now + _AUTH_CACHE_TTL_S, identity)
        return identity

    def hello(self, agent: AgentIdentity, facts: HostFactsRow) -> int:
        """Record the agent's host facts and version; returns its resume point (max stored seq)."""
        now = self.store._clock()
        facts_doc = asdict(facts)
        labels = dict(facts_doc.pop("labels"))
        with self.store._write() as conn:
            row = self.store._lock_agent(conn, agent)
            host_id = self.store._host_id(conn, agent)
            conn.execute(
                agents.update()
                .where(agents.c.agent_id == agent.agent_id)
                .values(last_seen_at=now, agent_version=facts.agent_version[:64])
            )
            conn.execute(
                hosts.update()
                .where(hosts.c.id == host_id)
                .values(
                    facts=facts_doc,
                    labels=labels,
                    last_seen=now,
                    first_seen=sa.func.coalesce(hosts.c.first_seen, now),
                )
            )
        self.store._remember_host(agent, host_id)
        return int(row.max_seq)
