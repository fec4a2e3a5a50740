"""The notification outbox in the store: bounded, durable, leased, shared by collectors.

:class:`OutboxRepo` wraps a :class:`~collector.store.Store` (table ``notify_outbox``,
:mod:`collector.store.schema_outbox`). Every method is *internal* (the collector's own
queue, no person reads it). Semantics, which :mod:`collector.notify.notifier` builds on:

- **write before send**: :meth:`OutboxRepo.add` commits before any delivery is tried; an
  id already queued is ignored (ids are deterministic, so a repeated event collapses);
- **bounded**: past ``max_entries`` the oldest rows are deleted in the same transaction
  and returned, so the caller counts them as dropped;
- **leased**: :meth:`OutboxRepo.claim` takes due rows with a lease
  (:mod:`collector.store.lease`); :meth:`OutboxRepo.delete` and :meth:`OutboxRepo.reschedule`
  act only while the caller still holds the lease, so a collector whose lease ran out
  (it was stuck, another took the row over) changes nothing;
- **no secrets**: a row holds the destination's key and the event, never a URL or secret.

:meth:`OutboxRepo.import_file` moves the entries of a local outbox file (the SQLite file
earlier collectors kept under ``<state_dir>/notify``) into the store once, then renames
the file.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa

from collector.store.lease import claim_due, leased
from collector.store.schema_outbox import notify_outbox
from collector.store.store import Store

__all__ = ["LEGACY_OUTBOX_FILE", "OutboxRepo", "OutboxRow"]

log = logging.getLogger("collector.store.outbox")

LEGACY_OUTBOX_FILE: Final = "notify-outbox.sqlite3"
"""The local outbox file of earlier collectors (in ``<state_dir>/notify``)."""

_LEGACY_COLUMNS: Final = (
    "id, customer, channel, target, case_id, event, created_ts, attempts, next_ts, last_error"
)


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One pending notification as stored. ``next_at`` of a claimed row is its lease's end."""

    id: str
    kind: str
    customer: str
    channel: str
    target: str
    subject: str
    payload: str
    created_at: float
    attempts: int = 0
    next_at: float = 0.0
    last_error: str | None = None


def _row(row: Any) -> OutboxRow:
    return OutboxRow(
        id=str(row.id),
        kind=str(row.kind),
        customer=str(row.customer),
        channel=str(row.channel),
        target=str(row.target),
        subject=str(row.subject),
        payload=str(row.payload),
        created_at=float(row.created_at),
        attempts=int(row.attempts),
        next_at=float(row.next_at),
        last_error=row.last_error,
    )


def _values(row: OutboxRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "customer": row.customer,
        "channel": row.channel,
        "target": row.target,
        "subject": row.subject[:200],
        "payload": row.payload,
        "created_at": row.created_at,
        "attempts": row.attempts,
        "next_at": row.next_at,
        "last_error": row.last_error,
    }


