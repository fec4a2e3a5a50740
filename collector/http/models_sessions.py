"""Request and response models of the sessions API (``/api/v1/sessions``)."""

from __future__ import annotations

import base64
import binascii
import re
import struct
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from collector.http.models import _Out, _time
from collector.sessions.control import known_hosts_line, ssh_command
from collector.store.session_audit import AuditRow
from collector.store.sessions import AuditVerdict, CaseSession, SessionRecord, StreamRecord
from diagconfig.ssh_keys import KEY_TYPES

__all__ = [
    "AuditOut",
    "AuditVerifyOut",
    "CaseSessionOut",
    "DenyRequest",
    "SessionOut",
    "SessionRequest",
    "SessionsQuery",
    "check_public_key",
]

_KEY_RE = re.compile(r"([a-z0-9@.-]+) ([A-Za-z0-9+/]+={0,2})(?: [\x20-\x7e]{0,200})?")


def check_public_key(line: str) -> str:
    """One OpenSSH public key line (type, base64 blob naming the same type, optional comment).

    >>> blob = "AAAAC3NzaC1lZDI1NTE5AAAAIOmvRkBGZ4eXx1xCkqkUSUdpOUpR2JhLTqNW6mpDjyQ1"
    >>> check_public_key(f"ssh-ed25519 {blob} me@x")[:11]
    'ssh-ed25519'
    >>> check_public_key(f"ssh-rsa {blob}")
    Traceback (most recent call last):
    ...
    ValueError: the key's data is a ssh-ed25519 key, but the line says ssh-rsa
    """
    line = line.strip()
    m = _KEY_RE.fullmatch(line)
    if m is None or m.group(1) not in KEY_TYPES:
        raise ValueError(
            "expected one OpenSSH public key line such as 'ssh-ed25519 AAAA... you@laptop' "
            "(the contents of ~/.ssh/id_ed25519.pub)"
        )
    try:
        blob = base64.b64decode(m.group(2), validate=True)
        (n,) = struct.unpack(">I", blob[:4])
        embedded = blob[4 : 4 + n].decode("ascii")
    except (binascii.Error, struct.error, UnicodeDecodeError):
        raise ValueError("the key's base64 data is malformed") from None
    if embedded != m.group(1):
        raise ValueError(f"the key's data is a {embedded[:40]} key, but the line says {m.group(1)}")
    return line


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SessionRequest(_In):
    host: str = Field(min_length=1, max_length=253, description="The host (its agent gets the grant).")
    case: str = Field(min_length=1, max_length=80, description="The case the session is for.")
    reason: str = Field(min_length=3, max_length=2000, description="Why; shown to the customer.")
    mode: Literal["shell", "diagnostic"] = "diagnostic"
    public_key: str = Field(min_length=20, max_length=4000, description="Your OpenSSH public key line.")
    duration_s: int = Field(ge=60, le=24 * 3600, description="How long the grant lasts (1 min to 24 h).")

    @field_validator("public_key")
    @classmethod
    def _key(cls, value: str) -> str:
        return check_public_key(value)

    @field_validator("host", "case", "reason")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("must not contain a NUL character")
        return value


class DenyRequest(_In):
    reason: str = Field(default="", max_length=2000)


class SessionsQuery(_In):
    case: str | None = Field(default=None, max_length=80)
    host: str | None = Field(default=None, max_length=253)
    state: Literal["requested", "approved", "denied", "revoked", "expired"] | None = None
    limit: int = Field(default=100, ge=1, le=1000)


class StreamOut(_Out):
    stream_id: int
    opened_at: datetime
    closed_at: datetime | None
    bytes_in: int
    bytes_out: int
    close_reason: str | None

    @classmethod
    def of(cls, s: StreamRecord) -> StreamOut:
        return cls(
            stream_id=s.stream_id,
            opened_at=_time(s.opened_at),
            closed_at=_time(s.closed_at),
            bytes_in=s.bytes_in,
            bytes_out=s.bytes_out,
            close_reason=s.close_reason,
        )


class SessionOut(_Out):
    id: str
    customer: str
    host: str
    agent_id: str
    case_id: str
    engineer: str
    reason: str
    mode: str
    public_key: str
    created_at: datetime
    not_after: datetime
    state: str
    approval: str
    approved_by: str | None
    approved_at: datetime | None
    ended_at: datetime | None
    ended_by: str | None
    end_reason: str | None
    agent_state: str | None
    agent_reason: str | None
    host_key: str | None
    host_key_sha256: str | None
    connectable: bool
    ssh_command: str | None = Field(
        description="How to connect, once the agent approved (with the pinned host key)."
    )
    known_hosts_line: str | None
    streams: list[StreamOut] = []

    @classmethod
    def of(cls, s: SessionRecord, now: float, streams: list[StreamRecord] | None = None) -> SessionOut:
        return cls(
            id=s.id,
            customer=s.customer,
            host=s.host,
            agent_id=s.agent_id,
            case_id=s.case_id,
            engineer=s.engineer,
            reason=s.reason,
            mode=s.mode,
            public_key=s.public_key,
            created_at=_time(s.created_at),
            not_after=_time(s.not_after),
            state=s.state,
            approval=s.approval,
            approved_by=s.approved_by,
            approved_at=_time(s.approved_at),
            ended_at=_time(s.ended_at),
            ended_by=s.ended_by,
            end_reason=s.end_reason,
            agent_state=s.agent_state,
            agent_reason=s.agent_reason,
            host_key=s.host_key,
            host_key_sha256=s.host_key_sha256,
            connectable=s.connectable(now) is None,
            ssh_command=ssh_command(s),
            known_hosts_line=known_hosts_line(s),
            streams=[StreamOut.of(x) for x in streams or []],
        )


class AuditOut(_Out):
    customer: str
    seq: int
    ts: float
    session_id: str
    event: str
    actor: str
    detail: str
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, r: AuditRow) -> AuditOut:
        return cls(**{f: getattr(r, f) for f in AuditRow.__slots__})


class AuditVerifyOut(_Out):
    customer: str
    rows: int
    ok: bool
    first_bad_seq: int | None

    @classmethod
    def of(cls, v: AuditVerdict) -> AuditVerifyOut:
        return cls(
            customer=v.customer, rows=v.rows, ok=v.first_bad_seq is None, first_bad_seq=v.first_bad_seq
        )


class CaseSessionOut(_Out):
    """A remote session as its case lists it."""

    id: str
    host: str
    engineer: str
    mode: str
    state: str
    reason: str
    approval: str = Field(description="customer_admin or host ('' while not approved).")
    approved_by: str | None
    started_at: datetime | None = Field(description="When the first SSH connection opened.")
    ended_at: datetime | None
    recording: bool = Field(description="A recording is stored: diagctl sessions replay ID.")

    @classmethod
    def of(cls, c: CaseSession) -> CaseSessionOut:
        s = c.record
        return cls(
            id=s.id,
            host=s.host,
            engineer=s.engineer,
            mode=s.mode,
            state=s.state,
            reason=s.reason,
            approval=s.approval,
            approved_by=s.approved_by,
            started_at=_time(c.started_at),
            ended_at=_time(c.ended_at),
            recording=c.recording,
        )
