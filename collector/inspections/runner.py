"""One inspection run, end to end: select, ask the agents, wait, gather, evaluate, store, report.

::

    runner = Runner(store, requester, settings)
    record = runner.create(plan, "manual", requested_by="eng")   # pending, returns the run id
    await runner.execute(plan, record.id)                        # done (or failed, with why)

A run sends an ``InspectionRequest`` to every connected agent of the selected hosts, then
polls the store until each asked host's completion marker (its ``application.agent``
result tagged with the run id, which the agent spools last) is stored, or the plan's
``answer_deadline`` passes. Hosts not connected, or silent until the deadline, are offline:
the result lists them and its coverage says answered / selected.

Everything slow (store reads, rendering) runs in worker threads; the event loop only waits.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from checks.api import Severity
from collector.inspections.engine import run_inspection
from collector.inspections.facts import DAY_S, HostFacts
from collector.inspections.failure import internal_failure, new_reference
from collector.inspections.model import InspectionResult
from collector.inspections.plan import InspectionPlan, SelectorError, parse_plan, select_hosts
from collector.inspections.report import build_trends, to_report
from collector.reports import Customer, Lang, ReportError, SignOff, render_inspection
from collector.reports.files import write_report_file
from collector.reports.on_demand import digest, renders
from collector.reports.render import Format
from collector.store.inspections import InspectionRepo, RunRecord
from collector.store.queries import Scope
from collector.store.reports import ReportRecord, ReportRepo
from collector.store.store import Store
from protos.diag.v1 import agent_pb2

__all__ = ["Requester", "Runner", "RunnerSettings", "new_run_id", "render_run_report"]

log = logging.getLogger(__name__)


class Requester(Protocol):
    """What a run needs of the gRPC side (``AgentStreamService`` fits)."""

    async def request_inspection(self, agent_id: str, request: agent_pb2.InspectionRequest) -> bool: ...


@dataclass(frozen=True, slots=True)
class RunnerSettings:
    poll_s: float = 2.0
    history_days: float = 30.0
    pdf: bool = False
    prepared_by: str = "remote-diag"
    organisation: str | None = None
    reports_dir: Path | None = None


def new_run_id(plan: str, at: float) -> str:
    """``<plan>-<UTC yyyymmddTHHMMSS>-<4 hex>``: readable, unique, a valid inspection id.

    >>> new_run_id("acme-monthly", 0.0)[:29]
    'acme-monthly-19700101T000000-'
    """
    stamp = datetime.fromtimestamp(at, UTC).strftime("%Y%m%dT%H%M%S")
    return f"{plan[:40]}-{stamp}-{secrets.token_hex(2)}"


def plan_document(plan: InspectionPlan) -> dict[str, Any]:
    """The plan as a run records it: JSON that :func:`parse_plan` reads back."""
    doc = plan.model_dump(mode="json")
    doc["answer_deadline"] = f"{round(plan.answer_deadline.total_seconds())}s"
    return doc


def _request(plan: InspectionPlan, run_id: str, deadline: float) -> agent_pb2.InspectionRequest:
    # Neither checks nor layers: every enabled check of the agent (the agent reads an empty
    # request so, as the plan reads "every default-enabled check").
    layers = [layer.value for layer in plan.layers]
    checks = list(plan.checks)
    return agent_pb2.InspectionRequest(
        inspection_id=run_id, checks=checks, layers=layers, deadline_unix_ms=int(deadline * 1000)
    )


def _counts(result: InspectionResult) -> dict[str, int]:
    return {s.value: result.count(s) for s in (Severity.CRIT, Severity.WARN, Severity.UNKNOWN)}


class Runner:
    """Runs inspections against one store; see the module docstring."""

    def __init__(
        self,
        store: Store,
        requester: Requester | None,
        settings: RunnerSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.repo = InspectionRepo(store)
        self.reports = ReportRepo(store)
        self.requester = requester
        self.settings = settings or RunnerSettings()
        self.clock = clock

    def create(
        self,
        plan: InspectionPlan,
        trigger: str,
        *,
        requested_by: str | None = None,
        due_at: float | None = None,
    ) -> RunRecord:
        """Record a pending run of ``plan`` (the customer must exist in the store)."""
        run_id = new_run_id(plan.name, self.clock())
        return self.repo.create_run(
            run_id,
            plan.customer,
            plan.name,
            trigger,
            plan_document(plan),
            requested_by=requested_by,
            due_at=due_at,
        )

    async def execute(self, plan: InspectionPlan, run_id: str) -> RunRecord:
        """Carry out a pending run; never raises for a run's own failure (recorded instead)."""
        try:
            return await self._execute(plan, run_id)
        except asyncio.CancelledError:
            await asyncio.to_thread(
                self.repo.update_run,
                run_id,
                state="failed",
                finished_at=self.clock(),
                error="the collector stopped during the run",
            )
            raise
        except SelectorError as exc:
            error = str(exc)
        except Exception:
            # The exception's text (SQL, values) goes to the log only, never into the run.
            reference = new_reference()
            log.exception("inspection run %s failed (log reference %s)", run_id, reference)
            error = internal_failure(reference)
        await asyncio.to_thread(
            self.repo.update_run, run_id, state="failed", finished_at=self.clock(), error=error
        )
        return await asyncio.to_thread(self.repo.run, Scope.everything(), run_id)

    async def _execute(self, plan: InspectionPlan, run_id: str) -> RunRecord:
        repo = self.repo
        started = self.clock()
        await asyncio.to_thread(repo.update_run, run_id, state="running", started_at=started)
        targets = await asyncio.to_thread(repo.targets, plan.customer)
        chosen = select_hosts(plan, targets)
        names = [h.name for h in chosen]
        deadline = started + plan.answer_deadline.total_seconds()
        request = _request(plan, run_id, deadline)
        asked: list[str] = []
        for host in chosen:
            sent = False
            for agent_id in host.agent_ids:
                if self.requester is not None and await self.requester.request_inspection(agent_id, request):
                    sent = True
            if sent:
                asked.append(host.name)
        await asyncio.to_thread(
            repo.update_run,
            run_id,
            deadline_at=deadline,
            hosts_selected=len(names),
            hosts={"selected": names, "asked": asked, "answered": [], "offline": []},
        )
        answered: set[str] = set()
        while asked:
            now_answered = await asyncio.to_thread(repo.answered, plan.customer, run_id)
            if now_answered != answered:  # progress for `diagctl inspections run --wait`
                answered = now_answered
                progress = {"selected": names, "asked": asked, "answered": sorted(answered), "offline": []}
                await asyncio.to_thread(repo.update_run, run_id, hosts=progress)
            remaining = deadline - self.clock()
            if set(asked) <= answered or remaining <= 0:
                break
            await asyncio.sleep(min(self.settings.poll_s, remaining))
        answered &= set(names)
        result, facts = await asyncio.to_thread(self._evaluate, plan, run_id, names, answered)
        record = await asyncio.to_thread(self._finish, run_id, result, names, answered)
        await asyncio.to_thread(self._render_defaults, plan, record, result, facts)
        # "done" only now: whoever sees a done run finds its default reports stored.
        await asyncio.to_thread(repo.update_run, run_id, state="done")
        if plan.recipients:  # e-mailed by the serving loop (collector.inspections.delivery)
            await asyncio.to_thread(
                self.reports.queue_delivery, plan.customer, run_id, plan.recipients, plan.language
            )
        return await asyncio.to_thread(repo.run, Scope.everything(), run_id)

    def _evaluate(
        self, plan: InspectionPlan, run_id: str, names: Sequence[str], answered: set[str]
    ) -> tuple[InspectionResult, list[HostFacts]]:
        repo = self.repo
        run = repo.run(Scope.everything(), run_id)
        stored = repo.previous_result(plan.customer, plan.name, run.created_at)
        previous = None if stored is None else InspectionResult.from_dict(stored)
        end = self.clock()
        start = end - self.settings.history_days * DAY_S
        if previous is not None and start < previous.period_end < end:
            start = previous.period_end
        checks = plan.check_names()
        facts = [
            HostFacts.from_evidence(e)
            for e in repo.gather(plan.customer, run_id, names, answered, start, end, checks)
        ]
        result = run_inspection(plan, run_id, facts, start, end, previous, check_names=checks)
        return result, facts

    def _finish(
        self, run_id: str, result: InspectionResult, names: Sequence[str], answered: set[str]
    ) -> RunRecord:
        self.repo.update_run(
            run_id,
            finished_at=self.clock(),
            period_start=result.period_start,
            period_end=result.period_end,
            hosts_selected=result.coverage.selected,
            hosts_answered=result.coverage.answered,
            hosts={
                "selected": list(names),
                "answered": sorted(answered),
                "offline": [h.name for h in result.coverage.offline],
            },
            overall_score=result.overall_score,
            scores={s.layer.value: s.score for s in result.layers},
            counts=_counts(result),
            result=result.to_dict(),
        )
        return self.repo.run(Scope.everything(), run_id)

    def _render_defaults(
        self, plan: InspectionPlan, run: RunRecord, result: InspectionResult, facts: list[HostFacts]
    ) -> None:
        formats: list[Format] = ["html", "json", *(["pdf"] if self.settings.pdf else [])]  # type: ignore[list-item]
        for fmt in formats:
            try:
                render_run_report(self, run, plan.language, fmt, result=result, facts=facts)
            except ReportError as exc:  # e.g. an unusable logo: the run stays done, the reason is logged
                log.error("inspection %s: cannot render the %s report: %s", run.id, fmt, exc)


