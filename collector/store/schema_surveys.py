"""Tables of the follow-up step (issue 14): satisfaction surveys and callbacks.

Defined on :data:`collector.store.schema.metadata` (collected in :mod:`collector.store.tables`),
so the migration drift test covers them.

- ``case_surveys``: one row per one-time survey link sent for a case: the SHA-256 of its
  token (never the token), the contact it went to, its language, when it expires, and once
  answered the ratings (question key → 1..5) and the comment.
- ``case_callbacks``: one row per closed case once it has been drawn for a callback (回访)
  or not (``selected``): a case is drawn once, so re-runs never redraw; the engineer's
  result (``reached`` or ``no_answer``), satisfaction (1..5) and note.
"""

from __future__ import annotations

import sqlalchemy as sa

from collector.store.schema import metadata

__all__ = ["case_callbacks", "case_surveys"]

case_surveys = sa.Table(
    "case_surveys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("case_id", sa.String(80), sa.ForeignKey("cases.id"), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("contact", sa.String(320), nullable=False),
    sa.Column("language", sa.String(8), nullable=False),
    sa.Column("created_at", sa.Double(), nullable=False),
    sa.Column("expires_at", sa.Double(), nullable=False),
    sa.Column("answered_at", sa.Double(), nullable=True),
    sa.Column("ratings", sa.JSON(), nullable=True),
    sa.Column("comment", sa.Text(), nullable=True),
    sa.CheckConstraint("language IN ('en', 'zh-CN')", name="language"),
    sa.Index("ix_case_surveys_case", "case_id"),
    sa.Index("ix_case_surveys_open", "answered_at", "expires_at"),
)

case_callbacks = sa.Table(
    "case_callbacks",
    metadata,
    sa.Column("case_id", sa.String(80), sa.ForeignKey("cases.id"), primary_key=True),
    sa.Column("selected", sa.Boolean(), nullable=False),
    sa.Column("drawn_at", sa.Double(), nullable=False),
    sa.Column("result", sa.String(16), nullable=True),
    sa.Column("satisfied", sa.Integer(), nullable=True),
    sa.Column("note", sa.Text(), nullable=True),
    sa.Column("recorded_by", sa.String(200), nullable=True),
    sa.Column("recorded_at", sa.Double(), nullable=True),
    sa.CheckConstraint("result IS NULL OR result IN ('reached', 'no_answer')", name="result"),
    sa.CheckConstraint("satisfied IS NULL OR (satisfied >= 1 AND satisfied <= 5)", name="satisfied"),
    sa.Index("ix_case_callbacks_due", "selected", "result"),
)
