"""The on-disk store-and-forward spool: SQLite in WAL mode, one row per entry.

Every entry gets a per-agent sequence number (``seq``) that only ever grows: the
high-water mark lives in the ``meta`` table, so it survives acknowledging every row,
``VACUUM`` and restarts. The streamer reads with :meth:`Spool.read_from` and deletes
with :meth:`Spool.ack` once the collector says an entry is durable.

Durability choice: ``journal_mode=WAL`` with ``synchronous=NORMAL``. Each
:meth:`Spool.append` is one transaction, so a crash (``kill -9``) at any moment
leaves the spool consistent: a batch is either wholly there or not at all. On *power
loss* the last few transactions before the crash may be rolled back (WAL is synced at
checkpoints, not at every commit); they were never acknowledged, so the worst case is
that a few seconds of results are missing, never a corrupt file or a reused ``seq``.
FULL would add an fsync per batch for no gain the collector could observe.

The spool is bounded (``max_bytes``, counting each payload plus a fixed per-row
overhead). When an append would exceed it, the oldest rows are dropped in the same
transaction, counted in ``dropped_total`` and recorded as a gap
``(first_seq, last_seq, count, reason)`` for the streamer to report.

Encoding lives in :func:`encode_record` / :func:`decode_record` only (compact JSON of
:meth:`CheckRecord.to_dict`; a later wire format can swap them).

>>> import tempfile, pathlib
>>> spool = Spool(pathlib.Path(tempfile.mkdtemp()) / "spool.db")
>>> spool.append([("health", 1.0, b"{}"), ("health", 2.0, b"{}")])
(1, 2)
>>> spool.ack(2), spool.stats().depth, spool.append([("health", 3.0, b"{}")])
(2, 0, (3, 3))
>>> spool.close()
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from math import isfinite
from pathlib import Path
from typing import Any

from agent.records import CheckRecord, MetricRecord

__all__ = [
    "KIND_HEALTH",
    "KIND_INVENTORY",
    "KIND_RESULT",
    "KIND_SESSION_EVENT",
    "KIND_SESSION_RECORDING",
    "ROW_OVERHEAD",
    "Gap",
    "Spool",
    "SpoolEntry",
    "SpoolStats",
    "decode_json",
    "decode_record",
    "encode_json",
    "encode_record",
]

KIND_RESULT = "result"
KIND_HEALTH = "health"
KIND_INVENTORY = "inventory"
KIND_SESSION_EVENT = "session_event"
KIND_SESSION_RECORDING = "session_recording"

ROW_OVERHEAD = 48
"""Bytes counted per row on top of its payload (seq, ts, kind, b-tree cell)."""

_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS gaps (
    id INTEGER PRIMARY KEY,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    count INTEGER NOT NULL,
    reason TEXT NOT NULL,
    ts REAL NOT NULL,
    reported INTEGER NOT NULL DEFAULT 0
);
"""


# --- encoding (the one place that knows the payload format) ---------------------------------


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
"""Built once: ``json.dumps`` with arguments builds a new encoder per call."""


def encode_record(record: CheckRecord) -> bytes:
    """Payload bytes of one check record: the compact JSON of :meth:`CheckRecord.to_dict`.

    Built from parts, byte for byte what ``_ENCODER.encode(record.to_dict())`` gives: a
    check emits the same metrics every run, so each metric's JSON around its value is
    encoded once per (name, unit, labels) and only the value is formatted per run.
    """
    head = record.to_dict_without_metrics()
    text = _ENCODER.encode(head)
    metrics = ",".join([_metric_json(m) for m in record.metrics])
    # ``to_dict`` order: ..., "results", "metrics", then "inspection_id" when set.
    tail = "" if record.inspection_id is None else ',"inspection_id":' + _ENCODER.encode(record.inspection_id)
    return (text[:-1] + ',"metrics":[' + metrics + "]" + tail + "}").encode()


_METRIC_PARTS: dict[tuple[str, str, tuple[tuple[str, str], ...]], tuple[str, str]] = {}
"""(name, unit, labels) → the JSON of such a metric before and after its value."""
MAX_CACHED_METRICS = 1024
"""Distinct metrics whose JSON parts are kept (a default cycle has about 220); past this
the cache starts afresh, so metrics whose labels change every run (``host.top_consumers``
names processes and pids) cost a few hundred KB at most, never a growing heap."""
_float_repr = float.__repr__


def _metric_json(metric: MetricRecord) -> str:
    """``_ENCODER.encode(metric.to_dict())``, from cached parts when the value is a finite float."""
    name, value, unit, labels = metric
    if type(value) is not float or not isfinite(value):
        return _ENCODER.encode(metric.to_dict())  # the encoder's own rules (and errors)
    key = (name, unit, labels)
    try:
        parts = _METRIC_PARTS.get(key)
    except TypeError:  # an unhashable label: nothing to cache
        return _ENCODER.encode(metric.to_dict())
    if parts is None:
        before = '{"name":' + _ENCODER.encode(name) + ',"value":'
        after = ',"unit":' + _ENCODER.encode(unit) + ',"labels":' + _ENCODER.encode(dict(labels)) + "}"
        parts = (before, after)
        if len(_METRIC_PARTS) >= MAX_CACHED_METRICS:
            _METRIC_PARTS.clear()
        _METRIC_PARTS[key] = parts
    # The C encoder writes a finite float with float.__repr__, exactly as here.
    return parts[0] + _float_repr(value) + parts[1]


