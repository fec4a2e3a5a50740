"""The sessions' audit log: append-only, one hash chain per customer; and the spooled
session entries an agent sends (recording chunks, host-side events), written in the
ingest transaction so each is stored exactly once.

Each audit row is ``(customer, seq, ts, session_id, event, actor, detail, prev_hash, hash)``
with ``hash = sha256(canonical(row) + prev_hash)`` (:func:`row_hash`); ``seq`` counts
1, 2, 3 ... per customer and the first row's ``prev_hash`` is 64 zeros. Appends are
serialised per database: on PostgreSQL by an advisory transaction lock, on SQLite by the
write lock every write transaction holds. :func:`verify_rows` finds the first changed,
removed or reordered row.

This module holds no repository (see :mod:`collector.store.sessions`); the ingest path in
:mod:`collector.store.store` calls :func:`apply_session_entries`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa

from collector.store.schema_sessions import (
    session_audit,
    session_recording_chunks,
    session_recordings,
    sessions,
)
from collector.store.types import AgentIdentity, SessionEntryRow

__all__ = [
    "GENESIS",
    "MAX_RECORDING_BYTES",
    "AuditRow",
    "append_audit",
    "apply_session_entries",
    "row_hash",
    "verify_rows",
]

log = logging.getLogger("collector.store.sessions")

GENESIS: Final = "0" * 64
MAX_RECORDING_BYTES: Final = 256 * 1024 * 1024
"""A session's recording is refused past this size (chunks beyond it are dropped, audited)."""
_AUDIT_LOCK: Final = 0x7365_7373  # "sess": pg_advisory_xact_lock key of audit appends


@dataclass(frozen=True, slots=True)
class AuditRow:
    customer: str
    seq: int
    ts: float
    session_id: str
    event: str
    actor: str
    detail: str
    prev_hash: str
    hash: str


