"""Request and response models of the customer file and SLA API (``/customers/{c}/...``, ``/sla``)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from collector.desk.calendar import CalendarSettings
from collector.desk.sla import CASE_TYPES, TargetMinutes
from collector.http.models import SLUG_PATTERN, _Out, _Query, _time
from collector.notify.config import _address
from collector.store.customer_file import ContactRecord, ContractRecord, CustomerFile
from collector.store.sla import SlaRow

__all__ = [
    "ContactIn",
    "ContactOut",
    "ContactPatch",
    "ContractIn",
    "ContractOut",
    "ContractPatch",
    "CustomerFileOut",
    "SlaClockOut",
    "SlaQuery",
]

Money = Decimal
Email = Annotated[str, Field(max_length=320), AfterValidator(_address)]
"""An e-mail address, checked as the notification settings check theirs."""


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_targets(value: dict[str, TargetMinutes]) -> dict[str, TargetMinutes]:
    unknown = sorted(set(value) - set(CASE_TYPES))
    if unknown:
        raise ValueError(f"unknown case type {unknown[0]!r}: expected one of {', '.join(CASE_TYPES)}")
    return value


class ContractPatch(_In):
    """Fields of a contract to change (all optional)."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    tier: str | None = Field(
        default=None, pattern=r"^[a-z][a-z0-9_-]{0,31}$", description="e.g. gold, standard"
    )
    starts_on: date | None = None
    ends_on: date | None = None
    targets: dict[str, TargetMinutes] | None = Field(
        default=None, description="Per case type: first_response, restore, resolve in business minutes."
    )
    rate_onsite: Money | None = Field(default=None, ge=0, le=1_000_000, decimal_places=2)
    rate_remote: Money | None = Field(default=None, ge=0, le=1_000_000, decimal_places=2)
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$", description="ISO 4217, e.g. CNY")
    calendar: CalendarSettings | None = Field(
        default=None, description="Time zone, working hours, country holidays, extra days off and workdays."
    )

    _targets = field_validator("targets")(lambda cls, v: v if v is None else _check_targets(v))

    def values(self) -> dict[str, Any]:
        found = self.model_dump(exclude_unset=True, mode="json")
        for key in ("starts_on", "ends_on"):
            if key in found:
                found[key] = getattr(self, key)
        for key in ("rate_onsite", "rate_remote"):
            if key in found:
                found[key] = getattr(self, key)
        if found.get("targets") is not None:
            found["targets"] = {k: v.model_dump(exclude_none=True) for k, v in (self.targets or {}).items()}
        return {k: v for k, v in found.items() if v is not None}


