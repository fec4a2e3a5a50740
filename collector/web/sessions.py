"""Web sessions: an API token exchanged for a server-side session behind an HttpOnly cookie.

Threat model (see also :mod:`collector.web`):

- *Stolen session store*: sessions live in the serving process's memory only, keyed by the
  SHA-256 digest of the cookie value; the cookie value (32 random bytes) and the API token
  used to sign in are never kept. A restart signs everyone out.
- *Session fixation*: a new id is drawn at every sign-in; an id the server did not issue is
  not found.
- *Stale sessions*: each session has an idle expiry (renewed by use) and an absolute one
  (never renewed); expired ones are removed when met and by :meth:`Sessions.sweep`. The
  token behind a session is checked on every request (revoked or expired token: signed out).
- *Memory exhaustion by mass sign-in*: at most :data:`MAX_SESSIONS`; beyond it the
  oldest session is dropped.
- *CSRF*: each session carries its own random CSRF token, which every form posts back and
  :func:`csrf_matches` compares in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from collector.store import ApiPrincipal

__all__ = ["ABSOLUTE_S", "IDLE_S", "MAX_SESSIONS", "Session", "Sessions", "csrf_matches"]

IDLE_S = 30 * 60.0
"""A session unused this long is over."""
ABSOLUTE_S = 12 * 3600.0
"""A session is over this long after sign-in, however busy."""
MAX_SESSIONS = 10_000


@dataclass(slots=True)
class Session:
    principal: ApiPrincipal
    csrf: str
    created_at: float
    last_used_at: float


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def csrf_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison of a form's CSRF token with the session's."""
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


class Sessions:
    """In-memory sessions (thread-safe: pages are served from FastAPI's threadpool)."""

    def __init__(
        self,
        *,
        idle_s: float = IDLE_S,
        absolute_s: float = ABSOLUTE_S,
        clock: Callable[[], float] = time.time,
        max_sessions: int = MAX_SESSIONS,
    ) -> None:
        self.idle_s, self.absolute_s, self.clock, self.max_sessions = idle_s, absolute_s, clock, max_sessions
        self._by_digest: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def create(self, principal: ApiPrincipal) -> tuple[str, Session]:
        """A new session for ``principal``: (the cookie value, the session)."""
        session_id = secrets.token_urlsafe(32)
        now = self.clock()
        session = Session(principal, secrets.token_urlsafe(32), now, now)
        with self._lock:
            self._by_digest[_digest(session_id)] = session
            while len(self._by_digest) > self.max_sessions:
                self._by_digest.popitem(last=False)
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        """The live session of a cookie value (renewing its idle expiry), else None."""
        if not session_id or len(session_id) > 200:
            return None
        digest = _digest(session_id)
        now = self.clock()
        with self._lock:
            session = self._by_digest.get(digest)
            if session is None:
                return None
            if now - session.last_used_at >= self.idle_s or now - session.created_at >= self.absolute_s:
                del self._by_digest[digest]
                return None
            session.last_used_at = now
            return session

    def end(self, session_id: str | None) -> bool:
        """Sign out: forget the session. True when there was one."""
        if not session_id:
            return False
        with self._lock:
            return self._by_digest.pop(_digest(session_id), None) is not None

    def sweep(self) -> int:
        """Remove expired sessions; how many were removed."""
        now = self.clock()
        with self._lock:
            stale = [
                d
                for d, s in self._by_digest.items()
                if now - s.last_used_at >= self.idle_s or now - s.created_at >= self.absolute_s
            ]
            for d in stale:
                del self._by_digest[d]
        return len(stale)

    def __len__(self) -> int:
        return len(self._by_digest)
