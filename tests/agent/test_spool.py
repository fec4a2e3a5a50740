from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from agent.records import CheckRecord, MetricRecord
from agent.spool import (
    KIND_HEALTH,
    KIND_RESULT,
    ROW_OVERHEAD,
    Spool,
    decode_json,
    decode_record,
    encode_json,
    encode_record,
)
from checks.api import Metric, Result, Severity, Unit
from tests.agent.conftest import REPO, agent_env


def record(i: int = 0, metrics: int = 4) -> CheckRecord:
    return CheckRecord.from_outputs(
        f"host.c{i}",
        "host",
        1_700_000_000.0 + i,
        0.25,
        [
            Result(Severity.OK, "OK", "Load per core: 0.20"),
            Result(Severity.WARN, "FS_NEARLY_FULL", "81%", "/var"),
        ],
        [Metric(f"host_m{j}_count", j, Unit.COUNT, {"window": "1m"}) for j in range(metrics)],
    )


def _reference_encoding(rec: CheckRecord) -> bytes:
    """What encode_record wrote before it cached metric parts: the one JSON encoding."""
    encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return encoder.encode(rec.to_dict()).encode()


def _random_record(rng: random.Random, i: int) -> CheckRecord:
    values = [0.0, -0.0, 1e-310, 1e300, 2**53 + 1.0, 0.1, 12.5, -3.0, rng.random() * 1e6]
    labels = [
        {},
        {"mount": "/"},
        {"mount": '/mnt/"q"\\x'},
        {"iface": "网卡0", "mode": "tx"},
        {"k": "\n\t\x00"},
    ]
    rec = CheckRecord.from_outputs(
        f"host.c{i % 7}",
        "host",
        1_700_000_000.0 + rng.random(),
        rng.random() * 10,
        [Result(Severity.WARN, "FS_NEARLY_FULL", f'磁盘 {i} "full"', rng.choice([None, "/var"]))],
        [
            Metric(f"host_m{j}_count", rng.choice(values), Unit.COUNT, rng.choice(labels))
            for j in range(rng.randint(0, 6))
        ],
    )
    if rng.random() < 0.3:
        rec = dataclasses.replace(rec, inspection_id=f"insp-{i}")
    return rec


def test_encode_record_is_byte_for_byte_the_json_of_to_dict() -> None:
    rng = random.Random(5)
    for i in range(500):  # the same metrics come back with new values: cached parts are reused
        rec = _random_record(rng, i)
        assert encode_record(rec) == _reference_encoding(rec), rec
        assert decode_record(encode_record(rec)) == rec


def test_encode_record_of_a_decoded_record_with_odd_values_matches_too() -> None:
    rec = dataclasses.replace(
        record(1),
        metrics=(
            MetricRecord("host_a_count", 3, "count", ()),
            MetricRecord("host_b_count", True, "count", ()),
        ),
    )
    assert encode_record(rec) == _reference_encoding(rec)
    bad = dataclasses.replace(record(1), metrics=(MetricRecord("host_a_count", float("nan"), "count", ()),))
    with pytest.raises(ValueError):
        encode_record(bad)


def entry(size: int = 100, kind: str = KIND_HEALTH) -> tuple[str, float, bytes]:
    return (kind, time.time(), b"x" * size)


def test_codec_round_trip():
    rec = record(3)
    assert decode_record(encode_record(rec)) == rec
    assert decode_json(encode_json({"a": 1})) == {"a": 1}
    with pytest.raises(ValueError, match="not a JSON object"):
        decode_json(b"[1]")


def test_append_read_ack(tmp_path):
    with Spool(tmp_path / "spool.db") as spool:
        assert spool.append_records([record(1), record(2)]) == (1, 2)
        assert spool.append([entry()]) == (3, 3)
        rows = spool.read_from(2, limit=10)
        assert [(r.seq, r.kind) for r in rows] == [(2, KIND_RESULT), (3, KIND_HEALTH)]
        assert decode_record(rows[0].payload) == record(2)
        assert spool.read_from(1, limit=1)[0].seq == 1
        assert spool.ack(2) == 2
        stats = spool.stats()
        assert (stats.depth, stats.high_water, stats.stored_bytes) == (1, 3, 100 + ROW_OVERHEAD)
        assert spool.ack(2) == 0  # idempotent
        assert spool.append([]) == (3, 3)


def test_seq_never_goes_back_after_acks_vacuum_and_restart(tmp_path):
    path = tmp_path / "spool.db"
    with Spool(path) as spool:
        spool.append([entry() for _ in range(5)])
        spool.ack(5)
        spool.vacuum()
        assert spool.stats().depth == 0
    with Spool(path) as spool:
        assert spool.stats().high_water == 5
        assert spool.append([entry()]) == (6, 6)
    with Spool(path) as spool:
        assert spool.stats() == spool.stats().__class__(
            depth=1, stored_bytes=100 + ROW_OVERHEAD, high_water=6, dropped_total=0
        )


