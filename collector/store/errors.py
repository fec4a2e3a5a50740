"""Exceptions raised by :class:`collector.store.Store`."""

from __future__ import annotations

__all__ = ["AgentRevoked", "Conflict", "NotFound", "StoreError", "UnknownAgent"]


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
