"""Tables: the ingest log (durable batches ahead of materialisation).

An agent's batch is acknowledged once it is one row here (and the agent's ``max_seq``
has advanced in the same transaction); the materialiser later turns the row into
results, points, inventory and health, and deletes it in that same transaction. Like a
TSDB's write-ahead log: one small append per batch on the Ack path, the index-heavy
writes behind it. A row the materialiser cannot apply is kept, with ``quarantined_at``
and ``error`` set, so it is counted and can be inspected, never silently dropped.

Defined on :data:`collector.store.schema.metadata` (collected in :mod:`collector.store.tables`), so
the migration drift test covers them.
"""

from __future__ import annotations

import sqlalchemy as sa

from collector.store.schema import BigId, Seconds, metadata

__all__ = ["ingest_log"]

ingest_log = sa.Table(
    "ingest_log",
    metadata,
    # Appends for one agent are serialised on its agents row, so per agent the id order
    # is the seq order: the materialiser applies rows in id order.
    sa.Column("id", BigId, primary_key=True),
    # crc32 of the customer slug: which materialiser (shard) applies the row.
    sa.Column("shard", sa.BigInteger, nullable=False),
    sa.Column("agent_id", sa.String(253), nullable=False),
    sa.Column("token_id", sa.Integer, nullable=False),
    sa.Column("customer", sa.String(63), nullable=False),
    sa.Column("host", sa.String(253), nullable=False),
    sa.Column("host_id", sa.Integer, nullable=False),
    # The agent's durable seq before this batch: entries at or below it are replays.
    sa.Column("after_seq", sa.BigInteger, nullable=False),
    sa.Column("max_seq", sa.BigInteger, nullable=False),
    sa.Column("received_at", Seconds, nullable=False),
    sa.Column("points", sa.Integer, nullable=False),
    sa.Column("quarantined_at", Seconds, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    # The validated EntryBatch exactly as the agent sent it (protobuf bytes). Last: SQLite
    # reads a row's columns in order, so the small ones never touch the payload's pages.
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Index("ix_ingest_log_agent_id", "agent_id", "id"),
    # Covers the backlog figures (log_stats, the gauges) without reading any row.
    sa.Index("ix_ingest_log_pending", "quarantined_at", "shard", "received_at", "points"),
)