def decode_record(payload: bytes) -> CheckRecord:
    """Inverse of :func:`encode_record`."""
    return CheckRecord.from_dict(json.loads(payload))


def encode_json(data: Mapping[str, Any]) -> bytes:
    """Payload bytes of a health or inventory entry."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode()


def decode_json(payload: bytes) -> dict[str, Any]:
    """Inverse of :func:`encode_json`."""
    data = json.loads(payload)
    if not isinstance(data, dict):
        raise ValueError("spool payload is not a JSON object")
    return data


# --- the spool --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    seq: int
    ts: float
    kind: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Gap:
    """Entries dropped unsent: ``count`` entries numbered ``first_seq``..``last_seq``."""

    id: int
    first_seq: int
    last_seq: int
    count: int
    reason: str
    ts: float
    reported: bool


@dataclass(frozen=True, slots=True)
class SpoolStats:
    depth: int
    """Entries waiting for an ack."""
    stored_bytes: int
    """Bytes counted against ``max_bytes``."""
    high_water: int
    """Highest sequence number ever assigned (0 when none)."""
    dropped_total: int
    """Entries dropped unsent since the spool was created."""


class Spool:
    """A bounded, crash-safe queue of entries with monotonic sequence numbers.

    Thread-safe: one connection guarded by a lock (the scheduler appends, the streamer
    reads and acks).
    """

    def __init__(self, path: Path, max_bytes: int = 256 * 1024 * 1024) -> None:
        if max_bytes < ROW_OVERHEAD:
            raise ValueError("max_bytes is too small to hold anything")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.path.exists():
            # Results may name hosts and services: readable by the agent's user only.
            # SQLite gives the -wal and -shm files the database file's mode.
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        try:
            self._setup()
        except BaseException:
            self._db.close()
            raise

    def _setup(self) -> None:
        db = self._db
        db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # effective only on a new file
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"{self.path}: cannot use WAL mode (got {mode})")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(f"PRAGMA journal_size_limit={8 * 1024 * 1024}")
        # The spool is written sequentially and read once: a small page cache saves ~1 MB RSS.
        db.execute("PRAGMA cache_size=-1024")
        db.execute("BEGIN IMMEDIATE")
        for statement in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
            db.execute(statement)
        db.execute(
            "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?), ('high_water', 0),"
            " ('stored_bytes', 0), ('dropped_total', 0)",
            (_SCHEMA_VERSION,),
        )
        db.execute("COMMIT")
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        if int(meta["schema_version"]) > _SCHEMA_VERSION:
            raise sqlite3.OperationalError(
                f"{self.path}: spool schema {meta['schema_version']} is newer than this agent understands"
            )
        self._high = int(meta["high_water"])
        self._bytes = int(meta["stored_bytes"])
        self._dropped = int(meta["dropped_total"])
        self._depth = int(db.execute("SELECT COUNT(*) FROM entries").fetchone()[0])
        top = db.execute("SELECT MAX(seq) FROM entries").fetchone()[0]
        if top is not None and top > self._high:
            # Cannot happen with this code (same transaction); repair rather than reuse a seq.
            self._high = int(top)

    # -- writing -------------------------------------------------------------------------------

    def append(self, entries: Sequence[tuple[str, float, bytes]]) -> tuple[int, int]:
        """Append ``(kind, ts, payload)`` entries in one transaction.

        Returns the first and last sequence numbers assigned ((high, high) and nothing
        written for an empty batch). Drops the oldest entries if the bound is exceeded.
        """
        with self._lock:
            if not entries:
                return self._high, self._high
            first = self._high + 1
            rows = [(first + i, ts, kind, payload) for i, (kind, ts, payload) in enumerate(entries)]
            added = sum(len(payload) for _, _, payload in entries) + ROW_OVERHEAD * len(entries)
            high, stored, dropped, depth = (
                first + len(rows) - 1,
                self._bytes + added,
                self._dropped,
                self._depth,
            )
            depth += len(rows)
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("INSERT INTO entries (seq, ts, kind, payload) VALUES (?, ?, ?, ?)", rows)
                if stored > self.max_bytes:
                    count, freed = self._drop_oldest(stored - self.max_bytes)
                    stored -= freed
                    dropped += count
                    depth -= count
                db.execute(
                    "UPDATE meta SET value = CASE key WHEN 'high_water' THEN ? WHEN 'stored_bytes' THEN ?"
                    " ELSE ? END WHERE key IN ('high_water', 'stored_bytes', 'dropped_total')",
                    (high, stored, dropped),
                )
                db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
            self._high, self._bytes, self._dropped, self._depth = high, stored, dropped, depth
            return first, high

    def append_records(self, records: Sequence[CheckRecord]) -> tuple[int, int]:
        """Append check records as ``result`` entries (one transaction)."""
        return self.append([(KIND_RESULT, r.ts, encode_record(r)) for r in records])

    def _drop_oldest(self, need: int) -> tuple[int, int]:
        """Delete the oldest rows freeing at least ``need`` bytes; record the gap. In a transaction."""
        freed = count = 0
        first = last = None
        cursor = self._db.execute("SELECT seq, length(payload) FROM entries ORDER BY seq")
        for seq, size in cursor:
            if freed >= need:
                break
            first = seq if first is None else first
            last = seq
            freed += int(size) + ROW_OVERHEAD
            count += 1
        cursor.close()
        if first is None or last is None:
            return 0, 0
        self._db.execute("DELETE FROM entries WHERE seq <= ?", (last,))
        previous = self._db.execute(
            "SELECT id, last_seq FROM gaps WHERE reported = 0 AND reason = 'spool_full'"
            " ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if previous is not None and previous[1] + 1 == first:
            self._db.execute(
                "UPDATE gaps SET last_seq = ?, count = count + ?, ts = ? WHERE id = ?",
                (last, count, time.time(), previous[0]),
            )
        else:
            self._db.execute(
                "INSERT INTO gaps (first_seq, last_seq, count, reason, ts) VALUES (?, ?, ?, 'spool_full', ?)",
                (first, last, count, time.time()),
            )
        return count, freed

    def ack(self, up_to_seq: int) -> int:
        """Delete every entry with ``seq <= up_to_seq`` (the collector holds them). Returns the count."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                count, size = db.execute(
                    "SELECT COUNT(*), COALESCE(SUM(length(payload)), 0) FROM entries WHERE seq <= ?",
                    (up_to_seq,),
                ).fetchone()
                stored = max(0, self._bytes - int(size) - ROW_OVERHEAD * int(count))
                if count:
                    db.execute("DELETE FROM entries WHERE seq <= ?", (up_to_seq,))
                    db.execute("UPDATE meta SET value = ? WHERE key = 'stored_bytes'", (stored,))
                db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
            self._bytes, self._depth = stored, self._depth - int(count)
            return int(count)

    def skip(self, seq: int, reason: str) -> None:
        """Give up on entry ``seq`` (the collector can never take it): delete it and record a
        one-entry gap ``reason`` in the same transaction, so a crash (``kill -9``) at any
        moment leaves either the entry or its gap, never neither. Nothing when it is gone."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT length(payload) FROM entries WHERE seq = ?", (seq,)).fetchone()
                if row is None:
                    db.execute("COMMIT")
                    return
                stored = max(0, self._bytes - int(row[0]) - ROW_OVERHEAD)
                db.execute("DELETE FROM entries WHERE seq = ?", (seq,))
                db.execute("UPDATE meta SET value = ? WHERE key = 'stored_bytes'", (stored,))
                db.execute(
                    "INSERT INTO gaps (first_seq, last_seq, count, reason, ts) VALUES (?, ?, 1, ?, ?)",
                    (seq, seq, reason, time.time()),
                )
                db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
            self._bytes, self._depth = stored, self._depth - 1

    def mark_gaps_reported(self, up_to_id: int) -> None:
        """Flag gaps up to ``up_to_id`` as reported to the collector (kept for the record)."""
        with self._lock:
            self._db.execute("UPDATE gaps SET reported = 1 WHERE id <= ?", (up_to_id,))

    def _rollback(self) -> None:
        # The failed statement may already have ended the transaction: nothing to undo then.
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("ROLLBACK")

    # -- reading -------------------------------------------------------------------------------

    def read_from(self, seq: int, limit: int = 500) -> list[SpoolEntry]:
        """Up to ``limit`` entries with ``seq >= seq``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, ts, kind, payload FROM entries WHERE seq >= ? ORDER BY seq LIMIT ?", (seq, limit)
            ).fetchall()
        return [SpoolEntry(int(s), float(t), str(k), bytes(p)) for s, t, k, p in rows]

    def gaps(self, include_reported: bool = False) -> list[Gap]:
        """Recorded gaps, oldest first (unreported only, unless asked)."""
        where = "" if include_reported else " WHERE reported = 0"
        with self._lock:
            rows = self._db.execute(
                f"SELECT id, first_seq, last_seq, count, reason, ts, reported FROM gaps{where} ORDER BY id"
            ).fetchall()
        return [
            Gap(int(i), int(f), int(la), int(c), str(r), float(t), bool(rep))
            for i, f, la, c, r, t, rep in rows
        ]

    def stats(self) -> SpoolStats:
        """Depth, bytes, high-water mark and drops (from memory; no query)."""
        with self._lock:
            return SpoolStats(self._depth, self._bytes, self._high, self._dropped)

    # -- maintenance ---------------------------------------------------------------------------

    def vacuum(self) -> None:
        """Give free pages back to the file system and truncate the WAL."""
        with self._lock:
            self._db.execute("VACUUM")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        """Checkpoint and close. The spool must not be used afterwards."""
        with self._lock:
            try:
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            finally:
                self._db.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
