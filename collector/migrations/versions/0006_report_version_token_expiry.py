"""reports: the version of their content (an unchanged subject is not rendered again);
API tokens: an optional expiry.

Revision ID: 0006_report_version_token_expiry
Revises: 0005_clock_skew
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_report_version_token_expiry"
down_revision: str | None = "0005_clock_skew"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: records rendered before this column exist have no known version and are
    # rendered again once (then stored with theirs).
    with op.batch_alter_table("reports") as batch:
        batch.add_column(sa.Column("version", sa.String(length=64), nullable=True))
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("expires_at", sa.Double(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("expires_at")
    with op.batch_alter_table("reports") as batch:
        batch.drop_column("version")
