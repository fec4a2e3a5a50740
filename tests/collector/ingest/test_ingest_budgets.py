"""Per-agent budgets at ingest: bytes as well as entries, bounded results, validated and
rate-limited gap reports (issue 13, Medium #5). Real grpc.aio server and SQLite store,
ingest in-process and in a worker process."""

from __future__ import annotations

import time

import grpc  # type: ignore[import-untyped, unused-ignore]
import pytest

from collector.ingest.decode import IngestError, IngestLimits, decode
from collector.ingest.grpc_service import GrpcSettings
from collector.store.schema import gaps
from protos.diag.v1 import agent_pb2 as pb
from tests.collector.grpc_fixtures import collector_fixture
from tests.integration.harness import (
    count,
    hello_msg,
    result_entry,
    result_seqs,
    run_stream,
    stored_gaps,
)

MIB = 1024 * 1024
SETTINGS = GrpcSettings(
    listen="127.0.0.1:0",
    max_message_bytes=256 * 1024,
    max_batch_entries=50,
    rate_limit_entries_per_s=200.0,
    rate_limit_burst=300.0,
    rate_limit_bytes_per_s=64 * 1024,
    rate_limit_bytes_burst=300 * 1024,
)
NOW_MS = int(time.time() * 1000)


collector = collector_fixture(SETTINGS)


def big_batch(first: int, n: int = 10, summary_chars: int = 8000) -> pb.AgentMessage:
    entries = [result_entry(s, summary="x" * summary_chars) for s in range(first, first + n)]
    return pb.AgentMessage(batch=pb.EntryBatch(entries=entries))


def test_an_agent_over_its_byte_budget_is_slowed_with_resource_exhausted(collector, store, agent) -> None:
    """Few entries (well inside the entry rate) but many bytes: the byte budget stops them."""
    agent_id, token = agent
    messages = [hello_msg(agent_id)] + [big_batch(first) for first in range(1, 101, 10)]  # ~800 KB
    replies, code, details = run_stream(collector.address, token, messages)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, (code, details)
    assert "bytes/s" in details
    acked = max(r.ack.durable_through_seq for r in replies if r.WhichOneof("body") == "ack")
    # The burst (300 KiB) holds three of these ~80 KB batches, never all ten.
    assert 10 <= acked < 100
    assert result_seqs(store, agent_id) == list(range(1, acked + 1))  # what was acked is stored
    value = collector.metrics.registry.get_sample_value(
        "diag_ingest_rejects_total", {"reason": "rate_limited"}
    )
    assert value == 1


def test_a_result_bigger_than_a_person_can_read_is_refused_by_seq() -> None:
    finding = pb.Finding(severity=pb.SEVERITY_WARN, key="BIG", summary="big", details="d" * 60_000)
    entry = result_entry(7, findings=[finding] * 5)  # 300 KB of findings, each within its own limits
    with pytest.raises(IngestError) as err:
        decode(pb.EntryBatch(entries=[entry]), limits=IngestLimits(), after_seq=0)
    assert "entry 0 (seq 7): summary and findings are" in str(err.value)
    assert f"more than {256 * 1024}" in str(err.value)
    ok = result_entry(8, findings=[finding] * 4)  # 240 KB: fine
    assert decode(pb.EntryBatch(entries=[ok]), limits=IngestLimits(), after_seq=0).max_seq == 8


def gap(first: int, last: int, count: int, at_ms: int = NOW_MS - 60_000) -> pb.Gap:
    return pb.Gap(first_seq=first, last_seq=last, count=count, reason="spool_full", dropped_at_unix_ms=at_ms)


@pytest.mark.parametrize(
    ("gaps_sent", "reason"),
    [
        pytest.param(
            [gap(1, 4, 4, at_ms=4_070_908_800_000)], "ahead of the collector's clock", id="dropped in 2099"
        ),
        pytest.param(
            [gap(1, 2**63 - 1, 2**62)], "is not plausible (at most 1099511627776)", id="count near 2^63"
        ),
        pytest.param(
            [gap(1, 10, 10), gap(5, 20, 16)], "gap 1: range 5..20 overlaps gap 0's range 1..10", id="overlap"
        ),
        pytest.param(
            [gap(30, 40, 11), gap(1, 35, 35)], "gap 1: range 1..35 overlaps gap 0's", id="overlap unsorted"
        ),
    ],
)
def test_implausible_gap_reports_are_refused_and_nothing_is_stored(
    collector, store, agent, gaps_sent: list[pb.Gap], reason: str
) -> None:
    agent_id, token = agent
    report = pb.AgentMessage(gaps=pb.GapReport(gaps=gaps_sent))
    _, code, details = run_stream(collector.address, token, [hello_msg(agent_id), report])
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details)
    assert reason in details, details
    assert count(store, gaps) == 0


def test_a_range_overlapping_a_recorded_one_is_settled_but_not_counted_twice(collector, store, agent) -> None:
    agent_id, token = agent
    first = pb.AgentMessage(gaps=pb.GapReport(gaps=[gap(10, 20, 11)]))
    grown = pb.AgentMessage(gaps=pb.GapReport(gaps=[gap(10, 25, 16)]))  # the same gap, grown: kept larger
    overlapping = pb.AgentMessage(gaps=pb.GapReport(gaps=[gap(15, 30, 16), gap(40, 41, 2)]))
    replies, code, _ = run_stream(collector.address, token, [hello_msg(agent_id), first, grown, overlapping])
    assert code == grpc.StatusCode.OK
    assert [list(r.ack.gaps_recorded) for r in replies[1:]] == [[10], [10], [15, 40]]
    assert stored_gaps(store, agent_id) == [(10, 25, 16, "spool_full"), (40, 41, 2, "spool_full")]


def test_gap_reports_spend_the_agents_entry_budget(collector, store, agent) -> None:
    """Each gap costs one entry of the rate limit (burst 300): a flood of reports is stopped."""
    agent_id, token = agent
    reports = [
        pb.AgentMessage(gaps=pb.GapReport(gaps=[gap(s, s, 1) for s in range(first, first + 100)]))
        for first in range(1, 10_001, 100)
    ]
    replies, code, details = run_stream(collector.address, token, [hello_msg(agent_id), *reports])
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "entries/s" in details, (code, details)
    recorded = sum(len(r.ack.gaps_recorded) for r in replies[1:])
    assert 300 <= recorded < 1000, recorded
    assert count(store, gaps) == recorded
