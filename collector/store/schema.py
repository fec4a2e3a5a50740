"""The collector's schema: SQLAlchemy Core tables, one definition for SQLite and PostgreSQL.

Conventions:

- every timestamp is Unix seconds as a double (``ts``, ``*_at``); no time zones in the
  database, and the same arithmetic on both engines;
- JSON columns are ``JSON`` on SQLite (text) and ``JSONB`` on PostgreSQL;
- constraint names follow :data:`NAMING`, so Alembic migrations name them the same way
  on both engines.

The initial migration (``collector/migrations/versions/0001_initial.py``) creates exactly
these tables; ``tests/collector/store/test_migrations.py`` fails on any drift.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

__all__ = [
    "JSONType",
    "agent_health",
    "agents",
    "api_tokens",
    "check_results",
    "customers",
    "gaps",
    "hosts",
    "inventory",
    "inventory_changes",
    "latest_results",
    "metadata",
    "points",
    "points_rollup",
    "product_upgrades",
    "series",
]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING)

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
"""JSON documents: text on SQLite, JSONB (indexable) on PostgreSQL."""

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
"""A 64-bit surrogate key; plain INTEGER on SQLite so it aliases the rowid."""

Seconds: sa.Double[float] = sa.Double()

customers = sa.Table(
    "customers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("slug", sa.String(63), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("settings", JSONType, nullable=False),
    sa.Column("created_at", Seconds, nullable=False),
)

agents = sa.Table(
    "agents",
    metadata,
    # ``id`` is the AgentIdentity.token_id; ``agent_id`` is the agent's own stable name.
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("agent_id", sa.String(253), nullable=False, unique=True),
    sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id"), nullable=False, index=True),
    sa.Column("host", sa.String(253), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("token_prefix", sa.String(8), nullable=False),
    sa.Column("created_at", Seconds, nullable=False),
    sa.Column("revoked_at", Seconds, nullable=True),
    sa.Column("max_seq", sa.BigInteger, nullable=False),
    sa.Column("last_seen_at", Seconds, nullable=True),
    sa.Column("agent_version", sa.String(64), nullable=True),
)

hosts = sa.Table(
    "hosts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id"), nullable=False),
    sa.Column("name", sa.String(253), nullable=False),
    sa.Column("labels", JSONType, nullable=False),
    sa.Column("facts", JSONType, nullable=False),
    sa.Column("first_seen", Seconds, nullable=True),
    sa.Column("last_seen", Seconds, nullable=True),
    # How far ahead of the collector's clock the agent's latest batch was stamped, when
    # beyond the allowed skew (an agent health problem); NULL while its clock is fine.
    sa.Column("clock_skew_s", Seconds, nullable=True),
    sa.Column("clock_skew_at", Seconds, nullable=True),
    sa.UniqueConstraint("customer_id", "name"),
)

check_results = sa.Table(
    "check_results",
    metadata,
    sa.Column("id", BigId, primary_key=True),
    sa.Column("agent_id", sa.String(253), sa.ForeignKey("agents.agent_id"), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("host_id", sa.Integer, sa.ForeignKey("hosts.id"), nullable=False),
    sa.Column("ts", Seconds, nullable=False),
    sa.Column("check", sa.String(128), nullable=False),
    sa.Column("layer", sa.String(32), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("key", sa.String(128), nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("duration_ms", sa.Double, nullable=False),
    sa.Column("findings", JSONType, nullable=False),
    sa.Column("inspection_id", sa.String(64), nullable=True),
    # The safety net under the per-agent max_seq: a result is stored once, whatever happens.
    sa.UniqueConstraint("agent_id", "seq"),
    sa.Index("ix_check_results_host_check_ts", "host_id", "check", "ts"),
    sa.Index("ix_check_results_ts", "ts"),
)

latest_results = sa.Table(
    "latest_results",
    metadata,
    # The newest result per (host, check), upserted with each batch: `diagctl host` reads
    # one small table instead of scanning check_results.
    sa.Column("host_id", sa.Integer, sa.ForeignKey("hosts.id"), primary_key=True),
    sa.Column("check", sa.String(128), primary_key=True),
    sa.Column("agent_id", sa.String(253), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("ts", Seconds, nullable=False),
    sa.Column("layer", sa.String(32), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("key", sa.String(128), nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("duration_ms", sa.Double, nullable=False),
    sa.Column("findings", JSONType, nullable=False),
    sa.Column("inspection_id", sa.String(64), nullable=True),
)

series = sa.Table(
    "series",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("host_id", sa.Integer, sa.ForeignKey("hosts.id"), nullable=False),
    sa.Column("check", sa.String(128), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("unit", sa.String(32), nullable=False),
    sa.Column("labels", JSONType, nullable=False),
    sa.Column("labels_key", sa.Text, nullable=False),
    sa.UniqueConstraint("host_id", "name", "labels_key"),
)

points = sa.Table(
    "points",
    metadata,
    # No foreign key to series: the FK lookup per row costs ingest rate, and series rows
    # are never deleted. WITHOUT ROWID on SQLite: the table *is* the (series_id, ts)
    # B-tree, so each point is written into one B-tree instead of a table plus an index.
    sa.Column("series_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("ts", Seconds, primary_key=True),
    sa.Column("value", sa.Double, nullable=False),
    sqlite_with_rowid=False,
)

points_rollup = sa.Table(
    "points_rollup",
    metadata,
    sa.Column("series_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("resolution_s", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("bucket_ts", Seconds, primary_key=True),
    sa.Column("min", sa.Double, nullable=False),
    sa.Column("max", sa.Double, nullable=False),
    sa.Column("avg", sa.Double, nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
    sqlite_with_rowid=False,
)

inventory = sa.Table(
    "inventory",
    metadata,
    # The current inventory document per host; its history is inventory_changes.
    sa.Column("host_id", sa.Integer, sa.ForeignKey("hosts.id"), primary_key=True, autoincrement=False),
    sa.Column("agent_id", sa.String(253), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("ts", Seconds, nullable=False),
    sa.Column("document", JSONType, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
)

inventory_changes = sa.Table(
    "inventory_changes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("host_id", sa.Integer, sa.ForeignKey("hosts.id"), nullable=False),
    sa.Column("agent_id", sa.String(253), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("ts", Seconds, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("previous_sha256", sa.String(64), nullable=True),
    sa.Column("document", JSONType, nullable=False),
    sa.Column("changes", JSONType, nullable=False),
    sa.Index("ix_inventory_changes_host_ts", "host_id", "ts"),
)

product_upgrades = sa.Table(
    "product_upgrades",
    metadata,
    # from_version NULL: product appeared; to_version NULL: product removed.
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("host_id", sa.Integer, sa.ForeignKey("hosts.id"), nullable=False),
    sa.Column("agent_id", sa.String(253), nullable=False),
    sa.Column("product", sa.String(200), nullable=False),
    sa.Column("from_version", sa.String(200), nullable=True),
    sa.Column("to_version", sa.String(200), nullable=True),
    sa.Column("ts", Seconds, nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("host_id", "seq", "product"),
    sa.Index("ix_product_upgrades_host_ts", "host_id", "ts"),
)

agent_health = sa.Table(
    "agent_health",
    metadata,
    sa.Column("agent_id", sa.String(253), sa.ForeignKey("agents.agent_id"), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("ts", Seconds, nullable=False),
    sa.Column("document", JSONType, nullable=False),
    sa.Index("ix_agent_health_ts", "ts"),
)

gaps = sa.Table(
    "gaps",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("agent_id", sa.String(253), sa.ForeignKey("agents.agent_id"), nullable=False),
    sa.Column("first_seq", sa.BigInteger, nullable=False),
    sa.Column("last_seq", sa.BigInteger, nullable=False),
    sa.Column("count", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("dropped_at", Seconds, nullable=False),
    sa.Column("recorded_at", Seconds, nullable=False),
    sa.UniqueConstraint("agent_id", "first_seq"),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id"), nullable=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(8), nullable=False),
    sa.Column("created_at", Seconds, nullable=False),
    sa.Column("revoked_at", Seconds, nullable=True),
    sa.Column("last_used_at", Seconds, nullable=True),
    sa.Column("expires_at", Seconds, nullable=True),  # None: until revoked
    sa.CheckConstraint("role IN ('engineer', 'customer_admin', 'viewer', 'service_manager')", name="role"),
    sa.CheckConstraint("role IN ('engineer', 'service_manager') OR customer_id IS NOT NULL", name="scoped"),
)
