"""Tables: incidents, emergency cases and their timeline, detector state.

Defined on :data:`collector.store.schema.metadata` (collected in :mod:`collector.store.tables`), so
the migration drift test covers them. Maintenance windows live in the configuration, not
here; a suppression is recorded on the incident (``incidents.suppressed_by``, timeline).

- ``cases``: one row per case, whatever its origin (detection or the service desk);
  ``number`` counts per customer (``C-acme-7``). A desk case has no incident
  (``incident_id``, ``kind`` NULL); ``owner`` is the assignee, ``first_responder`` the one
  who first took it (首问负责制). States and types: :mod:`collector.store.case_states`.
- ``case_events``: the case timeline (opened, acknowledged, note, recovered, ...).
- ``case_incidents``: every incident a case was opened or reopened for (idempotency of
  opening: one case per incident, whatever retries happen).
- ``incidents``: the incident engine's incidents as last seen (snapshot), with or without a
  case, so a suppressed incident stays visible.
- ``detection_state``: the detector bank and incident engine of one collector shard
  (zlib-compressed JSON), so baselines survive a restart.
"""

from __future__ import annotations

import sqlalchemy as sa

from collector.store.schema import JSONType, metadata

__all__ = ["case_events", "case_incidents", "cases", "detection_state", "incidents"]

_Seconds: sa.Double[float] = sa.Double()

cases = sa.Table(
    "cases",
    metadata,
    sa.Column("id", sa.String(80), primary_key=True),
    sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id"), nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("incident_id", sa.String(64), nullable=True),
    sa.Column("kind", sa.String(32), nullable=True),
    sa.Column("title", sa.String(500), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("owner", sa.String(200), nullable=True),
    sa.Column("hosts", JSONType, nullable=False),
    sa.Column("causes", JSONType, nullable=False),
    sa.Column("members", JSONType, nullable=False),
    sa.Column("incident", JSONType, nullable=False),
    sa.Column("onset_at", _Seconds, nullable=False),
    sa.Column("detected_at", _Seconds, nullable=False),
    sa.Column("opened_at", _Seconds, nullable=False),
    sa.Column("updated_at", _Seconds, nullable=False),
    sa.Column("acknowledged_at", _Seconds, nullable=True),
    sa.Column("resolved_at", _Seconds, nullable=True),
    sa.Column("closed_at", _Seconds, nullable=True),
    sa.Column("reopened", sa.Integer, nullable=False),
    # The service desk (issue 14): what kind of request, how it came in, who answers for it.
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("subtype", sa.String(32), nullable=True),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("contact", sa.String(200), nullable=True),
    sa.Column("first_responder", sa.String(200), nullable=True),
    # Adaptive and perfective cases: the product team's decision and the delivering release.
    sa.Column("decision", sa.String(16), nullable=True),
    sa.Column("decision_text", sa.Text, nullable=True),
    sa.Column("release", sa.String(200), nullable=True),
    sa.Column("upgrade_id", sa.Integer, sa.ForeignKey("product_upgrades.id"), nullable=True),
    sa.UniqueConstraint("customer_id", "number"),
    sa.CheckConstraint(
        "state IN ('new', 'acknowledged', 'in_progress', 'waiting_on_customer', 'resolved',"
        " 'follow_up', 'closed')",
        name="state",
    ),
    sa.Index("ix_cases_state_opened", "state", "opened_at"),
    sa.Index("ix_cases_customer_type_opened", "customer_id", "type", "opened_at"),
)

case_events = sa.Table(
    "case_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("case_id", sa.String(80), sa.ForeignKey("cases.id"), nullable=False),
    sa.Column("ts", _Seconds, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("actor", sa.String(200), nullable=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("data", JSONType, nullable=False),
    sa.Index("ix_case_events_case_ts", "case_id", "ts"),
)

case_incidents = sa.Table(
    "case_incidents",
    metadata,
    sa.Column("incident_id", sa.String(64), primary_key=True),
    sa.Column("case_id", sa.String(80), sa.ForeignKey("cases.id"), nullable=False, index=True),
    sa.Column("linked_at", _Seconds, nullable=False),
)

incidents = sa.Table(
    "incidents",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id"), nullable=False),
    sa.Column("case_id", sa.String(80), nullable=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("title", sa.String(500), nullable=False),
    sa.Column("onset_at", _Seconds, nullable=False),
    sa.Column("opened_at", _Seconds, nullable=False),
    sa.Column("updated_at", _Seconds, nullable=False),
    sa.Column("suppressed_by", JSONType, nullable=False),
    sa.Column("snapshot", JSONType, nullable=False),
    sa.Index("ix_incidents_customer_opened", "customer_id", "opened_at"),
)

detection_state = sa.Table(
    "detection_state",
    metadata,
    sa.Column("shard", sa.String(64), primary_key=True),
    sa.Column("saved_at", _Seconds, nullable=False),
    sa.Column("state", sa.LargeBinary, nullable=False),
)
