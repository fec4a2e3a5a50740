"""What a :class:`agent.sessions.manager.SessionManager` reports, kept in a list (the
tests that drive the manager without a collector stream read it)."""

from __future__ import annotations

__all__ = ["Events"]


class Events:
    """Session events as ``(session_id, event, actor, detail)``; recording chunks are dropped."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, str]] = []

    def event(self, session_id: str, event: str, actor: str, detail: str) -> None:
        self.events.append((session_id, event, actor, detail))

    def chunk(self, session_id: str, index: int, data: bytes, last: bool, sha256: str) -> None:
        return