def _customer(runner: Runner, slug: str) -> Customer:
    profile = runner.repo.profile(Scope.everything(), slug)
    return Customer(profile.name, profile.timezone, profile.logo)


def render_run_report(
    runner: Runner,
    run: RunRecord,
    lang: Lang,
    fmt: Format,
    *,
    result: InspectionResult | None = None,
    facts: list[HostFacts] | None = None,
    again: bool = False,
    patient: bool = True,
) -> ReportRecord:
    """The stored report of a finished run in ``lang``/``fmt``: the existing record, else
    rendered now (from the stored result and the run's metric history) and stored.

    ``again``: render and store a new record even if one exists (after fonts were installed).
    ``patient=False`` (the API): RenderBusy when the render pool is full or the render
    outlasts its time limit (see :mod:`collector.reports.on_demand`)."""
    repo = runner.repo
    profile = repo.profile(Scope.everything(), run.customer)
    # A finished run never changes; what else shows is the customer's profile.
    version = digest(
        "inspection", run.id, str(run.finished_at), profile.name, profile.timezone, profile.logo or b""
    )
    owner = Scope.of(run.customer)

    def existing() -> ReportRecord | None:
        found = runner.reports.reports(
            owner, kind="inspection", subject=run.id, lang=lang, fmt=fmt, version=version, limit=1
        )
        return found[0] if found else None

    def produce() -> ReportRecord:
        # Stored by a render that finished just before this one started: not rendered twice
        # (``again``: rendered anew in any case, e.g. once fonts are installed).
        found = None if again else existing()
        return found or _render_run_report(runner, run, lang, fmt, version, result, facts)

    found = None if again else existing()
    if found is not None:
        return found
    if result is None and run.state != "done":
        raise ReportError(f"inspection run {run.id} is {run.state}: its report exists once it is done")
    return renders.run(
        ("inspection", run.id, lang, fmt, version + ("+again" if again else "")), produce, patient=patient
    )


