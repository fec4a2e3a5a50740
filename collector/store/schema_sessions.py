"""Tables: remote sessions, their streams, recordings and the hash-chained audit log.

Defined on :data:`collector.store.schema.metadata` (collected in :mod:`collector.store.tables`).

- ``sessions``: one row per session request: who asked (the engineer's token name), for
  which host/agent and case, why, in which mode, with which public key, until when; the
  collector's state (requested, denied, revoked, expired) and approval, and the agent's
  own view (its last SessionStatus: state, reason, pinned host key).
- ``session_streams``: each SSH connection relayed for a session (stream id, bytes, end).
- ``session_recording_chunks``: asciicast chunks as the agent spooled them (exactly once:
  one row per (session, index)); ``session_recordings``: the assembled cast and whether
  its sha256 matched the agent's.
- ``session_audit``: append-only, one hash chain per customer: ``seq`` counts per
  customer, ``hash`` = sha256 over the canonical row and ``prev_hash``.
"""

from __future__ import annotations

import sqlalchemy as sa

from collector.store.schema import metadata

__all__ = ["session_audit", "session_recording_chunks", "session_recordings", "session_streams", "sessions"]

_Seconds: sa.Double[float] = sa.Double()

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id"), nullable=False),
    sa.Column("host_id", sa.Integer, sa.ForeignKey("hosts.id"), nullable=False),
    sa.Column("agent_id", sa.String(253), sa.ForeignKey("agents.agent_id"), nullable=False),
    sa.Column("case_id", sa.String(80), sa.ForeignKey("cases.id"), nullable=False),
    sa.Column("engineer", sa.String(200), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("public_key", sa.Text, nullable=False),
    sa.Column("created_at", _Seconds, nullable=False),
    sa.Column("not_before", _Seconds, nullable=False),
    sa.Column("not_after", _Seconds, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("approval", sa.String(32), nullable=False),
    sa.Column("approved_by", sa.String(200), nullable=True),
    sa.Column("approved_at", _Seconds, nullable=True),
    sa.Column("ended_at", _Seconds, nullable=True),
    sa.Column("ended_by", sa.String(200), nullable=True),
    sa.Column("end_reason", sa.Text, nullable=True),
    sa.Column("agent_state", sa.String(16), nullable=True),
    sa.Column("agent_reason", sa.Text, nullable=True),
    sa.Column("agent_at", _Seconds, nullable=True),
    sa.Column("host_key", sa.Text, nullable=True),
    sa.Column("host_key_sha256", sa.String(100), nullable=True),
    sa.CheckConstraint("state IN ('requested', 'approved', 'denied', 'revoked', 'expired')", name="state"),
    sa.CheckConstraint("mode IN ('shell', 'diagnostic')", name="mode"),
    sa.Index("ix_sessions_agent_state", "agent_id", "state"),
    sa.Index("ix_sessions_customer_created", "customer_id", "created_at"),
    sa.Index("ix_sessions_case", "case_id"),
)

session_streams = sa.Table(
    "session_streams",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("session_id", sa.String(40), sa.ForeignKey("sessions.id"), nullable=False, index=True),
    sa.Column("stream_id", sa.BigInteger, nullable=False),
    sa.Column("opened_at", _Seconds, nullable=False),
    sa.Column("closed_at", _Seconds, nullable=True),
    sa.Column("bytes_in", sa.BigInteger, nullable=False),
    sa.Column("bytes_out", sa.BigInteger, nullable=False),
    sa.Column("close_reason", sa.Text, nullable=True),
)

session_recording_chunks = sa.Table(
    "session_recording_chunks",
    metadata,
    sa.Column("session_id", sa.String(40), sa.ForeignKey("sessions.id"), primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("last", sa.Boolean, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=True),
    sa.Column("received_at", _Seconds, nullable=False),
)

session_recordings = sa.Table(
    "session_recordings",
    metadata,
    sa.Column("session_id", sa.String(40), sa.ForeignKey("sessions.id"), primary_key=True),
    sa.Column("content", sa.LargeBinary, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("verified", sa.Boolean, nullable=False),
    sa.Column("assembled_at", _Seconds, nullable=False),
)

session_audit = sa.Table(
    "session_audit",
    metadata,
    sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id"), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("ts", _Seconds, nullable=False),
    sa.Column("session_id", sa.String(40), nullable=False, index=True),
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)
