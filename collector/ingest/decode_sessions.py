"""Validate an agent's spooled session entries (SessionRecordingChunk, SessionEvent).

Shape only: whether the session is the agent's own is the store's check
(:func:`collector.store.session_audit.apply_session_entries`). :func:`session_entry` raises
ValueError naming the field; :func:`collector.ingest.decode.decode` adds where in the batch.

>>> from protos.diag.v1 import agent_pb2 as pb
>>> e = pb.Entry(session_event=pb.SessionEvent(session_id="s-0a1b", event="started", actor="root"))
>>> session_entry(1, 2.0, e, 1024, 1024).event
'started'
>>> session_entry(1, 2.0, pb.Entry(session_event=pb.SessionEvent(session_id="S;1")), 1024, 1024)
Traceback (most recent call last):
...
ValueError: session_event: session_id 'S;1' is not a session id
"""

from __future__ import annotations

import re
from typing import Final

from collector.store.types import SessionEntryRow
from protos.diag.v1 import agent_pb2

__all__ = ["SESSION_ID_RE", "session_entry"]

SESSION_ID_RE: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
"""A session id as the collector issues them (``s-`` and hex); anything else is refused."""
_WORD_RE: Final = re.compile(r"[a-z][a-z0-9_]{0,31}")
_HEX64_RE: Final = re.compile(r"[0-9a-f]{64}")


def _text(where: str, value: str, max_len: int) -> str:
    if len(value) > max_len:
        raise ValueError(f"{where}: {len(value)} characters, more than {max_len}")
    if "\x00" in value:
        raise ValueError(f"{where}: contains a NUL character")
    return value


def session_entry(
    seq: int, ts: float, entry: agent_pb2.Entry, max_chunk: int, max_detail: int
) -> SessionEntryRow:
    """The entry's recording chunk or session event, checked field by field."""
    if entry.WhichOneof("kind") == "recording":
        r = entry.recording
        if not SESSION_ID_RE.fullmatch(r.session_id):
            raise ValueError(f"recording: session_id {r.session_id[:64]!r} is not a session id")
        if len(r.data) > max_chunk:
            raise ValueError(f"recording: chunk of {len(r.data)} bytes, more than {max_chunk}")
        if r.index > 1_000_000:
            raise ValueError(f"recording: index {r.index} is out of range")
        if r.last and not _HEX64_RE.fullmatch(r.sha256):
            raise ValueError("recording: the last chunk's sha256 is not 64 lowercase hex digits")
        if r.sha256 and not r.last:
            raise ValueError("recording: sha256 is set on a chunk that is not the last")
        return SessionEntryRow(
            seq, ts, "chunk", r.session_id, index=r.index, data=bytes(r.data), last=r.last, sha256=r.sha256
        )
    e = entry.session_event
    if not SESSION_ID_RE.fullmatch(e.session_id):
        raise ValueError(f"session_event: session_id {e.session_id[:64]!r} is not a session id")
    if not _WORD_RE.fullmatch(e.event):
        raise ValueError(f"session_event: event {e.event[:64]!r} is not a snake_case word of at most 32")
    actor = _text("session_event actor", e.actor, 200)
    detail = _text("session_event detail", e.detail, max_detail)
    return SessionEntryRow(seq, ts, "event", e.session_id, event=e.event, actor=actor, detail=detail)
