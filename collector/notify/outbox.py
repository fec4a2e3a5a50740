"""A bounded, crash-safe outbox of pending notifications: one SQLite file in a directory.

Write before send, delete after success: :meth:`Outbox.add` commits (``synchronous=FULL``)
before any delivery is attempted, and an entry leaves the outbox only when it was delivered,
given up, or pushed out by the bound. A crash between a successful send and the delete
resends that one notification after the restart (at-least-once); its id is unchanged, so
receivers dedup on it (``X-Diag-Delivery``, the payload ``id``, the e-mail ``Message-ID``).

The file holds case data and destination *keys*, never destination secrets or URLs: the
current configuration supplies those when the entry is sent.

>>> import tempfile
>>> from checks.api import Severity
>>> ev = CaseEvent(event="opened", case_id="C-1", customer="acme", title="t",
...                severity=Severity.CRIT, opened_at=1.0, event_at=1.0)
>>> with tempfile.TemporaryDirectory() as d:
...     box = Outbox(Path(d), max_entries=10)
...     added, dropped = box.add([OutboxEntry.new(ev, "email", "email", now=100.0)])
...     twice, _ = box.add([OutboxEntry.new(ev, "email", "email", now=101.0)])
...     due, bad = box.due(now=100.0, limit=10)
...     box.close()
>>> len(added), twice, len(due), due[0].event == ev, bad
(1, [], 1, True, 0)
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import ValidationError

from collector.notify.event import CaseEvent, notification_id

__all__ = ["OUTBOX_FILE", "Channel", "Outbox", "OutboxEntry", "OutboxError"]

log = logging.getLogger("collector.notify")

OUTBOX_FILE: Final = "notify-outbox.sqlite3"
"""Name of the outbox file inside the directory given to :class:`Outbox`."""

Channel = Literal["webhook", "email"]
"""Delivery channel of an outbox entry."""

_SCHEMA_VERSION: Final = 1
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS outbox (
    id          TEXT PRIMARY KEY,   -- notification id (event x destination), stable across retries
    customer    TEXT NOT NULL,
    channel     TEXT NOT NULL,      -- 'webhook' | 'email'
    target      TEXT NOT NULL,      -- destination key (webhook name, 'email')
    case_id     TEXT NOT NULL,
    event       TEXT NOT NULL,      -- CaseEvent as JSON
    created_ts  REAL NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_ts     REAL NOT NULL,
    last_error  TEXT
);
CREATE INDEX IF NOT EXISTS outbox_next ON outbox (next_ts);
CREATE INDEX IF NOT EXISTS outbox_created ON outbox (created_ts);
"""
_COLUMNS: Final = "id, customer, channel, target, case_id, event, created_ts, attempts, next_ts, last_error"


