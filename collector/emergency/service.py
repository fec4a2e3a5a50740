"""The incidents background service of ``diag-collector serve``: notification delivery.

Case notifications are queued into the store's outbox (:mod:`collector.store.outbox`) by
the process that opens cases (the live observer, in the ingest worker by default) and by
the API (acknowledged, resolved). This service delivers them from the serving process: every
``emergency.notify_poll_s`` it runs one :meth:`~collector.notify.Notifier.deliver_due`
pass in a worker thread. Every process and every collector on one store shares the
outbox; leases make one collector deliver a given notification at a time.

On start it imports the local outbox file of an earlier collector
(``<state_dir>/notify/notify-outbox.sqlite3``), if any, into the store and renames it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from checks.api import Severity

if TYPE_CHECKING:
    from collector.cli.serve_context import ServeContext
    from collector.notify import EventKind, Notifier
    from collector.store.cases import CaseRecord

__all__ = ["current_notifier", "notify_case", "on_resolved", "start"]

log = logging.getLogger("collector.incidents")

_notifier: Notifier | None = None
_public_url = ""
_on_resolved: list[Callable[[Notifier, CaseRecord], object]] = []


def on_resolved(hook: Callable[[Notifier, CaseRecord], object]) -> None:
    """Also call ``hook(notifier, case)`` after a resolved case is notified (once per hook;
    e.g. :func:`collector.records.fault_mail.send_fault_report`). A hook must not raise."""
    if hook not in _on_resolved:
        _on_resolved.append(hook)


def current_notifier() -> Notifier | None:
    """The serving process's notifier (None before :func:`start`, or with no destinations)."""
    return _notifier


def notify_case(
    case: CaseRecord, event: EventKind, *, actor: str | None = None, note: str | None = None
) -> None:
    """Queue a notification of ``case``'s transition (no-op without a notifier); never raises."""
    notifier = _notifier
    if notifier is None:
        return
    from collector.notify import CaseEvent
    from collector.store import DatabaseError

    severity = Severity(case.severity) if case.severity in Severity.__members__ else Severity.UNKNOWN
    try:
        notifier.notify(
            CaseEvent(
                event=event,
                case_id=case.id,
                customer=case.customer,
                title=case.title,
                severity=severity,
                hosts=case.hosts,
                probable_cause=str(case.causes[0].get("reason", ""))[:2000] if case.causes else "",
                opened_at=case.opened_at,
                event_at=time.time(),
                url=f"{_public_url}/cases/{case.id}" if _public_url else "",
                actor=actor,
                note=None if note is None else note[:2000],
            )
        )
    except DatabaseError as exc:
        log.error(
            "notification %s of case %s not queued: the store failed (%s)", event, case.id, type(exc).__name__
        )
    except ValueError as exc:
        log.error("notification %s of case %s not queued: %s", event, case.id, exc)
    if event == "resolved":
        for hook in _on_resolved:
            hook(notifier, case)


def start(ctx: ServeContext) -> list[asyncio.Task[None]]:
    """Start this service's tasks in the serving loop; serve cancels them on shutdown."""
    global _notifier, _public_url
    emergency = ctx.config.emergency
    if not emergency.notify.customers:
        return []
    from collector.notify import Notifier
    from collector.store import DatabaseError

    notifier = Notifier.from_config(ctx.store, emergency.notify)
    try:
        notifier.import_local_outbox(Path(ctx.config.state_dir) / "notify")
    except (OSError, DatabaseError) as exc:  # the file stays; the next start tries again
        log.error("the local notification outbox was not imported into the store: %s", exc)
    _notifier = notifier
    _public_url = emergency.public_url.rstrip("/")
    return [asyncio.create_task(_deliver(notifier, emergency.notify_poll_s))]


async def _deliver(notifier: Notifier, poll_s: float) -> None:
    global _notifier
    from collector.store import DatabaseError

    try:
        while True:
            try:
                report = await asyncio.to_thread(notifier.deliver_due)
            except DatabaseError as exc:  # store trouble: keep serving, try again later
                log.error("notification delivery failed: %s: %s", type(exc).__name__, exc)
            else:
                if report.attempted:
                    log.info(
                        "notifications: %d sent, %d retried, %d failed, %d taken over by another collector",
                        report.sent,
                        report.retried,
                        report.failed,
                        report.lost,
                    )
                if report.attempted >= notifier.policy.batch:
                    continue
            await asyncio.sleep(poll_s)
    finally:
        _notifier = None
        notifier.close()
