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
collector.ingest.IngestError: entry 0: seq 7 is not above the previous seq 7
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from google.protobuf.message import DecodeError  # type: ignore[import-untyped, unused-ignore]

from collector.store.inventory import PRODUCT_TEXT_MAX, extract_products
from collector.store.store import ColumnarBatch, SeriesRef, point_count
from collector.store.types import (
    GapRow,
    HealthRow,
    HostFactsRow,
    InventoryRow,
    ResultRow,
)
from protos.diag.v1 import agent_pb2

__all__ = [
    "IngestError",
    "IngestLimits",
    "IngestProcess",
    "IngestRejected",
    "LogSettings",
    "decode",
    "decode_gaps",
    "decode_hello",
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
_SNAKE_RE: Final = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
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


def _text(where: object, value: str, max_len: int) -> str:
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
    if len(name) > max_len or not _SNAKE_RE.fullmatch(name):
        raise IngestError(f"{where}: metric name {name[:64]!r} is not snake_case of at most {max_len}")
    if len(unit) > 32 or not _SNAKE_RE.fullmatch(unit):
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
            if len(key) > 64 or not _SNAKE_RE.fullmatch(key):
                raise IngestError(f"{where}: label key {key[:64]!r} is not snake_case of at most 64")
            _remember(_ok_label_key, key)
        value = label.value
        if len(value) > max_value or "\x00" in value:
            _text(f"{where}: label {key}", value, max_value)
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
        _text(f"{where} summary", summary, max_summary)
    doc = {"severity": severity, "key": key, "summary": summary}
    if f.item:
        doc["item"] = _text(f"{where} item", f.item, limits.max_label_value_len)
    if f.details:
        doc["details"] = _text(f"{where} details", f.details, limits.max_details_len)
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
    collector.ingest.IngestError: inventory: NaN is not a JSON number
    >>> _json_object("inventory", '{"disk": 1e999}', 1000)
    Traceback (most recent call last):
    ...
    collector.ingest.IngestError: inventory: number 1e999 is out of range
    """
    _text(where, text, max_len)
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
        _text(_At(i, seq, " summary"), summary, limits.max_summary_len)
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


GAP_COUNT_MAX: Final = 2**40
"""The most entries one gap may say were lost (a thousand a second for 35 years); more is not
plausible, and counts near 2**63 once overflowed the sums over them."""


def decode_gaps(
    report: agent_pb2.GapReport,
    max_gaps: int = 1000,
    now_ms: int | None = None,
    max_skew_ms: int = 300_000,
) -> list[GapRow]:
    """Validate a gap report: plausible ranges, counts and times; no two ranges overlapping.

    ``now_ms`` is the collector's clock: a ``dropped_at`` more than ``max_skew_ms`` after it
    is refused (none when None). Ranges come back sorted by ``first_seq``.

    >>> from protos.diag.v1 import agent_pb2 as pb
    >>> decode_gaps(pb.GapReport(gaps=[pb.Gap(first_seq=3, last_seq=5, count=3, reason="spool_full",
    ...     dropped_at_unix_ms=1_700_000_000_000)]))
    [GapRow(first_seq=3, last_seq=5, count=3, reason='spool_full', dropped_at=1700000000.0)]
    >>> at = 1_700_000_000_000
    >>> decode_gaps(pb.GapReport(gaps=[pb.Gap(first_seq=3, last_seq=5, count=1, dropped_at_unix_ms=at),
    ...     pb.Gap(first_seq=5, last_seq=9, count=1, dropped_at_unix_ms=at)]))
    Traceback (most recent call last):
    ...
    collector.ingest.IngestError: gap 1: range 5..9 overlaps gap 0's range 3..5
    """
    n = len(report.gaps)
    if n == 0:
        raise IngestError("empty gap report")
    if n > max_gaps:
        raise IngestError(f"gap report of {n} gaps, more than {max_gaps}")
    latest_ms = TS_MAX_MS if now_ms is None else min(TS_MAX_MS, now_ms + max_skew_ms)
    rows: list[tuple[int, GapRow]] = []
    for i, g in enumerate(report.gaps):
        where = f"gap {i}"
        if not 1 <= g.first_seq <= g.last_seq <= SEQ_MAX:
            raise IngestError(f"{where}: range {g.first_seq}..{g.last_seq} is not a valid seq range")
        if not 1 <= g.count <= g.last_seq - g.first_seq + 1:
            raise IngestError(f"{where}: count {g.count} does not fit range {g.first_seq}..{g.last_seq}")
        if g.count > GAP_COUNT_MAX:
            raise IngestError(f"{where}: count {g.count} is not plausible (at most {GAP_COUNT_MAX})")
        reason = g.reason or "unspecified"
        if len(reason) > 64 or not _SNAKE_RE.fullmatch(reason):
            raise IngestError(f"{where}: reason {reason[:64]!r} is not snake_case of at most 64")
        if not TS_MIN_MS <= g.dropped_at_unix_ms < TS_MAX_MS:
            raise IngestError(f"{where}: dropped_at {g.dropped_at_unix_ms} ms is not between 2000 and 2100")
        if g.dropped_at_unix_ms > latest_ms:
            raise IngestError(
                f"{where}: dropped_at {g.dropped_at_unix_ms} ms is more than {max_skew_ms // 1000} s "
                "ahead of the collector's clock"
            )
        rows.append((i, GapRow(g.first_seq, g.last_seq, g.count, reason, g.dropped_at_unix_ms / 1000.0)))
    rows.sort(key=lambda r: r[1].first_seq)
    for (i, before), (j, after) in itertools.pairwise(rows):
        if after.first_seq <= before.last_seq:
            first, second = sorted(((i, before), (j, after)))
            raise IngestError(
                f"gap {second[0]}: range {second[1].first_seq}..{second[1].last_seq} overlaps "
                f"gap {first[0]}'s range {first[1].first_seq}..{first[1].last_seq}"
            )
    return [row for _, row in rows]


def decode_hello(hello: agent_pb2.Hello) -> HostFactsRow:
    """Validate the host facts an agent reports in its Hello."""

    def short(field: str, value: str, max_len: int = 256) -> str:
        return _text(f"hello {field}", value, max_len)

    if len(hello.labels) > 64:
        raise IngestError(f"hello: {len(hello.labels)} labels, more than 64")
    labels = {}
    for key, value in hello.labels.items():
        if len(key) > 64 or not _SNAKE_RE.fullmatch(key):
            raise IngestError(f"hello: label key {key[:64]!r} is not snake_case of at most 64")
        labels[key] = short(f"label {key}", value)
    f = hello.facts
    if f.boot_time_unix_ms < 0 or f.boot_time_unix_ms >= TS_MAX_MS:
        raise IngestError(f"hello: boot_time {f.boot_time_unix_ms} ms is out of range")
    if f.memory_bytes > SEQ_MAX:
        raise IngestError(f"hello: memory_bytes {f.memory_bytes} is out of range")
    return HostFactsRow(
        hostname=short("hostname", hello.hostname),
        agent_version=short("agent_version", hello.agent_version, 64),
        labels=labels,
        os_id=short("os_id", f.os_id, 64),
        os_version=short("os_version", f.os_version, 64),
        kernel=short("kernel", f.kernel, 128),
        arch=short("arch", f.arch, 32),
        cpu_count=f.cpu_count,
        memory_bytes=f.memory_bytes,
        boot_time=f.boot_time_unix_ms / 1000.0,
    )


# --- the ingest log's payload ----------------------------------------------------------------


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


# --- out-of-process ingest --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogSettings:
    """How an ingest worker runs its ingest log: its shard, its bound, its memory."""

    shard_count: int = 1
    shard_index: int = 0
    max_pending_points: int = 2_000_000
    """The log's bound (this worker's shard, in metric points). At or over it, batches are
    stored directly, Ack after materialisation: the backlog stops growing and the Acks slow
    to the store's pace (backpressure)."""
    direct_max_points: int = 10_000
    """With an empty log, a group of at most this many points is stored directly (visible at
    its Ack); a larger group (a burst) goes to the log. 0: always log below the bound."""
    cache_points: int = 500_000
    """Decoded batches kept in memory for the materialiser (older ones are decoded again);
    about 165 bytes per point with its results (80 MB by default)."""