class OutboxError(Exception):
    """The outbox file cannot be opened or used (message names the file, no secrets)."""


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One pending notification: an event for one destination of one customer."""

    id: str
    customer: str
    channel: Channel
    target: str
    event: CaseEvent
    created_ts: float
    attempts: int = 0
    next_ts: float = 0.0
    last_error: str | None = None

    @classmethod
    def new(cls, event: CaseEvent, channel: Channel, target: str, *, now: float) -> OutboxEntry:
        """A fresh entry, due at once."""
        return cls(
            id=notification_id(event, channel, target),
            customer=event.customer,
            channel=channel,
            target=target,
            event=event,
            created_ts=now,
            next_ts=now,
        )


class Outbox:
    """The SQLite-backed outbox; thread-safe (one connection behind a lock)."""

    def __init__(self, directory: Path, *, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.path = directory / OUTBOX_FILE
        self.max_entries = max_entries
        self._lock = threading.Lock()
        try:
            # Case data inside: readable by the collector's user only.
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
            if version > _SCHEMA_VERSION:
                self._db.close()
                raise OutboxError(f"{self.path}: outbox schema {version} is newer than this collector's")
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
            os.chmod(self.path, 0o600)
        except (sqlite3.Error, OSError) as exc:
            raise OutboxError(f"{self.path}: cannot open the outbox: {type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        """Close the file; the entries stay for the next start."""
        with self._lock:
            self._db.close()

    def add(self, entries: Sequence[OutboxEntry]) -> tuple[list[str], list[OutboxEntry]]:
        """Store ``entries`` durably in one transaction (ids already pending are ignored).

        Returns the ids newly stored and the oldest entries dropped to respect ``max_entries``.
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                added: list[str] = []
                for entry in entries:
                    cursor = self._db.execute(
                        f"INSERT OR IGNORE INTO outbox ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        _row(entry),
                    )
                    if cursor.rowcount == 1:
                        added.append(entry.id)
                excess = self._count() - self.max_entries
                dropped: list[OutboxEntry] = []
                if excess > 0:
                    rows = self._db.execute(
                        f"SELECT {_COLUMNS} FROM outbox ORDER BY created_ts, rowid LIMIT ?", (excess,)
                    ).fetchall()
                    self._db.executemany("DELETE FROM outbox WHERE id = ?", [(r[0],) for r in rows])
                    dropped = [e for e in map(_entry, rows) if e is not None]
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return added, dropped

    def due(self, *, now: float, limit: int) -> tuple[list[OutboxEntry], int]:
        """Entries due at ``now``, soonest first, and how many unreadable rows were discarded."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM outbox WHERE next_ts <= ? ORDER BY next_ts, rowid LIMIT ?",
                (now, limit),
            ).fetchall()
            entries: list[OutboxEntry] = []
            bad: list[str] = []
            for row in rows:
                entry = _entry(row)
                if entry is None:
                    bad.append(row[0])
                else:
                    entries.append(entry)
            if bad:
                # A row this version cannot read would block the queue forever: drop it, loudly.
                log.error("notify outbox %s: discarding %d unreadable entries", self.path, len(bad))
                self._db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in bad])
        return entries, len(bad)

    def delete(self, entry_id: str) -> None:
        """Remove an entry (delivered or given up)."""
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE id = ?", (entry_id,))

    def reschedule(self, entry_id: str, *, attempts: int, next_ts: float, last_error: str) -> None:
        """Record a failed attempt and when to try again."""
        with self._lock:
            self._db.execute(
                "UPDATE outbox SET attempts = ?, next_ts = ?, last_error = ? WHERE id = ?",
                (attempts, next_ts, last_error, entry_id),
            )

    def next_due_ts(self) -> float | None:
        """When the soonest entry is due, or None when the outbox is empty."""
        with self._lock:
            value = self._db.execute("SELECT MIN(next_ts) FROM outbox").fetchone()[0]
        return None if value is None else float(value)

    def entries(self) -> list[OutboxEntry]:
        """Every readable entry, oldest first (for inspection and tests)."""
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM outbox ORDER BY created_ts, rowid").fetchall()
        return [e for e in map(_entry, rows) if e is not None]

    def __len__(self) -> int:
        with self._lock:
            return self._count()

    def _count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])


def _row(e: OutboxEntry) -> tuple[object, ...]:
    return (
        e.id,
        e.customer,
        e.channel,
        e.target,
        e.event.case_id,
        e.event.model_dump_json(),
        e.created_ts,
        e.attempts,
        e.next_ts,
        e.last_error,
    )


def _entry(row: Sequence[Any]) -> OutboxEntry | None:
    entry_id, customer, channel, target, _case, event, created, attempts, next_ts, last_error = row
    if channel not in ("webhook", "email") or not isinstance(event, str):
        return None
    try:
        parsed = CaseEvent.model_validate_json(event)
    except ValidationError:
        return None
    return OutboxEntry(
        id=str(entry_id),
        customer=str(customer),
        channel="webhook" if channel == "webhook" else "email",
        target=str(target),
        event=parsed,
        created_ts=float(created),
        attempts=int(attempts),
        next_ts=float(next_ts),
        last_error=None if last_error is None else str(last_error),
    )
