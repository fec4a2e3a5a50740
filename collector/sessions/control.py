"""What the API and the dashboard both do to a remote session: approve it, end it (deny or
revoke), and tell its engineer how to connect.

The callers check who may (the rules on :class:`~collector.store.ApiPrincipal`:
``approves_sessions``, ``revokes_sessions``) after looking the session up in their scope
(404 before 403); these functions carry the change out in the store (audited there) and
tell the agent through the serving process's :class:`~collector.sessions.relay.SessionHub`
(None when no gRPC service runs, in tests). Store errors (NotFound, Conflict) pass through.
"""

from __future__ import annotations

import time
from typing import Literal

from starlette.concurrency import run_in_threadpool

from collector.sessions.relay import SessionHub
from collector.store import ApiPrincipal, Store
from collector.store.sessions import SessionRecord, SessionRepo

__all__ = ["approve", "end", "known_hosts_line", "ssh_command"]


def _alias(s: SessionRecord) -> str:
    return f"diag-session-{s.id}"


def ssh_command(s: SessionRecord) -> str | None:
    """The OpenSSH command that connects through the collector, pinned to the host key the
    agent reported (None until it reported one)."""
    if not s.host_key:
        return None
    return (
        f"ssh -o ProxyCommand='diagctl sessions proxy %h' -o HostKeyAlias={_alias(s)} "
        f"-o UserKnownHostsFile=~/.ssh/diag_known_hosts user@{s.id}"
    )


def known_hosts_line(s: SessionRecord) -> str | None:
    """The ``known_hosts`` line pinning the agent's host key (None until it reported one)."""
    return f"{_alias(s)} {s.host_key}" if s.host_key else None


async def approve(store: Store, hub: SessionHub | None, who: ApiPrincipal, session_id: str) -> SessionRecord:
    """requested → approved by ``who``; the agent gets the approved grant if connected."""
    repo = SessionRepo(store)
    s = await run_in_threadpool(lambda: repo.approve(who.scope, session_id, actor=who.name, now=time.time()))
    if hub is not None:
        await hub.send_grant(s)
    return s


async def end(
    store: Store,
    hub: SessionHub | None,
    who: ApiPrincipal,
    session_id: str,
    how: Literal["deny", "revoke"],
    reason: str,
) -> SessionRecord:
    """Deny a requested session or revoke a live one; every stream is cut off now."""
    repo = SessionRepo(store)
    fn = repo.deny if how == "deny" else repo.revoke
    s = await run_in_threadpool(
        lambda: fn(
            who.scope, session_id, actor=who.name, reason=reason or f"{how}d by {who.name}", now=time.time()
        )
    )
    if hub is not None:
        await hub.end_session(s, f"session {s.state} by {who.name}")
    return s
