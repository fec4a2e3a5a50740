"""case_surveys and case_callbacks: the follow-up step's one-time survey links (token
hashes only) with their answers, and the callback draw with its results (issue 14).

Revision ID: 0013_surveys
Revises: 0011_outbox
Create Date: 2026-12-15
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_surveys"
down_revision: str | None = "0012_records"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "case_surveys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.String(length=80), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("contact", sa.String(length=320), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.Column("answered_at", sa.Double(), nullable=True),
        sa.Column("ratings", sa.JSON(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.CheckConstraint("language IN ('en', 'zh-CN')", name=op.f("ck_case_surveys_language")),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_case_surveys_case_id_cases")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_surveys")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_case_surveys_token_hash")),
    )
    op.create_index("ix_case_surveys_case", "case_surveys", ["case_id"])
    op.create_index("ix_case_surveys_open", "case_surveys", ["answered_at", "expires_at"])
    op.create_table(
        "case_callbacks",
        sa.Column("case_id", sa.String(length=80), nullable=False),
        sa.Column("selected", sa.Boolean(), nullable=False),
        sa.Column("drawn_at", sa.Double(), nullable=False),
        sa.Column("result", sa.String(length=16), nullable=True),
        sa.Column("satisfied", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("recorded_by", sa.String(length=200), nullable=True),
        sa.Column("recorded_at", sa.Double(), nullable=True),
        sa.CheckConstraint(
            "result IS NULL OR result IN ('reached', 'no_answer')", name=op.f("ck_case_callbacks_result")
        ),
        sa.CheckConstraint(
            "satisfied IS NULL OR (satisfied >= 1 AND satisfied <= 5)",
            name=op.f("ck_case_callbacks_satisfied"),
        ),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_case_callbacks_case_id_cases")),
        sa.PrimaryKeyConstraint("case_id", name=op.f("pk_case_callbacks")),
    )
    op.create_index("ix_case_callbacks_due", "case_callbacks", ["selected", "result"])


def downgrade() -> None:
    op.drop_index("ix_case_callbacks_due", table_name="case_callbacks")
    op.drop_table("case_callbacks")
    op.drop_index("ix_case_surveys_open", table_name="case_surveys")
    op.drop_index("ix_case_surveys_case", table_name="case_surveys")
    op.drop_table("case_surveys")
