"""Scheduled service-operation analyses: each customer's last month or quarter, built once.

``collector.yaml``::

    records:
      analysis:
        - customer: acme
          every: month            # or quarter
          languages: [zh-CN, en]
          formats: [pdf]
      tick_s: 3600                # how often serve looks for a period that ended

Once a period has ended (in the customer's time zone), ``serve`` builds its analysis in
every language and format listed, stored as records like the on-demand ones
(``diagctl records list --kind analysis``). A period that already has an analysis record
in that language and format is left alone, so a restart or a second collector sharing the
store does not build it again (two collectors ticking in the same second may both build
it once: two identical records, no harm).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from collector.records.build import Period, parse_period
from collector.reports.model import Lang
from collector.reports.render import Format
from collector.schedule.cron import load_zone
from collector.store.queries import Scope
from collector.store.reports import ReportRecord

if TYPE_CHECKING:
    from collector.cli.serve_context import ServeContext
    from collector.inspections.runner import Runner

__all__ = ["AnalysisSchedule", "RecordsConfig", "last_complete", "run_due", "start"]

log = logging.getLogger(__name__)


class AnalysisSchedule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    customer: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    every: Literal["month", "quarter"] = "month"
    languages: tuple[Lang, ...] = Field(default=("en", "zh-CN"), min_length=1)
    formats: tuple[Format, ...] = Field(default=("html",), min_length=1)


class RecordsConfig(BaseModel):
    """Service records: scheduled analyses (see :mod:`collector.records.schedule`)."""

    model_config = ConfigDict(extra="forbid")

    analysis: list[AnalysisSchedule] = Field(default_factory=list)
    tick_s: float = Field(default=3600.0, gt=0, le=86400)


def last_complete(every: str, timezone: str, now: float) -> Period:
    """The last month or quarter that has ended at ``now`` in ``timezone``."""
    local = datetime.fromtimestamp(now, load_zone(timezone))
    current = (
        f"{local.year}-{local.month:02d}"
        if every == "month"
        else f"{local.year}-Q{(local.month - 1) // 3 + 1}"
    )
    return parse_period(current, timezone).previous()


def run_due(runner: Runner, schedules: list[AnalysisSchedule], now: float) -> list[ReportRecord]:
    """Build every analysis that is due and not stored yet; the records built."""
    from collector.records.stored import build_service_record

    built = []
    for s in schedules:
        profile = runner.repo.profile(Scope.everything(), s.customer)
        period = last_complete(s.every, profile.timezone, now)
        for lang in s.languages:
            for fmt in s.formats:
                done = runner.reports.reports(
                    Scope.of(s.customer), kind="analysis", subject=period.name, lang=lang, fmt=fmt, limit=1
                )
                if done:
                    continue
                built.append(
                    build_service_record(
                        runner,
                        Scope.everything(),
                        "analysis",
                        lang,
                        fmt,
                        now=now,
                        customer=s.customer,
                        period=period.name,
                    )
                )
                log.info("analysis of %s for %s built (%s, %s)", s.customer, period.name, lang, fmt)
    return built


def start(ctx: ServeContext, runner: Runner) -> list[asyncio.Task[None]]:
    """The scheduler's task in the serving loop (none without schedules); ``runner``: the
    inspection service's (its store, settings and report repository)."""
    cfg: RecordsConfig = ctx.config.records
    if not cfg.analysis:
        return []
    return [asyncio.create_task(_loop(runner, cfg))]


async def _loop(runner: Runner, cfg: RecordsConfig) -> None:
    import time

    from collector.reports import ReportError
    from collector.store import DatabaseError, StoreError

    while True:
        try:
            await asyncio.to_thread(run_due, runner, cfg.analysis, time.time())
        except (DatabaseError, StoreError, ReportError, ValueError) as exc:  # next tick tries again
            log.error("scheduled analyses: %s: %s", type(exc).__name__, exc)
        await asyncio.sleep(cfg.tick_s)
