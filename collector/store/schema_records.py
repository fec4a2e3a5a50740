"""Tables: customers' sign-offs of service records, and the customer service file's documents.

Defined on :data:`collector.store.schema.metadata` (collected in :mod:`collector.store.tables`).

- ``record_signoffs``: a one-time sign-off link and, once used, the signature. The link is
  bound to one record (a ``reports`` row: one kind, subject, language, format and version)
  and to the SHA-256 of its bytes when the link was made, and names one contact. Only the
  SHA-256 of the link's token is kept (``token_hash``). ``signed_at`` is set once, by a
  compare-and-set update, with the contact's address, user agent and the statement as
  shown. ``report_id`` deliberately has no foreign key: a signature must outlive the loss
  of its record, so that ``verify`` can report the record as missing.
- ``customer_documents``: attachments of a customer's service file (contracts, acceptance
  forms, diagrams): the bytes, their sniffed media type and SHA-256.
"""

from __future__ import annotations

import sqlalchemy as sa

from collector.store.schema import Seconds, metadata

__all__ = ["customer_documents", "record_signoffs"]

record_signoffs = sa.Table(
    "record_signoffs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id"), nullable=False),
    sa.Column("report_id", sa.Integer, nullable=False),
    sa.Column("report_sha256", sa.String(64), nullable=False),
    sa.Column("contact", sa.String(200), nullable=False),
    sa.Column("contact_email", sa.String(320), nullable=True),
    sa.Column("lang", sa.String(8), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("created_at", Seconds, nullable=False),
    sa.Column("expires_at", Seconds, nullable=False),
    sa.Column("signed_at", Seconds, nullable=True),
    sa.Column("client_addr", sa.String(64), nullable=True),
    sa.Column("user_agent", sa.String(400), nullable=True),
    sa.Column("statement", sa.Text, nullable=True),
    sa.Index("ix_record_signoffs_report", "report_id"),
)

customer_documents = sa.Table(
    "customer_documents",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("media_type", sa.String(100), nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("content", sa.LargeBinary, nullable=False),
    sa.Column("uploaded_by", sa.String(200), nullable=False),
    sa.Column("uploaded_at", Seconds, nullable=False),
    sa.Index("ix_customer_documents_customer", "customer_id", "uploaded_at"),
)