class ContractIn(ContractPatch):
    """A new contract."""

    name: str = Field(min_length=1, max_length=200)
    tier: str = Field(default="standard", pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    starts_on: date
    ends_on: date
    targets: dict[str, TargetMinutes] = Field(default_factory=dict)
    rate_onsite: Money = Field(default=Decimal(0), ge=0, le=1_000_000, decimal_places=2)
    rate_remote: Money = Field(default=Decimal(0), ge=0, le=1_000_000, decimal_places=2)
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")
    calendar: CalendarSettings = Field(default_factory=CalendarSettings)

    @model_validator(mode="after")
    def _period(self) -> ContractIn:
        if self.ends_on < self.starts_on:
            raise ValueError(f"ends_on {self.ends_on} must not be before starts_on {self.starts_on}")
        return self

    def values(self) -> dict[str, Any]:
        found = super().values()
        found.setdefault("targets", {})
        found["calendar"] = self.calendar.model_dump(mode="json")
        found.setdefault("rate_onsite", self.rate_onsite)
        found.setdefault("rate_remote", self.rate_remote)
        found.setdefault("currency", self.currency)
        found.setdefault("tier", self.tier)
        return found


class ContractOut(_Out):
    id: int
    customer: str
    name: str
    tier: str
    starts_on: date
    ends_on: date
    targets: dict[str, Any]
    rate_onsite: Money
    rate_remote: Money
    currency: str
    calendar: dict[str, Any]
    updated_at: datetime | None

    @classmethod
    def of(cls, c: ContractRecord) -> ContractOut:
        return cls(
            id=c.id,
            customer=c.customer,
            name=c.name,
            tier=c.tier,
            starts_on=c.starts_on,
            ends_on=c.ends_on,
            targets=dict(c.targets),
            rate_onsite=c.rate_onsite,
            rate_remote=c.rate_remote,
            currency=c.currency,
            calendar=dict(c.calendar),
            updated_at=_time(c.updated_at),
        )


_PHONE = r"^\+?[0-9][0-9 ()./-]{2,38}$"


class ContactPatch(_In):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    role: str | None = Field(default=None, min_length=1, max_length=100, description="e.g. IT manager, DBA")
    email: Email | None = None
    phone: str | None = Field(default=None, pattern=_PHONE, description="digits, spaces, + ( ) . / -")
    language: Literal["en", "zh-CN"] | None = Field(default=None, description="Preferred language")

    def values(self) -> dict[str, Any]:
        """The fields given; ``null`` clears an e-mail or phone and is ignored elsewhere."""
        given = self.model_dump(exclude_unset=True)
        return {k: v for k, v in given.items() if v is not None or k in ("email", "phone")}


class ContactIn(ContactPatch):
    name: str = Field(min_length=1, max_length=200)
    role: str = Field(min_length=1, max_length=100)
    language: Literal["en", "zh-CN"] = "zh-CN"

    @model_validator(mode="after")
    def _reachable(self) -> ContactIn:
        if self.email is None and self.phone is None:
            raise ValueError("give an email or a phone (or both) so the contact can be reached")
        return self

    def values(self) -> dict[str, Any]:
        return self.model_dump()


class ContactOut(_Out):
    id: int
    customer: str
    name: str
    role: str
    email: str | None
    phone: str | None
    language: str

    @classmethod
    def of(cls, c: ContactRecord) -> ContactOut:
        return cls(
            id=c.id,
            customer=c.customer,
            name=c.name,
            role=c.role,
            email=c.email,
            phone=c.phone,
            language=c.language,
        )


class CustomerFileOut(_Out):
    customer: str
    name: str
    timezone: str
    contracts: list[ContractOut]
    contacts: list[ContactOut]
    hosts: list[str]
    open_cases: int

    @classmethod
    def of(cls, f: CustomerFile) -> CustomerFileOut:
        return cls(
            customer=f.customer,
            name=f.name,
            timezone=f.timezone,
            contracts=[ContractOut.of(c) for c in f.contracts],
            contacts=[ContactOut.of(c) for c in f.contacts],
            hosts=f.hosts,
            open_cases=f.open_cases,
        )


class SlaQuery(_Query):
    customer: str | None = Field(
        default=None, max_length=63, pattern=SLUG_PATTERN, description="Only this customer (engineers)."
    )
    limit: int = Field(default=500, ge=1, le=5000)


class SlaClockOut(_Out):
    case_id: str
    customer: str
    title: str
    case_type: str
    case_state: str
    target: str
    state: Literal["warning", "breached"]
    clock: str
    target_minutes: float
    elapsed_minutes: float
    remaining_minutes: float
    computed_at: datetime | None
    warn_at: datetime | None
    due_at: datetime | None
    warned_at: datetime | None
    breached_at: datetime | None

    @classmethod
    def of(cls, r: SlaRow) -> SlaClockOut:
        return cls(
            case_id=r.case_id,
            customer=r.customer,
            title=r.title,
            case_type=r.case_type,
            case_state=r.case_state,
            target=r.target,
            state="breached" if r.state == "breached" else "warning",
            clock=r.clock,
            target_minutes=round(r.target_s / 60, 1),
            elapsed_minutes=round(r.elapsed_s / 60, 1),
            remaining_minutes=round(max(0.0, r.target_s - r.elapsed_s) / 60, 1),
            computed_at=_time(r.computed_at),
            warn_at=_time(r.warn_at),
            due_at=_time(r.due_at),
            warned_at=_time(r.warned_at),
            breached_at=_time(r.breached_at),
        )
