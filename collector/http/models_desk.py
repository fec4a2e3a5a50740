"""Request and response models of the service desk's case endpoints (:mod:`collector.http.desk`).

Every request model forbids unknown fields and bounds every string; free text refuses
control characters other than line breaks and tabs (a title or a name is one line).
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from collector.http.models import SLUG_PATTERN, _Out
from collector.store.desk_cases import TimeEntry, TimeLog

__all__ = [
    "CaseOpen",
    "ComplaintStepRequest",
    "DecisionRequest",
    "DeskOverviewOut",
    "ReleaseRequest",
    "StepRequest",
    "TimeEntryOut",
    "TimeEntryRequest",
    "TimeLogOut",
    "TransferRequest",
]

ONE_LINE = r"^[^\x00-\x1f\x7f]+$"
"""A name or title: no control characters at all."""
TEXT = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
"""Free text: line breaks and tabs allowed, other control characters not."""


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CaseOpen(_In):
    customer: str = Field(max_length=63, pattern=SLUG_PATTERN, description="Customer slug.")
    type: Literal["emergency", "routine", "adaptive", "perfective", "complaint", "consultation", "onsite"]
    subtype: Literal["operation_error", "data_error", "defect_l3", "user_training"] | None = Field(
        default=None, description="Required for routine cases, refused for the others."
    )
    channel: Literal["hotline", "email", "remote", "onsite"] = Field(
        description="How the request came in (customer admins: remote or email)."
    )
    title: str = Field(min_length=1, max_length=500, pattern=ONE_LINE)
    description: str | None = Field(default=None, max_length=10_000, pattern=TEXT)
    host: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        pattern=ONE_LINE,
        description="One of the customer's hosts.",
    )
    contact: str | None = Field(
        default=None, min_length=1, max_length=200, pattern=ONE_LINE, description="The customer's contact."
    )
    severity: Literal["CRIT", "WARN", "INFO"] = "WARN"


class StepRequest(_In):
    note: str | None = Field(
        default=None, max_length=10_000, pattern=TEXT, description="Why, for the timeline."
    )


class TransferRequest(_In):
    to: str = Field(min_length=1, max_length=200, pattern=ONE_LINE, description="Who takes the case over.")
    reason: str = Field(min_length=1, max_length=10_000, pattern=TEXT, description="Why it is transferred.")


class TimeEntryRequest(_In):
    minutes: int = Field(ge=1, le=1440, description="Minutes worked (at most one day per entry).")
    activity: str = Field(min_length=1, max_length=500, pattern=ONE_LINE, description="What was done.")
    mode: Literal["onsite", "remote"] = "remote"
    work_date: dt.date | None = Field(default=None, description="The day worked; default: today (UTC).")
    engineer: str | None = Field(
        default=None, min_length=1, max_length=200, pattern=ONE_LINE, description="Default: the token's name."
    )


class DecisionRequest(_In):
    decision: Literal["accepted", "rejected", "deferred"]
    text: str = Field(
        min_length=1, max_length=10_000, pattern=TEXT, description="The product team's reasons."
    )


class ReleaseRequest(_In):
    release: str = Field(min_length=1, max_length=200, pattern=ONE_LINE, description="e.g. 5.2.1")
    upgrade_id: int | None = Field(
        default=None,
        ge=1,
        le=2**31 - 1,
        description="The upgrade record (/api/v1/upgrades) that delivered it.",
    )


class ComplaintStepRequest(_In):
    step: Literal["handed_over", "supervised", "outcome", "callback"]
    text: str = Field(min_length=1, max_length=10_000, pattern=TEXT)
    team: str | None = Field(
        default=None, min_length=1, max_length=200, pattern=ONE_LINE, description="handed_over: the team."
    )
    summary: str | None = Field(
        default=None, min_length=1, max_length=10_000, pattern=TEXT, description="outcome: its summary."
    )


class TimeEntryOut(_Out):
    id: int
    case_id: str
    engineer: str
    minutes: int
    activity: str
    mode: str
    work_date: dt.date
    logged_by: str
    logged_at: dt.datetime

    @classmethod
    def of(cls, e: TimeEntry) -> TimeEntryOut:
        return cls(
            id=e.id,
            case_id=e.case_id,
            engineer=e.engineer,
            minutes=e.minutes,
            activity=e.activity,
            mode=e.mode,
            work_date=e.work_date,
            logged_by=e.logged_by,
            logged_at=dt.datetime.fromtimestamp(e.logged_at, dt.UTC),
        )


class TimeLogOut(_Out):
    case_id: str
    entries: list[TimeEntryOut]
    total_minutes: int
    onsite_minutes: int
    remote_minutes: int

    @classmethod
    def of(cls, case_id: str, log: TimeLog) -> TimeLogOut:
        return cls(
            case_id=case_id,
            entries=[TimeEntryOut.of(e) for e in log.entries],
            total_minutes=log.total_minutes,
            onsite_minutes=log.onsite_minutes,
            remote_minutes=log.remote_minutes,
        )


class DeskOverviewOut(_Out):
    by_state: dict[str, int] = Field(description="Cases per state.")
    by_type: dict[str, int] = Field(description="Cases still being worked, per type.")
    unassigned: list[str] = Field(description="New cases nobody has taken yet, oldest first.")
    waiting_on_customer: list[str]
    complaints_open: list[str] = Field(description="Complaints not closed yet, oldest first.")
    minutes_logged_30d: int = Field(description="Time logged on cases in the last 30 days.")
    surveys_open: int = Field(default=0, description="Survey links sent and not answered yet.")
    surveys_expired_unanswered: int = Field(default=0, description="Survey links that expired unanswered.")
    callbacks_due: list[str] = Field(default=[], description="Cases drawn for a callback, none recorded yet.")
    callbacks_no_answer: int = Field(default=0, description="Callbacks whose last attempt got no answer.")
    sla_breached: list[str] = Field(
        default=[], description="Open cases with a breached SLA clock, soonest due first (GET /sla)."
    )
    sla_at_risk: list[str] = Field(
        default=[], description="Open cases with an SLA clock past 75% of its target, none breached."
    )