class IngestRejected(Exception):
    """The ingest worker refused a batch: ``kind`` is invalid, batch_too_large, rate_limited,
    revoked or store_error.

    ``acked`` is set when the request carried several batches and those before the refused
    one are durable: (durable, max_seq, points, entries, batches) for them, to acknowledge
    before the stream ends with the error.
    """

    def __init__(self, kind: str, message: str, acked: tuple[int, int, int, int, int] | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.acked = acked


class IngestProcess:
    """Validate and log batches in a child process, which also materialises its log shard.

    One Python process is bound to one core by the GIL; on a collector whose CPU goes
    into ingest, moving validation and the store into a second process lets the event
    loop (gRPC, HTTP) and the store work in parallel. The child opens its own
    :class:`~collector.store.Store` on the same URL. Its Ack path is short: validate
    (:func:`decode`), append the batch as one ingest-log row and advance the agent's
    durable seq (:meth:`Store.append_log`), reply. Behind it, the same process
    materialises its shard of the log (:meth:`Store.materialise`, then the observers)
    whenever the pipe is idle, in small transactions so a new request waits little.

    The log is for bursts: when it is empty and a group is small (a fleet below
    saturation), the worker stores the group directly (:meth:`Store.ingest_many`, one
    transaction, visible at the Ack), which costs less than logging and materialising. When
    the backlog reaches :attr:`LogSettings.max_pending_points`, it stores directly too:
    the log stops growing and each Ack waits for its batch (and that agent's older logged
    batches) to be materialised, so the fleet slows to the store's pace (backpressure).
    Requests travel as serialized protobuf bytes over a pipe; replies are (durable seq,
    max seq, points).
    """

    def __init__(
        self,
        store_url: str,
        store_options: dict[str, Any],
        limits: IngestLimits,
        threads: int = 16,
        log_settings: LogSettings | None = None,
    ) -> None:
        import multiprocessing
        import queue
        import threading
        from concurrent.futures import Future

        self._ctx = multiprocessing.get_context("spawn")
        self._store_url = store_url
        self._store_options = store_options
        self._limits = limits
        self._threads = threads
        self._log_settings = log_settings or LogSettings()
        self._pending: dict[int, Future[tuple[int, int, int, int]]] = {}
        self._lock = threading.Lock()
        self._next_id = 0
        self._outbox: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._conn: Any = None
        self._proc: Any = None
        self._threads_started: list[threading.Thread] = []
        self._mode: str | None = None
        """How requests reach the pipe, fixed by the first submit: "threads" (:meth:`submit`,
        from any thread) or "asyncio" (:meth:`submit_async`, the serving event loop)."""
        self._loop: Any = None
        self._writer: Any = None
        self._attached: Any = None
        self._frame: list[Any] = []
        self._reader_task: Any = None
        self._drain_task: Any = None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else int(self._proc.pid)

    def start(self, timeout: float = 60.0) -> None:
        """Start the child and wait until its store is open."""
        parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(
            target=_ingest_worker_main,
            args=(
                child,
                self._store_url,
                self._store_options,
                self._limits,
                self._threads,
                self._log_settings,
            ),
            name="diag-ingest",
            daemon=True,
        )
        self._proc.start()
        child.close()
        if not parent.poll(timeout):
            self._proc.kill()
            raise RuntimeError("the ingest worker did not start in time")
        hello = parent.recv()
        if hello[0] != "ready":
            raise RuntimeError(f"the ingest worker failed to start: {hello[1]}")
        self._conn = parent

    def submit(
        self,
        identity: AgentIdentityLike,
        batch: bytes | list[bytes],
        after_seq: int,
        max_entries: int | None = None,
    ) -> Any:
        """Queue a serialized EntryBatch as the agent sent it (hostile bytes), or several, in order.

        Returns a concurrent Future of (durable, max_seq, points, entries) for all of them.
        ``max_entries`` is what the agent's rate limit allows now: a batch that takes the
        request past it is refused (``rate_limited``) before it is decoded or stored. When
        a later batch of several is refused, the :class:`IngestRejected` carries what the
        earlier ones got (:attr:`IngestRejected.acked`).
        """
        import asyncio
        import threading
        from concurrent.futures import Future

        with self._lock:
            if self._mode is None:
                self._mode = "threads"
                for target in (self._send_loop, self._recv_loop):
                    t = threading.Thread(target=target, name=f"ingest-{target.__name__}", daemon=True)
                    t.start()
                    self._threads_started.append(t)
        if self._mode == "asyncio":
            return asyncio.run_coroutine_threadsafe(
                self.submit_async(identity, batch, after_seq, max_entries), self._loop
            )
        future: Future[tuple[int, int, int, int]] = Future()
        with self._lock:
            self._next_id += 1
            req_id = self._next_id
            self._pending[req_id] = future
        self._outbox.put((req_id, identity, batch, after_seq, max_entries))
        return future

    async def submit_async(
        self,
        identity: AgentIdentityLike,
        batch: bytes | list[bytes],
        after_seq: int,
        max_entries: int | None = None,
    ) -> tuple[int, int, int, int]:
        """:meth:`submit` for the event loop that serves the agents: no threads in between.

        The first call attaches this worker's pipe to the running loop. Requests queued in
        one loop iteration go to the worker in one frame, and replies resolve the waiting
        coroutines directly, so a batch costs no thread handoff (and no GIL convoy) in the
        serving process.
        """
        import asyncio

        if self._mode == "threads":
            result: tuple[int, int, int, int] = await asyncio.wrap_future(
                self.submit(identity, batch, after_seq, max_entries)
            )
            return result
        if self._mode is None:
            self._mode = "asyncio"
            self._loop = asyncio.get_running_loop()
            self._attached = self._loop.create_task(self._attach())
        await asyncio.shield(self._attached)
        future: asyncio.Future[tuple[int, int, int, int]] = self._loop.create_future()
        self._next_id += 1
        self._pending[self._next_id] = future  # type: ignore[assignment]  # this mode's futures
        if not self._frame:
            self._loop.call_soon(self._flush)
        self._frame.append((self._next_id, identity, batch, after_seq, max_entries))
        return await future

    async def _attach(self) -> None:
        import asyncio
        import os
        import socket

        if self._conn is None:
            raise IngestRejected("store_error", "ingest worker not started")
        sock = socket.socket(fileno=os.dup(self._conn.fileno()))  # the Pipe's socketpair end
        sock.setblocking(False)
        reader, self._writer = await asyncio.open_unix_connection(sock=sock)
        self._reader_task = asyncio.get_running_loop().create_task(self._read_replies(reader))

    def _flush(self, force: bool = False) -> None:
        """Send the requests queued since the last frame as one frame, once the pipe has room.

        While the worker is busy the pipe fills; requests then wait here, as Python
        objects, until it drains, and go together in one frame. Writing them on
        regardless would pile them up in the transport's buffer, which is copied whole
        each time it grows (quadratic in the backlog), on the serving loop.
        """
        import pickle

        writer = self._writer
        if not self._frame:
            return
        if writer is None or writer.is_closing():
            frame, self._frame = self._frame, []
            self._fail_requests(frame, IngestRejected("store_error", "ingest worker unavailable"))
            return
        if not force and writer.transport.get_write_buffer_size() > PIPE_HIGH_WATER:
            if self._drain_task is None:
                self._drain_task = self._loop.create_task(self._flush_when_drained())
            return
        frame, self._frame = self._frame, []
        writer.write(_frame_bytes(pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL)))

    async def _flush_when_drained(self) -> None:
        """Wait for the pipe to take what it holds, then send what queued meanwhile."""
        try:
            await self._writer.drain()
        except (ConnectionError, OSError):
            pass  # the worker is gone: _flush fails what is queued
        finally:
            self._drain_task = None
        self._flush()

    def _fail_requests(self, frame: list[Any], exc: Exception) -> None:
        for item in frame:
            future = self._pending.pop(item[0], None)
            if future is not None and not future.done():
                future.set_exception(exc)

    async def _read_replies(self, reader: Any) -> None:
        import asyncio
        import pickle
        import struct

        try:
            while True:
                (size,) = struct.unpack("!i", await reader.readexactly(4))
                if size == -1:  # multiprocessing's header for frames of 2 GiB or more
                    (size,) = struct.unpack("!Q", await reader.readexactly(8))
                for req_id, *reply in pickle.loads(await reader.readexactly(size)):
                    _settle(self._pending.pop(req_id, None), *reply)
        except (asyncio.IncompleteReadError, OSError):
            pass  # the worker exited
        finally:
            self._fail_all(IngestRejected("store_error", "ingest worker exited"))

    def _send_loop(self) -> None:
        import queue

        # Everything queued goes in one frame: one pickle and one write for a burst of
        # batches, which the worker then stores as one group.
        while True:
            frame = [self._outbox.get()]
            while frame[-1] is not None:
                try:
                    frame.append(self._outbox.get_nowait())
                except queue.Empty:
                    break
            try:
                self._conn.send(frame)
                if frame[-1] is None:
                    return
            except (OSError, ValueError) as exc:  # the worker is gone: fail this request, stop sending
                self._fail_all(
                    IngestRejected("store_error", f"ingest worker unavailable ({type(exc).__name__})")
                )
                return

    def _recv_loop(self) -> None:
        while True:
            try:
                replies = self._conn.recv()  # one frame per group the worker stored
            except (EOFError, OSError):  # the worker exited: every waiting batch fails, none was acked
                self._fail_all(IngestRejected("store_error", "ingest worker exited"))
                return
            for req_id, *reply in replies:
                with self._lock:
                    future = self._pending.pop(req_id, None)
                _settle(future, *reply)

    def _fail_all(self, exc: Exception) -> None:
        loop = self._loop
        if self._mode == "asyncio" and loop is not None and loop.is_running() and _running_loop() is not loop:
            loop.call_soon_threadsafe(self._fail_all_now, exc)  # asyncio futures belong to their loop
            return
        self._fail_all_now(exc)

    def _fail_all_now(self, exc: Exception) -> None:
        import contextlib

        with self._lock:
            pending, self._pending = self._pending, {}
        for future in pending.values():
            # RuntimeError: an asyncio future whose loop is already closed (shutdown);
            # nobody is left waiting on it.
            with contextlib.suppress(RuntimeError):
                if not future.done():
                    future.set_exception(exc)

    def close(self) -> None:
        """Stop the child (it finishes what it started) and fail anything still waiting.

        Callable from any thread, including after the serving loop has stopped.
        """
        if self._mode == "threads":
            self._outbox.put(None)  # the send loop forwards it: one writer on the pipe
        elif self._conn is not None:
            self._send_stop()
        if self._proc is not None:
            self._proc.join(10)
            if self._proc.is_alive():
                self._proc.kill()
        self._fail_all(IngestRejected("store_error", "ingest worker stopped"))

    def _send_stop(self) -> None:
        import contextlib
        import pickle
        import threading

        loop = self._loop
        if loop is not None and loop.is_running() and self._writer is not None:
            sent = threading.Event()

            def stop() -> None:
                self._flush(force=True)
                if not self._writer.is_closing():
                    self._writer.write(_frame_bytes(pickle.dumps([None])))
                sent.set()

            if _running_loop() is loop:
                stop()
            else:
                loop.call_soon_threadsafe(stop)
                sent.wait(5)
            return
        # No loop (never attached, or it has stopped): write on the pipe directly; an
        # error means the worker is already gone.
        with contextlib.suppress(OSError, ValueError):
            self._conn.send([None])


