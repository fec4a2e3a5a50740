"""service records: customers' sign-offs (one-time links, signatures) and customer documents.

Revision ID: 0012_records
Revises: 0011_outbox (the brief says 0006; re-chained here after merging main)
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_records"
down_revision: str | None = "0010_fleet_state"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


OLD_KINDS = "kind IN ('inspection', 'fault')"
NEW_KINDS = "kind IN ('inspection', 'fault', 'emergency', 'repair', 'routine', 'upgrade', 'analysis')"


def upgrade() -> None:
    with op.batch_alter_table("reports") as batch:  # the service record kinds beside the reports
        batch.drop_constraint(op.f("ck_reports_kind"), type_="check")
        batch.create_check_constraint("kind", NEW_KINDS)
    op.create_table(
        "record_signoffs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("report_sha256", sa.String(length=64), nullable=False),
        sa.Column("contact", sa.String(length=200), nullable=False),
        sa.Column("contact_email", sa.String(length=320), nullable=True),
        sa.Column("lang", sa.String(length=8), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.Column("signed_at", sa.Double(), nullable=True),
        sa.Column("client_addr", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=400), nullable=True),
        sa.Column("statement", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_record_signoffs_report", "record_signoffs", ["report_id"], unique=False)
    op.create_table(
        "customer_documents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("uploaded_by", sa.String(length=200), nullable=False),
        sa.Column("uploaded_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_customer_documents_customer", "customer_documents", ["customer_id", "uploaded_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_customer_documents_customer", table_name="customer_documents")
    op.drop_table("customer_documents")
    op.drop_index("ix_record_signoffs_report", table_name="record_signoffs")
    op.drop_table("record_signoffs")
    op.execute("DELETE FROM reports WHERE NOT (" + OLD_KINDS + ")")  # records the old schema cannot hold
    with op.batch_alter_table("reports") as batch:
        batch.drop_constraint(op.f("ck_reports_kind"), type_="check")
        batch.create_check_constraint("kind", OLD_KINDS)
