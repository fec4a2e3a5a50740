"""Build a service record, render it and store it as a versioned record (like the reports).

The record's *version* is a digest of its whole model except the moment it was built
(see :mod:`collector.reports.on_demand`): asking again for an unchanged case or period
serves the stored record; a change that shows (a note, more time logged, a new version
change) makes a new record, and the old one (perhaps signed) stays as it was.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from collector.records.analysis import PREVIOUS_PERIODS, Rates, analysis_record
from collector.records.build import Period, case_record, parse_period, routine_record, upgrade_record
from collector.records.model import ServiceRecord
from collector.records.render import render_record
from collector.reports.files import write_report_file
from collector.reports.model import Customer, Lang, SignOff
from collector.reports.on_demand import digest, renders
from collector.reports.render import Format
from collector.store.cases import CaseRepo
from collector.store.customer_file import CustomerFileRepo
from collector.store.desk_cases import DeskRepo
from collector.store.errors import NotFound
from collector.store.queries import Scope
from collector.store.reports import ReportRecord
from collector.store.service_data import ServiceDataRepo
from collector.store.sessions import SessionRepo

if TYPE_CHECKING:
    from collector.inspections.runner import Runner

__all__ = ["BUILDABLE", "build_service_record", "contract_rates", "record_version"]

BUILDABLE = ("emergency", "repair", "routine", "upgrade", "analysis")


def record_version(record: ServiceRecord) -> str:
    """The version of a record: its whole model except when it was built."""
    logo = record.customer.logo
    logo_bytes = logo if isinstance(logo, bytes) else str(logo).encode()
    unstamped = dataclasses.replace(
        record,
        generated_at=datetime.fromtimestamp(0, UTC),
        customer=dataclasses.replace(record.customer, logo=None),
    )
    return digest(record.kind, repr(unstamped), repr(sorted(record.extra.items())), logo_bytes)


def contract_rates(repo: CustomerFileRepo, scope: Scope, customer: str, period: Period) -> Rates | None:
    """The hourly rates of the customer's contract in force during ``period`` (the latest to
    start of those covering any of its days); None when none does or its rates are both zero
    (then the analysis shows hours without a cost, and says so)."""
    first, after = period.days()
    last = after - timedelta(days=1)
    covering = [c for c in repo.contracts(scope, customer) if c.starts_on <= last and c.ends_on >= first]
    if not covering:
        return None
    contract = max(covering, key=lambda c: (c.starts_on, c.id))
    if not (contract.rate_onsite or contract.rate_remote):
        return None
    return Rates(onsite=contract.rate_onsite, remote=contract.rate_remote, currency=contract.currency)


def _customer(runner: Runner, scope: Scope, slug: str) -> Customer:
    if not scope.allows(slug):
        raise NotFound(f"no customer {slug!r}")
    profile = runner.repo.profile(Scope.everything(), slug)
    return Customer(profile.name, profile.timezone, profile.logo)


def _model(
    runner: Runner,
    scope: Scope,
    kind: str,
    *,
    customer: str | None,
    case_id: str | None,
    period: str | None,
    now: float,
) -> tuple[ServiceRecord, str]:
    """The record's model and the customer it belongs to."""
    store = runner.store
    settings = runner.settings
    signoff = SignOff(settings.prepared_by, organisation=settings.organisation)
    data = ServiceDataRepo(store)
    if kind in ("emergency", "repair"):
        if case_id is None:
            raise ValueError(f"a {kind} service report is built from a case: give case")
        case = CaseRepo(store).get(scope, case_id)
        log = DeskRepo(store).time_log(scope, case_id)
        sessions = SessionRepo(store).for_case(scope, case_id)
        return case_record(
            kind, case, log, _customer(runner, scope, case.customer), signoff, now, sessions
        ), case.customer
    if kind == "upgrade" and case_id is not None:
        case = CaseRepo(store).get(scope, case_id)
        if case.upgrade_id is None:
            raise ValueError(f"case {case.id} names no upgrade record; give customer and period instead")
        who = _customer(runner, scope, case.customer)
        changes = data.upgrades(scope, case.customer, 0, 0, upgrade_ids=[case.upgrade_id])
        return upgrade_record(
            who, signoff, case.id, None, changes, {case.upgrade_id: case.id}, now
        ), case.customer
    if kind not in ("routine", "upgrade", "analysis"):
        raise ValueError(f"unknown record kind {kind!r}: expected one of {', '.join(BUILDABLE)}")
    if customer is None or period is None:
        raise ValueError(
            f"a {kind} record covers a customer's period: give customer and period (2026-11, 2026-Q4)"
        )
    who = _customer(runner, scope, customer)
    span = parse_period(period, who.timezone)
    if kind == "analysis":
        history = [span]
        for _ in range(PREVIOUS_PERIODS):
            history.append(history[-1].previous())
        counts = [(p.name, data.period_counts(scope, customer, p.start, p.end, p.days())) for p in history]
        facts = data.case_facts(scope, customer, span.start, span.end)
        products = data.host_products(scope, customer)
        rates = contract_rates(CustomerFileRepo(store), scope, customer, span)
        model = analysis_record(who, signoff, span, facts, counts, products, rates, now)
        return model, customer
    linked = data.upgrade_cases(scope, customer)
    changes = data.upgrades(scope, customer, span.start, span.end)
    if kind == "upgrade":
        return upgrade_record(who, signoff, span.name, span, changes, linked, now), customer
    cases = data.period_cases(scope, customer, span.start, span.end)
    logs = data.time_logs(scope, [c.id for c in cases])
    runs = [
        r
        for r in runner.repo.runs(scope, customer=customer, state="done", limit=1000)
        if span.start <= r.created_at < span.end
    ]
    return routine_record(who, signoff, span, cases, logs, runs, changes, linked, now), customer


def build_service_record(
    runner: Runner,
    scope: Scope,
    kind: str,
    lang: Lang,
    fmt: Format,
    *,
    now: float,
    customer: str | None = None,
    case_id: str | None = None,
    period: str | None = None,
    patient: bool = True,
) -> ReportRecord:
    """The stored record of this kind and subject in ``lang``/``fmt`` at its current version,
    built, rendered and stored now when there is none (once, however many ask at a time).

    NotFound outside ``scope``; ValueError for a request that does not make a record (the
    message names what to give); ReportError when it cannot be rendered."""
    model, owner_slug = _model(
        runner, scope, kind, customer=customer, case_id=case_id, period=period, now=now
    )
    version = record_version(model)
    owner = Scope.of(owner_slug)
    reports = runner.reports

    def existing() -> ReportRecord | None:
        found = reports.reports(
            owner, kind=model.kind, subject=model.subject, lang=lang, fmt=fmt, version=version, limit=1
        )
        return found[0] if found else None

    def produce() -> ReportRecord:
        record = existing()
        if record is not None:
            return record
        content = render_record(model, fmt, lang)
        name = f"{model.kind}-{model.subject}.{lang}.{fmt}"
        path = write_report_file(runner.settings.reports_dir, owner_slug, name, content)
        return reports.add_report(
            owner_slug, model.kind, model.subject, lang, fmt, content, path=path, version=version
        )

    return existing() or renders.run(
        (model.kind, f"{owner_slug}/{model.subject}", lang, fmt, version), produce, patient=patient
    )
