"""Turn an agent's protobuf :class:`EntryBatch` into a validated store batch.

Everything in a batch is hostile input: an agent host may be compromised, and a
buggy agent must not be able to poison the store. :func:`decode` checks every field
(lengths, names, units, finite numbers, label counts, sequence order, timestamps,
NUL characters, which PostgreSQL text cannot hold) and raises :class:`IngestError`
for the first violation, so the transport can reject the whole batch with
``INVALID_ARGUMENT`` instead of storing part of it.

Names are validated once and remembered (bounded caches), because a fleet sends the
same few thousand metric and check names over and over.

>>> from protos.diag.v1 import agent_pb2 as pb
>>> batch = pb.EntryBatch(entries=[pb.Entry(seq=7, ts_unix_ms=1_700_000_000_000,
...     result=pb.CheckResult(check="host.load", layer="host", severity=pb.SEVERITY_WARN,
...         key="LOAD_HIGH", summary="Load per core: 2.5", duration_ms=1.5,
...         metrics=[pb.MetricSample(name="host_load1_per_core_ratio", value=2.5, unit="ratio")]))])
>>> out = decode(batch, limits=IngestLimits(), after_seq=6)
>>> out.min_seq, out.max_seq, out.results[0].severity, out.point_values, out.point_spans
(7, 7, 'WARN', [2.5], [(7, 1700000000.0, 1)])
>>> decode(batch, limits=IngestLimits(), after_seq=7)
Traceback (most recent call last):
...
collector.ingest.decode.IngestError: entry 0: seq 7 is not above the previous seq 7
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Final

from google.protobuf.message import DecodeError  # type: ignore[import-untyped, unused-ignore]

from collector.ingest.decode_sessions import session_entry
from collector.store.inventory import PRODUCT_TEXT_MAX, extract_products
from collector.store.store import ColumnarBatch, SeriesRef
from collector.store.types import (
    HealthRow,
    InventoryRow,
    ResultRow,
    SessionEntryRow,
)
from protos.diag.v1 import agent_pb2

__all__ = [
    "IngestError",
    "IngestLimits",
    "decode",
    "decode_logged",
    "parse_batch",
]


class IngestError(ValueError):
    """A batch, gap report or hello that violates the contract; the message names the field."""


@dataclass(frozen=True, slots=True)
class IngestLimits:
    """Bounds on one batch. Defaults are generous for real agents, tight for abuse."""

    max_batch_entries: int = 1000
    max_findings: int = 1000
    max_metrics: int = 10_000
    max_labels: int = 32
    max_name_len: int = 200
    max_label_value_len: int = 1024
    max_summary_len: int = 8192
    max_details_len: int = 65_536
    max_document_len: int = 2 * 1024 * 1024
    max_check_durations: int = 2000
    max_result_chars: int = 256 * 1024
    max_recording_chunk_bytes: int = 1024 * 1024
    """One SessionRecordingChunk's data; an agent ships a recording in chunks far smaller."""
    max_clock_skew_s: float = 300.0
    """Entries stamped further than this ahead of the collector's clock are stored at their arrival."""
    """A result's summary and findings (details included) together: what a person can read;
    a bigger result is refused, so no agent can grow the store by megabytes per result."""


SEQ_MAX: Final = 2**63 - 1  # stored in signed 64-bit columns
TS_MIN_MS: Final = 946_684_800_000  # 2000-01-01: older means garbage, not clock skew
TS_MAX_MS: Final = 4_102_444_800_000  # 2100-01-01

_SEVERITY: Final[dict[int, str]] = {
    agent_pb2.SEVERITY_OK: "OK",
    agent_pb2.SEVERITY_WARN: "WARN",
    agent_pb2.SEVERITY_CRIT: "CRIT",
    agent_pb2.SEVERITY_UNKNOWN: "UNKNOWN",
}
SNAKE_RE: Final = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
_KEY_RE: Final = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*")
_CHECK_RE: Final = re.compile(r"([a-z][a-z0-9_]*)\.[a-z][a-z0-9_]*")
_ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]*")
_HEX64_RE: Final = re.compile(r"[0-9a-f]{64}")
_CACHE_MAX: Final = 50_000

