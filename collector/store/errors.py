"""Exceptions raised by :class:`collector.store.Store`.

:data:`DatabaseError` is the database's own failure (busy, unreachable, refused), so code
above the store can tell it apart without importing SQLAlchemy.
"""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError

__all__ = ["AgentRevoked", "Conflict", "DatabaseError", "NotFound", "StoreError", "UnknownAgent"]

DatabaseError = SQLAlchemyError
"""The database failed the call (locked, unreachable, a refused statement): retry later or report."""


class StoreError(Exception):
    """Base class: a request the store refuses (bad input, state conflict)."""


class UnknownAgent(StoreError):
    """The agent row behind an identity no longer exists."""


class AgentRevoked(StoreError):
    """The agent's token was revoked after it authenticated; nothing was stored."""


class Conflict(StoreError):
    """The request conflicts with stored state (agent id taken, name ambiguous)."""


class NotFound(StoreError):
    """The named object does not exist (or is outside the caller's scope)."""
