"""Tables: inspection plans' runs, their schedule state, and reports as service records.

Defined on :data:`collector.store.schema.metadata` (collected in :mod:`collector.store.tables`), so
the migration drift test covers them.

- ``inspection_runs``: one row per run of a plan (scheduled or manual): its state, the hosts
  selected / answered / offline, the deadline, and the whole
  :class:`~collector.inspections.model.InspectionResult` as JSON (the next run compares with it).
- ``inspection_schedule``: per (customer, plan) the last due time already handled. A scheduler
  claims a due time with a compare-and-set update, so two collectors sharing one store never
  both start it, and a run missed while every collector was down starts once when one returns.
- ``reports``: rendered reports, the customer's service records (kind, subject, language,
  format, the bytes and their SHA-256; a file path when the collector also writes them out).
- ``report_deliveries``: a finished run's report e-mailed to its plan's recipients: pending
  until sent, retried with backoff, claimed by one collector at a time (``next_at`` lease).
"""

from __future__ import annotations

import sqlalchemy as sa

from collector.store.schema import JSONType, Seconds, check_results, metadata

__all__ = ["inspection_runs", "inspection_schedule", "report_deliveries", "reports"]

inspection_runs = sa.Table(
    "inspection_runs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id"), nullable=False),
    sa.Column("plan", sa.String(100), nullable=False),
    sa.Column("trigger", sa.String(16), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("requested_by", sa.String(200), nullable=True),
    sa.Column("due_at", Seconds, nullable=True),
    sa.Column("created_at", Seconds, nullable=False),
    sa.Column("started_at", Seconds, nullable=True),
    sa.Column("finished_at", Seconds, nullable=True),
    sa.Column("deadline_at", Seconds, nullable=True),
    sa.Column("period_start", Seconds, nullable=True),
    sa.Column("period_end", Seconds, nullable=True),
    sa.Column("hosts_selected", sa.Integer, nullable=True),
    sa.Column("hosts_answered", sa.Integer, nullable=True),
    sa.Column("hosts", JSONType, nullable=False),
    sa.Column("overall_score", sa.Integer, nullable=True),
    sa.Column("scores", JSONType, nullable=False),
    sa.Column("counts", JSONType, nullable=False),
    sa.Column("plan_doc", JSONType, nullable=False),
    sa.Column("result", JSONType, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.CheckConstraint("trigger IN ('scheduled', 'manual')", name="trigger"),
    sa.CheckConstraint("state IN ('pending', 'running', 'done', 'failed')", name="state"),
    sa.Index("ix_inspection_runs_customer_plan", "customer_id", "plan", "created_at"),
)

inspection_schedule = sa.Table(
    "inspection_schedule",
    metadata,
    sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id"), primary_key=True),
    sa.Column("plan", sa.String(100), primary_key=True),
    sa.Column("last_due_at", Seconds, nullable=False),
    sa.Column("claimed_by", sa.String(200), nullable=True),
    sa.Column("updated_at", Seconds, nullable=False),
)

reports = sa.Table(
    "reports",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id"), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("subject", sa.String(64), nullable=False),
    sa.Column("lang", sa.String(8), nullable=False),
    sa.Column("format", sa.String(8), nullable=False),
    sa.Column("created_at", Seconds, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("content", sa.LargeBinary, nullable=False),
    sa.Column("path", sa.Text, nullable=True),
    # What the content was rendered from (collector.reports.versions): same version, same report.
    sa.Column("version", sa.String(64), nullable=True),
    # inspection and fault reports; the service records of collector.records (0012_records)
    sa.CheckConstraint(
        "kind IN ('inspection', 'fault', 'emergency', 'repair', 'routine', 'upgrade', 'analysis')",
        name="kind",
    ),
    sa.Index("ix_reports_customer_created", "customer_id", "created_at"),
    sa.Index("ix_reports_subject", "kind", "subject", "lang", "format"),
)

report_deliveries = sa.Table(
    "report_deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id"), nullable=False),
    sa.Column("run_id", sa.String(64), sa.ForeignKey("inspection_runs.id"), nullable=False),
    sa.Column("recipients", JSONType, nullable=False),
    sa.Column("lang", sa.String(8), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("created_at", Seconds, nullable=False),
    sa.Column("next_at", Seconds, nullable=False),
    sa.Column("sent_at", Seconds, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.CheckConstraint("state IN ('pending', 'sent', 'failed')", name="state"),
    sa.UniqueConstraint("run_id"),
    sa.Index("ix_report_deliveries_due", "state", "next_at"),
)

# A run polls for its hosts' completion markers: only tagged results are indexed, so the
# index costs ingest nothing for the untagged majority.
ix_check_results_inspection_id = sa.Index(
    "ix_check_results_inspection_id",
    check_results.c.inspection_id,
    sqlite_where=check_results.c.inspection_id.is_not(None),
    postgresql_where=check_results.c.inspection_id.is_not(None),
)
