"""The inspections background service of ``diag-collector serve``: plans, scheduler, runs.

At start it loads every ``*.yaml`` plan of ``inspections.plans_dir`` (default
``<state_dir>/plans``). A bad plan file is logged with its file, path and reason and
skipped; the others run. Every ``inspections.tick_s`` the scheduler computes each plan's
latest due time (its cron, in its time zone) and, when that is newer than the one last
handled, claims it in the store (compare-and-set, see
:meth:`collector.store.inspections.InspectionRepo.claim_due`) and starts one run. So a
run missed while the collector was down starts once when it returns (however many due
times passed), and of several collectors sharing a PostgreSQL store exactly one starts
it. A plan seen for the first time starts at its next due time.

The HTTP API reaches the service of its store through :func:`service_for`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from collector.inspections.delivery import ReportMailer
from collector.inspections.plan import InspectionPlan, load_plan
from collector.inspections.runner import Requester, Runner, RunnerSettings
from collector.notify.config import EmailTarget
from collector.store.errors import NotFound
from collector.store.inspections import RunRecord
from collector.store.queries import Scope
from collector.store.store import Store
from diagconfig import ConfigError

if TYPE_CHECKING:
    from collector.cli.serve_context import ServeContext

__all__ = ["InspectionService", "attach", "check_plans", "service_for", "start"]

log = logging.getLogger(__name__)

_SERVICES: weakref.WeakKeyDictionary[Store, InspectionService] = weakref.WeakKeyDictionary()


def check_plans(
    directory: Path, timezones: dict[str, str] | None = None
) -> tuple[list[InspectionPlan], list[str]]:
    """Load every ``*.yaml``/``*.yml`` plan of ``directory``: (valid plans, one error line per problem)."""
    plans: list[InspectionPlan] = []
    errors: list[str] = []
    if not directory.is_dir():
        return plans, [f"{directory}: not a directory of plan files"]
    seen: dict[tuple[str, str], Path] = {}
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        try:
            plan = load_plan(path, timezones)
        except ConfigError as exc:
            errors.extend(str(exc).splitlines())
            continue
        key = (plan.customer, plan.name)
        if key in seen:
            errors.append(
                f"{path}: name: plan {plan.name!r} of customer {plan.customer!r} is also in {seen[key]}"
            )
            continue
        seen[key] = path
        plans.append(plan)
    return plans, errors


class InspectionService:
    """Plans by (customer, name), the scheduler step, and runs started in the background."""

    def __init__(
        self,
        store: Store,
        requester: Requester | None,
        settings: RunnerSettings | None = None,
        *,
        plans_dir: Path | None = None,
        clock: Callable[[], float] = time.time,
        name: str | None = None,
    ) -> None:
        self.runner = Runner(store, requester, settings, clock=clock)
        self.repo = self.runner.repo
        self.plans_dir = plans_dir
        self.clock = clock
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.plans: dict[tuple[str, str], InspectionPlan] = {}
        self.plan_errors: list[str] = []
        self._tasks: set[asyncio.Task[RunRecord]] = set()
        self._warned: set[tuple[str, str]] = set()

    # ------------------------------------------------------------------ plans

    def load_plans(self) -> list[str]:
        """(Re)load the plans directory; returns (and logs) the problems, one per line."""
        if self.plans_dir is None:
            return []
        stale = self.repo.fail_stale(self.clock())
        if stale:
            log.warning("inspections: %d run(s) interrupted by an earlier stop marked failed", stale)
        if not self.plans_dir.exists():
            log.info("inspections: no plans directory %s; no scheduled inspections", self.plans_dir)
            self.plans, self.plan_errors = {}, []
            return []
        plans, errors = check_plans(self.plans_dir, self.repo.timezones())
        for line in errors:
            log.error("inspection plan skipped: %s", line)
        self.plans = {(p.customer, p.name): p for p in plans}
        self.plan_errors = errors
        log.info("inspections: %d plan(s) loaded from %s", len(plans), self.plans_dir)
        return errors

    def add_plan(self, plan: InspectionPlan) -> None:
        """Register a plan built in code (the quickstart's default plan, tests)."""
        self.plans[(plan.customer, plan.name)] = plan

    def visible_plans(self, scope: Scope, customer: str | None = None) -> list[InspectionPlan]:
        return [
            p
            for (c, _), p in sorted(self.plans.items())
            if scope.allows(c) and (customer is None or c == customer)
        ]

    def plan(self, scope: Scope, name: str, customer: str | None = None) -> InspectionPlan:
        """The plan named ``name`` the scope can see; NotFound, or ValueError when ambiguous."""
        found = [p for p in self.visible_plans(scope, customer) if p.name == name]
        if not found:
            raise NotFound(
                f"no inspection plan {name!r}" + (f" for customer {customer!r}" if customer else "")
            )
        if len(found) > 1:
            owners = ", ".join(p.customer for p in found)
            raise ValueError(f"plan name {name!r} exists for several customers ({owners}): name the customer")
        return found[0]

    # ------------------------------------------------------------------ runs

    async def launch(
        self,
        plan: InspectionPlan,
        trigger: str = "manual",
        *,
        requested_by: str | None = None,
        due_at: float | None = None,
    ) -> RunRecord:
        """Record a pending run and carry it out in a background task; returns the pending run.

        Runs in the serving event loop; the run outlives the caller (an HTTP request)."""
        record = await asyncio.to_thread(
            self.runner.create, plan, trigger, requested_by=requested_by, due_at=due_at
        )
        task = asyncio.get_running_loop().create_task(self.runner.execute(plan, record.id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return record

    async def wait_idle(self) -> None:
        """Wait for every run started so far (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def cancel_runs(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # ------------------------------------------------------------------ scheduler

    def due_runs(self, now: float | None = None) -> list[tuple[InspectionPlan, float]]:
        """Plans whose latest due time this caller claimed now (store calls: run in a thread)."""
        at = self.clock() if now is None else now
        claimed = []
        for (customer, name), plan in sorted(self.plans.items()):
            try:
                due = plan.cron().last_due_at_or_before(datetime.fromtimestamp(at, UTC)).timestamp()
            except ValueError:  # a schedule with no run before now (e.g. "0 0 30 2 *")
                continue
            try:
                last = self.repo.schedule_state(customer, name, due)
            except NotFound:
                if (customer, name) not in self._warned:
                    self._warned.add((customer, name))
                    log.warning(
                        "inspection plan %s: customer %r has no hosts in the store yet", name, customer
                    )
                continue
            if due > last and self.repo.claim_due(customer, name, due, self.name):
                claimed.append((plan, due))
        return claimed

    async def tick(self, now: float | None = None) -> list[RunRecord]:
        """One scheduler step: start a run for every plan claimed due."""
        due = await asyncio.to_thread(self.due_runs, now)
        return [await self.launch(plan, "scheduled", due_at=at) for plan, at in due]

    async def loop(self, stop: asyncio.Event, tick_s: float, mailer: ReportMailer | None = None) -> None:
        """The scheduler: tick every ``tick_s`` until ``stop``; a failing tick is logged and retried.

        With a ``mailer``, each tick also sends the report e-mails that are due.
        """
        while not stop.is_set():
            try:
                await self.tick()
            except Exception:
                log.exception("inspection scheduler tick failed; retrying in %.0f s", tick_s)
            if mailer is not None:
                try:
                    await asyncio.to_thread(mailer.deliver_due)
                except Exception:
                    log.exception("sending inspection reports failed; retrying in %.0f s", tick_s)
            try:
                await asyncio.wait_for(stop.wait(), tick_s)
            except TimeoutError:
                continue
        await self.cancel_runs()


def attach(store: Store, service: InspectionService) -> None:
    """Make ``service`` the one the HTTP API uses for ``store``."""
    _SERVICES[store] = service


def service_for(store: Store, requester: Requester | None = None) -> InspectionService:
    """The service attached to ``store``, else a plan-less one (an app without ``serve``)."""
    found = _SERVICES.get(store)
    if found is None:
        found = InspectionService(store, requester)
        _SERVICES[store] = found
    return found


def start(ctx: ServeContext) -> list[asyncio.Task[None]]:
    """Start this service's tasks in the serving loop; serve cancels them on shutdown."""
    cfg = ctx.config.inspections
    settings = RunnerSettings(
        poll_s=cfg.poll_s,
        history_days=cfg.history_days,
        pdf=cfg.pdf,
        prepared_by=cfg.prepared_by,
        organisation=cfg.organisation,
        reports_dir=cfg.reports_dir,
    )
    service = InspectionService(ctx.store, ctx.grpc, settings, plans_dir=cfg.plans_path(ctx.config.state_dir))
    service.load_plans()
    attach(ctx.store, service)
    notify = ctx.config.emergency.notify

    def email_for(customer: str) -> EmailTarget | None:
        found = notify.for_customer(customer)
        return None if found is None else found.email

    mailer = ReportMailer(service.runner, email_for, notify.delivery)
    return [asyncio.get_running_loop().create_task(service.loop(ctx.stop, cfg.tick_s, mailer))]
