"""Remote sessions in the store: requests, approvals, the agent's view, streams, recordings
and the hash-chained audit log (:mod:`collector.store.session_audit`).

:class:`SessionRepo` is the only code that reads or writes the ``sessions`` tables
(:mod:`collector.store.schema_sessions`). Every read that serves a person takes a
:class:`~collector.store.queries.Scope`: a session of another customer is reported exactly
like one that does not exist (:class:`~collector.store.errors.NotFound`). Every change is
audited in the same transaction as the change itself.

The collector's states (``state``)::

    requested ──approve (customer_admin, or the host's own approval)──► approved
        │  └──deny──► denied                                    │
        └───────────────revoke / not_after passed───────────────┴──► revoked / expired

The agent has the last word: ``agent_state`` is its latest SessionStatus (waiting,
approved, denied, refused, active, ended, revoked) and a stream may open only while the
agent says approved or active (:meth:`SessionRecord.connectable`).
"""

from __future__ import annotations

import builtins
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

import sqlalchemy as sa

from collector.store.cases import scoped_case
from collector.store.engine import SQLITE_IMMEDIATE
from collector.store.errors import Conflict, NotFound, StoreError
from collector.store.queries import Scope
from collector.store.schema import agents, customers, hosts
from collector.store.schema_cases import cases
from collector.store.schema_sessions import session_audit, session_recordings, session_streams, sessions
from collector.store.session_audit import AuditRow, append_audit, verify_rows

if TYPE_CHECKING:
    from collector.store.store import Store

__all__ = [
    "AGENT_STATES",
    "MODES",
    "AuditVerdict",
    "CaseSession",
    "RecordingRecord",
    "SessionRecord",
    "SessionRepo",
    "StreamRecord",
]

Mode = Literal["shell", "diagnostic"]
MODES: Final = ("shell", "diagnostic")
AGENT_STATES: Final = ("waiting", "approved", "denied", "refused", "active", "ended", "revoked")
LIVE: Final = ("requested", "approved")
MAX_DURATION_S: Final = 24 * 3600


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: str
    customer: str
    host: str
    agent_id: str
    case_id: str
    engineer: str
    reason: str
    mode: str
    public_key: str
    created_at: float
    not_before: float
    not_after: float
    state: str
    approval: str
    approved_by: str | None
    approved_at: float | None
    ended_at: float | None
    ended_by: str | None
    end_reason: str | None
    agent_state: str | None
    agent_reason: str | None
    host_key: str | None
    host_key_sha256: str | None

    def live(self, now: float) -> bool:
        """Not denied, revoked or expired, and before ``not_after``."""
        return self.state in LIVE and now < self.not_after

    def connectable(self, now: float) -> str | None:
        """None when a stream may open now, else why not (one sentence)."""
        if self.state not in LIVE:
            return f"session {self.id} is {self.state}"
        if now >= self.not_after:
            return f"session {self.id} has expired"
        if now < self.not_before:
            return f"session {self.id} is not valid yet"
        if self.agent_state not in ("approved", "active"):
            said = self.agent_state or "nothing yet"
            why = f" ({self.agent_reason})" if self.agent_reason else ""
            return f"session {self.id} is not approved by the agent (it said: {said}{why})"
        return None


@dataclass(frozen=True, slots=True)
class StreamRecord:
    id: int
    session_id: str
    stream_id: int
    opened_at: float
    closed_at: float | None
    bytes_in: int
    bytes_out: int
    close_reason: str | None


@dataclass(frozen=True, slots=True)
class RecordingRecord:
    session_id: str
    content: bytes
    size: int
    sha256: str
    verified: bool
    assembled_at: float


@dataclass(frozen=True, slots=True)
class CaseSession:
    """A session as a case (API, fault-analysis report) lists it: who, where, when, recorded."""

    record: SessionRecord
    started_at: float | None
    """When its first SSH connection opened (None: nobody connected)."""
    ended_at: float | None
    """When it ended (revoked, expired, denied) or, while live, when its last connection closed."""
    recording: bool
    """An assembled recording is stored (``diagctl sessions replay``)."""


