"""The collector's AgentStream service: real grpc.aio server, real SQLite store, raw clients."""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

import grpc  # type: ignore[import-untyped, unused-ignore]
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped, unused-ignore]
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc  # type: ignore[import-untyped, unused-ignore]

from collector.ingest.grpc_service import GrpcSettings
from collector.store.schema import check_results
from collector.store.store import Store
from protos.diag.v1 import agent_pb2 as pb
from tests.collector.grpc_fixtures import collector_fixture
from tests.integration.harness import (
    InProcessCollector,
    LiveStream,
    batch_msg,
    count,
    hello_msg,
    result_entry,
    result_seqs,
    run_stream,
    stored_gaps,
    stored_points,
    wait_for,
)

SETTINGS = GrpcSettings(
    listen="127.0.0.1:0",
    max_message_bytes=256 * 1024,
    max_batch_entries=50,
    rate_limit_entries_per_s=200.0,
    rate_limit_burst=300.0,
    heartbeat_interval_s=7,
)


collector = collector_fixture(SETTINGS)


def rejects(c: InProcessCollector, reason: str) -> float:
    value = c.metrics.registry.get_sample_value("diag_ingest_rejects_total", {"reason": reason})
    assert value is not None
    return value


def assert_cumulative_acks(replies: list[pb.CollectorMessage], boundaries: list[int]) -> None:
    """Acks are cumulative: with an ingest worker, batches read while the stream's previous
    request was in the worker go together, and one Ack covers them. Every Ack falls on a
    batch boundary, they rise, and the last covers everything acknowledged."""
    acks = [r.ack.durable_through_seq for r in replies if r.WhichOneof("body") == "ack"]
    assert acks and acks == sorted(set(acks)) and set(acks) <= set(boundaries), acks
    assert acks[-1] == boundaries[-1], acks


def test_hello_welcome_batches_acks_and_idempotent_replay(collector, store, agent) -> None:
    agent_id, token = agent
    replies, code, _ = run_stream(
        collector.address, token, [hello_msg(agent_id), batch_msg(range(1, 11)), batch_msg(range(11, 21))]
    )
    assert code == grpc.StatusCode.OK
    welcome = replies[0].welcome
    assert (welcome.agent_id, welcome.customer, welcome.resume_after_seq) == ("agent-1", "acme", 0)
    assert (welcome.max_batch_entries, welcome.max_message_bytes, welcome.heartbeat_interval_s) == (
        50,
        256 * 1024,
        7,
    )
    assert_cumulative_acks(replies[1:], [10, 20])
    assert result_seqs(store, agent_id) == list(range(1, 21))
    assert stored_points(store) == 40
    # A reconnect resumes after 20; a replay of stored entries stores nothing new.
    replies, code, _ = run_stream(collector.address, token, [hello_msg(agent_id), batch_msg(range(15, 25))])
    assert code == grpc.StatusCode.OK
    assert replies[0].welcome.resume_after_seq == 20
    assert replies[1].ack.durable_through_seq == 24
    assert result_seqs(store, agent_id) == list(range(1, 25))
    m = collector.metrics.registry
    assert m.get_sample_value("diag_ingest_batches_total") == 3
    assert m.get_sample_value("diag_ingest_entries_total") == 30
    assert m.get_sample_value("diag_ack_latency_seconds_count") == 3


def test_heartbeats_and_unknown_bodies_are_accepted(collector, agent) -> None:
    agent_id, token = agent
    messages = [hello_msg(agent_id), pb.AgentMessage(heartbeat=pb.Heartbeat(ts_unix_ms=1)), pb.AgentMessage()]
    replies, code, _ = run_stream(collector.address, token, [*messages, batch_msg([1])])
    assert code == grpc.StatusCode.OK
    assert replies[-1].ack.durable_through_seq == 1


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        pytest.param(None, "missing", id="no token"),
        pytest.param("dga_" + "0" * 43, "unknown", id="unknown token"),
        pytest.param("x" * 5000, "malformed", id="huge token"),
    ],
)
def test_bad_tokens_are_unauthenticated_and_store_nothing(collector, store, agent, token, reason) -> None:
    agent_id, good = agent
    replies, code, details = run_stream(collector.address, token, [hello_msg(agent_id), batch_msg([1])])
    assert (replies, code) == ([], grpc.StatusCode.UNAUTHENTICATED)
    assert reason in details and good not in details
    assert count(store, check_results) == 0
    assert rejects(collector, "unauthenticated") == 1
    # the server keeps serving a good agent
    _, code, _ = run_stream(collector.address, good, [hello_msg(agent_id), batch_msg([1])])
    assert code == grpc.StatusCode.OK and count(store, check_results) == 1


