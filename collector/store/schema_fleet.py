"""Tables: the fleet state, written at ingest so the dashboard and /metrics read it, not aggregate it.

Defined on :data:`collector.store.schema.metadata` (collected in :mod:`collector.store.tables`),
so the migration drift test covers them. Written only by :mod:`collector.store.fleet_state`
in the transaction that materialises a batch (``Store._apply_entries``), so they are as
durable and as shared as the results themselves: several collectors on one PostgreSQL
store see one fleet state.

- ``fleet_cells``: per host and layer, the worst severity rank of the host's latest results
  in that layer and how many of them have each severity (a row only once the host has a
  result in the layer);
- ``fleet_hosts``: per host, the worst rank over its cells (no row: no result yet, ``NONE``);
- ``fleet_agents``: per agent, when the collector last stored (materialised) one of its
  batches, and the spool depth from its newest health entry. A Hello never touches it.

Ranks are :attr:`checks.api.Severity.rank` (OK 0, WARN 1, UNKNOWN 2, CRIT 3); a severity
this version does not know counts as UNKNOWN (not OK).
"""

from __future__ import annotations

import sqlalchemy as sa

from collector.store.schema import metadata

__all__ = ["fleet_agents", "fleet_cells", "fleet_hosts"]

fleet_cells = sa.Table(
    "fleet_cells",
    metadata,
    sa.Column("host_id", sa.Integer, sa.ForeignKey("hosts.id"), primary_key=True, autoincrement=False),
    sa.Column("layer", sa.String(32), primary_key=True),
    sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id"), nullable=False),
    sa.Column("worst", sa.SmallInteger, nullable=False),
    sa.Column("n_ok", sa.Integer, nullable=False),
    sa.Column("n_warn", sa.Integer, nullable=False),
    sa.Column("n_unknown", sa.Integer, nullable=False),
    sa.Column("n_crit", sa.Integer, nullable=False),
    # The per-customer and whole-fleet counts read these indexes alone (covering scans in
    # group order: no table rows, no sort).
    sa.Index("ix_fleet_cells_customer_layer_worst", "customer_id", "layer", "worst"),
    sa.Index("ix_fleet_cells_layer_worst", "layer", "worst"),
)

fleet_hosts = sa.Table(
    "fleet_hosts",
    metadata,
    sa.Column("host_id", sa.Integer, sa.ForeignKey("hosts.id"), primary_key=True, autoincrement=False),
    sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id"), nullable=False),
    sa.Column("worst", sa.SmallInteger, nullable=False),
    sa.Index("ix_fleet_hosts_customer_worst", "customer_id", "worst"),
)

fleet_agents = sa.Table(
    "fleet_agents",
    metadata,
    sa.Column("agent_id", sa.String(253), sa.ForeignKey("agents.agent_id"), primary_key=True),
    sa.Column("last_batch_at", sa.Double, nullable=False),
    sa.Column("spool_depth", sa.BigInteger, nullable=True),
    sa.Column("spool_seq", sa.BigInteger, nullable=True),
)
