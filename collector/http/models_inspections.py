"""Request and response models of the inspections, reports and customer-profile API."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from collector.http.models import MAX_LIMIT, SLUG_PATTERN, _Out, _Query, _time
from collector.inspections.failure import shown_error
from collector.inspections.plan import InspectionPlan
from collector.store.inspections import CustomerProfile, RunRecord
from collector.store.reports import DeliveryRecord, ReportRecord

__all__ = [
    "CustomerProfileIn",
    "CustomerProfileOut",
    "InspectionReportQuery",
    "PlanOut",
    "PlansQuery",
    "ReportOut",
    "ReportQuery",
    "ReportsQuery",
    "RunOut",
    "RunsQuery",
]

ReportFormat = Literal["html", "pdf", "json"]
ReportLang = Literal["en", "zh-CN"]


class PlansQuery(_Query):
    customer: str | None = Field(
        default=None, max_length=63, pattern=SLUG_PATTERN, description="Only this customer (engineers)."
    )


class RunsQuery(PlansQuery):
    plan: str | None = Field(default=None, max_length=100)
    state: Literal["pending", "running", "done", "failed"] | None = None
    limit: int = Field(default=100, ge=1, le=MAX_LIMIT)


class RunQuery(_Query):
    result: bool = Field(default=False, description="Include the whole result (findings, hosts, comparison).")


class ReportQuery(_Query):
    format: ReportFormat = "html"
    lang: ReportLang = "en"


class InspectionReportQuery(ReportQuery):
    plan: str | None = Field(default=None, max_length=100, description="The plan's latest finished run.")
    run: str | None = Field(default=None, max_length=64, description="A run id.")
    customer: str | None = Field(default=None, max_length=63, pattern=SLUG_PATTERN)


class ReportsQuery(PlansQuery):
    kind: Literal["inspection", "fault"] | None = None
    subject: str | None = Field(default=None, max_length=64, description="Run id or case id.")
    limit: int = Field(default=100, ge=1, le=MAX_LIMIT)


class PlanOut(_Out):
    name: str
    customer: str
    description: str
    schedule: str
    timezone: str
    next_due: datetime | None
    language: str
    layers: list[str]
    checks: list[str]
    """Every check the plan runs (layers resolved)."""
    hosts: dict[str, Any]
    recipients: list[str]
    answer_deadline_s: float
    thresholds: dict[str, dict[str, float]] = Field(default_factory=dict)
    """The plan's overrides of rule thresholds (rule key -> fields); the rest keep their defaults."""

    @classmethod
    def of(cls, plan: InspectionPlan, now: float) -> PlanOut:
        try:
            due: datetime | None = plan.cron().next_after(datetime.fromtimestamp(now, UTC))
        except ValueError:  # a schedule that never fires (e.g. 30 February)
            due = None
        return cls(
            name=plan.name,
            customer=plan.customer,
            description=plan.description,
            schedule=plan.schedule,
            timezone=plan.timezone,
            next_due=due,
            language=plan.language,
            layers=[layer.value for layer in plan.layers],
            checks=list(plan.check_names()),
            hosts=plan.hosts.model_dump(mode="json"),
            recipients=list(plan.recipients),
            answer_deadline_s=plan.answer_deadline.total_seconds(),
            thresholds=plan.thresholds,
        )


class DeliveryOut(_Out):
    """The run's report e-mailed to its plan's recipients."""

    recipients: list[str]
    lang: str
    state: str
    attempts: int
    next_at: datetime | None
    sent_at: datetime | None
    last_error: str | None

    @classmethod
    def of(cls, d: DeliveryRecord) -> DeliveryOut:
        return cls(
            recipients=list(d.recipients),
            lang=d.lang,
            state=d.state,
            attempts=d.attempts,
            next_at=_time(d.next_at) if d.state == "pending" else None,
            sent_at=_time(d.sent_at),
            last_error=d.last_error,
        )


class RunOut(_Out):
    id: str
    customer: str
    plan: str
    trigger: str
    state: str
    requested_by: str | None
    due_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    deadline_at: datetime | None
    period_start: datetime | None
    period_end: datetime | None
    hosts_selected: int | None
    hosts_answered: int | None
    coverage_percent: float | None
    hosts: dict[str, Any]
    overall_score: int | None
    scores: dict[str, int | None]
    counts: dict[str, int]
    error: str | None
    result: dict[str, Any] | None = None
    deliveries: list[DeliveryOut] = []

    @classmethod
    def of(cls, r: RunRecord, deliveries: Sequence[DeliveryRecord] = (), *, engineer: bool = False) -> RunOut:
        """The run as ``engineer`` (or, by default, a customer role) may see it: an internal
        failure's reference is for engineers only (:mod:`collector.inspections.failure`)."""
        coverage = None
        if r.hosts_selected:
            coverage = round(100.0 * (r.hosts_answered or 0) / r.hosts_selected, 1)
        return cls(
            id=r.id,
            customer=r.customer,
            plan=r.plan,
            trigger=r.trigger,
            state=r.state,
            requested_by=r.requested_by,
            due_at=_time(r.due_at),
            created_at=datetime.fromtimestamp(r.created_at, UTC),
            started_at=_time(r.started_at),
            finished_at=_time(r.finished_at),
            deadline_at=_time(r.deadline_at),
            period_start=_time(r.period_start),
            period_end=_time(r.period_end),
            hosts_selected=r.hosts_selected,
            hosts_answered=r.hosts_answered,
            coverage_percent=coverage,
            hosts=r.hosts,
            overall_score=r.overall_score,
            scores=r.scores,
            counts=r.counts,
            error=shown_error(r.error, engineer=engineer),
            result=r.result,
            deliveries=[DeliveryOut.of(d) for d in deliveries],
        )


class PlanDetailOut(_Out):
    plan: PlanOut
    runs: list[RunOut]


class ReportOut(_Out):
    id: int
    customer: str
    kind: str
    subject: str
    lang: str
    format: str
    created_at: datetime
    sha256: str
    size: int
    path: str | None
    download: str

    @classmethod
    def of(cls, r: ReportRecord) -> ReportOut:
        return cls(
            id=r.id,
            customer=r.customer,
            kind=r.kind,
            subject=r.subject,
            lang=r.lang,
            format=r.format,
            created_at=datetime.fromtimestamp(r.created_at, UTC),
            sha256=r.sha256,
            size=r.size,
            path=r.path,
            download=f"/api/v1/reports/{r.id}/content",
        )


class CustomerProfileOut(_Out):
    customer: str
    name: str
    timezone: str
    has_logo: bool
    logo_bytes: int

    @classmethod
    def of(cls, p: CustomerProfile) -> CustomerProfileOut:
        return cls(
            customer=p.slug,
            name=p.name,
            timezone=p.timezone,
            has_logo=p.logo is not None,
            logo_bytes=len(p.logo or b""),
        )


class CustomerProfileIn(BaseModel):
    """What reports show of the customer. Omitted fields keep their value."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    timezone: str | None = Field(default=None, max_length=64, description="IANA zone, e.g. Asia/Shanghai")
    logo_base64: str | None = Field(default=None, description="PNG, JPEG, GIF, WebP or SVG, base64-encoded")
    clear_logo: bool = False

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            from collector.schedule.cron import load_zone

            load_zone(value)
        return value

    @field_validator("logo_base64")
    @classmethod
    def _b64(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("expected base64-encoded image bytes") from None
        return value

    def logo(self) -> bytes | None:
        return None if self.logo_base64 is None else base64.b64decode(self.logo_base64)
