"""The desk's background service in ``diag-collector serve``: the periodic SLA sweep.

Every ``desk.sweep_s`` one :meth:`~collector.desk.sweep.SlaSweep.run` pass runs in a worker
thread. Breaches are queued in the notification outbox the incidents service delivers
from (``<state_dir>/notify``), for customers with notification settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from checks.api import Severity
from collector.desk.sweep import SlaSweep, alert_text
from collector.schedule.windows import windows_with_file
from collector.store.desk import DeskRepo
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


def start(ctx: ServeContext) -> list[asyncio.Task[None]]:
    """Start the sweep in the serving loop; serve cancels it on shutdown."""
    cfg = ctx.config.desk
    if not cfg.sla_sweep:
        return []
    windows = windows_with_file(ctx.config.emergency.windows, ctx.config.emergency.windows_file)
    notifier: Notifier | None = None
    emergency = ctx.config.emergency
    if emergency.notify.customers:
        from collector.notify import Notifier, OutboxError

        try:
            notifier = Notifier.from_config(Path(ctx.config.state_dir) / "notify", emergency.notify)
        except OutboxError as exc:
            log.error("SLA breaches will not be notified: %s", exc)
    sweep = SlaSweep(
        SlaRepo(ctx.store),
        DeskRepo(ctx.store),
        windows=windows,
        calendars_dir=cfg.calendars_dir,
        escalate=escalation(notifier, emergency.public_url.rstrip("/")) if notifier is not None else None,
    )
    return [asyncio.get_running_loop().create_task(_loop(sweep, cfg.sweep_s, ctx.stop, notifier))]


async def _loop(sweep: SlaSweep, every_s: float, stop: asyncio.Event, notifier: Notifier | None) -> None:
    try:
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
    finally:
        if notifier is not None:
            notifier.close()