# Names already validated: (metric name, unit), label keys, (check, layer), keys.
# Sets of immutable strings; cleared when full, so they cannot grow without bound.
_ok_metric: set[tuple[str, str]] = set()
_ok_label_key: set[str] = set()
_ok_check: set[tuple[str, str]] = set()
_ok_key: set[str] = set()


# One shared tuple per series ref: a batch held decoded (the ingest log's cache) then keeps
# a pointer per point, not fresh strings, and the strings' hashes are computed once.
_REFS_MAX: Final = 200_000
_refs: dict[SeriesRef, SeriesRef] = {}


def _remember(cache: set[Any], item: Any) -> None:
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache.add(item)


def check_text(where: object, value: str, max_len: int) -> str:
    if len(value) > max_len:
        raise IngestError(f"{where}: {len(value)} characters, more than {max_len}")
    if "\x00" in value:
        raise IngestError(f"{where}: contains a NUL character")
    return value


def _finite(where: object, value: float) -> float:
    if not math.isfinite(value):
        raise IngestError(f"{where}: {value!r} is not a finite number")
    return value


def _check_metric_name(where: object, name: str, unit: str, max_len: int) -> None:
    if (name, unit) in _ok_metric:
        return
    if len(name) > max_len or not SNAKE_RE.fullmatch(name):
        raise IngestError(f"{where}: metric name {name[:64]!r} is not snake_case of at most {max_len}")
    if len(unit) > 32 or not SNAKE_RE.fullmatch(unit):
        raise IngestError(f"{where}: unit {unit[:64]!r} is not snake_case")
    if not name.endswith("_" + unit):
        raise IngestError(f"{where}: metric name {name!r} does not end with its unit _{unit}")
    _remember(_ok_metric, (name, unit))


def _check_key(where: object, key: str) -> None:
    if key in _ok_key:
        return
    if len(key) > 128 or not _KEY_RE.fullmatch(key):
        raise IngestError(f"{where}: key {key[:64]!r} is not UPPER_SNAKE_CASE of at most 128")
    _remember(_ok_key, key)


def _check_check(where: object, check: str, layer: str) -> None:
    if (check, layer) in _ok_check:
        return
    m = _CHECK_RE.fullmatch(check) if len(check) <= 128 else None
    if m is None:
        raise IngestError(f"{where}: check name {check[:64]!r} is not '<layer>.<snake_case>'")
    if m.group(1) != layer:
        raise IngestError(f"{where}: check {check!r} is not in layer {layer[:64]!r}")
    _remember(_ok_check, (check, layer))


def _severity(where: object, value: int) -> str:
    try:
        return _SEVERITY[value]
    except KeyError:
        raise IngestError(f"{where}: severity {value} is not OK, WARN, CRIT or UNKNOWN") from None


class _At:
    """Where in the batch, formatted only when an error message needs it."""

    __slots__ = ("i", "seq", "sub")

    def __init__(self, i: int, seq: int, sub: str = "") -> None:
        self.i = i
        self.seq = seq
        self.sub = sub

    def __str__(self) -> str:
        return f"entry {self.i} (seq {self.seq}){self.sub}"

    def __format__(self, spec: str) -> str:
        return str(self)

    def __add__(self, sub: str) -> _At:
        return _At(self.i, self.seq, self.sub + sub)


def _labels(where: object, labels: Any, limits: IngestLimits) -> tuple[tuple[str, str], ...]:
    n = len(labels)
    if n > limits.max_labels:
        raise IngestError(f"{where}: {n} labels, more than {limits.max_labels}")
    max_value = limits.max_label_value_len
    pairs = []
    for label in labels:
        key = label.key
        if key not in _ok_label_key:
            if len(key) > 64 or not SNAKE_RE.fullmatch(key):
                raise IngestError(f"{where}: label key {key[:64]!r} is not snake_case of at most 64")
            _remember(_ok_label_key, key)
        value = label.value
        if len(value) > max_value or "\x00" in value:
            check_text(f"{where}: label {key}", value, max_value)
        pairs.append((key, value))
    if n == 1:
        return (pairs[0],)
    pairs.sort()
    for i in range(1, n):
        if pairs[i][0] == pairs[i - 1][0]:
            raise IngestError(f"{where}: label {pairs[i][0]!r} appears twice")
    return tuple(pairs)


