"""The session frames of ``diag.v1`` on the wire, encoded and decoded by hand.

Same rules as :mod:`agent.wire` (whose primitives this module reuses): proto3 exactly as
the generated code writes it, every received byte hostile. A frame that does not parse,
or whose fields break the contract's bounds (a SessionData over 32 KiB, an id that is
not printable or too long), raises :class:`FrameError`; the caller drops and counts it
and the stream goes on. ``tests/agent/sessions/test_frames.py`` holds this module to the
generated classes field by field.

>>> g = decode(16, encode_grant_for_tests(SessionGrant("s-1", "a-1", mode="shell")))
>>> (g.session_id, g.agent_id, g.mode)
('s-1', 'a-1', 'shell')
>>> decode(18, b"\\x08\\x07\\x12\\x02hi")
SessionData(stream_id=7, data=b'hi')
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, fields
from typing import Any, Final

from agent import wire
from agent.wire import _int, _len, _str

__all__ = [
    "MAX_DATA",
    "FrameError",
    "SessionClose",
    "SessionData",
    "SessionGrant",
    "SessionOpen",
    "SessionRevoke",
    "SessionWindow",
    "decode",
    "event_entry",
    "recording_entry",
    "status_message",
]

MAX_DATA: Final = 32 * 1024
"""Largest SessionData payload the contract allows."""
MAX_ID: Final = 128
MAX_TEXT: Final = 4096
MAX_KEY: Final = 16 * 1024
MAX_WINDOW_ADD: Final = 1 << 31

# AgentMessage body fields
STATUS: Final = 16
DATA_OUT: Final = 17
WINDOW_OUT: Final = 18
CLOSE_OUT: Final = 19
# Entry kind fields
ENTRY_RECORDING: Final = 6
ENTRY_EVENT: Final = 7


class FrameError(ValueError):
    """A session frame that is malformed or out of the contract's bounds."""


@dataclass(frozen=True, slots=True)
class SessionGrant:
    session_id: str
    agent_id: str = ""
    case_id: str = ""
    engineer: str = ""
    reason: str = ""
    mode: str = ""
    engineer_public_key: str = ""
    not_before_unix_ms: int = 0
    not_after_unix_ms: int = 0
    approval: str = ""
    approved_by: str = ""
    approved_at_unix_ms: int = 0


@dataclass(frozen=True, slots=True)
class SessionOpen:
    session_id: str
    stream_id: int
    window_bytes: int = 0


@dataclass(frozen=True, slots=True)
class SessionData:
    stream_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class SessionWindow:
    stream_id: int
    add_bytes: int


@dataclass(frozen=True, slots=True)
class SessionClose:
    stream_id: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SessionRevoke:
    session_id: str
    reason: str = ""


Frame = SessionGrant | SessionOpen | SessionData | SessionWindow | SessionClose | SessionRevoke

# field number -> (class, {proto field number: (attribute, kind, bound)})
_S, _U64, _U32, _I64, _B = "str", "u64", "u32", "i64", "bytes"
_LAYOUT: Final[dict[int, tuple[type[Any], dict[int, tuple[str, str, int]]]]] = {
    16: (
        SessionGrant,
        {
            1: ("session_id", _S, MAX_ID),
            2: ("agent_id", _S, 253),
            3: ("case_id", _S, MAX_ID),
            4: ("engineer", _S, 256),
            5: ("reason", _S, MAX_TEXT),
            6: ("mode", _S, 32),
            7: ("engineer_public_key", _S, MAX_KEY),
            8: ("not_before_unix_ms", _I64, 0),
            9: ("not_after_unix_ms", _I64, 0),
            10: ("approval", _S, 32),
            11: ("approved_by", _S, 256),
            12: ("approved_at_unix_ms", _I64, 0),
        },
    ),
    17: (
        SessionOpen,
        {1: ("session_id", _S, MAX_ID), 2: ("stream_id", _U64, 0), 3: ("window_bytes", _U32, 0)},
    ),
    18: (SessionData, {1: ("stream_id", _U64, 0), 2: ("data", _B, MAX_DATA)}),
    19: (SessionWindow, {1: ("stream_id", _U64, 0), 2: ("add_bytes", _U32, 0)}),
    20: (SessionClose, {1: ("stream_id", _U64, 0), 2: ("reason", _S, MAX_TEXT)}),
    21: (SessionRevoke, {1: ("session_id", _S, MAX_ID), 2: ("reason", _S, MAX_TEXT)}),
}
_NAMES: Final = {16: "grant", 17: "open", 18: "data", 19: "window", 20: "close", 21: "revoke"}


def frame_name(number: int) -> str:
    """``grant``, ``open``, ... for a CollectorMessage field number."""
    return _NAMES.get(number, f"field {number}")


