"""The agent's ``sessions:`` config section.

Off by default. Every key is checked strictly (unknown keys are an error with a
"did you mean"), and combinations that would be unsafe are refused at load time:
``shell_user: root`` needs ``allow_root: true``, and a shell mode needs a shell user.

>>> s = SessionsConfig.model_validate({"enabled": True, "allowed_hours": "09:00-18:00"})
>>> s.modes, s.approvals, s.hours
(('diagnostic',), ('host',), (540, 1080))
>>> s.within_hours(600), s.within_hours(1080)
(True, False)
>>> SessionsConfig.model_validate({"allowed_hours": "22:00-06:00"}).within_hours(120)
True
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["Approval", "Mode", "SessionsConfig"]

Approval = Literal["host", "customer_admin"]
Mode = Literal["diagnostic", "shell"]

_HOURS_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")
_USER_RE = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}\$?$")


def _minutes(hours: str, minutes: str) -> int:
    return int(hours) * 60 + int(minutes)


class SessionsConfig(BaseModel):
    """Whether and how engineers may open remote sessions on this host."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    """Off by default: the agent refuses every grant and every session frame."""
    approvals: tuple[Approval, ...] = Field(default=("host",), min_length=1)
    """Whose approval counts: ``host`` (``diag-agent sessions approve ID`` on this host),
    ``customer_admin`` (the customer's administrator, through the collector), or both
    (either one is enough)."""
    modes: tuple[Mode, ...] = Field(default=("diagnostic",), min_length=1)
    """``diagnostic`` (an allowlist of read-only commands) and/or ``shell``."""
    shell_user: str = "nobody"
    """The local account every session runs as (any SSH user name maps to it)."""
    allow_root: bool = False
    """Allow ``shell_user: root``; never implied."""
    allowed_hours: str | None = None
    """``HH:MM-HH:MM`` in the host's time zone (may wrap midnight); None: any time."""
    record_input: bool = True
    """Record what the engineer types as well as what the host prints."""
    max_streams: int = Field(default=8, ge=1, le=64)
    """SSH connections open at once, over all sessions."""

    @field_validator("approvals", "modes")
    @classmethod
    def _no_duplicates(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("each value may be listed once")
        return value

    @field_validator("shell_user")
    @classmethod
    def _user_name(cls, value: str) -> str:
        if not _USER_RE.match(value):
            raise ValueError("expected a local account name (lower case letters, digits, _ . -)")
        return value

    @field_validator("allowed_hours")
    @classmethod
    def _hours(cls, value: str | None) -> str | None:
        if value is None:
            return None
        match = _HOURS_RE.match(value)
        if not match:
            raise ValueError('expected "HH:MM-HH:MM" in 24-hour time, e.g. "09:00-18:00"')
        start = _minutes(match.group(1), match.group(2))
        end = _minutes(match.group(3), match.group(4))
        if start == end or end > 24 * 60:
            raise ValueError("start and end must differ and end may be at most 24:00")
        return value

    @model_validator(mode="after")
    def _root_needs_consent(self) -> SessionsConfig:
        if self.shell_user == "root" and not self.allow_root:
            raise ValueError("shell_user root needs allow_root: true (sessions then run as root)")
        return self

    @property
    def hours(self) -> tuple[int, int] | None:
        """``allowed_hours`` as (start, end) minutes after midnight."""
        if self.allowed_hours is None:
            return None
        match = _HOURS_RE.match(self.allowed_hours)
        assert match is not None  # validated
        return _minutes(match.group(1), match.group(2)), _minutes(match.group(3), match.group(4))

    def within_hours(self, minute_of_day: int) -> bool:
        """Whether ``minute_of_day`` (local time) is inside ``allowed_hours``."""
        hours = self.hours
        if hours is None:
            return True
        start, end = hours
        if start < end:
            return start <= minute_of_day < end
        return minute_of_day >= start or minute_of_day < end
