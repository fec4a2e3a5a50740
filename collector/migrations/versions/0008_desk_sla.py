"""service desk, SLA part: contracts, contacts, SLA clocks of cases, the sweep's watermark.

Revision ID: 0008_desk_sla
Revises: 0013_surveys
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008_desk_sla"
down_revision: str | None = "0013_surveys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "desk_sweep",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("last_event_id", sa.Integer(), nullable=False),
        sa.Column("swept_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_desk_sweep")),
    )
    op.create_table(
        "contacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=100), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("phone", sa.String(length=40), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.CheckConstraint("language IN ('en', 'zh-CN')", name=op.f("ck_contacts_language")),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_contacts_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contacts")),
        sa.UniqueConstraint("customer_id", "name", name=op.f("uq_contacts_customer_id_name")),
    )
    op.create_table(
        "contracts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("tier", sa.String(length=32), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column(
            "targets",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("rate_onsite", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("rate_remote", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column(
            "calendar",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.CheckConstraint("ends_on >= starts_on", name=op.f("ck_contracts_period")),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_contracts_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contracts")),
        sa.UniqueConstraint("customer_id", "name", name=op.f("uq_contracts_customer_id_name")),
    )
    with op.batch_alter_table("contracts", schema=None) as batch_op:
        batch_op.create_index("ix_contracts_customer_period", ["customer_id", "starts_on"], unique=False)

    op.create_table(
        "case_sla",
        sa.Column("case_id", sa.String(length=80), nullable=False),
        sa.Column("target", sa.String(length=16), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("case_type", sa.String(length=32), nullable=False),
        sa.Column("target_s", sa.Double(), nullable=False),
        sa.Column("clock", sa.String(length=8), nullable=False),
        sa.Column("elapsed_s", sa.Double(), nullable=False),
        sa.Column("computed_at", sa.Double(), nullable=False),
        sa.Column("warn_at", sa.Double(), nullable=True),
        sa.Column("due_at", sa.Double(), nullable=True),
        sa.Column("warned_at", sa.Double(), nullable=True),
        sa.Column("breached_at", sa.Double(), nullable=True),
        sa.Column("dirty", sa.Boolean(), nullable=False),
        sa.CheckConstraint("clock IN ('running', 'paused', 'stopped')", name=op.f("ck_case_sla_clock")),
        sa.CheckConstraint(
            "target IN ('first_response', 'restore', 'resolve')", name=op.f("ck_case_sla_target")
        ),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_case_sla_case_id_cases")),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_case_sla_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("case_id", "target", name=op.f("pk_case_sla")),
    )
    with op.batch_alter_table("case_sla", schema=None) as batch_op:
        batch_op.create_index("ix_case_sla_customer", ["customer_id"], unique=False)
        batch_op.create_index("ix_case_sla_dirty", ["dirty"], unique=False)
        batch_op.create_index("ix_case_sla_due", ["breached_at", "due_at"], unique=False)
        batch_op.create_index("ix_case_sla_warn", ["warned_at", "warn_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("case_sla", schema=None) as batch_op:
        batch_op.drop_index("ix_case_sla_warn")
        batch_op.drop_index("ix_case_sla_due")
        batch_op.drop_index("ix_case_sla_customer")
        batch_op.drop_index("ix_case_sla_dirty")

    op.drop_table("case_sla")
    with op.batch_alter_table("contracts", schema=None) as batch_op:
        batch_op.drop_index("ix_contracts_customer_period")

    op.drop_table("contracts")
    op.drop_table("contacts")
    op.drop_table("desk_sweep")
