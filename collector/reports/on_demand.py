"""Reports rendered on request: one render per version at a time, a bounded pool, a time limit.

Threat model: any viewer may ask for a report, as often and as many at once as it likes.
Before this, eight parallel requests for one PDF made eight renders and stored eight
identical records, six parallel renders kept ``/healthz`` slow for over a minute, and any
change to a case (a note) made the next request render again.

- **Version.** A report's *version* is a digest of everything its content is made from,
  except the moment it is rendered: for a fault-analysis report, the whole report model
  (case, timeline, notes, evidence points, customer name, time zone and logo) with its
  ``generated_at`` left out; for an inspection report, the run (a finished run never
  changes) and the customer's profile. A stored record of the same (kind, subject,
  language, format, version) is served as it is; a change that shows in the report (a
  note, new evidence points, a new logo) makes a new version, anything else (an
  acknowledgement already shown, a repeated GET) does not.
- **One render per version.** Requests for a (kind, subject, lang, format, version) that
  is being rendered wait for that render and share its record: one render, one record.
- **Bounded pool.** Renders run on at most :data:`MAX_PARALLEL` worker threads, off the
  event loop that serves gRPC; at most :data:`MAX_QUEUED` distinct renders wait, beyond
  that a request is answered "busy" (HTTP 503, Retry-After) at once.
- **Time limit.** A request waits at most :data:`TIME_LIMIT_S` for its render, then gets
  503 and Retry-After; the render finishes and stores its record for the next request (a
  thread cannot be interrupted, and the work is not wasted). The logo's complexity
  limits (:mod:`collector.reports.svg_logo`) keep a single render from running long.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

__all__ = ["MAX_PARALLEL", "MAX_QUEUED", "TIME_LIMIT_S", "RenderBusy", "RenderPool", "digest", "renders"]

T = TypeVar("T")

MAX_PARALLEL = 2
MAX_QUEUED = 16
TIME_LIMIT_S = 60.0

RenderKey = tuple[str, str, str, str, str]
"""(kind, subject, lang, format, version)."""


class RenderBusy(Exception):
    """The render did not finish within the time limit, or too many are queued; retry later."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def digest(*parts: str | bytes) -> str:
    """A version string from the parts a report is made of.

    >>> digest("run-1", b"logo") == digest("run-1", b"logo") != digest("run-1", b"logo2")
    True
    """
    h = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8") if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()[:32]


class RenderPool:
    """Single-flight renders on a bounded thread pool, each waited for at most a time limit."""

    def __init__(
        self,
        max_parallel: int = MAX_PARALLEL,
        max_queued: int = MAX_QUEUED,
        time_limit_s: float = TIME_LIMIT_S,
    ) -> None:
        self._executor = ThreadPoolExecutor(max_workers=max_parallel, thread_name_prefix="report-render")
        self._lock = threading.Lock()
        self._inflight: dict[RenderKey, Future[object]] = {}
        self.max_queued = max_queued
        self.time_limit_s = time_limit_s
        self.renders_started = 0
        """Renders actually run (shared requests do not count): for tests and metrics."""

    def run(self, key: RenderKey, produce: Callable[[], T], *, patient: bool = False) -> T:
        """``produce()``'s value; requests with the same ``key`` in flight share one call.

        ``patient``: the collector's own renders (a finished run's reports, e-mailed
        deliveries) are never refused for a full queue and wait as long as the render takes.
        """
        with self._lock:
            future = self._inflight.get(key)
            if future is None:
                if len(self._inflight) >= self.max_queued and not patient:
                    raise RenderBusy(
                        f"{len(self._inflight)} reports are being rendered; try again in a minute", 30
                    )
                future = self._executor.submit(self._produce, key, produce)
                self._inflight[key] = future
                self.renders_started += 1
        try:
            result: T = future.result(timeout=None if patient else self.time_limit_s)  # type: ignore[assignment]
        except FutureTimeout:
            raise RenderBusy(
                f"the report is still being rendered after {self.time_limit_s:.0f} s; "
                "it will be stored when done: ask again in a minute",
                60,
            ) from None
        return result

    def _produce(self, key: RenderKey, produce: Callable[[], object]) -> object:
        try:
            return produce()
        finally:
            with self._lock:
                self._inflight.pop(key, None)


renders = RenderPool()
"""The collector's render pool (one per process)."""