def _render_run_report(
    runner: Runner,
    run: RunRecord,
    lang: Lang,
    fmt: Format,
    version: str,
    result: InspectionResult | None,
    facts: list[HostFacts] | None,
) -> ReportRecord:
    repo = runner.repo
    if result is None and run.state != "done":
        raise ReportError(f"inspection run {run.id} is {run.state}: its report exists once it is done")
    if result is None:
        full = repo.run(Scope.everything(), run.id, with_result=True)
        if full.result is None:
            raise ReportError(f"inspection run {run.id} has no stored result")
        result = InspectionResult.from_dict(full.result)
    customer = _customer(runner, run.customer)
    if facts is None:
        hosts = run.hosts
        checks = parse_plan(run.plan_doc, f"run {run.id}").check_names() if run.plan_doc else None
        gathered = repo.gather(
            run.customer,
            run.id,
            list(hosts.get("selected", [])),
            hosts.get("answered", []),
            result.period_start,
            result.period_end,
            checks,
        )
        facts = [HostFacts.from_evidence(e) for e in gathered]
    settings = runner.settings
    report = to_report(
        result,
        customer,
        SignOff(settings.prepared_by, organisation=settings.organisation),
        run.finished_at or result.period_end,
        trends=build_trends(result, facts, customer.timezone),
    )
    content = render_inspection(report, fmt, lang)
    path = write_report_file(settings.reports_dir, run.customer, f"inspection-{run.id}.{lang}.{fmt}", content)
    return runner.reports.add_report(
        run.customer, "inspection", run.id, lang, fmt, content, path=path, version=version
    )