@dataclass(frozen=True, slots=True)
class AuditVerdict:
    """One customer's chain: how many rows, and the first bad seq (None: intact)."""

    customer: str
    rows: int
    first_bad_seq: int | None


def _record(row: Any) -> SessionRecord:
    return SessionRecord(
        id=row.id,
        customer=row.slug,
        host=row.host_name,
        agent_id=row.agent_id,
        case_id=row.case_id,
        engineer=row.engineer,
        reason=row.reason,
        mode=row.mode,
        public_key=row.public_key,
        created_at=row.created_at,
        not_before=row.not_before,
        not_after=row.not_after,
        state=row.state,
        approval=row.approval,
        approved_by=row.approved_by,
        approved_at=row.approved_at,
        ended_at=row.ended_at,
        ended_by=row.ended_by,
        end_reason=row.end_reason,
        agent_state=row.agent_state,
        agent_reason=row.agent_reason,
        host_key=row.host_key,
        host_key_sha256=row.host_key_sha256,
    )


_SELECT = (
    sa.select(sessions, customers.c.slug, hosts.c.name.label("host_name"))
    .join(customers, customers.c.id == sessions.c.customer_id)
    .join(hosts, hosts.c.id == sessions.c.host_id)
)


class SessionRepo:
    """See the module docstring."""

    def __init__(self, store: Store) -> None:
        self._engine = store.engine
        self._write_engine = store.engine.execution_options(**{SQLITE_IMMEDIATE: True})

    # ------------------------------------------------------------------ reads

    def get(self, scope: Scope, session_id: str) -> SessionRecord:
        """The session; NotFound when absent or outside ``scope``."""
        with self._engine.connect() as conn:
            return self._get(conn, scope, session_id)

    def _get(self, conn: sa.Connection, scope: Scope, session_id: str) -> SessionRecord:
        row = conn.execute(_SELECT.where(sessions.c.id == session_id, scope.where())).first()
        if row is None:
            raise NotFound(f"no session {session_id!r} (list sessions with: diagctl sessions list)")
        return _record(row)

    def list(
        self,
        scope: Scope,
        *,
        case_id: str | None = None,
        host: str | None = None,
        state: str | None = None,
        limit: int = 100,
    ) -> builtins.list[SessionRecord]:
        """Sessions the scope may see, newest first."""
        q = _SELECT.where(scope.where())
        if case_id is not None:
            q = q.where(sessions.c.case_id == case_id)
        if host is not None:
            q = q.where(hosts.c.name == host)
        if state is not None:
            q = q.where(sessions.c.state == state)
        with self._engine.connect() as conn:
            rows = conn.execute(q.order_by(sessions.c.created_at.desc(), sessions.c.id).limit(limit)).all()
        return [_record(r) for r in rows]

    def for_case(self, scope: Scope, case_id: str) -> builtins.list[CaseSession]:
        """The sessions of a case the scope may see, oldest first, with their connection times."""
        st = session_streams.c
        streams = (
            sa.select(
                st.session_id,
                sa.func.min(st.opened_at).label("first_open"),
                sa.func.max(st.closed_at).label("last_close"),
            )
            .group_by(st.session_id)
            .subquery()
        )
        q = (
            _SELECT.add_columns(
                streams.c.first_open,
                streams.c.last_close,
                session_recordings.c.session_id.is_not(None).label("has_recording"),
            )
            .outerjoin(streams, streams.c.session_id == sessions.c.id)
            .outerjoin(session_recordings, session_recordings.c.session_id == sessions.c.id)
            .where(scope.where(), sessions.c.case_id == case_id)
            .order_by(sessions.c.created_at, sessions.c.id)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(q).all()
        return [
            CaseSession(_record(r), r.first_open, r.ended_at or r.last_close, bool(r.has_recording))
            for r in rows
        ]

    def grants_for_agent(self, agent_id: str, now: float) -> builtins.list[SessionRecord]:
        """*internal*: the agent's unexpired, unrevoked sessions (re-sent on every connect)."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                _SELECT.where(
                    sessions.c.agent_id == agent_id, sessions.c.state.in_(LIVE), sessions.c.not_after > now
                ).order_by(sessions.c.created_at)
            ).all()
        return [_record(r) for r in rows]

    def streams(self, scope: Scope, session_id: str) -> builtins.list[StreamRecord]:
        with self._engine.connect() as conn:
            self._get(conn, scope, session_id)
            rows = conn.execute(
                sa.select(session_streams)
                .where(session_streams.c.session_id == session_id)
                .order_by(session_streams.c.id)
            ).all()
        return [
            StreamRecord(
                int(r.id),
                r.session_id,
                int(r.stream_id),
                r.opened_at,
                r.closed_at,
                int(r.bytes_in),
                int(r.bytes_out),
                r.close_reason,
            )
            for r in rows
        ]

    def recording(self, scope: Scope, session_id: str) -> RecordingRecord:
        """The assembled recording; NotFound when the session or its recording is absent."""
        with self._engine.connect() as conn:
            self._get(conn, scope, session_id)
            r = conn.execute(
                sa.select(session_recordings).where(session_recordings.c.session_id == session_id)
            ).first()
        if r is None:
            raise NotFound(
                f"session {session_id!r} has no recording yet (the agent ships it when the session ends)"
            )
        return RecordingRecord(
            r.session_id, bytes(r.content), int(r.size), r.sha256, bool(r.verified), r.assembled_at
        )

    def audit(
        self, scope: Scope, session_id: str | None = None, limit: int = 10_000
    ) -> builtins.list[AuditRow]:
        """Audit rows the scope may see (one session's, or all), by customer and seq."""
        q = (
            sa.select(session_audit, customers.c.slug)
            .join(customers, customers.c.id == session_audit.c.customer_id)
            .where(scope.where())
        )
        if session_id is not None:
            q = q.where(session_audit.c.session_id == session_id)
        with self._engine.connect() as conn:
            if session_id is not None:
                self._get(conn, scope, session_id)
            rows = conn.execute(q.order_by(customers.c.slug, session_audit.c.seq).limit(limit)).all()
        return [_audit(r) for r in rows]

    def verify_audit(self, scope: Scope) -> builtins.list[AuditVerdict]:
        """Check every chain the scope may see; each verdict names its first bad seq."""
        by_customer: dict[str, list[AuditRow]] = {}
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(session_audit, customers.c.slug)
                .join(customers, customers.c.id == session_audit.c.customer_id)
                .where(scope.where())
                .order_by(customers.c.slug, session_audit.c.seq)
            ).all()
        for r in rows:
            by_customer.setdefault(r.slug, []).append(_audit(r))
        return [AuditVerdict(c, len(chain), verify_rows(chain)) for c, chain in sorted(by_customer.items())]

    # ------------------------------------------------------------------ writes (people)

    def request(
        self,
        scope: Scope,
        *,
        engineer: str,
        host: str,
        case_id: str,
        reason: str,
        mode: str,
        public_key: str,
        duration_s: float,
        now: float,
    ) -> SessionRecord:
        """A new session request (state ``requested``), audited."""
        if mode not in MODES:
            raise StoreError(f"mode {mode!r}: expected shell or diagnostic")
        if not 60 <= duration_s <= MAX_DURATION_S:
            raise StoreError(
                f"duration {duration_s:g}s: expected between 1 minute and {MAX_DURATION_S // 3600} hours"
            )
        with self._write_engine.begin() as conn:
            case = scoped_case(
                conn, scope, case_id, cases.c.customer_id, customers.c.slug,
                hint=" (list cases with: diagctl cases)",
            )  # fmt: skip
            customer_id, slug = int(case["customer_id"]), str(case["slug"])
            agent = conn.execute(
                sa.select(agents.c.agent_id, hosts.c.id.label("host_id"))
                .join(
                    hosts, sa.and_(hosts.c.customer_id == agents.c.customer_id, hosts.c.name == agents.c.host)
                )
                .where(
                    agents.c.customer_id == customer_id,
                    hosts.c.name == host,
                    agents.c.revoked_at.is_(None),
                )
                .order_by(agents.c.id.desc())
            ).first()
            if agent is None:
                raise NotFound(
                    f"no host {host!r} with an enrolled agent in customer {slug!r} (the case's customer)"
                )
            session_id = "s-" + secrets.token_hex(8)
            conn.execute(
                sessions.insert().values(
                    id=session_id,
                    customer_id=customer_id,
                    host_id=agent.host_id,
                    agent_id=agent.agent_id,
                    case_id=case_id,
                    engineer=engineer,
                    reason=reason,
                    mode=mode,
                    public_key=public_key,
                    created_at=now,
                    not_before=now,
                    not_after=now + duration_s,
                    state="requested",
                    approval="",
                )
            )
            detail = f"host {host}, case {case_id}, mode {mode}, until {now + duration_s:.0f}: {reason}"
            append_audit(conn, customer_id, slug, session_id, "requested", engineer, detail, now)
            return self._get(conn, Scope.everything(), session_id)

    def approve(self, scope: Scope, session_id: str, *, actor: str, now: float) -> SessionRecord:
        """requested → approved by a customer_admin (the caller checks the role)."""
        with self._write_engine.begin() as conn:
            s = self._get(conn, scope, session_id)
            if s.engineer == actor:
                raise Conflict("the engineer who requested a session cannot approve it")
            self._require_live(s, now, "approve")
            if s.approval == "customer_admin":
                raise Conflict(f"session {session_id} is already approved by {s.approved_by}")
            conn.execute(
                sessions.update()
                .where(sessions.c.id == session_id)
                .values(state="approved", approval="customer_admin", approved_by=actor, approved_at=now)
            )
            self._audit(conn, s, "approved", actor, "approval: customer_admin", now)
            return self._get(conn, scope, session_id)

    def deny(self, scope: Scope, session_id: str, *, actor: str, reason: str, now: float) -> SessionRecord:
        """requested → denied."""
        with self._write_engine.begin() as conn:
            s = self._get(conn, scope, session_id)
            if s.state != "requested":
                raise Conflict(
                    f"session {session_id} is {s.state}; only a requested session can be denied "
                    "(revoke it instead)"
                )
            return self._end(conn, scope, s, "denied", actor, reason, now)

    def revoke(self, scope: Scope, session_id: str, *, actor: str, reason: str, now: float) -> SessionRecord:
        """requested/approved → revoked."""
        with self._write_engine.begin() as conn:
            s = self._get(conn, scope, session_id)
            if s.state not in LIVE:
                raise Conflict(f"session {session_id} is already {s.state}")
            return self._end(conn, scope, s, "revoked", actor, reason, now)

    # ------------------------------------------------------------------ writes (the collector)

    def expire_due(self, now: float) -> builtins.list[SessionRecord]:
        """*internal*: every live session past ``not_after`` → expired (audited); returns them."""
        with self._write_engine.begin() as conn:
            due = conn.execute(_SELECT.where(sessions.c.state.in_(LIVE), sessions.c.not_after <= now)).all()
            out = []
            for row in due:
                out.append(
                    self._end(
                        conn,
                        Scope.everything(),
                        _record(row),
                        "expired",
                        "collector",
                        "not_after passed",
                        now,
                    )
                )
        return out

    def agent_status(
        self,
        agent_id: str,
        session_id: str,
        *,
        state: str,
        reason: str,
        host_key: str,
        host_key_sha256: str,
        approved_by: str,
        now: float,
    ) -> SessionRecord | None:
        """*internal*: an agent's SessionStatus; None (nothing written) for a session not its own.

        A change of state is audited; ``approved`` pins the host key (a later, different key
        is refused and audited) and, with ``approved_by`` (approved on the host), approves.
        """
        if state not in AGENT_STATES:
            raise StoreError(f"state {state!r}: expected one of {', '.join(AGENT_STATES)}")
        with self._write_engine.begin() as conn:
            row = conn.execute(
                _SELECT.where(sessions.c.id == session_id, sessions.c.agent_id == agent_id)
            ).first()
            if row is None:
                return None
            s = _record(row)
            values: dict[str, Any] = {"agent_state": state, "agent_reason": reason or None, "agent_at": now}
            if state == "approved" and host_key:
                if s.host_key and s.host_key != host_key:
                    self._audit(
                        conn,
                        s,
                        "host_key_mismatch",
                        f"agent:{agent_id}",
                        f"pinned {s.host_key_sha256}, offered {host_key_sha256}",
                        now,
                    )
                    return s
                values.update(host_key=host_key, host_key_sha256=host_key_sha256)
            if state == "approved" and approved_by and s.state == "requested":
                values.update(
                    state="approved", approval="host", approved_by=approved_by[:200], approved_at=now
                )
            conn.execute(sessions.update().where(sessions.c.id == session_id).values(**values))
            if state != s.agent_state or (reason or None) != s.agent_reason:
                detail = reason + (f" host key {host_key_sha256}" if host_key_sha256 else "")
                self._audit(conn, s, f"agent_{state}", f"agent:{agent_id}", detail.strip(), now)
            return self._get(conn, Scope.everything(), session_id)

    def stream_opened(self, session_id: str, stream_id: int, actor: str, now: float) -> int:
        """*internal*: a relayed SSH connection began; returns its row id."""
        with self._write_engine.begin() as conn:
            s = self._get(conn, Scope.everything(), session_id)
            new_id = conn.execute(
                session_streams.insert().values(
                    session_id=session_id, stream_id=stream_id, opened_at=now, bytes_in=0, bytes_out=0
                )
            ).inserted_primary_key
            self._audit(conn, s, "started", actor, f"stream {stream_id}", now)
            return int(new_id[0]) if new_id else 0

    def stream_closed(self, row_id: int, *, bytes_in: int, bytes_out: int, reason: str, now: float) -> None:
        """*internal*: the connection ended (bytes from and to the engineer)."""
        with self._write_engine.begin() as conn:
            r = conn.execute(sa.select(session_streams).where(session_streams.c.id == row_id)).first()
            if r is None or r.closed_at is not None:
                return
            conn.execute(
                session_streams.update()
                .where(session_streams.c.id == row_id)
                .values(closed_at=now, bytes_in=bytes_in, bytes_out=bytes_out, close_reason=reason[:500])
            )
            s = self._get(conn, Scope.everything(), r.session_id)
            detail = f"stream {r.stream_id}: {bytes_in} bytes in, {bytes_out} out; {reason}"
            self._audit(conn, s, "ended", "collector", detail, now)

    def refused(self, session_id: str, actor: str, detail: str, now: float) -> None:
        """*internal*: audit a refusal by the collector (a connect it did not allow, a bad frame)."""
        with self._write_engine.begin() as conn:
            s = self._get(conn, Scope.everything(), session_id)
            self._audit(conn, s, "refused", actor, detail, now)

    # ------------------------------------------------------------------ helpers

    def _require_live(self, s: SessionRecord, now: float, what: str) -> None:
        if s.state not in LIVE:
            raise Conflict(f"session {s.id} is {s.state}: it can no longer be {what}d")
        if now >= s.not_after:
            raise Conflict(f"session {s.id} has expired")

    def _end(
        self,
        conn: sa.Connection,
        scope: Scope,
        s: SessionRecord,
        state: str,
        actor: str,
        reason: str,
        now: float,
    ) -> SessionRecord:
        conn.execute(
            sessions.update()
            .where(sessions.c.id == s.id)
            .values(state=state, ended_at=now, ended_by=actor, end_reason=reason or None)
        )
        self._audit(conn, s, state, actor, reason, now)
        return self._get(conn, scope, s.id)

    def _audit(
        self, conn: sa.Connection, s: SessionRecord, event: str, actor: str, detail: str, now: float
    ) -> None:
        cid = conn.execute(sa.select(customers.c.id).where(customers.c.slug == s.customer)).scalar_one()
        append_audit(conn, int(cid), s.customer, s.id, event, actor[:200], detail, now)


def _audit(r: Any) -> AuditRow:
    return AuditRow(r.slug, int(r.seq), r.ts, r.session_id, r.event, r.actor, r.detail, r.prev_hash, r.hash)