def _settle(future: Any, kind: str, payload: Any, acked: tuple[int, int, int, int, int] | None) -> None:
    """Resolve a request's future (asyncio or concurrent) with the worker's reply to it."""
    if future is None or future.done():  # cancelled, or failed already
        return
    if kind == "ok":
        future.set_result(payload)
    else:
        future.set_exception(IngestRejected(kind, payload, acked))


def _running_loop() -> Any:
    import asyncio

    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


PIPE_HIGH_WATER: Final = 256 * 1024
"""Bytes in the serving process's pipe buffer above which requests wait to be sent together."""


def _frame_bytes(payload: bytes) -> bytes:
    """``payload`` framed as :class:`multiprocessing.connection.Connection` frames it."""
    import struct

    size = len(payload)
    head = struct.pack("!i", size) if size < 0x7FFFFFFF else struct.pack("!iQ", -1, size)
    return head + payload


AgentIdentityLike = Any
_Request = tuple[int, AgentIdentityLike, bytes | list[bytes], int, int | None]
"""(request id, identity, one EntryBatch's bytes or several, after_seq, max_entries)."""


def _shard_config(config: Any, settings: LogSettings) -> Any:
    """``config`` with a detection state row of this worker's own when there are several.

    Each worker owns whole customers (``crc32(slug) % shard_count``), so its detector sees
    every host of those customers; its baselines and incidents are saved under
    ``<detection.shard>.<index>-of-<count>`` so workers never overwrite each other's state.
    """
    if settings.shard_count <= 1:
        return config
    emergency = config.emergency
    detection = emergency.detection
    shard = f"{detection.shard}.{settings.shard_index}-of-{settings.shard_count}"
    detection = detection.model_copy(update={"shard": shard})
    return config.model_copy(update={"emergency": emergency.model_copy(update={"detection": detection})})