def test_revoked_token(collector, store, agent) -> None:
    agent_id, token = agent
    assert store.revoke_agent(agent_id)
    _, code, _ = run_stream(collector.address, token, [hello_msg(agent_id), batch_msg([1])])
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert count(store, check_results) == 0


def test_revocation_ends_an_open_stream_at_its_next_batch(collector, store, agent) -> None:
    agent_id, token = agent
    live = LiveStream(collector.address, token)
    try:
        live.send(hello_msg(agent_id))
        assert live.next().WhichOneof("body") == "welcome"
        store.revoke_agent(agent_id)
        live.send(batch_msg([1]))
        with pytest.raises(grpc.RpcError) as err:
            live.next()
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        live.close()
    assert count(store, check_results) == 0


def test_another_agents_hello_is_permission_denied(collector, store, agent) -> None:
    _, token = agent
    other, _ = store.enroll_agent("globex", "db1", "agent-globex")
    replies, code, _ = run_stream(collector.address, token, [hello_msg(other.agent_id), batch_msg([1])])
    assert (replies, code) == ([], grpc.StatusCode.PERMISSION_DENIED)
    assert count(store, check_results) == 0
    assert rejects(collector, "permission_denied") == 1


@pytest.mark.parametrize(
    "first",
    [
        pytest.param(batch_msg([1]), id="batch first"),
        pytest.param(pb.AgentMessage(), id="empty message first"),
    ],
)
def test_first_message_must_be_hello(collector, store, agent, first) -> None:
    _, token = agent
    _, code, details = run_stream(collector.address, token, [first])
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "Hello" in details
    assert count(store, check_results) == 0


def test_half_close_before_hello(collector, agent) -> None:
    _, code, _ = run_stream(collector.address, agent[1], [])
    assert code == grpc.StatusCode.INVALID_ARGUMENT


def test_wrong_protocol_version(collector, agent) -> None:
    agent_id, token = agent
    msg = pb.AgentMessage(hello=pb.Hello(protocol_version=2, agent_id=agent_id))
    _, code, details = run_stream(collector.address, token, [msg])
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "protocol version 2" in details


def test_invalid_batch_is_rejected_whole(collector, store, agent) -> None:
    agent_id, token = agent
    bad = pb.AgentMessage(
        batch=pb.EntryBatch(entries=[result_entry(1), result_entry(2), result_entry(3, key="not a key")])
    )
    replies, code, details = run_stream(collector.address, token, [hello_msg(agent_id), bad])
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "(seq 3)" in details and "UPPER_SNAKE_CASE" in details
    assert [r.WhichOneof("body") for r in replies] == ["welcome"]
    assert count(store, check_results) == 0 and stored_points(store) == 0
    assert rejects(collector, "invalid_argument") == 1


