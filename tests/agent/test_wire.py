"""agent.wire against the generated protobuf code: what one writes, the other reads, exactly."""

from __future__ import annotations

import contextlib
import random
import struct
from typing import Any

import pytest

from agent import wire
from protos.diag.v1 import agent_pb2

SEV = {"OK": agent_pb2.SEVERITY_OK, "WARN": agent_pb2.SEVERITY_WARN, "CRIT": agent_pb2.SEVERITY_CRIT}


def _result_doc(rng: random.Random, i: int) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "check": f"host.check_{i}",
        "layer": rng.choice(["host", "network", "storage", "platform", "application"]),
        "severity": rng.choice(list(SEV)),
        "key": rng.choice(["OK", "FS_NEARLY_FULL", ""]),
        "summary": rng.choice(["", "磁盘将满 / disk nearly full", "x" * rng.randint(0, 300)]),
        "duration_ms": rng.choice([0.0, 0.25, 1234.5, -0.0]),
        "results": [
            {
                "severity": rng.choice(list(SEV)),
                "key": f"K{j}",
                "summary": f"finding {j}",
                "item": rng.choice([None, "", "/var", "eth0"]),
                "details": rng.choice([None, "", "line1\nline2"]),
            }
            for j in range(rng.randint(0, 3))
        ],
        "metrics": [
            {
                "name": f"m_{j}_percent",
                "value": rng.choice([0.0, -1.5, 1e300, 2**53 + 1.0, rng.random()]),
                "unit": "percent",
                "labels": {f"k{n}": rng.choice(["", "v", "值"]) for n in range(rng.randint(0, 3))},
            }
            for j in range(rng.randint(0, 4))
        ],
    }
    if rng.random() < 0.5:
        doc["inspection_id"] = f"insp-{i}"
    return doc


def _expected_result(doc: dict[str, Any], metric_keys: bool = False) -> agent_pb2.CheckResult:
    r = agent_pb2.CheckResult(
        check=doc["check"],
        layer=doc["layer"],
        severity=SEV[str(doc["severity"])],
        key=doc["key"],
        summary=doc["summary"],
        duration_ms=float(doc["duration_ms"]),
        inspection_id=str(doc.get("inspection_id") or ""),
    )
    for f in doc["results"]:
        r.findings.add(
            severity=SEV[f["severity"]],
            key=f["key"],
            summary=f["summary"],
            item=f["item"] or "",
            details=f["details"] or "",
        )
    if metric_keys:
        keys = agent_pb2.MetricKeys()
        for m in doc["metrics"]:
            k = keys.keys.add(name=m["name"], unit=m["unit"])
            for key in sorted(m["labels"]):
                k.labels.add(key=key, value=m["labels"][key])
        r.metric_keys = keys.SerializeToString() if doc["metrics"] else b""
        r.metric_values.extend(m["value"] for m in doc["metrics"])
        return r
    for m in doc["metrics"]:
        s = r.metrics.add(name=m["name"], value=m["value"], unit=m["unit"])
        for k in sorted(m["labels"]):
            s.labels.add(key=k, value=m["labels"][k])
    return r


@pytest.mark.parametrize("metric_keys", [False, True], ids=["samples", "metric_keys"])
def test_check_results_parse_back_to_what_the_generated_code_builds(metric_keys: bool) -> None:
    rng = random.Random(7)
    for i in range(300):
        doc = _result_doc(rng, i)
        encoded = wire.check_result(doc, metric_keys=metric_keys)
        got = agent_pb2.CheckResult.FromString(encoded)
        assert got == _expected_result(doc, metric_keys), doc
        # Byte for byte what the generated code writes, so the collector's key-set cache
        # (keyed by these bytes) sees one key set per series list, whichever side encodes.
        assert encoded == _expected_result(doc, metric_keys).SerializeToString(), doc