def _ingest_worker_main(
    conn: Any,
    url: str,
    options: dict[str, Any],
    limits: IngestLimits,
    threads: int,
    log_settings: LogSettings | None = None,
) -> None:
    """Validate, log and acknowledge on one thread; materialise the log shard behind it.

    Every request waiting in the pipe when the previous group finished joins the next
    group (at most ``threads`` x 8 requests), so the group size follows the load without a
    thread per batch. ``threads`` only sizes the groups. (Measured: a thread per batch, or
    a separate store thread, costs more in GIL handoffs than the overlap gains.)
    """
    import logging
    import signal

    from sqlalchemy.exc import SQLAlchemyError

    from collector.store import Store

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    from collector.observe import build_observer

    settings = log_settings or LogSettings()
    options = dict(options)
    config = options.pop("config", None)  # the CollectorConfig, or None: no observers
    try:
        store = Store.open(url, migrate=False, **options)
        if config is not None:
            observer = build_observer(store, _shard_config(config, settings))
            if observer is not None:
                store.add_observer(observer)
    except (SQLAlchemyError, OSError, ValueError) as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    worker = _LogWorker(store, settings, limits, max(1, threads) * 8, logging.getLogger(__name__))
    # The worker holds a large, long-lived heap (decoded batches waiting for the
    # materialiser, detection baselines) and allocates fast. Python's automatic collector
    # would rescan that heap over and over (measured: a third of decode time); instead the
    # young generations are collected once a second and the whole heap every few minutes
    # (see _LogWorker.tick). Nothing here relies on the collector: it only frees cycles.
    import gc

    gc.freeze()
    gc.disable()
    conn.send(("ready", ""))
    try:
        worker.run(conn)
    finally:
        store.close()


