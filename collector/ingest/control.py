"""The stream's control messages: the agent's Hello (its host facts) and its gap reports.

Hostile input like every batch (see :mod:`collector.ingest.decode`): each field is checked
and the first violation raises :class:`~collector.ingest.decode.IngestError` naming it.
"""

from __future__ import annotations

import itertools
from typing import Final

from collector.ingest.decode import SEQ_MAX, SNAKE_RE, TS_MAX_MS, TS_MIN_MS, IngestError, check_text
from collector.store.types import GapRow, HostFactsRow
from protos.diag.v1 import agent_pb2

__all__ = ["GAP_COUNT_MAX", "decode_gaps", "decode_hello"]


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
    collector.ingest.decode.IngestError: gap 1: range 5..9 overlaps gap 0's range 3..5
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
        if len(reason) > 64 or not SNAKE_RE.fullmatch(reason):
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
        return check_text(f"hello {field}", value, max_len)

    if len(hello.labels) > 64:
        raise IngestError(f"hello: {len(hello.labels)} labels, more than 64")
    labels = {}
    for key, value in hello.labels.items():
        if len(key) > 64 or not SNAKE_RE.fullmatch(key):
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