def test_a_key_set_encoded_again_from_the_cache_is_byte_for_byte_the_generated_codes() -> None:
    rng = random.Random(11)
    for i in range(200):
        doc = _result_doc(rng, i)
        first = wire.check_result(doc, metric_keys=True)
        # The next run of the same check: same metrics and labels, new values.
        for m in doc["metrics"]:
            m["value"] = rng.random() * 1000
        doc["summary"] = f"run {i} again"
        again = wire.check_result(doc, metric_keys=True)
        assert again == _expected_result(doc, metric_keys=True).SerializeToString(), doc
        assert agent_pb2.CheckResult.FromString(again).metric_keys == (
            agent_pb2.CheckResult.FromString(first).metric_keys
        )


def test_label_values_that_compare_equal_but_print_differently_are_not_confused() -> None:
    def keys_of(value: object) -> list[tuple[str, str]]:
        doc = {"check": "host.x", "layer": "host", "severity": "OK", "key": "OK", "summary": "",
               "duration_ms": 1.0, "metrics": [{"name": "a_count", "unit": "count", "value": 1.0,
                                                "labels": {"k": value}}]}  # fmt: skip
        got = agent_pb2.CheckResult.FromString(wire.check_result(doc, metric_keys=True))
        return [
            (label.key, label.value)
            for label in agent_pb2.MetricKeys.FromString(got.metric_keys).keys[0].labels
        ]

    assert keys_of("1") == [("k", "1")]
    assert keys_of(1) == [("k", "1")]
    assert keys_of(True) == [("k", "True")]
    assert keys_of(1.0) == [("k", "1.0")]


def test_the_key_set_cache_stays_bounded() -> None:
    for i in range(wire.MAX_CACHED_KEY_SETS * 2 + 5):
        doc = {"check": "host.x", "layer": "host", "severity": "OK", "key": "OK", "summary": "",
               "duration_ms": 1.0, "metrics": [{"name": "a_count", "unit": "count", "value": 1.0,
                                                "labels": {"pid": str(i)}}]}  # fmt: skip
        wire.check_result(doc, metric_keys=True)
        assert len(wire._METRIC_KEYS_CACHE) <= wire.MAX_CACHED_KEY_SETS


def test_columnar_metrics_keep_every_value_bit_for_bit() -> None:
    values = [0.0, -0.0, 1e-310, -1e308, 2**53 + 1.0, 0.1]
    doc = {
        "check": "host.cpu",
        "layer": "host",
        "severity": "OK",
        "key": "OK",
        "summary": "",
        "duration_ms": 0.5,
        "metrics": [{"name": f"v{i}_ratio", "unit": "ratio", "value": v} for i, v in enumerate(values)],
    }
    got = agent_pb2.CheckResult.FromString(wire.check_result(doc, metric_keys=True))
    assert not got.metrics
    assert [struct.pack("<d", v) for v in got.metric_values] == [struct.pack("<d", v) for v in values]
    keys = agent_pb2.MetricKeys.FromString(got.metric_keys).keys
    assert [(k.name, k.unit) for k in keys] == [(f"v{i}_ratio", "ratio") for i in range(len(values))]


