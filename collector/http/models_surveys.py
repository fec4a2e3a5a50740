"""Request and response models of the follow-up endpoints (:mod:`collector.http.surveys`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from collector.http.models import SLUG_PATTERN, _Out, _Query
from collector.http.models_desk import TEXT
from collector.store.surveys import CallbackRecord, SurveyRecord

__all__ = ["CallbackOut", "CallbackRequest", "SurveyOut", "SurveysQuery"]


class SurveysQuery(_Query):
    customer: str | None = Field(
        default=None, max_length=63, pattern=SLUG_PATTERN, description="Only this customer."
    )
    state: Literal["open", "answered", "expired"] | None = Field(
        default=None, description="open (sent, not answered yet), answered, or expired without an answer."
    )
    case: str | None = Field(
        default=None, max_length=80, pattern=r"^[A-Za-z0-9_.\-]+$", description="Only this case."
    )
    limit: int = Field(default=100, ge=1, le=1000)


class SurveyOut(_Out):
    id: int
    case_id: str
    customer: str
    case_title: str
    contact: str = Field(description="Where the link was sent.")
    language: str
    state: Literal["open", "answered", "expired"]
    created_at: float
    expires_at: float
    answered_at: float | None
    ratings: dict[str, int] | None = Field(description="Question key → 1..5, once answered.")
    mean: float | None = Field(description="The ratings' mean, once answered.")
    comment: str | None

    @classmethod
    def of(cls, s: SurveyRecord, now: float) -> SurveyOut:
        state = s.state(now)
        mean = round(sum(s.ratings.values()) / len(s.ratings), 2) if s.ratings else None
        return cls(
            id=s.id, case_id=s.case_id, customer=s.customer, case_title=s.case_title, contact=s.contact,
            language=s.language, state=state, created_at=s.created_at, expires_at=s.expires_at,
            answered_at=s.answered_at, ratings=s.ratings, mean=mean, comment=s.comment,
        )  # fmt: skip


class CallbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    result: Literal["reached", "no_answer"] = Field(description="Did the callback reach the customer?")
    satisfied: int | None = Field(
        default=None, ge=1, le=5, description="Satisfaction 1..5 (required when reached)."
    )
    note: str = Field(default="", max_length=10_000, pattern=TEXT)


class CallbackOut(_Out):
    case_id: str
    customer: str
    selected: bool = Field(description="Drawn for a callback when the case was closed.")
    drawn_at: float
    result: str | None
    satisfied: int | None
    note: str | None
    recorded_by: str | None
    recorded_at: float | None

    @classmethod
    def of(cls, c: CallbackRecord) -> CallbackOut:
        return cls(
            case_id=c.case_id, customer=c.customer, selected=c.selected, drawn_at=c.drawn_at, result=c.result,
            satisfied=c.satisfied, note=c.note, recorded_by=c.recorded_by, recorded_at=c.recorded_at,
        )  # fmt: skip