FULL_GC_INTERVAL_S: Final = 300.0
"""How often the ingest worker collects its whole heap (young generations: every tick)."""
GC_QUIET_S: Final = 1.0
"""No request for this long: a lull, when the young generations are collected every tick.
(Not :data:`BUSY_WINDOW_S`: a closed-loop burst has gaps of that length, and a collection
then scans everything the burst has decoded so far.)"""
BUSY_GC_INTERVAL_S: Final = 30.0
"""During a burst, the ingest worker collects its young generations at most this often."""


class _Inbox:
    """The worker's side of the pipe: whole frames only, never a blocking read of half a one.

    The parent writes a frame (a list of requests, ``multiprocessing.connection`` framing)
    as its event loop gets to it, and a large one arrives in pieces. ``Connection.recv``
    would block the worker until the last piece came, idle while the parent is busy; this
    reads what has arrived without blocking and hands out only complete frames.
    """

    def __init__(self, conn: Any) -> None:
        import os
        import socket

        self._conn = conn
        self._sock = socket.socket(fileno=os.dup(conn.fileno()))
        self._buf = bytearray()
        # Received into one reused buffer, not a fresh 1 MiB bytes object per recv.
        self._chunk = memoryview(bytearray(1 << 20))
        self._items: list[Any] = []
        self._eof = False

    def drain(self) -> None:
        """Take in what the parent has written so far, without waiting.

        Called between the requests of a group too, not only before taking one: the
        socket holds little (about 200 KB on a default Linux) and the parent cannot write
        more until it is read. Read only between groups, it let one buffer's worth through
        per group: the worker then found its inbox nearly empty and sat idle while the
        parent held megabytes of requests for it.
        """
        import pickle
        import socket
        import struct

        chunk = self._chunk
        while not self._eof:
            try:
                n = self._sock.recv_into(chunk, 0, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                break
            if not n:
                self._eof = True
            self._buf += chunk[:n]
        buf = self._buf
        start = 0
        while len(buf) - start >= 4:
            (size,) = struct.unpack_from("!i", buf, start)
            head = 4
            if size == -1:  # a frame of 2 GiB or more
                if len(buf) - start < 12:
                    break
                (size,) = struct.unpack_from("!Q", buf, start + 4)
                head = 12
            if len(buf) - start < head + size:
                break
            with memoryview(buf) as view:
                self._items.extend(pickle.loads(view[start + head : start + head + size]))
            start += head + size
        if start:
            # A new buffer for what is left (part of the next frame), not `del buf[:start]`:
            # a bytearray trimmed at the front copies all of itself when it next grows,
            # and the next receive appends to it.
            self._buf = buf[start:]

    def wait(self, timeout: float) -> bool:
        """True once a request (or the stop marker) is ready; False after ``timeout`` seconds."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            self.drain()
            if self._items:
                return True
            if self._eof:
                raise EOFError
            left = deadline - time.monotonic()
            if self._buf:  # half a frame: the rest is on its way, worth a short wait
                left = max(left, 0.005)
            if left <= 0 or not self._conn.poll(left):
                self.drain()
                return bool(self._items)

    def take(self, max_items: int) -> list[Any]:
        """Up to ``max_items`` ready requests (more frames are read first if they have arrived)."""
        self.drain()
        taken, self._items = self._items[:max_items], self._items[max_items:]
        return taken


IDLE_CHUNK_POINTS: Final = 10_000
"""Points per materialiser transaction while the worker is idle (about 50 ms of work)."""
BUSY_CHUNK_POINTS: Final = 1_000
"""Points per materialiser transaction in a lull between requests (a burst is on): small,
so the next requests wait a few milliseconds, not the length of a full chunk."""
BUSY_PAUSE_S: Final = 0.02
"""When the Ack path is saturated, how long the pipe must stay quiet before the worker
materialises a chunk."""
SHARE_WINDOW_S: Final = 0.25
"""The window over which the Ack path's share of the worker's time is measured."""
SATURATED_SHARE: Final = 0.25
"""The Ack path is saturated when requests took this share of the worker's time in the last
:data:`SHARE_WINDOW_S` window."""
BUSY_WINDOW_S: Final = 0.05
"""A request within this long means the fleet is sending: materialise in busy chunks."""


class _LogWorker:
    """The ingest worker's loop (see :func:`_ingest_worker_main`), with its backlog accounting."""

    def __init__(
        self, store: Any, settings: LogSettings, limits: IngestLimits, max_group: int, log: Any
    ) -> None:
        self.store = store
        self.settings = settings
        self.limits = limits
        self.max_group = max_group
        self.log = log
        self.cache: dict[int, ColumnarBatch] = {}
        self.cache_points = 0
        self.pending_points = 0
        self.next_tick = 0.0
        self.next_full_gc = 0.0
        self.last_gc = 0.0
        self.last_request = 0.0
        self.retry_at = 0.0
        self.ack_seconds = 0.0  # spent on requests in the current share window
        self.ack_share = 0.0  # of the last window: how loaded the Ack path is
        self.share_since = 0.0
        self.refresh()

    def refresh(self) -> None:
        """Re-read this shard's backlog from the store (other processes, quarantined rows)."""
        from sqlalchemy.exc import SQLAlchemyError

        s = self.settings
        try:
            self.pending_points = self.store.log_stats(s.shard_count, s.shard_index).pending_points
        except SQLAlchemyError as exc:  # keep the last figure; the next refresh tries again
            self.log.warning("ingest log stats failed: %s", type(exc).__name__)

    def tick(self) -> None:
        import time

        now = time.monotonic()
        if now >= self.next_tick:
            self.next_tick = now + 1.0
            self.store.tick_observers()
            self.refresh()
            self.collect_garbage(now)

    def note_requests(self, started: float, ended: float) -> None:
        """A group of requests took ``started`` to ``ended``: keep :attr:`ack_share` current."""
        self.ack_seconds += ended - started
        if ended - self.share_since >= SHARE_WINDOW_S:
            # A window with no request at all leaves the share of the last busy one: only
            # a request ends a window, and an idle worker has no use for the figure.
            self.ack_share = min(1.0, self.ack_seconds / (ended - self.share_since))
            self.ack_seconds, self.share_since = 0.0, ended

    def collect_garbage(self, now: float) -> None:
        """Automatic GC is off in the worker (see :func:`_ingest_worker_main`): collect here.

        In a lull (no request for :data:`GC_QUIET_S`) the young generations are collected
        every tick and the whole heap every :data:`FULL_GC_INTERVAL_S`; during a burst only
        every :data:`BUSY_GC_INTERVAL_S`, so the Acks do not pay for scanning what the burst
        just decoded (the only garbage the collector finds here is rare reference cycles).
        """
        import gc

        if gc.isenabled():
            return
        quiet = now - self.last_request >= GC_QUIET_S
        if not quiet and now - self.last_gc < BUSY_GC_INTERVAL_S:
            return
        self.last_gc = now
        if now >= self.next_full_gc and (quiet or now >= self.next_full_gc + FULL_GC_INTERVAL_S):
            self.next_full_gc = now + FULL_GC_INTERVAL_S
            gc.collect()
        else:
            gc.collect(1)

    def materialise(self, max_points: int = 50_000) -> int:
        """Apply one chunk of the shard's oldest log rows; returns the batches applied or quarantined."""
        from sqlalchemy.exc import SQLAlchemyError

        s = self.settings
        try:
            done = self.store.materialise(
                shard_count=s.shard_count,
                shard_index=s.shard_index,
                max_points=max_points,
                cache=self.cache,
                decoder=decode_logged,
            )
        except (SQLAlchemyError, OSError) as exc:  # busy or unreachable: the rows stay, retried later
            self.log.warning("materialising the ingest log failed: %s", type(exc).__name__)
            self.stalled()
            return 0
        except Exception:  # a bug must not kill the worker: the rows stay in the log
            self.log.exception("materialising the ingest log failed")
            self.stalled()
            return 0
        for log_id in done.applied_ids:
            batch = self.cache.pop(log_id, None)
            if batch is not None:
                self.cache_points -= len(batch.point_values)
        self.pending_points = max(0, self.pending_points - done.points)
        if done.quarantined:
            self.refresh()
        if done.batches + done.quarantined == 0:
            self.refresh()
            self.stalled()
        return int(done.batches + done.quarantined)

    def stalled(self) -> None:
        """Nothing could be applied (another collector holds the shard, a busy store): back off a bit."""
        import time

        self.retry_at = time.monotonic() + 0.2

    def idle_timeout(self) -> float:
        """How long to wait for requests before the next materialise or tick is due."""
        import time

        due = self.next_tick
        if self.pending_points:
            due = min(due, self.retry_at)
        return max(0.0, due - time.monotonic())

    def remember(self, log_id: int, batch: ColumnarBatch) -> None:
        self.cache[log_id] = batch
        self.cache_points += len(batch.point_values)
        while self.cache_points > self.settings.cache_points and self.cache:
            oldest = next(iter(self.cache))
            self.cache_points -= len(self.cache.pop(oldest).point_values)

    def _validate(
        self,
        msgs: list[Any],
        failure: Callable[[BaseException], tuple[str, str]],
        between: Callable[[], None],
    ) -> tuple[list[tuple[int, Any, bytes, ColumnarBatch, int]], dict[int, tuple[str, str]]]:
        """Parse, limit and decode each request's batches, in order; a request stops at its first bad one.

        A request carries one batch, or several of one stream read while its previous
        request was in the worker (the serving process merges them: one request, one
        Ack). ``max_entries`` is what the agent's rate limit allows for all of them.
        """
        work: list[tuple[int, Any, bytes, ColumnarBatch, int]] = []
        failed: dict[int, tuple[str, str]] = {}
        limit = self.limits.max_batch_entries
        now = time.time()  # the batches' arrival, for timestamps too far ahead of it
        for req_id, identity, data, after_seq, max_entries in msgs:
            budget = max_entries
            for payload in data if isinstance(data, list) else (data,):
                try:
                    parsed = parse_batch(payload)
                    n = len(parsed.entries)
                    if n > limit:
                        failed[req_id] = ("batch_too_large", f"batch of {n} entries, more than {limit}")
                        break
                    if budget is not None:
                        if n > budget:
                            failed[req_id] = ("rate_limited", f"{n} entries, over the agent's rate limit")
                            break
                        budget -= n
                    decoded = decode(parsed, limits=self.limits, after_seq=after_seq, now=now)
                except IngestError as exc:
                    failed[req_id] = failure(exc)
                    break
                after_seq = decoded.max_seq
                work.append((req_id, identity, payload, decoded, n))
            between()
        return work, failed

    def run(self, conn: Any) -> None:
        import time

        from sqlalchemy.exc import SQLAlchemyError

        from collector.store import AgentRevoked, StoreError, UnknownAgent
        from collector.store.store import LogAppend

        def failure(exc: BaseException) -> tuple[str, str]:
            """(kind, message) of the reply for a batch that failed with ``exc``."""
            if isinstance(exc, AgentRevoked | UnknownAgent):
                return ("revoked", "unknown or revoked agent token")
            if isinstance(exc, IngestError | StoreError):
                return ("invalid", str(exc))
            return ("store_error", type(exc).__name__)

        s = self.settings
        inbox = _Inbox(conn)
        stopping = False
        while not stopping:
            try:
                while not inbox.wait(self.idle_timeout()):
                    now = time.monotonic()
                    if self.pending_points and now >= self.retry_at:
                        # Idle: catch up in chunks, smaller while a burst is still arriving,
                        # so Acks (the burst) go first and a new request waits little. When
                        # the Acks keep this process busy (saturation), the next frame is
                        # usually a moment away (the serving loop writes one per turn):
                        # only a real pause is spent materialising, or the backlog's bound
                        # makes the Acks wait for it (backpressure).
                        busy = now - self.last_request < BUSY_WINDOW_S
                        saturated = busy and self.ack_share >= SATURATED_SHARE
                        if saturated and inbox.wait(BUSY_PAUSE_S):
                            break
                        self.materialise(BUSY_CHUNK_POINTS if busy else IDLE_CHUNK_POINTS)
                    self.tick()
                self.tick()
                msgs = inbox.take(self.max_group)  # what the parent has sent, up to a group
                self.last_request = started = time.monotonic()
            except (EOFError, OSError):  # the parent is gone
                break
            if msgs[-1] is None:
                stopping = True
                msgs.pop()
            work, failed = self._validate(msgs, failure, inbox.drain)
            points = sum(len(done.point_values) for _, _, _, done, _ in work)
            direct = self.pending_points >= s.max_pending_points or (
                self.pending_points == 0 and points <= s.direct_max_points
            )
            outcomes: list[Any] = []
            try:
                if work and direct:
                    stored = self.store.ingest_many(
                        [(identity, done) for _, identity, _, done, _ in work],
                        payloads=[data for _, _, data, _, _ in work],
                    )
                    outcomes = [o if isinstance(o, Exception) else (o, None) for o in stored]
                elif work:
                    outcomes = self.store.append_log(
                        [
                            LogAppend(identity, data, done.max_seq, len(done.point_values))
                            for _, identity, data, done, _ in work
                        ]
                    )
            except (SQLAlchemyError, OSError) as exc:  # the whole call failed: nothing of it was acked
                outcomes = [exc] * len(work)
            except Exception as exc:  # a bug: fail these batches (the agents retry), never leave them waiting
                self.log.exception("ingest group failed")
                outcomes = [exc] * len(work)
            # A request's Ack covers its batches up to the first that failed; one stored
            # after it (same group) is not acknowledged: the agent resends it, and the
            # store skips it as a replay.
            acked: dict[int, tuple[int, int, int, int, int]] = {}  # and the batches so far
            store_failed: set[int] = set()
            for (req_id, _, _, done, entries), outcome in zip(work, outcomes, strict=True):
                if isinstance(outcome, Exception):
                    # The first failure of the request: it replaces a validation failure
                    # recorded for a later batch of it.
                    failed[req_id] = failure(outcome)
                    store_failed.add(req_id)
                    continue
                durable, log_id = outcome
                if log_id is not None:
                    self.remember(log_id, done)
                    self.pending_points += len(done.point_values)
                if req_id in store_failed:
                    continue
                _, _, points_before, entries_before, batches = acked.get(req_id, (0, 0, 0, 0, 0))
                points_now = points_before + point_count(done)
                acked[req_id] = (durable, done.max_seq, points_now, entries_before + entries, batches + 1)
            replies: list[tuple[int, str, Any, Any]] = []
            for req_id, *_ in msgs:
                if req_id in failed:
                    kind, message = failed[req_id]
                    replies.append((req_id, kind, message, acked.get(req_id)))
                elif req_id in acked:
                    replies.append((req_id, "ok", acked[req_id][:4], None))
                else:  # no batch in it: never sent by the serving process
                    replies.append((req_id, "invalid", "a request without batches", None))
            try:
                conn.send(replies)
            except (OSError, ValueError):  # the parent is gone: nobody is left to answer
                break
            self.note_requests(started, time.monotonic())
        # Stopping: catch up for a moment; what is left stays logged for the next start.
        deadline = time.monotonic() + 5.0
        while self.pending_points and time.monotonic() < deadline and self.materialise():
            pass
