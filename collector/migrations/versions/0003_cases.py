"""incidents, emergency cases, maintenance windows, detector state.

Maintenance windows live in the configuration; this revision adds the cases, their
timeline, the incidents behind them and the detection state of each collector shard.

Revision ID: 0003_cases
Revises: 0002_ingest_log
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003_cases"
down_revision: str | None = "0002_ingest_log"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out here (not imported from collector.store.schema_cases): a migration is frozen in time.
JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("id", sa.String(length=80), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=True),
        sa.Column("hosts", JSON_TYPE, nullable=False),
        sa.Column("causes", JSON_TYPE, nullable=False),
        sa.Column("members", JSON_TYPE, nullable=False),
        sa.Column("incident", JSON_TYPE, nullable=False),
        sa.Column("onset_at", sa.Double(), nullable=False),
        sa.Column("detected_at", sa.Double(), nullable=False),
        sa.Column("opened_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("acknowledged_at", sa.Double(), nullable=True),
        sa.Column("resolved_at", sa.Double(), nullable=True),
        sa.Column("closed_at", sa.Double(), nullable=True),
        sa.Column("reopened", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "state IN ('open', 'acknowledged', 'resolved', 'closed')", name=op.f("ck_cases_state")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_cases_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cases")),
        sa.UniqueConstraint("customer_id", "number", name=op.f("uq_cases_customer_id_number")),
    )
    op.create_index("ix_cases_state_opened", "cases", ["state", "opened_at"], unique=False)
    op.create_table(
        "case_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.String(length=80), nullable=False),
        sa.Column("ts", sa.Double(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("data", JSON_TYPE, nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_case_events_case_id_cases")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_events")),
    )
    op.create_index("ix_case_events_case_ts", "case_events", ["case_id", "ts"], unique=False)
    op.create_table(
        "case_incidents",
        sa.Column("incident_id", sa.String(length=64), nullable=False),
        sa.Column("case_id", sa.String(length=80), nullable=False),
        sa.Column("linked_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_case_incidents_case_id_cases")),
        sa.PrimaryKeyConstraint("incident_id", name=op.f("pk_case_incidents")),
    )
    op.create_index(op.f("ix_case_incidents_case_id"), "case_incidents", ["case_id"], unique=False)
    op.create_table(
        "incidents",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.String(length=80), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("onset_at", sa.Double(), nullable=False),
        sa.Column("opened_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("suppressed_by", JSON_TYPE, nullable=False),
        sa.Column("snapshot", JSON_TYPE, nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_incidents_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
    )
    op.create_index("ix_incidents_customer_opened", "incidents", ["customer_id", "opened_at"], unique=False)
    op.create_table(
        "detection_state",
        sa.Column("shard", sa.String(length=64), nullable=False),
        sa.Column("saved_at", sa.Double(), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("shard", name=op.f("pk_detection_state")),
    )


def downgrade() -> None:
    op.drop_table("detection_state")
    op.drop_index("ix_incidents_customer_opened", table_name="incidents")
    op.drop_table("incidents")
    op.drop_index(op.f("ix_case_incidents_case_id"), table_name="case_incidents")
    op.drop_table("case_incidents")
    op.drop_index("ix_case_events_case_ts", table_name="case_events")
    op.drop_table("case_events")
    op.drop_index("ix_cases_state_opened", table_name="cases")
    op.drop_table("cases")