def test_full_spool_drops_oldest_and_records_one_growing_gap(tmp_path):
    path = tmp_path / "spool.db"
    row = 1000 + ROW_OVERHEAD
    with Spool(path, max_bytes=10 * row) as spool:
        spool.append([entry(1000) for _ in range(10)])
        assert spool.stats().dropped_total == 0
        spool.append([entry(1000) for _ in range(3)])  # drops 1..3
        spool.append([entry(1000) for _ in range(2)])  # drops 4..5: same gap, extended
        stats = spool.stats()
        assert (stats.depth, stats.dropped_total, stats.high_water) == (10, 5, 15)
        assert stats.stored_bytes <= spool.max_bytes
        assert spool.read_from(0, 1)[0].seq == 6
        (gap,) = spool.gaps()
        assert (gap.first_seq, gap.last_seq, gap.count, gap.reason) == (1, 5, 5, "spool_full")
        spool.mark_gaps_reported(gap.id)
        assert spool.gaps() == []
        spool.append([entry(1000)])  # a new gap after the reported one
        assert [(g.first_seq, g.last_seq) for g in spool.gaps()] == [(6, 6)]
    with Spool(path, max_bytes=10 * row) as spool:  # all of it persists
        assert spool.stats().dropped_total == 6
        assert len(spool.gaps(include_reported=True)) == 2


def test_batch_larger_than_the_spool_keeps_the_newest(tmp_path):
    row = 500 + ROW_OVERHEAD
    with Spool(tmp_path / "spool.db", max_bytes=3 * row) as spool:
        spool.append([entry(500) for _ in range(7)])
        assert [e.seq for e in spool.read_from(0)] == [5, 6, 7]
        assert spool.stats().dropped_total == 4


def test_spool_file_is_private(tmp_path):
    path = tmp_path / "sub" / "spool.db"
    Spool(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from agent.spool import Spool
    spool = Spool(Path(sys.argv[1]), max_bytes=int(sys.argv[2]))
    batch = [("result", time.time(), b"y" * 700) for _ in range(40)]
    for i in range(100000):
        first, last = spool.append(batch)
        if i % 7 == 3:
            spool.ack(first + 5)
        print(last, flush=True)
    """
)


@pytest.mark.integration
@pytest.mark.parametrize(
    "max_bytes", [pytest.param(256 * 1024 * 1024, id="roomy"), pytest.param(200_000, id="full")]
)
def test_kill_9_mid_write_leaves_a_consistent_spool(tmp_path, max_bytes):
    path = tmp_path / "spool.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(max_bytes)],
        stdout=subprocess.PIPE,
        text=True,
        env=agent_env(),
        cwd=REPO,
    )
    assert proc.stdout is not None
    last_reported = 0
    deadline = time.monotonic() + 20
    while last_reported < 4000 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        last_reported = int(line)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert last_reported >= 4000, "writer made too little progress"

    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    with Spool(path, max_bytes=max_bytes) as spool:
        stats = spool.stats()
        # Everything the writer reported as committed is there (or was acked/dropped).
        assert stats.high_water >= last_reported
        entries = spool.read_from(0, limit=1_000_000)
        seqs = [e.seq for e in entries]
        assert seqs == list(range(seqs[0], stats.high_water + 1)), "rows are one contiguous range"
        assert stats.depth == len(entries)
        assert stats.stored_bytes == sum(len(e.payload) + ROW_OVERHEAD for e in entries)
        assert all(e.payload == b"y" * 700 for e in entries)  # no torn rows
        if max_bytes < 1_000_000:
            assert stats.dropped_total > 0
            assert stats.stored_bytes <= max_bytes
        # and it keeps working: numbering continues after the crash
        assert spool.append([entry()]) == (stats.high_water + 1, stats.high_water + 1)


def test_spool_sink_writes_records_and_health_in_one_transaction_and_notifies(tmp_path):
    from agent.sink import SpoolSink

    notified = []
    with Spool(tmp_path / "spool.db") as spool:
        sink = SpoolSink(spool, on_write=lambda: notified.append(1))
        sink.write([record(1), record(2)], {"ts": 5.0, "rss_bytes": 1}, [None, encode_record(record(2))])
        sink.write_inventory({"os": "x"})
        entries = spool.read_from(0)
        assert [(e.seq, e.kind) for e in entries] == [
            (1, "result"),
            (2, "result"),
            (3, "health"),
            (4, "inventory"),
        ]
        assert decode_record(entries[0].payload) == record(1)
        assert decode_json(entries[2].payload) == {"ts": 5.0, "rss_bytes": 1}
        assert notified == [1, 1]
        assert sink.stats()["spool_depth"] == 4
