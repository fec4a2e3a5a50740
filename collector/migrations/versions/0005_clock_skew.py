"""hosts: the agent's clock skew (a health problem); latest results stamped in the future re-stamped.

Revision ID: 0005_clock_skew
Revises: 0004_inspections
Create Date: 2026-12-07

Before this revision any timestamp up to 2100 was stored as sent, so a result stamped in
the future stayed its host's latest forever. Such latest results (more than the default
allowed skew, 300 s, ahead of the migration's clock) are re-stamped at the migration's
time, so the next result replaces them as it should.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_clock_skew"
down_revision: str | None = "0004_inspections"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("hosts") as batch:
        batch.add_column(sa.Column("clock_skew_s", sa.Double(), nullable=True))
        batch.add_column(sa.Column("clock_skew_at", sa.Double(), nullable=True))
    now = time.time()
    op.get_bind().execute(
        sa.text("UPDATE latest_results SET ts = :now WHERE ts > :limit"), {"now": now, "limit": now + 300.0}
    )


def downgrade() -> None:
    with op.batch_alter_table("hosts") as batch:
        batch.drop_column("clock_skew_at")
        batch.drop_column("clock_skew_s")