def test_out_of_order_batches_are_invalid(collector, store, agent) -> None:
    agent_id, token = agent
    replies, code, details = run_stream(
        collector.address, token, [hello_msg(agent_id), batch_msg([5, 6]), batch_msg([3, 4])]
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "seq 3 is not above the previous seq 6" in details
    assert result_seqs(store, agent_id) == [5, 6]
    assert replies[1].ack.durable_through_seq == 6


def test_batches_sent_ahead_are_acknowledged_up_to_the_first_bad_one(collector, store, agent) -> None:
    """An agent keeps a window of batches in flight; a bad one ends the stream after the
    Ack of every batch before it (merged into one worker request or not), nothing after it."""
    agent_id, token = agent
    good = [batch_msg(range(i * 10 + 1, i * 10 + 11)) for i in range(6)]
    bad = batch_msg([61, 62, 62])
    after = batch_msg([70])
    replies, code, details = run_stream(collector.address, token, [hello_msg(agent_id), *good, bad, after])
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "seq 62 is not above the previous seq 62" in details
    assert_cumulative_acks(replies, [10, 20, 30, 40, 50, 60])
    assert result_seqs(store, agent_id) == list(range(1, 61))
    assert collector.metrics.registry.get_sample_value("diag_ingest_batches_total") == 6
    assert collector.metrics.registry.get_sample_value("diag_ack_latency_seconds_count") == 6
    # The agent reconnects and resends from the resume point: nothing is stored twice.
    replies, code, _ = run_stream(collector.address, token, [hello_msg(agent_id), *good[4:], after])
    assert code == grpc.StatusCode.OK and replies[0].welcome.resume_after_seq == 60
    assert result_seqs(store, agent_id) == [*range(1, 61), 70]


def test_batch_over_the_entry_limit(collector, store, agent) -> None:
    agent_id, token = agent
    _, code, details = run_stream(collector.address, token, [hello_msg(agent_id), batch_msg(range(1, 52))])
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "51 entries" in details
    assert count(store, check_results) == 0
    assert rejects(collector, "batch_too_large") == 1


def test_message_over_the_size_limit(collector, store, agent) -> None:
    agent_id, token = agent
    huge = pb.AgentMessage(batch=pb.EntryBatch(entries=[result_entry(1, summary="x" * 300_000)]))
    _, code, _ = run_stream(collector.address, token, [hello_msg(agent_id), huge])
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert count(store, check_results) == 0
    _, code, _ = run_stream(collector.address, token, [hello_msg(agent_id), batch_msg([1])])
    assert code == grpc.StatusCode.OK


def test_rate_limit(collector, store, agent) -> None:
    agent_id, token = agent
    # burst 300 entries, 200/s: six immediate batches of 50 pass, the seventh is refused
    messages = [hello_msg(agent_id)] + [batch_msg(range(i * 50 + 1, i * 50 + 51), 1) for i in range(8)]
    replies, code, details = run_stream(collector.address, token, messages)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "entries/s" in details
    assert_cumulative_acks(replies, [50, 100, 150, 200, 250, 300])
    assert result_seqs(store, agent_id) == list(range(1, 301))
    assert rejects(collector, "rate_limited") == 1


def test_gap_report_is_recorded_and_acknowledged(collector, store, agent) -> None:
    agent_id, token = agent
    report = pb.AgentMessage(
        gaps=pb.GapReport(
            gaps=[
                pb.Gap(
                    first_seq=1,
                    last_seq=4,
                    count=4,
                    reason="spool_full",
                    dropped_at_unix_ms=1_700_000_000_000,
                )
            ]
        )
    )
    replies, code, _ = run_stream(
        collector.address, token, [hello_msg(agent_id), batch_msg([5]), report, report]
    )
    assert code == grpc.StatusCode.OK
    assert list(replies[2].ack.gaps_recorded) == [1] and replies[2].ack.durable_through_seq == 5
    assert stored_gaps(store, agent_id) == [(1, 4, 4, "spool_full")]
    bad = pb.AgentMessage(gaps=pb.GapReport(gaps=[pb.Gap(first_seq=9, last_seq=1, count=1)]))
    _, code, _ = run_stream(collector.address, token, [hello_msg(agent_id), bad])
    assert code == grpc.StatusCode.INVALID_ARGUMENT


def test_a_second_stream_replaces_the_first(collector, store, agent) -> None:
    agent_id, token = agent
    first = LiveStream(collector.address, token)
    second = None
    try:
        first.send(hello_msg(agent_id))
        assert first.next().WhichOneof("body") == "welcome"
        first.send(batch_msg([1, 2]))
        assert first.next().ack.durable_through_seq == 2
        assert collector.service.connected == 1
        second = LiveStream(collector.address, token)
        second.send(hello_msg(agent_id))
        assert second.next().welcome.resume_after_seq == 2
        with pytest.raises(grpc.RpcError) as err:
            first.next()
        assert err.value.code() == grpc.StatusCode.ABORTED and "replaced" in err.value.details()
        second.send(batch_msg([3]))
        assert second.next().ack.durable_through_seq == 3
        assert collector.service.connected == 1
        assert rejects(collector, "replaced") == 1
    finally:
        first.close()
        if second is not None:
            second.close()
    assert wait_for(lambda: collector.service.connected == 0, 5)
    assert result_seqs(store, agent_id) == [1, 2, 3]


def test_inspection_requests_reach_the_connected_agent(collector, agent) -> None:
    agent_id, token = agent
    live = LiveStream(collector.address, token)
    try:
        live.send(hello_msg(agent_id))
        live.next()
        request = pb.InspectionRequest(inspection_id="insp-1", layers=["storage"])
        assert collector.call(collector.service.request_inspection(agent_id, request))
        assert live.next().inspection == request
        assert not collector.call(collector.service.request_inspection("nobody", request))
    finally:
        live.close()


class _SlowHello:
    """The store, with its ``hello`` held until released: the window between a stream's
    registration and its Welcome, which is too short to hit on purpose otherwise."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.entered = threading.Event()
        self.release = threading.Event()

    def hello(self, *args: Any) -> int:
        self.entered.set()
        assert self.release.wait(20)
        resume: int = self._store.hello(*args)
        return resume

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_no_inspection_request_goes_out_before_the_welcome(store, agent) -> None:
    agent_id, token = agent
    slow = _SlowHello(store)
    collector = InProcessCollector(slow, GrpcSettings(listen="127.0.0.1:0"))  # type: ignore[arg-type]
    live = LiveStream(collector.address, token)
    try:
        live.send(hello_msg(agent_id))
        assert slow.entered.wait(20)
        request = pb.InspectionRequest(inspection_id="insp-early", layers=["storage"])
        # The stream is registered but not welcomed: the agent would drop the request.
        assert not collector.call(collector.service.request_inspection(agent_id, request))
        slow.release.set()
        assert live.next().WhichOneof("body") == "welcome"
        assert collector.call(collector.service.request_inspection(agent_id, request))
        assert live.next().inspection == request
    finally:
        slow.release.set()
        live.close()
        collector.stop()


def test_connected_agents_gauge(collector, agent) -> None:
    agent_id, token = agent
    gauge = "diag_connected_agents"
    live = LiveStream(collector.address, token)
    try:
        live.send(hello_msg(agent_id))
        live.next()
        assert collector.metrics.registry.get_sample_value(gauge) == 1
    finally:
        live.close()
    assert wait_for(lambda: collector.metrics.registry.get_sample_value(gauge) == 0, 5)


def test_garbage_bytes_on_the_port_do_not_hurt(collector, store, agent) -> None:
    agent_id, token = agent
    for junk in (b"\x00" * 64, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", bytes(range(256)) * 40):
        with socket.create_connection(("127.0.0.1", collector.port), timeout=5) as s:
            s.sendall(junk)
            s.settimeout(5)
            # a reply, a timeout or a reset are all fine: the point is that the server survives
            with contextlib.suppress(TimeoutError, ConnectionResetError):
                s.recv(1024)
    _, code, _ = run_stream(collector.address, token, [hello_msg(agent_id), batch_msg([1])])
    assert code == grpc.StatusCode.OK and result_seqs(store, agent_id) == [1]


def test_health_and_reflection(collector) -> None:
    with grpc.insecure_channel(collector.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "diag.v1.AgentStream"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        refl = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        reply = next(iter(refl.ServerReflectionInfo(iter([request]), timeout=5)))
        names = {s.name for s in reply.list_services_response.service}
    assert {"diag.v1.AgentStream", "grpc.health.v1.Health"} <= names


def test_ingest_in_a_worker_process(store, agent, tmp_path) -> None:
    agent_id, token = agent
    url = str(store.engine.url)
    c = InProcessCollector(store, SETTINGS, ingest_url=url)
    try:
        replies, code, _ = run_stream(c.address, token, [hello_msg(agent_id), batch_msg(range(1, 11))])
        assert code == grpc.StatusCode.OK and replies[1].ack.durable_through_seq == 10
        bad = pb.AgentMessage(
            batch=pb.EntryBatch(entries=[result_entry(11), result_entry(12, key="bad key")])
        )
        _, code, details = run_stream(c.address, token, [hello_msg(agent_id), bad])
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "(seq 12)" in details
        live = LiveStream(c.address, token)
        try:
            live.send(hello_msg(agent_id))
            live.next()
            store.revoke_agent(agent_id)
            live.send(batch_msg([11]))
            with pytest.raises(grpc.RpcError) as err:
                live.next()
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        finally:
            live.close()
        assert c.metrics.registry.get_sample_value("diag_ingest_points_total") == 20
    finally:
        c.stop()
    assert result_seqs(store, agent_id) == list(range(1, 11))


def raw_stream(
    address: str, token: str, frames: list[bytes]
) -> tuple[list[pb.CollectorMessage], grpc.StatusCode, str]:
    """Like run_stream, but each request is sent as the given bytes, parseable or not."""
    replies: list[pb.CollectorMessage] = []
    with grpc.insecure_channel(address) as channel:
        connect = channel.stream_stream(
            "/diag.v1.AgentStream/Connect",
            request_serializer=None,
            response_deserializer=pb.CollectorMessage.FromString,
        )
        call = connect(iter(frames), metadata=(("authorization", f"Bearer {token}"),), timeout=20)
        try:
            replies.extend(call)
        except grpc.RpcError as exc:
            return replies, exc.code(), exc.details() or ""
        return replies, call.code(), call.details() or ""


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        pytest.param(
            b"\x12\x03\x0a\xff\xff", "does not parse as an EntryBatch", id="batch that does not parse"
        ),
        pytest.param(
            b"\x12\xff\xff\xff\xff\x0f", "does not parse as an AgentMessage", id="batch length past the end"
        ),
        pytest.param(b"\xff\xff\xff", "does not parse as an AgentMessage", id="garbage message"),
    ],
)
def test_malformed_messages_are_invalid_and_store_nothing(collector, store, agent, frame, message) -> None:
    agent_id, token = agent
    hello = hello_msg(agent_id).SerializeToString()
    good = batch_msg([1]).SerializeToString()
    replies, code, details = raw_stream(collector.address, token, [hello, good, frame])
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message in details, details
    assert replies[1].ack.durable_through_seq == 1
    assert result_seqs(store, agent_id) == [1]
    assert rejects(collector, "invalid_argument") == 1
    _, code, _ = run_stream(collector.address, token, [hello_msg(agent_id), batch_msg([2])])
    assert code == grpc.StatusCode.OK and result_seqs(store, agent_id) == [1, 2]


def test_a_batch_with_other_fields_beside_it_takes_the_full_parse(collector, store, agent) -> None:
    """A batch frame followed by more fields (protobuf merges repeated message fields)."""
    agent_id, token = agent
    first = batch_msg([1, 2]).SerializeToString()
    merged = first + batch_msg([3]).SerializeToString()  # two batch fields: one batch of 1, 2, 3
    heartbeat_then_batch = pb.AgentMessage(heartbeat=pb.Heartbeat(ts_unix_ms=1)).SerializeToString()
    heartbeat_then_batch += batch_msg([4]).SerializeToString()  # the last oneof member wins: a batch
    frames = [hello_msg(agent_id).SerializeToString(), merged, heartbeat_then_batch]
    replies, code, details = raw_stream(collector.address, token, frames)
    assert code == grpc.StatusCode.OK, details
    assert [r.ack.durable_through_seq for r in replies[1:]] == [3, 4]
    assert result_seqs(store, agent_id) == [1, 2, 3, 4]