_JSON: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
"""Built once: ``json.dumps`` with arguments builds a new encoder per call."""


_FINDING_CACHE_MAX_BYTES: Final = 512
_finding_caches: dict[IngestLimits, dict[bytes, str]] = {}


def _finding_cache(limits: IngestLimits) -> dict[bytes, str]:
    """Validated findings per limits: serialized Finding -> its JSON object text.

    Agents send the same findings cycle after cycle ("all fine"); serializing one (C code)
    and a dict lookup cost a fifth of validating and JSON-encoding it in Python. Only
    small findings are kept, and each cache is cleared when full, so memory stays bounded.
    """
    cache = _finding_caches.get(limits)
    if cache is None:
        if len(_finding_caches) >= 16:
            _finding_caches.clear()
        cache = _finding_caches[limits] = {}
    return cache


def _findings_json(i: int, seq: int, findings: Any, limits: IngestLimits, cache: dict[bytes, str]) -> str:
    n = len(findings)
    if n == 1 and limits.max_findings:  # the usual case; indexing beats iterating a protobuf container
        return "[" + _finding_text(i, seq, 0, findings[0], limits, cache) + "]"
    if n > limits.max_findings:
        raise IngestError(f"{_At(i, seq)}: {n} findings, more than {limits.max_findings}")
    return "[" + ",".join(_finding_text(i, seq, j, f, limits, cache) for j, f in enumerate(findings)) + "]"


def _finding_text(i: int, seq: int, j: int, f: Any, limits: IngestLimits, cache: dict[bytes, str]) -> str:
    raw = f.SerializeToString()
    text = cache.get(raw)
    if text is None:
        text = _finding_json(f"{_At(i, seq)} finding {j}", f, limits)
        if len(raw) <= _FINDING_CACHE_MAX_BYTES:
            if len(cache) >= _CACHE_MAX:
                cache.clear()
            cache[raw] = text
    return text


def _finding_json(where: str, f: Any, limits: IngestLimits) -> str:
    key = f.key
    if key not in _ok_key:
        _check_key(where, key)
    severity = _SEVERITY.get(f.severity)
    if severity is None:
        _severity(where, f.severity)
    summary = f.summary
    max_summary = limits.max_summary_len
    if len(summary) > max_summary or "\x00" in summary:
        check_text(f"{where} summary", summary, max_summary)
    doc = {"severity": severity, "key": key, "summary": summary}
    if f.item:
        doc["item"] = check_text(f"{where} item", f.item, limits.max_label_value_len)
    if f.details:
        doc["details"] = check_text(f"{where} details", f.details, limits.max_details_len)
    return _JSON.encode(doc)


JSON_MAX_DEPTH: Final = 64
"""Nesting deeper than this in an agent's JSON document is refused (no inventory needs it)."""


class _JsonRefused(ValueError):
    """A JSON value strict JSON (RFC 8259) or the store cannot hold; the message says which."""


