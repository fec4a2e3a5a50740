"""remote sessions: requests, streams, recordings and the hash-chained audit log.

Revision ID: 0009_sessions
Revises: 0006_report_version_token_expiry
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_sessions"
down_revision: str | None = "0007_desk_cases"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.String(length=253), nullable=False),
        sa.Column("case_id", sa.String(length=80), nullable=False),
        sa.Column("engineer", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("not_before", sa.Double(), nullable=False),
        sa.Column("not_after", sa.Double(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("approval", sa.String(length=32), nullable=False),
        sa.Column("approved_by", sa.String(length=200), nullable=True),
        sa.Column("approved_at", sa.Double(), nullable=True),
        sa.Column("ended_at", sa.Double(), nullable=True),
        sa.Column("ended_by", sa.String(length=200), nullable=True),
        sa.Column("end_reason", sa.Text(), nullable=True),
        sa.Column("agent_state", sa.String(length=16), nullable=True),
        sa.Column("agent_reason", sa.Text(), nullable=True),
        sa.Column("agent_at", sa.Double(), nullable=True),
        sa.Column("host_key", sa.Text(), nullable=True),
        sa.Column("host_key_sha256", sa.String(length=100), nullable=True),
        sa.CheckConstraint(
            "state IN ('requested', 'approved', 'denied', 'revoked', 'expired')",
            name=op.f("ck_sessions_state"),
        ),
        sa.CheckConstraint("mode IN ('shell', 'diagnostic')", name=op.f("ck_sessions_mode")),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.agent_id"], name=op.f("fk_sessions_agent_id_agents")),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_sessions_case_id_cases")),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_sessions_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(["host_id"], ["hosts.id"], name=op.f("fk_sessions_host_id_hosts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
    )
    op.create_index("ix_sessions_agent_state", "sessions", ["agent_id", "state"], unique=False)
    op.create_index("ix_sessions_case", "sessions", ["case_id"], unique=False)
    op.create_index("ix_sessions_customer_created", "sessions", ["customer_id", "created_at"], unique=False)
    op.create_table(
        "session_streams",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.String(length=40), nullable=False),
        sa.Column("stream_id", sa.BigInteger(), nullable=False),
        sa.Column("opened_at", sa.Double(), nullable=False),
        sa.Column("closed_at", sa.Double(), nullable=True),
        sa.Column("bytes_in", sa.BigInteger(), nullable=False),
        sa.Column("bytes_out", sa.BigInteger(), nullable=False),
        sa.Column("close_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], name=op.f("fk_session_streams_session_id_sessions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_session_streams")),
    )
    op.create_index(op.f("ix_session_streams_session_id"), "session_streams", ["session_id"], unique=False)
    op.create_table(
        "session_recording_chunks",
        sa.Column("session_id", sa.String(length=40), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("last", sa.Boolean(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("received_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], name=op.f("fk_session_recording_chunks_session_id_sessions")
        ),
        sa.PrimaryKeyConstraint("session_id", "idx", name=op.f("pk_session_recording_chunks")),
    )
    op.create_table(
        "session_recordings",
        sa.Column("session_id", sa.String(length=40), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("assembled_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], name=op.f("fk_session_recordings_session_id_sessions")
        ),
        sa.PrimaryKeyConstraint("session_id", name=op.f("pk_session_recordings")),
    )
    op.create_table(
        "session_audit",
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("ts", sa.Double(), nullable=False),
        sa.Column("session_id", sa.String(length=40), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_session_audit_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("customer_id", "seq", name=op.f("pk_session_audit")),
    )
    op.create_index(op.f("ix_session_audit_session_id"), "session_audit", ["session_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_session_audit_session_id"), table_name="session_audit")
    op.drop_table("session_audit")
    op.drop_table("session_recordings")
    op.drop_table("session_recording_chunks")
    op.drop_index(op.f("ix_session_streams_session_id"), table_name="session_streams")
    op.drop_table("session_streams")
    op.drop_index("ix_sessions_customer_created", table_name="sessions")
    op.drop_index("ix_sessions_case", table_name="sessions")
    op.drop_index("ix_sessions_agent_state", table_name="sessions")
    op.drop_table("sessions")
