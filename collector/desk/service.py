"""The desk's background service in ``diag-collector serve``: the periodic SLA sweep.

Every ``desk.sweep_s`` one :meth:`~collector.desk.sweep.SlaSweep.run` pass runs in a worker
thread. Breaches are queued in the store's notification outbox through the serving
process's notifier (``serve`` passes :func:`collector.emergency.service.current_notifier`), which the
incidents service delivers from, for customers with notification settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from checks.api import Severity
from collector.desk.sweep import SlaSweep, alert_text
from collector.schedule.windows import windows_with_file
from collector.store.customer_file import CustomerFileRepo
from collector.store.errors import DatabaseError
from collector.store.sla import Alert, SlaRepo

if TYPE_CHECKING:
    from collector.cli.serve_context import ServeContext
    from collector.notify import Notifier

__all__ = ["escalation", "start"]

log = logging.getLogger("collector.desk")


def escalation(notifier: Notifier, public_url: str = "") -> Callable[[Alert], None]:
    """An escalation that queues an ``sla_breach`` notification of the alert's case."""
    from collector.notify import CaseEvent

    def escalate(alert: Alert) -> None:
        notifier.notify(
            CaseEvent(
                event="sla_breach",
                case_id=alert.case_id,
                customer=alert.customer,
                title=alert.title,
                severity=Severity.CRIT,
                opened_at=alert.opened_at,
                event_at=alert.at,
                url=f"{public_url}/cases/{alert.case_id}" if public_url else "",
                note=alert_text(alert),
            )
        )

    return escalate


def start(
    ctx: ServeContext, *, notifier: Callable[[], Notifier | None] = lambda: None
) -> list[asyncio.Task[None]]:
    """Start the sweep in the serving loop; serve cancels it on shutdown. ``notifier``
    returns the serving process's notifier (``serve`` passes the incidents service's)."""
    cfg = ctx.config.desk
    if not cfg.sla_sweep:
        return []
    windows = windows_with_file(ctx.config.emergency.windows, ctx.config.emergency.windows_file)
    public_url = ctx.config.emergency.public_url.rstrip("/")
    sweep = SlaSweep(
        SlaRepo(ctx.store),
        CustomerFileRepo(ctx.store),
        windows=windows,
        calendars_dir=cfg.calendars_dir,
        escalate=_through(notifier, public_url),
    )
    return [asyncio.get_running_loop().create_task(_loop(sweep, cfg.sweep_s, ctx.stop))]


def _through(notifier: Callable[[], Notifier | None], public_url: str) -> Callable[[Alert], None]:
    """Escalate through the serving process's one notifier (the store outbox); without
    notification destinations a breach stays on the case's timeline only."""

    def escalate(alert: Alert) -> None:
        current = notifier()
        if current is not None:
            escalation(current, public_url)(alert)

    return escalate


async def _loop(sweep: SlaSweep, every_s: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            report = await asyncio.to_thread(sweep.run)
        except DatabaseError as exc:  # the store's trouble: keep serving, try again next time
            log.error("SLA sweep failed: %s", exc)
        else:
            if report.warnings or report.breaches:
                log.info("SLA sweep: %d warnings, %d breaches", report.warnings, report.breaches)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_s)
