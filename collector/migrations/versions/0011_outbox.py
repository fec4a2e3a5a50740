"""notify_outbox: every notification waiting for delivery, leased (shared by collectors).

Replaces the local SQLite outbox file of case notifications (``<state_dir>/notify/
notify-outbox.sqlite3``), whose entries the collector imports on its first start.

Revision ID: 0011_outbox
Revises: 0006_report_version_token_expiry
Create Date: 2026-12-14
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_outbox"
down_revision: str | None = "0009_sessions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "notify_outbox",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("customer", sa.String(length=63), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_at", sa.Double(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_notify_outbox_next_at", "notify_outbox", ["next_at"])
    op.create_index("ix_notify_outbox_created_at", "notify_outbox", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_notify_outbox_created_at", table_name="notify_outbox")
    op.drop_index("ix_notify_outbox_next_at", table_name="notify_outbox")
    op.drop_table("notify_outbox")
