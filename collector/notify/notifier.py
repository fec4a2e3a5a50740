"""The notifier: case events in, webhooks and e-mails out, through the durable outbox.

:meth:`Notifier.notify` turns one :class:`~collector.notify.event.CaseEvent` into one
outbox entry per matching destination of the customer (webhooks and e-mail whose
``events`` include it) and commits them before returning; nothing is sent on the
caller's thread. Delivery happens in :meth:`Notifier.deliver_due` — one bounded pass,
called by the background thread (:meth:`start`) or directly by tests and tools.

Retry semantics, per entry:

- success: the entry is deleted (``sent``);
- a retryable failure (timeout, connection error, HTTP 408/425/429/5xx, SMTP 4xx): the
  entry is rescheduled after ``backoff_initial_s * 2**(attempts-1)`` (capped at
  ``backoff_max_s``, jittered by ±``jitter``, and at least the server's ``Retry-After``)
  (``retried``);
- a permanent failure (other HTTP statuses, SMTP 5xx, STARTTLS missing), or
  ``max_attempts`` reached, or the entry older than ``max_age_s``: deleted and logged at
  ERROR (``failed``);
- its destination no longer in the configuration: deleted (``unroutable``).

Configuration is looked up per attempt through the ``customers`` callable, so a reloaded
config (a fixed password, a removed webhook) applies to entries already queued.
Logs name the customer, case, event and destination key with a redacted URL; never a
secret, a full webhook URL, or an SMTP password.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from collector.notify.config import CustomerNotifyConfig, DeliveryPolicy, NotifyConfig
from collector.notify.errors import DeliveryError
from collector.notify.event import CaseEvent, payload_bytes, webhook_payload
from collector.notify.mail import render_email, send_email
from collector.notify.metrics import NotifyMetrics, NullNotifyMetrics
from collector.notify.outbox import Outbox, OutboxEntry
from collector.notify.webhook import send_webhook

__all__ = ["CustomerLookup", "Notifier", "PassReport", "backoff_delay"]

log = logging.getLogger("collector.notify")

CustomerLookup = Callable[[str], CustomerNotifyConfig | None]
"""customer id → its notification settings (None: not notified)."""

_IDLE_POLL_S = 60.0


def backoff_delay(policy: DeliveryPolicy, attempts: int, rand: float = 0.5) -> float:
    """Delay before the next try after ``attempts`` failed ones; ``rand`` in [0, 1) picks the jitter.

    >>> p = DeliveryPolicy(backoff_initial_s=10, backoff_max_s=60, jitter=0.0)
    >>> [backoff_delay(p, n) for n in (1, 2, 3, 4, 5)]
    [10.0, 20.0, 40.0, 60.0, 60.0]
    >>> backoff_delay(DeliveryPolicy(backoff_initial_s=10, jitter=0.5), 1, rand=0.0)
    5.0
    """
    base = min(policy.backoff_max_s, policy.backoff_initial_s * 2.0 ** min(attempts - 1, 60))
    return min(policy.backoff_max_s, base * (1.0 + policy.jitter * (2.0 * rand - 1.0)))


@dataclass(frozen=True, slots=True)
class PassReport:
    """What one delivery pass did."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    unroutable: int = 0

    @property
    def attempted(self) -> int:
        """Entries taken from the outbox in this pass."""
        return self.sent + self.retried + self.failed + self.unroutable


