"""Tables of the service desk's SLA part: contracts, contacts, SLA clocks, the sweep's state.

Defined on :data:`collector.store.schema.metadata` (collected in :mod:`collector.store.tables`).

- ``contracts``: a customer's service contract: period, tier, SLA targets per case type
  (business minutes), hourly rates, and the business calendar (JSON, validated by
  :class:`collector.desk.calendar.CalendarSettings` before it is written).
- ``contacts``: the customer's people: name, role, e-mail, phone, preferred language.
- ``case_sla``: one row per (case, clock): the instants the clock reaches 75% (``warn_at``)
  and 100% (``due_at``) of its target, computed once from the case's history and stored,
  and when the warning and breach were raised (``warned_at``, ``breached_at``: set once,
  so each is raised exactly once). ``dirty`` asks the sweep to compute the row again.
- ``desk_sweep``: the last ``case_events`` id the SLA sweep has read (its watermark).
"""

from __future__ import annotations

import sqlalchemy as sa

from collector.store.schema import JSONType, Seconds, metadata

__all__ = ["case_sla", "contacts", "contracts", "desk_sweep"]

contracts = sa.Table(
    "contracts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("tier", sa.String(32), nullable=False),
    sa.Column("starts_on", sa.Date, nullable=False),
    sa.Column("ends_on", sa.Date, nullable=False),
    sa.Column("targets", JSONType, nullable=False),
    sa.Column("rate_onsite", sa.Numeric(12, 2), nullable=False),
    sa.Column("rate_remote", sa.Numeric(12, 2), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("calendar", JSONType, nullable=False),
    sa.Column("created_at", Seconds, nullable=False),
    sa.Column("updated_at", Seconds, nullable=False),
    sa.UniqueConstraint("customer_id", "name"),
    sa.CheckConstraint("ends_on >= starts_on", name="period"),
    sa.Index("ix_contracts_customer_period", "customer_id", "starts_on"),
)

contacts = sa.Table(
    "contacts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("role", sa.String(100), nullable=False),
    sa.Column("email", sa.String(320), nullable=True),
    sa.Column("phone", sa.String(40), nullable=True),
    sa.Column("language", sa.String(8), nullable=False),
    sa.Column("created_at", Seconds, nullable=False),
    sa.Column("updated_at", Seconds, nullable=False),
    sa.UniqueConstraint("customer_id", "name"),
    sa.CheckConstraint("language IN ('en', 'zh-CN')", name="language"),
)

case_sla = sa.Table(
    "case_sla",
    metadata,
    sa.Column("case_id", sa.String(80), sa.ForeignKey("cases.id"), primary_key=True),
    sa.Column("target", sa.String(16), primary_key=True),
    sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id"), nullable=False),
    sa.Column("case_type", sa.String(32), nullable=False),
    sa.Column("target_s", Seconds, nullable=False),
    sa.Column("clock", sa.String(8), nullable=False),
    sa.Column("elapsed_s", Seconds, nullable=False),
    sa.Column("computed_at", Seconds, nullable=False),
    sa.Column("warn_at", Seconds, nullable=True),
    sa.Column("due_at", Seconds, nullable=True),
    sa.Column("warned_at", Seconds, nullable=True),
    sa.Column("breached_at", Seconds, nullable=True),
    sa.Column("dirty", sa.Boolean, nullable=False),
    sa.CheckConstraint("target IN ('first_response', 'restore', 'resolve')", name="target"),
    sa.CheckConstraint("clock IN ('running', 'paused', 'stopped')", name="clock"),
    # the sweep's two threshold queries: "not warned yet and warn_at passed", same for due_at
    sa.Index("ix_case_sla_warn", "warned_at", "warn_at"),
    sa.Index("ix_case_sla_due", "breached_at", "due_at"),
    sa.Index("ix_case_sla_customer", "customer_id"),
    sa.Index("ix_case_sla_dirty", "dirty"),
)

desk_sweep = sa.Table(
    "desk_sweep",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("last_event_id", sa.Integer, nullable=False),
    sa.Column("swept_at", Seconds, nullable=False),
)
