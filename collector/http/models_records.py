"""Request and response models of the service records API (``/api/v1/records...``)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from collector.http.models import MAX_LIMIT, _Out, _Query, _time
from collector.http.models_inspections import ReportOut
from collector.records import RECORD_KINDS
from collector.store.records import Problem, SignoffRecord, Verification
from collector.store.reports import ReportRecord

__all__ = [
    "BuildIn",
    "RecordDetailOut",
    "RecordOut",
    "RecordsQuery",
    "SignoffIn",
    "SignoffLinkOut",
    "SignoffOut",
    "VerificationOut",
    "VerifyQuery",
]

RecordKind = Literal["inspection", "fault", "emergency", "repair", "routine", "upgrade", "analysis"]
assert set(RecordKind.__args__) == set(RECORD_KINDS)  # type: ignore[attr-defined]

SLUG = r"^[a-z0-9][a-z0-9-]{0,62}$"


class RecordsQuery(_Query):
    customer: str | None = Field(default=None, max_length=63, pattern=SLUG, description="Only this customer.")
    kind: RecordKind | None = None
    subject: str | None = Field(default=None, max_length=64, description="Run id, case id or period.")
    limit: int = Field(default=100, ge=1, le=MAX_LIMIT)


class VerifyQuery(_Query):
    customer: str | None = Field(default=None, max_length=63, pattern=SLUG, description="Only this customer.")


class RecordOut(ReportOut):
    signed: bool = Field(description="At least one of the customer's contacts signed this record.")

    @classmethod
    def of_record(cls, r: ReportRecord, signed: bool) -> RecordOut:
        base = ReportOut.of(r).model_dump()
        return cls(**{**base, "download": f"/api/v1/records/{r.id}/content", "signed": signed})


class SignoffOut(_Out):
    id: int
    customer: str
    record: int
    record_sha256: str
    contact: str
    contact_email: str | None
    lang: str
    created_by: str
    created_at: datetime
    expires_at: datetime
    state: Literal["pending", "signed", "expired"]
    signed_at: datetime | None
    client_addr: str | None
    user_agent: str | None
    statement: str | None

    @classmethod
    def of(cls, s: SignoffRecord, now: float) -> SignoffOut:
        return cls(
            id=s.id,
            customer=s.customer,
            record=s.report_id,
            record_sha256=s.report_sha256,
            contact=s.contact,
            contact_email=s.contact_email,
            lang=s.lang,
            created_by=s.created_by,
            created_at=_time(s.created_at),
            expires_at=_time(s.expires_at),
            state=s.state(now),
            signed_at=_time(s.signed_at),
            client_addr=s.client_addr,
            user_agent=s.user_agent,
            statement=s.statement,
        )


class RecordDetailOut(RecordOut):
    signoffs: list[SignoffOut]


class SignoffLinkOut(SignoffOut):
    token: str = Field(description="The link's secret, shown once: send the url to the contact.")
    url: str = Field(description="The page the contact opens to sign (public URL + /sign/<token>).")


class SignoffIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contact: str = Field(min_length=1, max_length=200, description="The customer's contact who signs.")
    contact_email: str | None = Field(default=None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    lang: Literal["en", "zh-CN"] = "en"
    expires_in_hours: float = Field(
        default=168, gt=0, le=720, description="1 hour to 30 days; default 7 days."
    )

    @field_validator("contact")
    @classmethod
    def _printable(cls, value: str) -> str:
        value = value.strip()
        if not value or not value.isprintable():
            raise ValueError("contact must be a printable name")
        return value


class BuildIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["emergency", "repair", "routine", "upgrade", "analysis"]
    customer: str | None = Field(
        default=None, max_length=63, pattern=SLUG, description="routine, upgrade, analysis"
    )
    case: str | None = Field(default=None, max_length=80, description="emergency, repair; upgrade: optional")
    period: str | None = Field(
        default=None, pattern=r"^\d{4}-(0[1-9]|1[0-2]|Q[1-4])$", description="2026-11 (month) or 2026-Q4"
    )
    lang: Literal["en", "zh-CN"] = "en"
    format: Literal["html", "pdf", "json"] = "html"


class ProblemOut(_Out):
    record: int
    customer: str
    kind: str
    subject: str
    problem: Literal["altered", "missing", "file_altered", "file_missing"]
    detail: str

    @classmethod
    def of(cls, p: Problem) -> ProblemOut:
        return cls(
            record=p.report_id,
            customer=p.customer,
            kind=p.kind,
            subject=p.subject,
            problem=p.problem,
            detail=p.detail,
        )


class VerificationOut(_Out):
    ok: bool
    checked: int
    signatures: int
    problems: list[ProblemOut]

    @classmethod
    def of(cls, v: Verification) -> VerificationOut:
        return cls(
            ok=not v.problems,
            checked=v.checked,
            signatures=v.signed,
            problems=[ProblemOut.of(p) for p in v.problems],
        )