def row_hash(
    customer: str, seq: int, ts: float, session_id: str, event: str, actor: str, detail: str, prev: str
) -> str:
    """sha256 over the row's canonical JSON (fixed key order, floats as Python's repr) and ``prev``.

    >>> h = row_hash("acme", 1, 1.5, "s1", "requested", "eng", "", GENESIS)
    >>> len(h), h == row_hash("acme", 1, 1.5, "s1", "requested", "eng", " ", GENESIS)
    (64, False)
    """
    canonical = json.dumps(
        [customer, seq, repr(float(ts)), session_id, event, actor, detail],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256((canonical + prev).encode()).hexdigest()


def append_audit(
    conn: sa.Connection,
    customer_id: int,
    customer: str,
    session_id: str,
    event: str,
    actor: str,
    detail: str,
    now: float,
) -> AuditRow:
    """Append one row to ``customer``'s chain in ``conn``'s transaction."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _AUDIT_LOCK})
    last = conn.execute(
        sa.select(session_audit.c.seq, session_audit.c.hash)
        .where(session_audit.c.customer_id == customer_id)
        .order_by(session_audit.c.seq.desc())
        .limit(1)
    ).first()
    seq = 1 if last is None else int(last.seq) + 1
    prev = GENESIS if last is None else str(last.hash)
    digest = row_hash(customer, seq, now, session_id, event, actor, detail, prev)
    conn.execute(
        session_audit.insert().values(
            customer_id=customer_id,
            seq=seq,
            ts=now,
            session_id=session_id,
            event=event,
            actor=actor,
            detail=detail,
            prev_hash=prev,
            hash=digest,
        )
    )
    return AuditRow(customer, seq, now, session_id, event, actor, detail, prev, digest)


def verify_rows(rows: Iterable[AuditRow]) -> int | None:
    """The seq of the first row that breaks its chain (changed, removed or reordered), or None.

    ``rows`` are one customer's rows as stored, ordered by seq.

    >>> h = row_hash("c", 1, 1.0, "s", "e", "x", "", GENESIS)
    >>> a = AuditRow("c", 1, 1.0, "s", "e", "x", "", GENESIS, h)
    >>> verify_rows([a]), verify_rows([AuditRow(**{**_asdict(a), "detail": "changed"})])
    (None, 1)
    """
    prev = GENESIS
    expected = 1
    for row in rows:
        if row.seq != expected or row.prev_hash != prev:
            return row.seq
        digest = row_hash(
            row.customer, row.seq, row.ts, row.session_id, row.event, row.actor, row.detail, prev
        )
        if digest != row.hash:
            return row.seq
        prev = row.hash
        expected += 1
    return None


def _asdict(row: AuditRow) -> dict[str, Any]:
    return {f: getattr(row, f) for f in AuditRow.__slots__}


def apply_session_entries(
    conn: sa.Connection, agent: AgentIdentity, entries: Sequence[SessionEntryRow], now: float
) -> int:
    """Write an agent's spooled session entries (already above its durable seq); returns how many
    were refused (for an unknown session or another agent's: dropped, logged, never stored).

    Runs inside the ingest transaction, so an entry is stored exactly when its seq becomes
    durable. Recording chunks are kept per (session, index) (a duplicate index is ignored);
    a ``last`` chunk assembles the recording and checks it against the agent's sha256.
    """
    refused = 0
    owners: dict[str, Any] = {}
    for entry in entries:
        owner = owners.get(entry.session_id)
        if owner is None:
            owner = conn.execute(
                sa.select(sessions.c.agent_id, sessions.c.customer_id).where(
                    sessions.c.id == entry.session_id
                )
            ).first()
            owners[entry.session_id] = owner or False
        if not owner or owner.agent_id != agent.agent_id:
            refused += 1
            log.warning(
                "agent %s sent a %s for a session that is not its own (%r): dropped",
                agent.agent_id,
                entry.kind,
                entry.session_id[:40],
            )
            continue
        cid = int(owner.customer_id)
        if entry.kind == "event":
            append_audit(
                conn,
                cid,
                agent.customer,
                entry.session_id,
                f"agent_{entry.event}",
                entry.actor or f"agent:{agent.agent_id}",
                entry.detail,
                now,
            )
        else:
            refused += _recording_chunk(conn, agent, cid, entry, now)
    return refused


def _recording_chunk(
    conn: sa.Connection, agent: AgentIdentity, cid: int, entry: SessionEntryRow, now: float
) -> int:
    c = session_recording_chunks.c
    stored = conn.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(sa.func.length(c.data)), 0)).where(
            c.session_id == entry.session_id
        )
    ).one()
    exists = conn.execute(
        sa.select(c.idx).where(c.session_id == entry.session_id, c.idx == entry.index)
    ).first()
    if exists is not None:
        return 1
    if int(stored[1]) + len(entry.data) > MAX_RECORDING_BYTES:
        append_audit(
            conn,
            cid,
            agent.customer,
            entry.session_id,
            "recording_refused",
            f"agent:{agent.agent_id}",
            f"chunk {entry.index} would exceed {MAX_RECORDING_BYTES} bytes",
            now,
        )
        return 1
    conn.execute(
        session_recording_chunks.insert().values(
            session_id=entry.session_id,
            idx=entry.index,
            data=entry.data,
            last=entry.last,
            sha256=entry.sha256 or None,
            received_at=now,
        )
    )
    if entry.last:
        _assemble(conn, agent, cid, entry, now)
    return 0


def _assemble(
    conn: sa.Connection, agent: AgentIdentity, cid: int, entry: SessionEntryRow, now: float
) -> None:
    c = session_recording_chunks.c
    rows = conn.execute(
        sa.select(c.idx, c.data).where(c.session_id == entry.session_id).order_by(c.idx)
    ).all()
    indexes = [int(r.idx) for r in rows]
    content = b"".join(bytes(r.data) for r in rows)
    digest = hashlib.sha256(content).hexdigest()
    complete = indexes == list(range(len(indexes)))
    verified = complete and digest == entry.sha256
    values = {
        "content": content,
        "size": len(content),
        "sha256": digest,
        "verified": verified,
        "assembled_at": now,
    }
    updated = conn.execute(
        session_recordings.update()
        .where(session_recordings.c.session_id == entry.session_id)
        .values(**values)
    ).rowcount
    if not updated:
        conn.execute(session_recordings.insert().values(session_id=entry.session_id, **values))
    if verified:
        detail = f"{len(content)} bytes, sha256 {digest}"
    elif not complete:
        detail = f"chunks missing: got {len(indexes)} up to index {indexes[-1] if indexes else -1}"
    else:
        detail = f"sha256 mismatch: agent said {entry.sha256[:64]}, assembled {digest}"
    append_audit(
        conn,
        cid,
        agent.customer,
        entry.session_id,
        "recording_stored" if verified else "recording_invalid",
        f"agent:{agent.agent_id}",
        detail,
        now,
    )
