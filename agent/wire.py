"""The agent's side of ``diag.v1`` on the wire: proto3 encoding and decoding, by hand.

Why not the generated classes: importing the protobuf runtime (upb, descriptor pool,
well-known types, text format) costs the agent about 3.7 MB of resident memory, almost
a tenth of its 45 MB budget, to encode seven message types and decode three. The
collector keeps using the generated code of ``protos/diag/v1/agent.proto``; the tests
(``tests/agent/test_wire.py``) parse everything this module writes with those classes,
and feed this module's decoder what they write, field by field, so the two cannot drift.

Encoding follows proto3 exactly as the generated code does: fields in number order,
scalars at their default value omitted, a oneof member always written, ``map`` fields as
repeated key/value entries, repeated scalars of ``Ack`` read packed or unpacked.
Decoding treats every byte as hostile: a truncated field, a bad wire type, a varint of
more than ten bytes or text that is not UTF-8 raises :class:`WireError`; unknown fields
are skipped, as the contract requires of a peer that is older than the collector.

>>> req = encode_collector_inspection_for_tests("insp-1", ["host.cpu"], [], 5)
>>> decode_collector_message(req).inspection
InspectionRequest(inspection_id='insp-1', checks=('host.cpu',), layers=(), deadline_unix_ms=5)
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from math import copysign
from typing import Any, Final

__all__ = [
    "SEVERITY",
    "Ack",
    "CollectorMessage",
    "HostFacts",
    "InspectionRequest",
    "Welcome",
    "WireError",
    "agent_message",
    "check_result",
    "decode_collector_message",
    "entry",
    "entry_batch",
    "gap",
    "gap_report",
    "health",
    "heartbeat",
    "hello",
    "inventory",
]

# Fields of AgentMessage's oneof ``body``.
HELLO: Final = 1
BATCH: Final = 2
HEARTBEAT: Final = 3
GAPS: Final = 4
# Fields of Entry's oneof ``kind``.
ENTRY_RESULT: Final = 3
ENTRY_INVENTORY: Final = 4
ENTRY_HEALTH: Final = 5

# Session frames of CollectorMessage's oneof ``body`` (grant .. revoke).
SESSION_FIRST: Final = 16
SESSION_LAST: Final = 21

SEVERITY: Final[Mapping[str, int]] = {"OK": 1, "WARN": 2, "CRIT": 3, "UNKNOWN": 4}

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
_U64: Final = (1 << 64) - 1
_pack_double = struct.Struct("<d").pack
_pack_float = struct.Struct("<f").pack


class WireError(ValueError):
    """Bytes from the collector that are not a valid ``diag.v1`` message."""


# --- encoding -----------------------------------------------------------------------------------


_ONE_BYTE: Final = tuple(bytes((i,)) for i in range(128))
"""Every varint below 128 (tags, lengths, enums): built once, not per field."""


def _varint(n: int) -> bytes:
    if 0 <= n < 128:
        return _ONE_BYTE[n]  # most tags, lengths and enums: no loop, no allocation
    n &= _U64  # int64 negatives: ten bytes of two's complement, as protobuf does
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _tag(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


_LEN_TAGS: Final = tuple(_varint(n << 3 | _LEN) for n in range(16))
"""Tags of length-delimited fields 0-15 (every field number a record uses): one lookup
instead of a call per field; a record has about fifty of them."""
_VARINT_TAGS: Final = tuple(_varint(n << 3 | _VARINT) for n in range(16))


def _int(number: int, value: int) -> bytes:
    """A varint scalar (uint32, uint64, int64, enum); omitted at 0."""
    if not value:
        return b""
    tag = _VARINT_TAGS[number] if number < 16 else _varint(number << 3 | _VARINT)
    return tag + (_ONE_BYTE[value] if 0 < value < 128 else _varint(value))


def _len(number: int, payload: bytes) -> bytes:
    """A length-delimited field, always written (messages, oneof members, repeated items)."""
    size = len(payload)
    tag = _LEN_TAGS[number] if number < 16 else _varint(number << 3 | _LEN)
    return tag + (_ONE_BYTE[size] if size < 128 else _varint(size)) + payload


def _str(number: int, value: str) -> bytes:
    if not value:
        return b""
    data = value.encode()
    size = len(data)
    tag = _LEN_TAGS[number] if number < 16 else _varint(number << 3 | _LEN)
    return tag + (_ONE_BYTE[size] if size < 128 else _varint(size)) + data


def _is_default(value: float) -> bool:
    """+0.0 only: protobuf writes -0.0, whose bits are not zero."""
    return value == 0.0 and copysign(1.0, value) > 0


def _double(number: int, value: float) -> bytes:
    return b"" if _is_default(value) else _tag(number, _I64) + _pack_double(value)


def _float(number: int, value: float) -> bytes:
    if _is_default(value):
        return b""
    try:
        packed = _pack_float(value)
    except OverflowError:  # beyond float32: infinity, as protobuf's own conversion gives
        packed = _pack_float(float("inf") if value > 0 else float("-inf"))
    return _tag(number, _I32) + packed


def _map_str_str(number: int, items: Mapping[str, str]) -> bytes:
    return b"".join(_len(number, _str(1, k) + _str(2, v)) for k, v in items.items())


def _map_str_float(number: int, items: Mapping[str, float]) -> bytes:
    return b"".join(_len(number, _str(1, k) + _float(2, v)) for k, v in items.items())


FEATURE_METRIC_KEYS: Final = "metric_keys"
"""Welcome feature: the collector reads ``CheckResult.metric_keys`` / ``metric_values``."""


def _metric_key(m: Mapping[str, Any]) -> bytes:
    """A ``MetricKey`` (a ``MetricSample`` without its value: name, unit, sorted labels)."""
    labels = m.get("labels") or {}
    return (
        _str(1, m["name"])
        + _str(3, m["unit"])
        + b"".join(_len(4, _str(1, key) + _str(2, str(labels[key]))) for key in sorted(labels))
    )


_METRIC_KEYS_CACHE: dict[tuple[Any, ...], bytes] = {}
"""Encoded ``metric_keys`` field of a record, by its metrics' (name, unit, labels): a
check emits the same metrics every run, so the daemon encodes each key set once."""
MAX_CACHED_KEY_SETS: Final = 256
"""Key sets kept (one or a few per check); past this the cache starts afresh, so a check
whose labels change every run (``host.top_consumers``) costs a few hundred KB at most."""


def _metric_keys_field(metrics: Iterable[Mapping[str, Any]]) -> bytes:
    """Field 10 of ``CheckResult``: the serialized ``MetricKeys`` of ``metrics``."""
    identity: list[Any] = []
    for m in metrics:
        labels = m.get("labels")
        if labels:
            items = tuple(labels.items())
            for _, value in items:
                if type(value) is not str:
                    # 1, 1.0 and True are equal keys but print differently: not cached.
                    return _len(10, b"".join(_len(1, _metric_key(m)) for m in metrics))
            identity.append((m["name"], m["unit"], items))
        else:
            identity.append((m["name"], m["unit"], None))
    cache_key = tuple(identity)
    cached = _METRIC_KEYS_CACHE.get(cache_key)
    if cached is None:
        cached = _len(10, b"".join(_len(1, _metric_key(m)) for m in metrics))
        if len(_METRIC_KEYS_CACHE) >= MAX_CACHED_KEY_SETS:
            _METRIC_KEYS_CACHE.clear()
        _METRIC_KEYS_CACHE[cache_key] = cached
    return cached


def check_result(doc: Mapping[str, Any], *, metric_keys: bool = False) -> bytes:
    """A ``CheckResult`` from a spooled result record (see :mod:`agent.records`).

    With ``metric_keys`` (the collector's Welcome lists :data:`FEATURE_METRIC_KEYS`) the
    metrics go in the columnar form: one serialized ``MetricKeys`` and the values packed,
    which the collector validates once per key set instead of once per sample.

    Raises KeyError, TypeError or ValueError when the record lacks or mistypes a field.
    """
    parts = [
        _str(1, doc["check"]),
        _str(2, doc["layer"]),
        _int(3, SEVERITY[doc["severity"]]),
        _str(4, doc["key"]),
        _str(5, doc["summary"]),
        _float(6, float(doc["duration_ms"])),
    ]
    for res in doc.get("results", ()):
        parts.append(
            _len(
                7,
                _int(1, SEVERITY[res["severity"]])
                + _str(2, res["key"])
                + _str(3, res["summary"])
                + _str(4, res.get("item") or "")
                + _str(5, res.get("details") or ""),
            )
        )
    metrics = doc.get("metrics", ())
    if not metric_keys:
        for m in metrics:
            labels = m.get("labels") or {}
            sample = [_str(1, m["name"]), _double(2, float(m["value"])), _str(3, m["unit"])]
            sample.extend(_len(4, _str(1, key) + _str(2, str(labels[key]))) for key in sorted(labels))
            parts.append(_len(8, b"".join(sample)))
    if doc.get("inspection_id"):
        parts.append(_str(9, doc["inspection_id"]))
    if metric_keys and metrics:
        parts.append(_metric_keys_field(metrics))
        values = [float(m["value"]) for m in metrics]
        parts.append(_len(11, struct.pack(f"<{len(values)}d", *values)))
    return b"".join(parts)


_HEALTH_FIELDS: Final = (
    (1, "cpu_seconds_total", float),
    (2, "rss_bytes", int),
    (3, "spool_depth", int),
    (4, "spool_bytes", int),
    (5, "dropped_total", int),
    (6, "cycle_cpu_seconds", float),
    (8, "abandoned_threads", int),
)


def health(doc: Mapping[str, Any]) -> bytes:
    """An ``AgentHealth`` from a spooled health record (absent fields stay at zero)."""
    fields: dict[int, bytes] = {}
    for number, name, kind in _HEALTH_FIELDS:
        value = doc.get(name)
        if value is None:
            continue
        if kind is float:
            fields[number] = _double(number, float(value))
        else:
            count = max(0, int(value))
            if count > _U64:
                raise ValueError(f"{name} {count} does not fit in 64 bits")
            fields[number] = _int(number, count)
    durations = doc.get("check_duration_ms") or {}
    fields[7] = _map_str_float(7, {str(k): float(v) for k, v in durations.items()})
    return b"".join(fields[n] for n in sorted(fields))


def inventory(document_json: str, sha256: str) -> bytes:
    return _str(1, document_json) + _str(2, sha256)


def entry(seq: int, ts_unix_ms: int, kind: int, payload: bytes) -> bytes:
    """An ``Entry`` whose oneof ``kind`` (ENTRY_RESULT, _INVENTORY or _HEALTH) holds ``payload``."""
    return _int(1, seq) + _int(2, ts_unix_ms) + _len(kind, payload)


def entry_batch(entries: Iterable[bytes]) -> bytes:
    return b"".join(_len(1, e) for e in entries)


def entry_overhead(entry_size: int) -> int:
    """Bytes an encoded entry of ``entry_size`` adds to its batch (tag and length)."""
    return 1 + len(_varint(entry_size)) + entry_size


@dataclass(frozen=True, slots=True)
class HostFacts:
    """``HostFacts``: what the agent tells the collector about its host in Hello."""

    os_id: str = ""
    os_version: str = ""
    kernel: str = ""
    arch: str = ""
    cpu_count: int = 0
    memory_bytes: int = 0
    boot_time_unix_ms: int = 0

    def encode(self) -> bytes:
        return (
            _str(1, self.os_id)
            + _str(2, self.os_version)
            + _str(3, self.kernel)
            + _str(4, self.arch)
            + _int(5, self.cpu_count)
            + _int(6, self.memory_bytes)
            + _int(7, self.boot_time_unix_ms)
        )


def hello(
    *,
    protocol_version: int,
    agent_id: str,
    agent_version: str,
    hostname: str,
    labels: Mapping[str, str],
    facts: HostFacts,
    spool_high_seq: int,
    spool_low_seq: int,
    features: Iterable[str] = (),
) -> bytes:
    return (
        _int(1, protocol_version)
        + _str(2, agent_id)
        + _str(3, agent_version)
        + _str(4, hostname)
        + _map_str_str(5, labels)
        + _len(6, facts.encode())
        + _int(7, spool_high_seq)
        + _int(8, spool_low_seq)
        + b"".join(_len(9, f.encode()) for f in features)
    )


def heartbeat(ts_unix_ms: int, spool_depth: int) -> bytes:
    return _int(1, ts_unix_ms) + _int(2, spool_depth)


def gap(first_seq: int, last_seq: int, count: int, reason: str, dropped_at_unix_ms: int) -> bytes:
    return (
        _int(1, first_seq)
        + _int(2, last_seq)
        + _int(3, count)
        + _str(4, reason)
        + _int(5, dropped_at_unix_ms)
    )


def gap_report(gaps: Iterable[bytes]) -> bytes:
    return b"".join(_len(1, g) for g in gaps)


def agent_message(body: int, payload: bytes) -> bytes:
    """An ``AgentMessage`` whose oneof ``body`` (HELLO, BATCH, HEARTBEAT or GAPS) is ``payload``."""
    return _len(body, payload)


# --- decoding -----------------------------------------------------------------------------------


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    for i in range(pos, min(pos + 10, len(data))):
        byte = data[i]
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result & _U64, i + 1
        shift += 7
    raise WireError("truncated or over-long varint")


def _fields(data: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, int or bytes) for every field of one message."""
    pos, end = 0, len(data)
    while pos < end:
        key, pos = _read_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0")
        if wire_type == _VARINT:
            value, pos = _read_varint(data, pos)
            yield number, wire_type, value
        elif wire_type == _LEN:
            size, pos = _read_varint(data, pos)
            if pos + size > end:
                raise WireError(f"field {number}: length {size} runs past the message")
            yield number, wire_type, data[pos : pos + size]
            pos += size
        elif wire_type in (_I64, _I32):
            width = 8 if wire_type == _I64 else 4
            if pos + width > end:
                raise WireError(f"field {number}: truncated fixed-width value")
            yield number, wire_type, int.from_bytes(data[pos : pos + width], "little")
            pos += width
        else:
            raise WireError(f"field {number}: unsupported wire type {wire_type}")


def _expect(number: int, wire_type: int, want: int) -> None:
    if wire_type != want:
        raise WireError(f"field {number}: wire type {wire_type}, expected {want}")


def _text(number: int, wire_type: int, value: Any) -> str:
    _expect(number, wire_type, _LEN)
    try:
        text: str = value.decode()
    except UnicodeDecodeError:
        raise WireError(f"field {number}: text is not UTF-8") from None
    return text


def _uint(number: int, wire_type: int, value: Any, bits: int = 64) -> int:
    _expect(number, wire_type, _VARINT)
    as_int: int = value & ((1 << bits) - 1)  # protobuf truncates an over-wide uint32
    return as_int


def _sint64(number: int, wire_type: int, value: Any) -> int:
    _expect(number, wire_type, _VARINT)
    as_int: int = value - (1 << 64) if value >> 63 else value
    return as_int


@dataclass(frozen=True, slots=True)
class Welcome:
    agent_id: str = ""
    customer: str = ""
    resume_after_seq: int = 0
    server_time_unix_ms: int = 0
    max_batch_entries: int = 0
    max_message_bytes: int = 0
    heartbeat_interval_s: int = 0
    features: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Ack:
    durable_through_seq: int = 0
    gaps_recorded: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class InspectionRequest:
    inspection_id: str = ""
    checks: tuple[str, ...] = ()
    layers: tuple[str, ...] = ()
    deadline_unix_ms: int = 0


@dataclass(frozen=True, slots=True)
class CollectorMessage:
    """A decoded ``CollectorMessage``: ``kind`` names the oneof member set (None: none we know)."""

    kind: str | None = None
    welcome: Welcome | None = None
    ack: Ack | None = None
    inspection: InspectionRequest | None = field(default=None)
    session: tuple[int, bytes | None] | None = None
    """A session frame (fields 16-21: its field number and undecoded bytes, None when its
    wire type is wrong), decoded by :mod:`agent.sessions.frames` so that a malformed one
    is dropped and counted there instead of ending the stream."""


def _welcome(data: bytes) -> Welcome:
    out: dict[str, Any] = {}
    features: list[str] = []
    for number, wt, value in _fields(data):
        if number == 1:
            out["agent_id"] = _text(number, wt, value)
        elif number == 2:
            out["customer"] = _text(number, wt, value)
        elif number == 3:
            out["resume_after_seq"] = _uint(number, wt, value)
        elif number == 4:
            out["server_time_unix_ms"] = _sint64(number, wt, value)
        elif number in (5, 6, 7):
            name = ("max_batch_entries", "max_message_bytes", "heartbeat_interval_s")[number - 5]
            out[name] = _uint(number, wt, value, bits=32)
        elif number == 8:
            features.append(_text(number, wt, value))
    return Welcome(**out, features=tuple(features))


def _ack(data: bytes) -> Ack:
    durable = 0
    gaps: list[int] = []
    for number, wt, value in _fields(data):
        if number == 1:
            durable = _uint(number, wt, value)
        elif number == 2:
            if wt == _LEN:  # packed, as proto3 writes it
                pos = 0
                while pos < len(value):
                    item, pos = _read_varint(value, pos)
                    gaps.append(item)
            else:
                gaps.append(_uint(number, wt, value))
    return Ack(durable, tuple(gaps))


def _inspection(data: bytes) -> InspectionRequest:
    ident = ""
    checks: list[str] = []
    layers: list[str] = []
    deadline = 0
    for number, wt, value in _fields(data):
        if number == 1:
            ident = _text(number, wt, value)
        elif number == 2:
            checks.append(_text(number, wt, value))
        elif number == 3:
            layers.append(_text(number, wt, value))
        elif number == 4:
            deadline = _sint64(number, wt, value)
    return InspectionRequest(ident, tuple(checks), tuple(layers), deadline)


def decode_collector_message(data: bytes) -> CollectorMessage:
    """Parse one ``CollectorMessage``; raises :class:`WireError` on malformed bytes.

    As protobuf does, the last oneof member on the wire wins, and a member this agent
    does not know leaves ``kind`` None.
    """
    message = CollectorMessage()
    for number, wt, value in _fields(data):
        if number == 1:
            _expect(number, wt, _LEN)
            message = CollectorMessage("welcome", welcome=_welcome(value))
        elif number == 2:
            _expect(number, wt, _LEN)
            message = CollectorMessage("ack", ack=_ack(value))
        elif number == 3:
            _expect(number, wt, _LEN)
            message = CollectorMessage("inspection", inspection=_inspection(value))
        elif SESSION_FIRST <= number <= SESSION_LAST:
            message = CollectorMessage("session", session=(number, value if wt == _LEN else None))
    return message


def encode_collector_inspection_for_tests(
    inspection_id: str, checks: list[str], layers: list[str], deadline_unix_ms: int
) -> bytes:
    """A ``CollectorMessage`` holding an InspectionRequest (for doctests and fakes)."""
    body = (
        _str(1, inspection_id)
        + b"".join(_len(2, c.encode()) for c in checks)
        + b"".join(_len(3, layer.encode()) for layer in layers)
        + _int(4, deadline_unix_ms)
    )
    return _len(3, body)