class Notifier:
    """Queues case notifications durably and delivers them with retries.

    ``outbox_dir`` holds the outbox file (created 0700). ``clock`` and ``rng`` are injectable
    so tests control time and jitter.
    """

    def __init__(
        self,
        outbox_dir: Path,
        customers: CustomerLookup,
        *,
        policy: DeliveryPolicy | None = None,
        metrics: NotifyMetrics | None = None,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.policy = policy if policy is not None else DeliveryPolicy()
        self.outbox = Outbox(outbox_dir, max_entries=self.policy.max_outbox_entries)
        self._customers = customers
        self._metrics: NotifyMetrics = metrics if metrics is not None else NullNotifyMetrics()
        self._clock = clock
        self._rng = rng
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._metrics.outbox_size(len(self.outbox))

    @classmethod
    def from_config(
        cls,
        outbox_dir: Path,
        config: NotifyConfig,
        *,
        metrics: NotifyMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> Notifier:
        """A notifier for a static :class:`NotifyConfig` (its delivery policy and customers)."""
        return cls(outbox_dir, config.for_customer, policy=config.delivery, metrics=metrics, clock=clock)

    # -- enqueue ---------------------------------------------------------------------------

    def notify(self, event: CaseEvent) -> list[str]:
        """Queue ``event`` for every matching destination; returns the ids newly queued.

        Durable when it returns. Queueing the same transition again is a no-op while the
        first is pending (ids are deterministic). Never sends on the caller's thread.
        """
        cfg = self._customers(event.customer)
        if cfg is None:
            log.debug("notify: customer %s has no notification settings", event.customer)
            return []
        now = self._clock()
        entries = [
            OutboxEntry.new(event, "webhook", hook.key, now=now)
            for hook in cfg.webhooks
            if event.event in hook.events
        ]
        if cfg.email is not None and event.event in cfg.email.events:
            entries.append(OutboxEntry.new(event, "email", "email", now=now))
        if not entries:
            return []
        added, dropped = self.outbox.add(entries)
        for old in dropped:
            log.warning(
                "notify: outbox full (%d); dropped %s %s for customer %s case %s (queued %s)",
                self.policy.max_outbox_entries,
                old.channel,
                old.event.event,
                old.customer,
                old.event.case_id,
                old.target,
            )
            self._metrics.delivery(old.channel, "dropped")
        self._metrics.outbox_size(len(self.outbox))
        self._wake.set()
        return added

    # -- deliver ---------------------------------------------------------------------------

    def deliver_due(self, now: float | None = None) -> PassReport:
        """Attempt every entry due at ``now`` (at most ``policy.batch``); returns the tally."""
        now = self._clock() if now is None else now
        entries, unreadable = self.outbox.due(now=now, limit=self.policy.batch)
        counts = {"sent": 0, "retried": 0, "failed": unreadable, "unroutable": 0}
        for entry in entries:
            counts[self._attempt(entry, now)] += 1
        self._metrics.outbox_size(len(self.outbox))
        return PassReport(**counts)

    def _attempt(self, entry: OutboxEntry, now: float) -> str:
        ev = entry.event
        what = f"{entry.channel} {ev.event} for customer {entry.customer} case {ev.case_id}"
        cfg = self._customers(entry.customer)
        try:
            if entry.channel == "webhook":
                hook = next((h for h in (cfg.webhooks if cfg else ()) if h.key == entry.target), None)
                if hook is None:
                    return self._finish(
                        entry, "unroutable", f"{what}: webhook {entry.target} no longer configured"
                    )
                what = f"{what} to {hook.label}"
                body = payload_bytes(webhook_payload(ev, entry.id))
                send_webhook(hook, body, event=f"case.{ev.event}", delivery=entry.id, now=now)
            else:
                if cfg is None or cfg.email is None:
                    return self._finish(entry, "unroutable", f"{what}: e-mail no longer configured")
                what = f"{what} via {cfg.email.smtp_host}:{cfg.email.smtp_port}"
                send_email(cfg.email, render_email(ev, cfg, cfg.email, entry.id))
        except DeliveryError as exc:
            return self._failed(entry, now, what, exc)
        except Exception as exc:  # noqa: BLE001
            # A bug (e.g. in rendering) must not stop the worker or lose the entry. Only the type
            # is logged: an unexpected exception's text could quote a URL or credential.
            err = DeliveryError(f"internal error {type(exc).__name__}", retryable=True)
            return self._failed(entry, now, what, err)
        return self._finish(entry, "sent", f"{what}: delivered after {entry.attempts + 1} attempt(s)")

    def _finish(self, entry: OutboxEntry, outcome: str, message: str) -> str:
        self.outbox.delete(entry.id)
        self._metrics.delivery(entry.channel, outcome)
        if outcome == "sent":
            log.info("notify: %s", message)
        else:
            log.warning("notify: %s; discarded", message)
        return outcome

    def _failed(self, entry: OutboxEntry, now: float, what: str, exc: DeliveryError) -> str:
        attempts = entry.attempts + 1
        if (
            not exc.retryable
            or attempts >= self.policy.max_attempts
            or now - entry.created_ts >= self.policy.max_age_s
        ):
            why = "permanent error" if not exc.retryable else f"giving up after {attempts} attempt(s)"
            log.error("notify: %s failed (%s): %s", what, why, exc)
            self.outbox.delete(entry.id)
            self._metrics.delivery(entry.channel, "failed")
            return "failed"
        delay = backoff_delay(self.policy, attempts, self._rng())
        if exc.retry_after_s is not None:
            delay = max(delay, min(exc.retry_after_s, self.policy.backoff_max_s))
        self.outbox.reschedule(entry.id, attempts=attempts, next_ts=now + delay, last_error=str(exc))
        log.warning("notify: %s attempt %d failed: %s; retrying in %.0fs", what, attempts, exc, delay)
        self._metrics.delivery(entry.channel, "retried")
        return "retried"

    # -- background worker ------------------------------------------------------------------

    def start(self) -> None:
        """Start the delivery thread (idempotent). It delivers whatever the outbox holds first."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="diag-notify", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the thread after the attempt in progress (each attempt is bounded by its timeout)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def close(self) -> None:
        """Stop the thread and close the outbox; pending entries stay for the next start."""
        self.stop()
        self.outbox.close()

    def __enter__(self) -> Notifier:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                report = self.deliver_due()
            except (sqlite3.Error, OSError) as exc:
                # Outbox trouble (disk full, file removed): keep the thread alive and try later.
                log.error("notify: outbox %s unusable: %s: %s", self.outbox.path, type(exc).__name__, exc)
                self._wake.wait(_IDLE_POLL_S)
                continue
            if report.attempted >= self.policy.batch:
                continue  # more may be due right now
            nxt = self.outbox.next_due_ts()
            wait = _IDLE_POLL_S if nxt is None else min(_IDLE_POLL_S, max(0.0, nxt - self._clock()))
            self._wake.wait(wait)
