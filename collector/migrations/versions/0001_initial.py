"""Initial schema: customers, agents, hosts, results, series and points, inventory, gaps, tokens.

Revision ID: 0001_initial
Revises:
Create Date: 2025-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001_initial"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out here (not imported from collector.store.schema): a migration is frozen in
# time, while the schema module moves on with later revisions.
JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("settings", JSON_TYPE, nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
        sa.UniqueConstraint("slug", name=op.f("uq_customers_slug")),
    )
    op.create_table(
        "points",
        sa.Column("series_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("ts", sa.Double(), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("series_id", "ts", name=op.f("pk_points")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "points_rollup",
        sa.Column("series_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("resolution_s", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("bucket_ts", sa.Double(), nullable=False),
        sa.Column("min", sa.Double(), nullable=False),
        sa.Column("max", sa.Double(), nullable=False),
        sa.Column("avg", sa.Double(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("series_id", "resolution_s", "bucket_ts", name=op.f("pk_points_rollup")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "agents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.String(length=253), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(length=253), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("token_prefix", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("revoked_at", sa.Double(), nullable=True),
        sa.Column("max_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_at", sa.Double(), nullable=True),
        sa.Column("agent_version", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_agents_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agents")),
        sa.UniqueConstraint("agent_id", name=op.f("uq_agents_agent_id")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_agents_token_hash")),
    )
    op.create_index(op.f("ix_agents_customer_id"), "agents", ["customer_id"], unique=False)
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("revoked_at", sa.Double(), nullable=True),
        sa.Column("last_used_at", sa.Double(), nullable=True),
        sa.CheckConstraint("role = 'engineer' OR customer_id IS NOT NULL", name=op.f("ck_api_tokens_scoped")),
        sa.CheckConstraint(
            "role IN ('engineer', 'customer_admin', 'viewer')", name=op.f("ck_api_tokens_role")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_api_tokens_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_table(
        "hosts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("labels", JSON_TYPE, nullable=False),
        sa.Column("facts", JSON_TYPE, nullable=False),
        sa.Column("first_seen", sa.Double(), nullable=True),
        sa.Column("last_seen", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_hosts_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hosts")),
        sa.UniqueConstraint("customer_id", "name", name=op.f("uq_hosts_customer_id_name")),
    )
    op.create_table(
        "agent_health",
        sa.Column("agent_id", sa.String(length=253), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("ts", sa.Double(), nullable=False),
        sa.Column("document", JSON_TYPE, nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.agent_id"], name=op.f("fk_agent_health_agent_id_agents")
        ),
        sa.PrimaryKeyConstraint("agent_id", "seq", name=op.f("pk_agent_health")),
    )
    op.create_index("ix_agent_health_ts", "agent_health", ["ts"], unique=False)
    op.create_table(
        "check_results",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("agent_id", sa.String(length=253), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("ts", sa.Double(), nullable=False),
        sa.Column("check", sa.String(length=128), nullable=False),
        sa.Column("layer", sa.String(length=32), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("duration_ms", sa.Double(), nullable=False),
        sa.Column("findings", JSON_TYPE, nullable=False),
        sa.Column("inspection_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.agent_id"], name=op.f("fk_check_results_agent_id_agents")
        ),
        sa.ForeignKeyConstraint(["host_id"], ["hosts.id"], name=op.f("fk_check_results_host_id_hosts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_check_results")),
        sa.UniqueConstraint("agent_id", "seq", name=op.f("uq_check_results_agent_id_seq")),
    )
    op.create_index(
        "ix_check_results_host_check_ts", "check_results", ["host_id", "check", "ts"], unique=False
    )
    op.create_index("ix_check_results_ts", "check_results", ["ts"], unique=False)
    op.create_table(
        "gaps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.String(length=253), nullable=False),
        sa.Column("first_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("dropped_at", sa.Double(), nullable=False),
        sa.Column("recorded_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.agent_id"], name=op.f("fk_gaps_agent_id_agents")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gaps")),
        sa.UniqueConstraint("agent_id", "first_seq", name=op.f("uq_gaps_agent_id_first_seq")),
    )
    op.create_table(
        "inventory",
        sa.Column("host_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("agent_id", sa.String(length=253), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("ts", sa.Double(), nullable=False),
        sa.Column("document", JSON_TYPE, nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["host_id"], ["hosts.id"], name=op.f("fk_inventory_host_id_hosts")),
        sa.PrimaryKeyConstraint("host_id", name=op.f("pk_inventory")),
    )
    op.create_table(
        "inventory_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.String(length=253), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("ts", sa.Double(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("previous_sha256", sa.String(length=64), nullable=True),
        sa.Column("document", JSON_TYPE, nullable=False),
        sa.Column("changes", JSON_TYPE, nullable=False),
        sa.ForeignKeyConstraint(["host_id"], ["hosts.id"], name=op.f("fk_inventory_changes_host_id_hosts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inventory_changes")),
    )
    op.create_index("ix_inventory_changes_host_ts", "inventory_changes", ["host_id", "ts"], unique=False)
    op.create_table(
        "latest_results",
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("check", sa.String(length=128), nullable=False),
        sa.Column("agent_id", sa.String(length=253), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("ts", sa.Double(), nullable=False),
        sa.Column("layer", sa.String(length=32), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("duration_ms", sa.Double(), nullable=False),
        sa.Column("findings", JSON_TYPE, nullable=False),
        sa.Column("inspection_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["host_id"], ["hosts.id"], name=op.f("fk_latest_results_host_id_hosts")),
        sa.PrimaryKeyConstraint("host_id", "check", name=op.f("pk_latest_results")),
    )
    op.create_table(
        "product_upgrades",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.String(length=253), nullable=False),
        sa.Column("product", sa.String(length=200), nullable=False),
        sa.Column("from_version", sa.String(length=200), nullable=True),
        sa.Column("to_version", sa.String(length=200), nullable=True),
        sa.Column("ts", sa.Double(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["host_id"], ["hosts.id"], name=op.f("fk_product_upgrades_host_id_hosts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_product_upgrades")),
        sa.UniqueConstraint(
            "host_id", "seq", "product", name=op.f("uq_product_upgrades_host_id_seq_product")
        ),
    )
    op.create_index("ix_product_upgrades_host_ts", "product_upgrades", ["host_id", "ts"], unique=False)
    op.create_table(
        "series",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("check", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("unit", sa.String(length=32), nullable=False),
        sa.Column("labels", JSON_TYPE, nullable=False),
        sa.Column("labels_key", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["host_id"], ["hosts.id"], name=op.f("fk_series_host_id_hosts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_series")),
        sa.UniqueConstraint("host_id", "name", "labels_key", name=op.f("uq_series_host_id_name_labels_key")),
    )


def downgrade() -> None:
    op.drop_table("series")
    op.drop_index("ix_product_upgrades_host_ts", table_name="product_upgrades")
    op.drop_table("product_upgrades")
    op.drop_table("latest_results")
    op.drop_index("ix_inventory_changes_host_ts", table_name="inventory_changes")
    op.drop_table("inventory_changes")
    op.drop_table("inventory")
    op.drop_table("gaps")
    op.drop_index("ix_check_results_ts", table_name="check_results")
    op.drop_index("ix_check_results_host_check_ts", table_name="check_results")
    op.drop_table("check_results")
    op.drop_index("ix_agent_health_ts", table_name="agent_health")
    op.drop_table("agent_health")
    op.drop_table("hosts")
    op.drop_table("api_tokens")
    op.drop_index(op.f("ix_agents_customer_id"), table_name="agents")
    op.drop_table("agents")
    op.drop_table("points_rollup")
    op.drop_table("points")
    op.drop_table("customers")