def test_entries_batches_and_agent_message_wrap_their_payloads() -> None:
    rng = random.Random(3)
    docs = [_result_doc(rng, i) for i in range(5)]
    entries = [
        wire.entry(100 + i, 1_700_000_000_000 + i, wire.ENTRY_RESULT, wire.check_result(d))
        for i, d in enumerate(docs)
    ]
    health = {
        "cpu_seconds_total": 1.5,
        "rss_bytes": 40_000_000,
        "spool_depth": 0,
        "dropped_total": 3,
        "cycle_cpu_seconds": 0.004,
        "abandoned_threads": 1,
        "check_duration_ms": {"host.cpu": 0.5, "x": 0.0},
    }
    entries.append(wire.entry(200, 5, wire.ENTRY_HEALTH, wire.health(health)))
    entries.append(wire.entry(201, 6, wire.ENTRY_INVENTORY, wire.inventory('{"a": 1}', "ab" * 32)))
    entries.append(wire.entry(0, -5, wire.ENTRY_HEALTH, wire.health({})))  # an empty oneof member
    message = agent_pb2.AgentMessage.FromString(wire.agent_message(wire.BATCH, wire.entry_batch(entries)))
    assert message.WhichOneof("body") == "batch"
    got = list(message.batch.entries)
    assert [e.seq for e in got] == [100, 101, 102, 103, 104, 200, 201, 0]
    assert [g.result for g in got[:5]] == [_expected_result(d) for d in docs]
    assert got[5].health == agent_pb2.AgentHealth(
        cpu_seconds_total=1.5,
        rss_bytes=40_000_000,
        dropped_total=3,
        cycle_cpu_seconds=0.004,
        abandoned_threads=1,
        check_duration_ms={"host.cpu": 0.5, "x": 0.0},
    )
    assert got[6].WhichOneof("kind") == "inventory" and got[6].inventory.document_json == '{"a": 1}'
    assert got[7].WhichOneof("kind") == "health" and got[7].ts_unix_ms == -5
    assert sum(wire.entry_overhead(len(e)) for e in entries) == len(wire.entry_batch(entries))


def test_hello_heartbeat_and_gap_report() -> None:
    facts = wire.HostFacts("debian", "12", "6.1.0", "x86_64", 2, 24 << 30, 1_700_000_000_000)
    hello = wire.hello(
        protocol_version=1,
        agent_id="a-1",
        agent_version="0.1.0",
        hostname="db1",
        labels={"role": "db", "site": "上海"},
        facts=facts,
        spool_high_seq=2**63,
        spool_low_seq=0,
    )
    got = agent_pb2.AgentMessage.FromString(wire.agent_message(wire.HELLO, hello))
    assert got.hello == agent_pb2.Hello(
        protocol_version=1,
        agent_id="a-1",
        agent_version="0.1.0",
        hostname="db1",
        labels={"role": "db", "site": "上海"},
        facts=agent_pb2.HostFacts(
            os_id="debian",
            os_version="12",
            kernel="6.1.0",
            arch="x86_64",
            cpu_count=2,
            memory_bytes=24 << 30,
            boot_time_unix_ms=1_700_000_000_000,
        ),
        spool_high_seq=2**63,
    )
    assert got.hello.HasField("facts")
    beat = agent_pb2.AgentMessage.FromString(wire.agent_message(wire.HEARTBEAT, wire.heartbeat(0, 0)))
    assert beat.WhichOneof("body") == "heartbeat"  # an all-default heartbeat is still a heartbeat
    report = wire.gap_report([wire.gap(1, 5, 5, "spool_full", 9), wire.gap(7, 7, 1, "", 0)])
    gaps = agent_pb2.AgentMessage.FromString(wire.agent_message(wire.GAPS, report)).gaps
    assert gaps == agent_pb2.GapReport(
        gaps=[
            agent_pb2.Gap(first_seq=1, last_seq=5, count=5, reason="spool_full", dropped_at_unix_ms=9),
            agent_pb2.Gap(first_seq=7, last_seq=7, count=1),
        ]
    )


def test_float_fields_beyond_float32_become_infinity_as_protobuf_does() -> None:
    doc = {"check": "c", "layer": "host", "severity": "OK", "key": "OK", "summary": "", "duration_ms": 1e300}
    got = agent_pb2.CheckResult.FromString(wire.check_result(doc))
    assert got.duration_ms == float("inf")


