"""Leases on queue rows: how several collectors sharing one store take turns on a queue.

A queue table (the notification outbox, the report e-mails) has an ``id`` and a
``next_at``: when the row is due. To take a due row, a collector moves its ``next_at``
to ``now + lease_s`` with a compare-and-set on the value it read. Of several collectors
reading the same row one wins (on PostgreSQL the second UPDATE waits for the first to
commit, then no longer matches); the row is then not due again for anyone until the
lease runs out, so a collector that dies mid-delivery loses it to the next one that
looks. Written once here for every leased queue in the store.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

__all__ = ["claim_due", "leased"]


def claim_due(
    conn: sa.Connection, table: sa.Table, query: Any, *, now: float, lease_s: float, limit: int
) -> tuple[list[Any], float]:
    """Rows of ``query`` (a select over ``table``, filtered as the queue needs) due at ``now``,
    soonest first, each leased to the caller until the returned time."""
    until = now + lease_s
    rows = conn.execute(
        query.where(table.c.next_at <= now).order_by(table.c.next_at, table.c.id).limit(limit)
    ).all()
    won = []
    for row in rows:
        done = conn.execute(
            table.update().where(table.c.id == row.id, table.c.next_at == row.next_at).values(next_at=until)
        )
        if done.rowcount == 1:
            won.append(row)
    return won, until


def leased(table: sa.Table, row_id: Any, until: float) -> Any:
    """The WHERE clause of a row still under the caller's lease (ending at ``until``)."""
    return sa.and_(table.c.id == row_id, table.c.next_at == until)
