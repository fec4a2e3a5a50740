"""inspection plans' runs, their schedule state, and reports as service records.

Revision ID: 0004_inspections
Revises: 0003_cases
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004_inspections"
down_revision: str | None = "0003_cases"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out here (not imported from collector.store.schema): a migration is frozen in time.
JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "inspection_runs",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("plan", sa.String(length=100), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=True),
        sa.Column("due_at", sa.Double(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("started_at", sa.Double(), nullable=True),
        sa.Column("finished_at", sa.Double(), nullable=True),
        sa.Column("deadline_at", sa.Double(), nullable=True),
        sa.Column("period_start", sa.Double(), nullable=True),
        sa.Column("period_end", sa.Double(), nullable=True),
        sa.Column("hosts_selected", sa.Integer(), nullable=True),
        sa.Column("hosts_answered", sa.Integer(), nullable=True),
        sa.Column("hosts", JSON_TYPE, nullable=False),
        sa.Column("overall_score", sa.Integer(), nullable=True),
        sa.Column("scores", JSON_TYPE, nullable=False),
        sa.Column("counts", JSON_TYPE, nullable=False),
        sa.Column("plan_doc", JSON_TYPE, nullable=False),
        sa.Column("result", JSON_TYPE, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "state IN ('pending', 'running', 'done', 'failed')", name=op.f("ck_inspection_runs_state")
        ),
        sa.CheckConstraint("trigger IN ('scheduled', 'manual')", name=op.f("ck_inspection_runs_trigger")),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_inspection_runs_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inspection_runs")),
    )
    op.create_index(
        "ix_inspection_runs_customer_plan",
        "inspection_runs",
        ["customer_id", "plan", "created_at"],
        unique=False,
    )
    op.create_table(
        "inspection_schedule",
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("plan", sa.String(length=100), nullable=False),
        sa.Column("last_due_at", sa.Double(), nullable=False),
        sa.Column("claimed_by", sa.String(length=200), nullable=True),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_inspection_schedule_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("customer_id", "plan", name=op.f("pk_inspection_schedule")),
    )
    op.create_table(
        "reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("lang", sa.String(length=8), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("path", sa.Text(), nullable=True),
        sa.CheckConstraint("kind IN ('inspection', 'fault')", name=op.f("ck_reports_kind")),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_reports_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reports")),
    )
    op.create_index("ix_reports_customer_created", "reports", ["customer_id", "created_at"], unique=False)
    op.create_table(
        "report_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("recipients", JSON_TYPE, nullable=False),
        sa.Column("lang", sa.String(length=8), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("next_at", sa.Double(), nullable=False),
        sa.Column("sent_at", sa.Double(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.CheckConstraint("state IN ('pending', 'sent', 'failed')", name=op.f("ck_report_deliveries_state")),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_report_deliveries_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["inspection_runs.id"], name=op.f("fk_report_deliveries_run_id_inspection_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_deliveries")),
        sa.UniqueConstraint("run_id", name=op.f("uq_report_deliveries_run_id")),
    )
    op.create_index("ix_report_deliveries_due", "report_deliveries", ["state", "next_at"], unique=False)
    op.create_index("ix_reports_subject", "reports", ["kind", "subject", "lang", "format"], unique=False)
    op.create_index(
        "ix_check_results_inspection_id",
        "check_results",
        ["inspection_id"],
        unique=False,
        sqlite_where=sa.text("inspection_id IS NOT NULL"),
        postgresql_where=sa.text("inspection_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_check_results_inspection_id", table_name="check_results")
    op.drop_index("ix_report_deliveries_due", table_name="report_deliveries")
    op.drop_table("report_deliveries")
    op.drop_index("ix_reports_subject", table_name="reports")
    op.drop_index("ix_reports_customer_created", table_name="reports")
    op.drop_table("reports")
    op.drop_table("inspection_schedule")
    op.drop_index("ix_inspection_runs_customer_plan", table_name="inspection_runs")
    op.drop_table("inspection_runs")
