"""The notifier: notifications in, webhooks and e-mails out, through the store's leased outbox.

:meth:`Notifier.notify` turns one notification (a :class:`~collector.notify.event.CaseEvent`
or another registered kind, :mod:`collector.notify.kinds`) into one outbox row per
matching destination of the customer (webhooks and e-mail whose ``events`` include it)
and commits them to the store before returning; nothing is sent on the caller's thread.
Delivery happens in :meth:`Notifier.deliver_due`, one bounded pass, called by the
background thread (:meth:`start`), the serving process's delivery task, or tests.

The outbox is a table of the store (:mod:`collector.store.outbox`), so every process and
every collector sharing the store shares it. A pass takes one due row at a time with a
lease of ``policy.lease_s`` (longer than one attempt): of several collectors, one delivers
a given notification at a time, and if it dies mid-delivery another takes the row over
once the lease runs out. Delivery is at least once; receivers dedup on the notification
id (``X-Diag-Delivery``, the payload ``id``, the e-mail ``Message-ID``), stable across
retries and collectors.

Retry semantics, per notification:

- success: the row is deleted (``sent``);
- a retryable failure (timeout, connection error, HTTP 408/425/429/5xx, SMTP 4xx): the
  row is rescheduled after ``backoff_initial_s * 2**(attempts-1)`` (capped at
  ``backoff_max_s``, jittered by ±``jitter``, and at least the server's ``Retry-After``)
  (``retried``);
- a permanent failure (other HTTP statuses, SMTP 5xx, STARTTLS missing), or
  ``max_attempts`` reached, or the row older than ``max_age_s``, or a row this version
  cannot read: deleted and logged at ERROR (``failed``);
- its destination no longer in the configuration: deleted (``unroutable``);
- pushed out of the full outbox (``max_outbox_entries``) before delivery: ``dropped``.

Configuration is looked up per attempt through the ``customers`` callable, so a reloaded
config (a fixed password, a removed webhook) applies to rows already queued. Rows hold
destination keys, never secrets or URLs. Logs name the customer, subject, event and
destination key with a redacted URL; never a secret, a full webhook URL, or an SMTP password.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from pydantic import BaseModel, ValidationError

from collector.notify.config import CustomerNotifyConfig, DeliveryPolicy, NotifyConfig
from collector.notify.errors import DeliveryError
from collector.notify.event import payload_bytes
from collector.notify.kinds import KINDS, NoticeKind, kind_of, notice_id
from collector.notify.mail import send_email
from collector.notify.metrics import NotifyMetrics, NullNotifyMetrics
from collector.notify.webhook import send_webhook
from collector.store.errors import DatabaseError
from collector.store.outbox import LEGACY_OUTBOX_FILE, OutboxRepo, OutboxRow
from collector.store.store import Store

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
    lost: int = 0
    """Rows whose lease ran out while this collector was attempting them (another took over)."""

    @property
    def attempted(self) -> int:
        """Rows taken from the outbox in this pass."""
        return self.sent + self.retried + self.failed + self.unroutable + self.lost


class Notifier:
    """Queues notifications in the store's outbox and delivers them with retries.

    ``clock`` and ``rng`` are injectable so tests control time and jitter.
    """

    def __init__(
        self,
        store: Store,
        customers: CustomerLookup,
        *,
        policy: DeliveryPolicy | None = None,
        metrics: NotifyMetrics | None = None,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.policy = policy if policy is not None else DeliveryPolicy()
        self.outbox = OutboxRepo(store)
        self._customers = customers
        self._metrics: NotifyMetrics = metrics if metrics is not None else NullNotifyMetrics()
        self._clock = clock
        self._rng = rng
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_config(
        cls,
        store: Store,
        config: NotifyConfig,
        *,
        metrics: NotifyMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> Notifier:
        """A notifier for a static :class:`NotifyConfig` (its delivery policy and customers)."""
        return cls(store, config.for_customer, policy=config.delivery, metrics=metrics, clock=clock)

    def import_local_outbox(self, directory: Path) -> int | None:
        """Move a local outbox file of an earlier collector (``directory/notify-outbox.sqlite3``)
        into the store and rename it; None when there is none. Raises OSError when unreadable."""
        done = self.outbox.import_file(
            directory / LEGACY_OUTBOX_FILE, max_entries=self.policy.max_outbox_entries
        )
        if done is None:
            return None
        added, dropped = done
        self._dropped(dropped)
        self._wake.set()
        return added

    # -- enqueue ---------------------------------------------------------------------------

    def notify(self, notice: BaseModel) -> list[str]:
        """Queue ``notice`` for every matching destination; returns the ids newly queued.

        Durable when it returns. Queueing the same event again is a no-op while the first
        is pending (ids are deterministic). Never sends on the caller's thread.
        """
        kind = kind_of(notice)
        customer = kind.customer(notice)
        cfg = self._customers(customer)
        if cfg is None:
            log.debug("notify: customer %s has no notification settings", customer)
            return []
        event = kind.event(notice)
        targets = [("webhook", hook.key) for hook in cfg.webhooks if event in hook.events]
        if cfg.email is not None and event in cfg.email.events:
            targets.append(("email", "email"))
        if not targets:
            return []
        now = self._clock()
        payload = notice.model_dump_json()
        rows = [
            OutboxRow(
                id=notice_id(notice, channel, target),
                kind=kind.name,
                customer=customer,
                channel=channel,
                target=target,
                subject=kind.subject(notice),
                payload=payload,
                created_at=now,
                next_at=now,
            )
            for channel, target in targets
        ]
        added, dropped = self.outbox.add(rows, max_entries=self.policy.max_outbox_entries)
        self._dropped(dropped)
        self._metrics.outbox_size(self.outbox.count())
        self._wake.set()
        return added

    def _dropped(self, dropped: list[OutboxRow]) -> None:
        for old in dropped:
            log.warning(
                "notify: outbox full (%d); dropped %s notification for customer %s %s %s (for %s)",
                self.policy.max_outbox_entries,
                old.channel,
                old.customer,
                old.kind,
                old.subject,
                old.target,
            )
            self._metrics.delivery(old.channel, "dropped")

    # -- deliver ---------------------------------------------------------------------------

    def deliver_due(self, now: float | None = None) -> PassReport:
        """Attempt the rows due at ``now`` (at most ``policy.batch``), one lease at a time."""
        counts = {"sent": 0, "retried": 0, "failed": 0, "unroutable": 0, "lost": 0}
        for _ in range(self.policy.batch):
            at = self._clock() if now is None else now
            claimed = self.outbox.claim(at, self.policy.lease_s, 1)
            if not claimed:
                break
            counts[self._attempt(claimed[0], at)] += 1
        self._metrics.outbox_size(self.outbox.count())
        return PassReport(**counts)

    def _decode(self, row: OutboxRow) -> tuple[NoticeKind, BaseModel] | None:
        kind = KINDS.get(row.kind)
        if kind is None or row.channel not in ("webhook", "email"):
            return None
        try:
            return kind, kind.model.model_validate_json(row.payload)
        except ValidationError:
            return None

    def _attempt(self, row: OutboxRow, now: float) -> str:
        what = f"{row.channel} notification for customer {row.customer} {row.kind} {row.subject}"
        decoded = self._decode(row)
        if decoded is None:
            # A row this version cannot read would block the queue forever: drop it, loudly.
            log.error("notify: %s: unreadable outbox entry %s; discarded", what, row.id)
            return self._end(row, "failed")
        kind, notice = decoded
        event = kind.webhook_event(notice)
        what = f"{row.channel} {event} for customer {row.customer} {row.kind} {row.subject}"
        cfg = self._customers(row.customer)
        try:
            if row.channel == "webhook":
                hook = next((h for h in (cfg.webhooks if cfg else ()) if h.key == row.target), None)
                if hook is None:
                    return self._finish(
                        row, "unroutable", f"{what}: webhook {row.target} no longer configured"
                    )
                what = f"{what} to {hook.label}"
                body = payload_bytes(kind.webhook_payload(notice, row.id))
                send_webhook(hook, body, event=kind.webhook_event(notice), delivery=row.id, now=now)
            else:
                if cfg is None or cfg.email is None:
                    return self._finish(row, "unroutable", f"{what}: e-mail no longer configured")
                what = f"{what} via {cfg.email.smtp_host}:{cfg.email.smtp_port}"
                email = cfg.email
                if kind.email_to is not None:
                    email = email.model_copy(update={"to": kind.email_to(notice)})
                send_email(email, kind.render_email(notice, cfg, email, row.id))
        except DeliveryError as exc:
            return self._failed(row, now, what, exc)
        except Exception as exc:  # noqa: BLE001
            # A bug (e.g. in rendering) must not stop the worker or lose the row. Only the type
            # is logged: an unexpected exception's text could quote a URL or credential.
            err = DeliveryError(f"internal error {type(exc).__name__}", retryable=True)
            return self._failed(row, now, what, err)
        return self._finish(row, "sent", f"{what}: delivered after {row.attempts + 1} attempt(s)")

    def _end(self, row: OutboxRow, outcome: str) -> str:
        """Delete a claimed row; ``lost`` when its lease had run out and another collector holds it."""
        if not self.outbox.delete(row):
            log.warning(
                "notify: lease on %s %s ran out during the attempt; another collector has it",
                row.channel,
                row.id,
            )
            return "lost"
        self._metrics.delivery(row.channel, outcome)
        return outcome

    def _finish(self, row: OutboxRow, outcome: str, message: str) -> str:
        if outcome == "sent":
            log.info("notify: %s", message)
        else:
            log.warning("notify: %s; discarded", message)
        return self._end(row, outcome)

    def _failed(self, row: OutboxRow, now: float, what: str, exc: DeliveryError) -> str:
        attempts = row.attempts + 1
        if (
            not exc.retryable
            or attempts >= self.policy.max_attempts
            or now - row.created_at >= self.policy.max_age_s
        ):
            why = "permanent error" if not exc.retryable else f"giving up after {attempts} attempt(s)"
            log.error("notify: %s failed (%s): %s", what, why, exc)
            return self._end(row, "failed")
        delay = backoff_delay(self.policy, attempts, self._rng())
        if exc.retry_after_s is not None:
            delay = max(delay, min(exc.retry_after_s, self.policy.backoff_max_s))
        if not self.outbox.reschedule(row, attempts=attempts, next_at=now + delay, last_error=str(exc)):
            return "lost"
        log.warning("notify: %s attempt %d failed: %s; retrying in %.0fs", what, attempts, exc, delay)
        self._metrics.delivery(row.channel, "retried")
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
        """Stop the thread; pending rows stay in the store for the next pass of any collector."""
        self.stop()

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
                if report.attempted >= self.policy.batch:
                    continue  # more may be due right now
                nxt = self.outbox.next_due()
            except DatabaseError as exc:
                # The store is unreachable or busy: keep the thread alive and try later.
                log.error("notify: outbox unusable: %s", type(exc).__name__)
                self._wake.wait(_IDLE_POLL_S)
                continue
            wait = _IDLE_POLL_S if nxt is None else min(_IDLE_POLL_S, max(0.0, nxt - self._clock()))
            self._wake.wait(wait)
