"""fleet state: per host and layer the worst latest result and counts, per agent its last
stored batch and spool depth (``collector/store/schema_fleet.py``), backfilled from the rows.

The backfill takes an agent's ``last_batch_at`` from ``agents.last_seen_at`` (before this
revision the collector kept no other time for it; a Hello refreshed it too), for agents
that stored anything; from now on only a stored batch moves it.

Revision ID: 0010_fleet_state
Revises: 0006_report_version_token_expiry
Create Date: 2026-12-07
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_fleet_state"
down_revision: str | None = "0011_outbox"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out here (not imported from collector.store): a migration is frozen in time.
_RANK = "CASE lr.severity WHEN 'OK' THEN 0 WHEN 'WARN' THEN 1 WHEN 'CRIT' THEN 3 ELSE 2 END"
_SPOOL_MAX = 2**62


def _count(rank: int) -> str:
    return f"SUM(CASE WHEN {_RANK} = {rank} THEN 1 ELSE 0 END)"


def _spool_depth(document: object) -> int | None:
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            return None
    value = document.get("spool_depth") if isinstance(document, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return int(min(max(value, 0), _SPOOL_MAX))


def upgrade() -> None:
    op.create_table(
        "fleet_cells",
        sa.Column("host_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("layer", sa.String(length=32), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("worst", sa.SmallInteger(), nullable=False),
        sa.Column("n_ok", sa.Integer(), nullable=False),
        sa.Column("n_warn", sa.Integer(), nullable=False),
        sa.Column("n_unknown", sa.Integer(), nullable=False),
        sa.Column("n_crit", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_fleet_cells_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(["host_id"], ["hosts.id"], name=op.f("fk_fleet_cells_host_id_hosts")),
        sa.PrimaryKeyConstraint("host_id", "layer", name=op.f("pk_fleet_cells")),
    )
    op.create_index(
        "ix_fleet_cells_customer_layer_worst", "fleet_cells", ["customer_id", "layer", "worst"], unique=False
    )
    op.create_index("ix_fleet_cells_layer_worst", "fleet_cells", ["layer", "worst"], unique=False)
    op.create_table(
        "fleet_hosts",
        sa.Column("host_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("worst", sa.SmallInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_fleet_hosts_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(["host_id"], ["hosts.id"], name=op.f("fk_fleet_hosts_host_id_hosts")),
        sa.PrimaryKeyConstraint("host_id", name=op.f("pk_fleet_hosts")),
    )
    op.create_index("ix_fleet_hosts_customer_worst", "fleet_hosts", ["customer_id", "worst"], unique=False)
    op.create_table(
        "fleet_agents",
        sa.Column("agent_id", sa.String(length=253), nullable=False),
        sa.Column("last_batch_at", sa.Double(), nullable=False),
        sa.Column("spool_depth", sa.BigInteger(), nullable=True),
        sa.Column("spool_seq", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.agent_id"], name=op.f("fk_fleet_agents_agent_id_agents")
        ),
        sa.PrimaryKeyConstraint("agent_id", name=op.f("pk_fleet_agents")),
    )
    _backfill(op.get_bind())


def _backfill(conn: sa.Connection) -> None:
    conn.execute(
        sa.text(
            "INSERT INTO fleet_cells (host_id, layer, customer_id, worst, n_ok, n_warn, n_unknown, n_crit) "
            f"SELECT lr.host_id, lr.layer, h.customer_id, MAX({_RANK}), "
            f"{_count(0)}, {_count(1)}, {_count(2)}, {_count(3)} "
            "FROM latest_results lr JOIN hosts h ON h.id = lr.host_id "
            "GROUP BY lr.host_id, lr.layer, h.customer_id"
        )
    )
    conn.execute(
        sa.text(
            "INSERT INTO fleet_hosts (host_id, customer_id, worst) "
            "SELECT host_id, customer_id, MAX(worst) FROM fleet_cells GROUP BY host_id, customer_id"
        )
    )
    newest = {
        str(agent_id): (int(seq), _spool_depth(doc))
        for agent_id, seq, doc in conn.execute(
            sa.text(
                "SELECT h.agent_id, h.seq, h.document FROM agent_health h JOIN "
                "(SELECT agent_id, MAX(seq) AS seq FROM agent_health GROUP BY agent_id) n "
                "ON n.agent_id = h.agent_id AND n.seq = h.seq"
            )
        )
    }
    rows = []
    for agent_id, seen in conn.execute(
        sa.text("SELECT agent_id, last_seen_at FROM agents WHERE max_seq > 0 AND last_seen_at IS NOT NULL")
    ):
        seq, depth = newest.get(str(agent_id), (None, None))
        rows.append({"a": agent_id, "t": float(seen), "d": depth, "s": seq})
    if rows:
        conn.execute(
            sa.text(
                "INSERT INTO fleet_agents (agent_id, last_batch_at, spool_depth, spool_seq) "
                "VALUES (:a, :t, :d, :s)"
            ),
            rows,
        )


def downgrade() -> None:
    op.drop_table("fleet_agents")
    op.drop_index("ix_fleet_hosts_customer_worst", table_name="fleet_hosts")
    op.drop_table("fleet_hosts")
    op.drop_index("ix_fleet_cells_layer_worst", table_name="fleet_cells")
    op.drop_index("ix_fleet_cells_customer_layer_worst", table_name="fleet_cells")
    op.drop_table("fleet_cells")