def _no_constant(name: str) -> Any:
    # json.loads accepts NaN, Infinity and -Infinity by default: not JSON, and PostgreSQL's
    # jsonb refuses them (the whole group commit failed on them once).
    raise _JsonRefused(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses to inf
        raise _JsonRefused(f"number {text[:32]} is out of range")
    return value


def _json_object(where: str, text: str, max_len: int) -> dict[str, Any]:
    """Parse an agent's JSON document strictly: an object, finite numbers, no NUL, bounded depth.

    >>> _json_object("inventory", '{"os": {"name": "Debian"}}', 1000)
    {'os': {'name': 'Debian'}}
    >>> _json_object("inventory", '{"load": NaN}', 1000)
    Traceback (most recent call last):
    ...
    collector.ingest.decode.IngestError: inventory: NaN is not a JSON number
    >>> _json_object("inventory", '{"disk": 1e999}', 1000)
    Traceback (most recent call last):
    ...
    collector.ingest.decode.IngestError: inventory: number 1e999 is out of range
    """
    check_text(where, text, max_len)
    try:
        doc = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except _JsonRefused as exc:
        raise IngestError(f"{where}: {exc}") from None
    except (ValueError, RecursionError) as exc:  # malformed or absurdly nested JSON
        raise IngestError(f"{where}: not valid JSON ({type(exc).__name__})") from None
    if not isinstance(doc, dict):
        raise IngestError(f"{where}: not a JSON object")
    problem = _json_problem(doc)
    if problem is not None:
        raise IngestError(f"{where}: {problem}")
    return doc


def _json_problem(doc: dict[str, Any]) -> str | None:
    """What in a parsed document the store cannot hold: a NUL in a string or key (PostgreSQL
    text and jsonb cannot), or nesting deeper than :data:`JSON_MAX_DEPTH`. None when fine."""
    stack: list[tuple[Any, str, int]] = [(doc, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth > JSON_MAX_DEPTH:
            return f"nesting deeper than {JSON_MAX_DEPTH} at {path[:200]}"
        if isinstance(value, str):
            if "\x00" in value:
                return f"the string at {path[:200] or '(top)'} contains a NUL character (\\u0000)"
        elif isinstance(value, dict):
            for key, item in value.items():
                if "\x00" in key:
                    return f"a key under {path[:200] or '(top)'} contains a NUL character (\\u0000)"
                stack.append((item, f"{path}.{key}" if path else key, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value))
    return None


def decode(
    batch: agent_pb2.EntryBatch, *, limits: IngestLimits, after_seq: int, now: float | None = None
) -> ColumnarBatch:
    """Validate ``batch`` and convert it; ``after_seq`` is the highest seq already seen on this stream.

    Points come out as columns (:class:`~collector.store.store.ColumnarBatch`): one
    (check, name, unit, labels) tuple and one value per point, read straight from the
    protobuf objects, with no per-point row object (that object cost a fifth of decode).

    Sequence numbers must be strictly increasing, within the batch and across the
    stream's batches. Entries of a kind this collector does not know (a newer agent)
    are skipped but still advance the sequence, as the contract's compatibility rules
    say.

    ``now`` is when the batch arrived (the collector's clock). An entry stamped more than
    ``limits.max_clock_skew_s`` after it is not refused (it would be lost) but stored at
    ``now``: a clock running ahead, or a result stamped 2099, must not pin a host's latest
    result. The batch's ``clock_skew_s`` says how far ahead the furthest one was.
    """
    entries = batch.entries
    n = len(entries)
    if n == 0:
        raise IngestError("empty batch")
    if n > limits.max_batch_entries:
        raise IngestError(f"batch of {n} entries, more than {limits.max_batch_entries}")
    results: list[ResultRow] = []
    refs: list[SeriesRef] = []
    values: list[float] = []
    spans: list[tuple[int, float, int]] = []
    inventories: list[InventoryRow] = []
    health: list[HealthRow] = []
    session_rows: list[SessionEntryRow] = []
    prev = after_seq
    first_seq = 0
    findings_cache = _finding_cache(limits)
    now_ms = TS_MAX_MS if now is None else int(now * 1000)
    latest_ms = TS_MAX_MS if now is None else now_ms + int(limits.max_clock_skew_s * 1000)
    ahead_ms = 0
    for i, entry in enumerate(entries):
        seq = entry.seq
        if seq <= prev:
            raise IngestError(f"entry {i}: seq {seq} is not above the previous seq {prev}")
        if seq > SEQ_MAX:
            raise IngestError(f"entry {i}: seq {seq} is out of range")
        if i == 0:
            first_seq = seq
        prev = seq
        ts_ms = entry.ts_unix_ms
        if not TS_MIN_MS <= ts_ms < TS_MAX_MS:
            raise IngestError(f"entry {i} (seq {seq}): timestamp {ts_ms} ms is not between 2000 and 2100")
        if ts_ms > latest_ms:  # implausibly far ahead: stored at its arrival
            ahead_ms = max(ahead_ms, ts_ms - now_ms)
            ts_ms = now_ms
        ts = ts_ms / 1000.0
        kind = entry.WhichOneof("kind")
        if kind == "result":
            _decode_result(i, seq, ts, entry.result, limits, findings_cache, results, refs, values)
            if len(refs) > (spans[-1][2] if spans else 0):
                spans.append((seq, ts, len(refs)))
        elif kind == "inventory":
            inventories.append(_decode_inventory(str(_At(i, seq)), seq, ts, entry.inventory, limits))
        elif kind == "health":
            health.append(_decode_health(str(_At(i, seq)), seq, ts, entry.health, limits))
        elif kind == "recording" or kind == "session_event":
            try:
                session_rows.append(
                    session_entry(seq, ts, entry, limits.max_recording_chunk_bytes, limits.max_summary_len)
                )
            except ValueError as exc:
                raise IngestError(f"{_At(i, seq)} {exc}") from None
        # else: an entry kind from a newer agent; skipped, its seq still counts.
    return ColumnarBatch(
        max_seq=prev,
        min_seq=first_seq,
        results=results,
        points=[],
        inventories=inventories,
        health=health,
        point_refs=refs,
        point_values=values,
        point_spans=spans,
        clock_skew_s=ahead_ms / 1000.0,
        sessions=session_rows,
    )


def _decode_result(
    i: int,
    seq: int,
    ts: float,
    r: agent_pb2.CheckResult,
    limits: IngestLimits,
    findings_cache: dict[bytes, str],
    results: list[ResultRow],
    refs: list[SeriesRef],
    values: list[float],
) -> None:
    # The hot path of ingest: every attribute read of a protobuf message costs, so each
    # field is read once, and the error context (_At) is built only when it is needed.
    check = r.check
    layer = r.layer
    if (check, layer) not in _ok_check:
        _check_check(_At(i, seq), check, layer)
    key = r.key
    if key not in _ok_key:
        _check_key(_At(i, seq), key)
    severity = _SEVERITY.get(r.severity)
    if severity is None:
        _severity(_At(i, seq), r.severity)
    inspection_id = r.inspection_id
    if inspection_id and (len(inspection_id) > 64 or not _ID_RE.fullmatch(inspection_id)):
        raise IngestError(f"{_At(i, seq)}: inspection_id {inspection_id[:64]!r} is malformed")
    duration_ms = r.duration_ms
    if not math.isfinite(duration_ms) or duration_ms < 0:
        _finite(_At(i, seq, " duration_ms"), duration_ms)
        raise IngestError(f"{_At(i, seq)}: duration_ms {duration_ms} is negative")
    summary = r.summary
    if len(summary) > limits.max_summary_len or "\x00" in summary:
        check_text(_At(i, seq, " summary"), summary, limits.max_summary_len)
    findings = r.findings
    keys_blob = r.metric_keys
    metrics = r.metrics
    n_metrics = len(metrics)
    if keys_blob and n_metrics:
        raise IngestError(f"{_At(i, seq)}: carries both metrics and metric_keys; an agent sends one form")
    findings_json = _findings_json(i, seq, findings, limits, findings_cache) if findings else "[]"
    if len(findings_json) + len(summary) > limits.max_result_chars:
        raise IngestError(
            f"{_At(i, seq)}: summary and findings are {len(findings_json) + len(summary)} characters, "
            f"more than {limits.max_result_chars}"
        )
    results.append(
        ResultRow(
            seq,
            ts,
            check,
            layer,
            severity,  # type: ignore[arg-type]  # not None: _severity raised otherwise
            key,
            summary,
            duration_ms,
            findings_json,
            inspection_id or None,
        )
    )
    if not n_metrics:
        raw_values = r.metric_values
        if keys_blob or raw_values:
            _columnar_metrics(i, seq, check, keys_blob, raw_values, limits, refs, values)
        return
    where = _At(i, seq)
    if n_metrics > limits.max_metrics:
        raise IngestError(f"{where}: {n_metrics} metrics, more than {limits.max_metrics}")
    max_name = limits.max_name_len
    max_value = limits.max_label_value_len
    ok_metric = _ok_metric
    ok_label_key = _ok_label_key
    isfinite = math.isfinite
    append_ref = refs.append
    append_value = values.append
    if len(_refs) >= _REFS_MAX:
        _refs.clear()
    intern_ref = _refs.setdefault
    labels: tuple[tuple[str, str], ...]
    for j, m in enumerate(metrics):
        name = m.name
        unit = m.unit
        if (name, unit) not in ok_metric:
            _check_metric_name(where + f" metric {j}", name, unit, max_name)
        value = m.value
        if not isfinite(value):
            raise IngestError(f"{where} metric {name}: value {value!r} is not a finite number")
        raw = m.labels
        if not raw:
            labels = ()
        elif len(raw) == 1:
            # The common case, inline: one known label key and a short value.
            label = raw[0]
            key = label.key
            text = label.value
            if key in ok_label_key and len(text) <= max_value and "\x00" not in text:
                labels = ((key, text),)
            else:
                labels = _labels(where + f" metric {name}", raw, limits)
        else:
            labels = _labels(where + f" metric {name}", raw, limits)
        ref = (check, name, unit, labels)
        append_ref(intern_ref(ref, ref))
        append_value(value)


# Key sets already validated: (check, serialized MetricKeys) -> its refs. A host's checks
# report the same series every cycle, and hosts of one product share most key sets, so
# the usual result costs one dict lookup here instead of validating every sample.
_key_sets: dict[tuple[str, bytes], tuple[SeriesRef, ...]] = {}


def _columnar_metrics(
    i: int,
    seq: int,
    check: str,
    blob: bytes,
    raw_values: Any,
    limits: IngestLimits,
    refs: list[SeriesRef],
    values: list[float],
) -> None:
    """``CheckResult.metric_keys`` / ``metric_values``: the key set validated once, then only values."""
    keys = _key_sets.get((check, blob))
    if keys is None:
        keys = _parse_key_set(_At(i, seq), check, blob, limits)
        if len(_key_sets) >= _CACHE_MAX:
            _key_sets.clear()
        _key_sets[(check, blob)] = keys
    got = raw_values[:]  # a list of floats; slicing is cheaper than list() on a protobuf container
    if len(got) != len(keys):
        raise IngestError(f"{_At(i, seq)}: {len(got)} metric_values for {len(keys)} metric_keys")
    # A finite sum means every value is finite (NaN and infinities propagate); only when
    # it is not (a bad value, or finite values whose sum overflows) is each one checked.
    if not math.isfinite(sum(got)) and not all(map(math.isfinite, got)):
        j = next(j for j, v in enumerate(got) if not math.isfinite(v))
        raise IngestError(f"{_At(i, seq)} metric {keys[j][1]}: value {got[j]!r} is not a finite number")
    refs.extend(keys)
    values.extend(got)


def _parse_key_set(where: _At, check: str, blob: bytes, limits: IngestLimits) -> tuple[SeriesRef, ...]:
    if len(blob) > limits.max_document_len:
        raise IngestError(f"{where}: metric_keys is {len(blob)} bytes, more than {limits.max_document_len}")
    try:
        parsed = agent_pb2.MetricKeys.FromString(blob)
    except DecodeError as exc:
        raise IngestError(
            f"{where}: metric_keys does not parse as MetricKeys ({type(exc).__name__})"
        ) from None
    keys = parsed.keys
    if len(keys) > limits.max_metrics:
        raise IngestError(f"{where}: {len(keys)} metric_keys, more than {limits.max_metrics}")
    out: list[SeriesRef] = []
    for j, k in enumerate(keys):
        name = k.name
        unit = k.unit
        if (name, unit) not in _ok_metric:
            _check_metric_name(where + f" metric_keys {j}", name, unit, limits.max_name_len)
        labels = _labels(where + f" metric {name}", k.labels, limits) if k.labels else ()
        ref = (check, name, unit, labels)
        out.append(_refs.setdefault(ref, ref))
    if len(set(out)) != len(out):
        seen: set[SeriesRef] = set()
        dup = next(ref for ref in out if ref in seen or seen.add(ref))  # type: ignore[func-returns-value]
        raise IngestError(f"{where}: metric_keys lists the series {dup[1]} {dict(dup[3])} twice")
    return tuple(out)


def _decode_inventory(
    where: str, seq: int, ts: float, inv: agent_pb2.Inventory, limits: IngestLimits
) -> InventoryRow:
    text = inv.document_json
    document = _json_object(f"{where} inventory", text, limits.max_document_len)
    for product, version in extract_products(document).items():
        # The upgrade records keep at most PRODUCT_TEXT_MAX characters (PostgreSQL refused longer).
        if len(product) > PRODUCT_TEXT_MAX or len(version) > PRODUCT_TEXT_MAX:
            raise IngestError(
                f"{where} inventory products: product {product[:64]!r} or its version is longer "
                f"than {PRODUCT_TEXT_MAX} characters"
            )
    digest = hashlib.sha256(text.encode()).hexdigest()
    if inv.sha256 and inv.sha256 != digest:
        if not _HEX64_RE.fullmatch(inv.sha256):
            raise IngestError(f"{where}: inventory sha256 is not 64 lowercase hex digits")
        raise IngestError(f"{where}: inventory sha256 does not match its document")
    return InventoryRow(seq=seq, ts=ts, document=document, sha256=digest)


def _decode_health(
    where: str, seq: int, ts: float, h: agent_pb2.AgentHealth, limits: IngestLimits
) -> HealthRow:
    durations = h.check_duration_ms
    if len(durations) > limits.max_check_durations:
        raise IngestError(
            f"{where}: {len(durations)} check durations, more than {limits.max_check_durations}"
        )
    check_ms: dict[str, float] = {}
    for name, ms in durations.items():
        if len(name) > 128 or not _CHECK_RE.fullmatch(name):
            raise IngestError(f"{where}: check_duration_ms key {name[:64]!r} is not a check name")
        check_ms[name] = _finite(f"{where} check_duration_ms {name}", ms)
    document: dict[str, Any] = {
        "cpu_seconds_total": _finite(f"{where} cpu_seconds_total", h.cpu_seconds_total),
        "rss_bytes": h.rss_bytes,
        "spool_depth": h.spool_depth,
        "spool_bytes": h.spool_bytes,
        "dropped_total": h.dropped_total,
        "cycle_cpu_seconds": _finite(f"{where} cycle_cpu_seconds", h.cycle_cpu_seconds),
        "check_duration_ms": check_ms,
        "abandoned_threads": h.abandoned_threads,
    }
    return HealthRow(seq=seq, ts=ts, document=document)


LOGGED_LIMITS: Final = IngestLimits(
    max_batch_entries=1_000_000,
    max_findings=1_000_000,
    max_metrics=1_000_000,
    max_labels=1_000_000,
    max_name_len=1_000_000,
    max_label_value_len=1 << 30,
    max_summary_len=1 << 30,
    max_details_len=1 << 30,
    max_document_len=1 << 30,
    max_check_durations=1_000_000,
    max_result_chars=1 << 30,
    max_recording_chunk_bytes=1 << 30,
)
"""A logged batch passed the limits in force when it arrived; a later, tighter config must
not turn it into a quarantined row. Every other check (names, finite numbers, JSON) still runs."""


def parse_batch(payload: bytes) -> agent_pb2.EntryBatch:
    """Parse an agent's serialized EntryBatch; :class:`IngestError` when it does not parse."""
    try:
        batch: agent_pb2.EntryBatch = agent_pb2.EntryBatch.FromString(payload)
    except DecodeError as exc:
        raise IngestError(f"the batch does not parse as an EntryBatch ({type(exc).__name__})") from None
    return batch


def decode_logged(payload: bytes, received_at: float | None = None) -> ColumnarBatch:
    """Decode an ingest-log payload (EntryBatch bytes, validated when appended) for the materialiser.

    Entries at or below the row's ``after_seq`` are replays; the store skips them, so
    decoding starts from seq 0.
    """
    try:
        batch = agent_pb2.EntryBatch.FromString(payload)
    except DecodeError as exc:
        raise IngestError(f"logged payload does not parse as an EntryBatch ({type(exc).__name__})") from None
    return decode(batch, limits=LOGGED_LIMITS, after_seq=0, now=received_at)