@pytest.mark.parametrize(
    "message",
    [
        agent_pb2.CollectorMessage(
            welcome=agent_pb2.Welcome(
                agent_id="a-1",
                customer="acme",
                resume_after_seq=2**64 - 1,
                server_time_unix_ms=-1,
                max_batch_entries=500,
                max_message_bytes=4 << 20,
                heartbeat_interval_s=30,
                features=["metric_keys", "a_future_feature", "特性"],
            )
        ),
        agent_pb2.CollectorMessage(welcome=agent_pb2.Welcome()),
        agent_pb2.CollectorMessage(ack=agent_pb2.Ack(durable_through_seq=42, gaps_recorded=[1, 2**40, 0])),
        agent_pb2.CollectorMessage(ack=agent_pb2.Ack()),
        agent_pb2.CollectorMessage(
            inspection=agent_pb2.InspectionRequest(
                inspection_id="run-1",
                checks=["host.cpu", "", "网络"],
                layers=["storage"],
                deadline_unix_ms=-7,
            )
        ),
    ],
    ids=["welcome", "empty-welcome", "ack", "empty-ack", "inspection"],
)
def test_collector_messages_decode_to_the_same_fields(message: agent_pb2.CollectorMessage) -> None:
    got = wire.decode_collector_message(message.SerializeToString())
    kind = message.WhichOneof("body")
    assert got.kind == kind
    value = getattr(got, kind)
    reference = getattr(message, kind)
    for name in reference.DESCRIPTOR.fields_by_name:
        want = getattr(reference, name)
        assert getattr(value, name) == (tuple(want) if not isinstance(want, int | str) else want), name


def test_unpacked_repeated_and_unknown_fields_are_read_as_protobuf_reads_them() -> None:
    ack = bytes([0x08, 0x05, 0x10, 0x03, 0x10, 0x04])  # durable 5, gaps 3 and 4 unpacked
    unknown = bytes([0x78, 0x01, 0x82, 0x01, 0x02, 0x61, 0x62, 0x8D, 0x01]) + struct.pack("<I", 9)
    data = bytes([0x12, len(ack) + len(unknown)]) + ack + unknown
    assert agent_pb2.CollectorMessage.FromString(data).ack.gaps_recorded == [3, 4]
    assert wire.decode_collector_message(data).ack == wire.Ack(5, (3, 4))
    newer = bytes([0x4A, 0x00])  # field 9: a body this agent does not know
    assert wire.decode_collector_message(newer).kind is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x0a\x05ab", "runs past"),
        (b"\x0a", "varint"),
        (b"\x0a\x02\x0a\x02\xff\xfe"[:6], "runs past"),
        (b"\x0a\x04\x0a\x02\xff\xfe", "UTF-8"),
        (b"\x0b", "wire type"),
        (b"\x08" + b"\xff" * 11, "varint"),
        (b"\x00\x01", "field number 0"),
        (b"\x12\x02\x0a\x00", "wire type"),
        (b"\x0d\x01\x02", "truncated"),
    ],
)
def test_malformed_collector_bytes_raise_a_wire_error(data: bytes, message: str) -> None:
    with pytest.raises(wire.WireError, match=message):
        wire.decode_collector_message(data)


def test_random_bytes_never_raise_anything_but_wire_error() -> None:
    rng = random.Random(11)
    seeds = [
        agent_pb2.CollectorMessage(
            ack=agent_pb2.Ack(durable_through_seq=9, gaps_recorded=[1, 2])
        ).SerializeToString(),
        agent_pb2.CollectorMessage(
            inspection=agent_pb2.InspectionRequest(inspection_id="x", checks=["a"], deadline_unix_ms=3)
        ).SerializeToString(),
    ]
    for _ in range(3000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 3)):
            op = rng.random()
            if op < 0.4 and data:
                data[rng.randrange(len(data))] = rng.randrange(256)
            elif op < 0.7:
                data.insert(rng.randrange(len(data) + 1), rng.randrange(256))
            elif data:
                del data[rng.randrange(len(data))]
        with contextlib.suppress(wire.WireError):
            wire.decode_collector_message(bytes(data))