def decode(number: int, payload: bytes | None) -> Frame:
    """The frame in CollectorMessage field ``number``; raises :class:`FrameError`."""
    layout = _LAYOUT.get(number)
    if layout is None:
        raise FrameError(f"unknown session frame field {number}")
    if payload is None:
        raise FrameError(f"session {frame_name(number)}: wrong wire type")
    cls, spec = layout
    values: dict[str, Any] = {}
    try:
        for field_no, wt, value in wire._fields(payload):
            entry = spec.get(field_no)
            if entry is None:
                continue  # a newer collector's field
            name, kind, bound = entry
            if kind == _S:
                text = wire._text(field_no, wt, value)
                if len(text) > bound:
                    raise FrameError(f"session {frame_name(number)}: {name} longer than {bound}")
                if name.endswith("_id") and not text.isprintable():
                    raise FrameError(f"session {frame_name(number)}: {name} is not printable")
                values[name] = text
            elif kind == _B:
                wire._expect(field_no, wt, 2)
                if len(value) > bound:
                    raise FrameError(f"session {frame_name(number)}: {len(value)} data bytes, over {bound}")
                values[name] = bytes(value)
            elif kind == _I64:
                values[name] = wire._sint64(field_no, wt, value)
            else:
                values[name] = wire._uint(field_no, wt, value, 32 if kind == _U32 else 64)
    except wire.WireError as exc:
        raise FrameError(f"session {frame_name(number)}: {exc}") from None
    for f in fields(cls):
        if f.name not in values and f.name in ("session_id", "stream_id", "data", "add_bytes"):
            values[f.name] = b"" if f.name == "data" else (0 if f.name != "session_id" else "")
    frame: Frame = cls(**values)
    _check(frame)
    return frame


def _check(frame: Frame) -> None:
    if isinstance(frame, SessionGrant | SessionOpen | SessionRevoke) and not frame.session_id:
        raise FrameError(f"{type(frame).__name__}: session_id is empty")
    if isinstance(frame, SessionOpen | SessionData | SessionWindow | SessionClose) and frame.stream_id == 0:
        raise FrameError(f"{type(frame).__name__}: stream_id is 0")


# --- agent -> collector --------------------------------------------------------------------------


def status_message(
    session_id: str,
    state: str,
    reason: str = "",
    *,
    host_key: str = "",
    host_key_sha256: str = "",
    approved_by: str = "",
    ts_unix_ms: int = 0,
    stream_id: int = 0,
) -> bytes:
    """An AgentMessage holding a SessionStatus."""
    body = (
        _str(1, session_id)
        + _str(2, state)
        + _str(3, reason)
        + _str(4, host_key)
        + _str(5, host_key_sha256)
        + _str(6, approved_by)
        + _int(7, ts_unix_ms)
        + _int(8, stream_id)
    )
    return _len(STATUS, body)


def data_message(stream_id: int, data: bytes) -> bytes:
    """An AgentMessage holding a SessionData (``data`` at most :data:`MAX_DATA`)."""
    if len(data) > MAX_DATA:
        raise ValueError("session data frames carry at most 32 KiB")
    return _len(DATA_OUT, _int(1, stream_id) + (_len(2, data) if data else b""))


def window_message(stream_id: int, add_bytes: int) -> bytes:
    return _len(WINDOW_OUT, _int(1, stream_id) + _int(2, add_bytes))


def close_message(stream_id: int, reason: str) -> bytes:
    return _len(CLOSE_OUT, _int(1, stream_id) + _str(2, reason))


def recording_entry(session_id: str, index: int, data: bytes, last: bool, sha256: str) -> bytes:
    """The payload of an Entry's ``recording`` (SessionRecordingChunk)."""
    return (
        _str(1, session_id)
        + _int(2, index)
        + (_len(3, data) if data else b"")
        + _int(4, 1 if last else 0)
        + _str(5, sha256)
    )


def event_entry(session_id: str, event: str, actor: str, detail: str) -> bytes:
    """The payload of an Entry's ``session_event`` (SessionEvent)."""
    return _str(1, session_id) + _str(2, event) + _str(3, actor) + _str(4, detail)


def spooled_entry(is_event: bool, doc: dict[str, Any]) -> tuple[int, bytes]:
    """(Entry kind field, payload) of a spooled ``session_event`` or ``session_recording``
    (JSON written by :class:`agent.sessions.manager.SpoolEvents`). Raises KeyError,
    TypeError or ValueError when the document is not what it writes."""
    if is_event:
        return ENTRY_EVENT, event_entry(
            str(doc["session_id"]), str(doc["event"]), str(doc["actor"]), str(doc["detail"])
        )
    data = base64.b64decode(doc["data"], validate=True)
    return ENTRY_RECORDING, recording_entry(
        str(doc["session_id"]), int(doc["index"]), data, bool(doc["last"]), str(doc["sha256"])
    )


# --- for tests and fakes ---------------------------------------------------------------------


def encode_grant_for_tests(grant: SessionGrant) -> bytes:
    """The body of a SessionGrant (what a collector sends in field 16)."""
    parts = []
    for number, (name, kind, _bound) in _LAYOUT[16][1].items():
        value = getattr(grant, name)
        parts.append(_str(number, value) if kind == _S else _int(number, value))
    return b"".join(parts)