class OutboxRepo:
    """See the module docstring."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def add(self, rows: Sequence[OutboxRow], *, max_entries: int) -> tuple[list[str], list[OutboxRow]]:
        """Store ``rows`` in one transaction (ids already queued are ignored).

        Returns the ids newly stored and the oldest rows deleted to keep ``max_entries``.
        """
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        added: list[str] = []
        with self.store._write() as conn:
            for row in rows:
                insert = self.store._insert(notify_outbox).values(**_values(row))
                done = conn.execute(
                    insert.on_conflict_do_nothing(index_elements=["id"]).returning(notify_outbox.c.id)
                ).first()
                if done is not None:
                    added.append(row.id)
            excess = int(conn.execute(sa.select(sa.func.count()).select_from(notify_outbox)).scalar_one())
            excess -= max_entries
            dropped: list[OutboxRow] = []
            if excess > 0:
                old = conn.execute(
                    sa.select(notify_outbox)
                    .order_by(notify_outbox.c.created_at, notify_outbox.c.id)
                    .limit(excess)
                ).all()
                dropped = [_row(r) for r in old]
                conn.execute(notify_outbox.delete().where(notify_outbox.c.id.in_([r.id for r in dropped])))
        return added, dropped

    def claim(self, now: float, lease_s: float, limit: int) -> list[OutboxRow]:
        """Rows due at ``now``, soonest first, each leased to the caller for ``lease_s``."""
        with self.store._write() as conn:
            rows, until = claim_due(
                conn, notify_outbox, sa.select(notify_outbox), now=now, lease_s=lease_s, limit=limit
            )
        return [replace(_row(r), next_at=until) for r in rows]

    def delete(self, row: OutboxRow) -> bool:
        """Remove a claimed row (delivered or given up); False when its lease was lost."""
        with self.store._write() as conn:
            done = conn.execute(notify_outbox.delete().where(leased(notify_outbox, row.id, row.next_at)))
        return done.rowcount == 1

    def reschedule(self, row: OutboxRow, *, attempts: int, next_at: float, last_error: str) -> bool:
        """Record a failed attempt of a claimed row and when to try again; False when its lease was lost."""
        with self.store._write() as conn:
            done = conn.execute(
                notify_outbox.update()
                .where(leased(notify_outbox, row.id, row.next_at))
                .values(attempts=attempts, next_at=next_at, last_error=last_error[:2000])
            )
        return done.rowcount == 1

    def count(self) -> int:
        """Notifications waiting (due or not, leased or not)."""
        with self.store.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(notify_outbox)).scalar_one())

    def next_due(self) -> float | None:
        """When the soonest row is due (or its lease ends); None when the outbox is empty."""
        with self.store.engine.connect() as conn:
            value = conn.execute(sa.select(sa.func.min(notify_outbox.c.next_at))).scalar_one()
        return None if value is None else float(value)

    def entries(self) -> list[OutboxRow]:
        """Every row, oldest first (for inspection and tests)."""
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                sa.select(notify_outbox).order_by(notify_outbox.c.created_at, notify_outbox.c.id)
            ).all()
        return [_row(r) for r in rows]

    def import_file(self, path: Path, *, max_entries: int) -> tuple[int, list[OutboxRow]] | None:
        """Move the case notifications of a local outbox file into the store, then rename the file.

        None when there is no file. Returns how many rows were new and those dropped by the
        bound. Rows already in the store are kept as they are, so an import interrupted
        before the rename is simply done again (a notification delivered in between may be
        sent twice: at least once, as always). The file is renamed to ``<name>.imported``.
        """
        if not path.is_file():
            return None
        try:
            # Not read-only: opening the file checkpoints its write-ahead log into it.
            db = sqlite3.connect(path, timeout=10.0)
            try:
                found = db.execute(f"SELECT {_LEGACY_COLUMNS} FROM outbox").fetchall()
            finally:
                db.close()
        except sqlite3.Error as exc:
            raise OSError(f"{path}: cannot read the local outbox: {type(exc).__name__}: {exc}") from None
        rows = [
            OutboxRow(
                id=str(r[0]),
                kind="case",
                customer=str(r[1]),
                channel=str(r[2]),
                target=str(r[3]),
                subject=str(r[4]),
                payload=str(r[5]),
                created_at=float(r[6]),
                attempts=int(r[7]),
                next_at=float(r[8]),
                last_error=None if r[9] is None else str(r[9]),
            )
            for r in found
        ]
        added, dropped = self.add(rows, max_entries=max_entries) if rows else ([], [])
        done = path.with_name(path.name + ".imported")
        os.replace(path, done)
        for side in ("-wal", "-shm"):
            Path(str(path) + side).unlink(missing_ok=True)
        log.info(
            "notify outbox: %d entries of %s imported into the store; file renamed to %s",
            len(added),
            path,
            done,
        )
        return len(added), dropped
