"""Tables of the service desk (issue 14): the time engineers log on cases.

Defined on :data:`collector.store.schema.metadata` (collected in :mod:`collector.store.tables`),
so the migration drift test covers them. The desk's other data lives on ``cases`` and
``case_events`` (:mod:`collector.store.schema_cases`).

- ``case_time_entries``: who worked how many minutes on a case, doing what, on-site or
  remote, on which day (the cost analysis reads it).
"""

from __future__ import annotations

import sqlalchemy as sa

from collector.store.schema import metadata

__all__ = ["case_time_entries"]

case_time_entries = sa.Table(
    "case_time_entries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("case_id", sa.String(80), sa.ForeignKey("cases.id"), nullable=False),
    sa.Column("engineer", sa.String(200), nullable=False),
    sa.Column("minutes", sa.Integer, nullable=False),
    sa.Column("activity", sa.String(500), nullable=False),
    sa.Column("mode", sa.String(8), nullable=False),
    sa.Column("work_date", sa.Date, nullable=False),
    sa.Column("logged_by", sa.String(200), nullable=False),
    sa.Column("logged_at", sa.Double(), nullable=False),
    sa.CheckConstraint("minutes > 0 AND minutes <= 1440", name="minutes"),
    sa.CheckConstraint("mode IN ('onsite', 'remote')", name="mode"),
    sa.Index("ix_case_time_entries_case", "case_id", "work_date"),
)
