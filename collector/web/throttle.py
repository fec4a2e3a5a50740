"""Failed attempts per client address in a sliding window: the guard of anonymous forms.

Used by the web sign-in (:mod:`collector.web.auth`) and the public survey page
(:mod:`collector.http.survey_page`): once a client has ``limit`` failures within
``window_s`` seconds, :meth:`Throttle.blocked` says so (the caller answers 429 before any
lookup). Memory is bounded: past 100 000 clients the oldest 1 000 are forgotten.

>>> t = Throttle(limit=2, window_s=10.0)
>>> t.failed("a", 0.0); t.failed("a", 1.0)
>>> t.blocked("a", 5.0), t.blocked("b", 5.0), t.blocked("a", 11.5)
(True, False, False)
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque

__all__ = ["Throttle"]

MAX_CLIENTS = 100_000


class Throttle:
    """Failures per client address in a sliding window (bounded memory, thread-safe)."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def blocked(self, client: str, now: float) -> bool:
        """Whether ``client`` had ``limit`` failures in the window ending at ``now``."""
        with self._lock:
            recent = self._failures.get(client)
            if recent is None:
                return False
            while recent and recent[0] < now - self.window_s:
                recent.popleft()
            if not recent:
                del self._failures[client]
                return False
            return len(recent) >= self.limit

    def failed(self, client: str, now: float) -> None:
        """Count one failure of ``client`` at ``now``."""
        with self._lock:
            self._failures[client].append(now)
            if len(self._failures) > MAX_CLIENTS:  # bounded: forget the oldest clients
                for key in list(self._failures)[:1000]:
                    del self._failures[key]
