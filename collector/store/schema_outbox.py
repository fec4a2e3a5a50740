"""Tables: the notification outbox (every notification waiting to be delivered).

- ``notify_outbox``: one row per notification (an event for one destination of one
  customer), written before any attempt and deleted once delivered, given up or pushed
  out by the bound. ``next_at`` is both when it is due and its lease: a collector that
  takes a row moves ``next_at`` past its attempt (compare-and-set), so of several
  collectors sharing the store one delivers it at a time, and a collector that dies
  mid-delivery loses the row to another once the lease runs out.

The row holds what the notification is about (``payload``: the event as JSON, read by
its kind in ``collector.notify``) and the destination's *key*, never a secret or a URL:
the configuration supplies those at delivery time.

Defined on :data:`collector.store.schema.metadata` (collected in :mod:`collector.store.tables`).
"""

from __future__ import annotations

import sqlalchemy as sa

from collector.store.schema import Seconds, metadata

__all__ = ["notify_outbox"]

notify_outbox = sa.Table(
    "notify_outbox",
    metadata,
    # The notification id (event x destination): stable across retries, receivers dedup on it.
    sa.Column("id", sa.String(64), primary_key=True),
    # Which kind of notification ``payload`` is (``case``, ...): how it is decoded and rendered.
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("customer", sa.String(63), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("target", sa.String(200), nullable=False),
    # What it is about, for logs and listings (a case id).
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("created_at", Seconds, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_at", Seconds, nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Index("ix_notify_outbox_next_at", "next_at"),
    sa.Index("ix_notify_outbox_created_at", "created_at"),
)
