"""What the agents' stream hands to the session hub (``collector.sessions.relay.SessionHub``).

The hub is injected by ``serve`` (``AgentStreamService(sessions=...)``), so the ingest
package never imports the sessions package beside it. The service hands every session
frame over as soon as it is read, never behind a batch's ingest, and the hub never waits
in these calls.
"""

from __future__ import annotations

from typing import Final, Protocol

from protos.diag.v1 import agent_pb2

__all__ = ["SESSION_BODIES", "SessionFrames"]

SESSION_BODIES: Final = frozenset(("session_status", "session_data", "session_window", "session_close"))


class SessionFrames(Protocol):
    """The session hub (``collector.sessions``), injected: gets session frames as they are read."""

    def agent_connected(self, agent_id: str, features: tuple[str, ...]) -> None: ...

    def agent_disconnected(self, agent_id: str) -> None: ...

    def agent_frame(self, agent_id: str, msg: agent_pb2.AgentMessage) -> None: ...
