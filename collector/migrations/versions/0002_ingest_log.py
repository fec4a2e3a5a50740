"""the ingest log (durable batches ahead of materialisation).

Revision ID: 0002_ingest_log
Revises: 0001_initial
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_ingest_log"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "ingest_log",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("shard", sa.BigInteger(), nullable=False),
        sa.Column("agent_id", sa.String(length=253), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("customer", sa.String(length=63), nullable=False),
        sa.Column("host", sa.String(length=253), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("after_seq", sa.BigInteger(), nullable=False),
        sa.Column("max_seq", sa.BigInteger(), nullable=False),
        sa.Column("received_at", sa.Double(), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("quarantined_at", sa.Double(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingest_log")),
    )
    op.create_index("ix_ingest_log_agent_id", "ingest_log", ["agent_id", "id"])
    op.create_index(
        "ix_ingest_log_pending", "ingest_log", ["quarantined_at", "shard", "received_at", "points"]
    )


def downgrade() -> None:
    op.drop_index("ix_ingest_log_pending", table_name="ingest_log")
    op.drop_index("ix_ingest_log_agent_id", table_name="ingest_log")
    op.drop_table("ingest_log")
