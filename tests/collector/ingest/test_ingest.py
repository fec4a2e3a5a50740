"""collector.ingest.decode: protobuf batches → store rows, and every way an agent can lie."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from collector.ingest.control import decode_gaps, decode_hello
from collector.ingest.decode import IngestError, IngestLimits, decode
from collector.ingest.process import IngestProcess, IngestRejected
from collector.store import Store
from collector.store.types import GapRow, HealthRow, HostFactsRow, InventoryRow, PointRow, ResultRow
from protos.diag.v1 import agent_pb2 as pb

TS_MS = 1_700_000_000_000
TS = 1_700_000_000.0
LIMITS = IngestLimits(max_batch_entries=10, max_labels=3, max_metrics=5, max_findings=3)


SAMPLES = [
    pb.MetricSample(
        name="storage_fs_used_percent",
        value=97.0,
        unit="percent",
        labels=[pb.Label(key="mount", value="/var")],
    ),
    pb.MetricSample(name="storage_fs_free_bytes", value=1024.0, unit="bytes"),
]


def result_entry(seq: int, **overrides: Any) -> pb.Entry:
    fields: dict[str, Any] = {
        "check": "storage.filesystem",
        "layer": "storage",
        "severity": pb.SEVERITY_CRIT,
        "key": "FS_NEARLY_FULL",
        "summary": "/var: 97% used",
        "duration_ms": 0.4,
        "findings": [
            pb.Finding(severity=pb.SEVERITY_CRIT, key="FS_NEARLY_FULL", summary="97% used", item="/var"),
            pb.Finding(severity=pb.SEVERITY_OK, key="OK", summary="fine", item="/"),
        ],
        "metrics": SAMPLES,
    }
    fields.update(overrides)
    return pb.Entry(seq=seq, ts_unix_ms=TS_MS, result=pb.CheckResult(**fields))


def batch(*entries: pb.Entry) -> pb.EntryBatch:
    return pb.EntryBatch(entries=list(entries))


def test_a_result_becomes_one_result_row_and_its_points() -> None:
    out = decode(batch(result_entry(5)), limits=LIMITS, after_seq=4)
    assert (out.min_seq, out.max_seq) == (5, 5)
    assert out.results == [
        ResultRow(
            seq=5,
            ts=TS,
            check="storage.filesystem",
            layer="storage",
            severity="CRIT",
            key="FS_NEARLY_FULL",
            summary="/var: 97% used",
            duration_ms=pytest.approx(0.4),  # type: ignore[arg-type]
            findings_json=json.dumps(
                [
                    {"severity": "CRIT", "key": "FS_NEARLY_FULL", "summary": "97% used", "item": "/var"},
                    {"severity": "OK", "key": "OK", "summary": "fine", "item": "/"},
                ],
                separators=(",", ":"),
            ),
            inspection_id=None,
        )
    ]
    assert out.points == []  # columns instead: see point_rows()
    assert out.point_rows() == [
        PointRow(
            5, TS, "storage.filesystem", "storage_fs_used_percent", "percent", (("mount", "/var"),), 97.0
        ),
        PointRow(5, TS, "storage.filesystem", "storage_fs_free_bytes", "bytes", (), 1024.0),
    ]
    assert out.inventories == [] and out.health == []


def test_inventory_health_and_unknown_kinds() -> None:
    doc = '{"products":[{"name":"erp","version":"5.2"}]}'
    entries = [
        pb.Entry(seq=1, ts_unix_ms=TS_MS, inventory=pb.Inventory(document_json=doc)),
        pb.Entry(
            seq=2,
            ts_unix_ms=TS_MS,
            health=pb.AgentHealth(
                rss_bytes=30_000_000, dropped_total=2, check_duration_ms={"host.load": 0.5}
            ),
        ),
        pb.Entry(seq=3, ts_unix_ms=TS_MS),  # a kind from a newer agent: skipped, seq still counts
    ]
    out = decode(batch(*entries), limits=LIMITS, after_seq=0)
    assert out.max_seq == 3 and out.min_seq == 1
    assert out.inventories == [
        InventoryRow(1, TS, json.loads(doc), hashlib.sha256(doc.encode()).hexdigest()),
    ]
    assert out.health == [
        HealthRow(
            2,
            TS,
            {
                "cpu_seconds_total": 0.0,
                "rss_bytes": 30_000_000,
                "spool_depth": 0,
                "spool_bytes": 0,
                "dropped_total": 2,
                "cycle_cpu_seconds": 0.0,
                "check_duration_ms": {"host.load": 0.5},
                "abandoned_threads": 0,
            },
        )
    ]


def test_labels_are_sorted() -> None:
    metric = pb.MetricSample(
        name="net_rx_bytes",
        unit="bytes",
        value=1,
        labels=[pb.Label(key="iface", value="eth0"), pb.Label(key="dir", value="in")],
    )
    out = decode(batch(result_entry(1, metrics=[metric])), limits=LIMITS, after_seq=0)
    assert out.point_rows()[0].labels == (("dir", "in"), ("iface", "eth0"))


def _metric(**kw: Any) -> list[pb.MetricSample]:
    fields: dict[str, Any] = {"name": "host_load1_ratio", "unit": "ratio", "value": 1.0}
    fields.update(kw)
    return [pb.MetricSample(**fields)]


BAD_BATCHES = [
    pytest.param(batch(), "empty batch", id="empty batch"),
    pytest.param(batch(*(result_entry(i) for i in range(1, 12))), "more than 10", id="too many entries"),
    pytest.param(
        batch(result_entry(3), result_entry(3)), "seq 3 is not above the previous seq 3", id="dup seq"
    ),
    pytest.param(batch(result_entry(4), result_entry(2)), "seq 2 is not above", id="seq goes backwards"),
    pytest.param(batch(result_entry(1)), "seq 1 is not above the previous seq 1", id="seq at resume point"),
    pytest.param(batch(result_entry(2**63)), "out of range", id="seq overflows int64"),
    pytest.param(
        batch(pb.Entry(seq=2, ts_unix_ms=5, health=pb.AgentHealth())), "not between 2000", id="ts 1970"
    ),
    pytest.param(batch(result_entry(2, check="filesystem")), "is not '<layer>.<snake_case>'", id="bad check"),
    pytest.param(batch(result_entry(2, layer="host")), "is not in layer 'host'", id="layer mismatch"),
    pytest.param(batch(result_entry(2, key="fs full")), "UPPER_SNAKE_CASE", id="bad key"),
    pytest.param(batch(result_entry(2, severity=9)), "severity 9", id="unknown severity"),
    pytest.param(batch(result_entry(2, severity=0)), "severity 0", id="unspecified severity"),
    pytest.param(batch(result_entry(2, summary="x" * 9000)), "more than 8192", id="summary too long"),
    pytest.param(batch(result_entry(2, summary="a\x00b")), "NUL", id="NUL in summary"),
    pytest.param(batch(result_entry(2, duration_ms=float("nan"))), "not a finite", id="NaN duration"),
    pytest.param(batch(result_entry(2, duration_ms=-1.0)), "negative", id="negative duration"),
    pytest.param(batch(result_entry(2, inspection_id="a b;drop")), "inspection_id", id="bad inspection id"),
    pytest.param(batch(result_entry(2, metrics=_metric(value=float("inf")))), "finite", id="inf value"),
    pytest.param(batch(result_entry(2, metrics=_metric(value=float("nan")))), "finite", id="NaN value"),
    pytest.param(batch(result_entry(2, metrics=_metric(name="Load"))), "snake_case", id="bad metric name"),
    pytest.param(
        batch(result_entry(2, metrics=_metric(name="host_load1_seconds"))), "end with its unit", id="unit"
    ),
    pytest.param(batch(result_entry(2, metrics=_metric(unit="Ratio!"))), "unit", id="bad unit"),
    pytest.param(
        batch(result_entry(2, metrics=_metric(name="a_" * 120 + "ratio"))), "at most 200", id="long name"
    ),
    pytest.param(
        batch(result_entry(2, metrics=_metric() * 6)), "6 metrics, more than 5", id="too many metrics"
    ),
    pytest.param(
        batch(result_entry(2, metrics=_metric(labels=[pb.Label(key=f"k{i}", value="v") for i in range(4)]))),
        "4 labels, more than 3",
        id="too many labels",
    ),
    pytest.param(
        batch(result_entry(2, metrics=_metric(labels=[pb.Label(key="k", value="1"), pb.Label(key="k")]))),
        "appears twice",
        id="duplicate label",
    ),
    pytest.param(
        batch(result_entry(2, metrics=_metric(labels=[pb.Label(key="Bad-Key", value="1")]))),
        "label key",
        id="bad label key",
    ),
    pytest.param(
        batch(result_entry(2, metrics=_metric(labels=[pb.Label(key="k", value="v" * 2000)]))),
        "more than 1024",
        id="long label value",
    ),
    pytest.param(
        batch(result_entry(2, findings=[pb.Finding(severity=pb.SEVERITY_OK, key="OK", summary="s")] * 4)),
        "4 findings",
        id="too many findings",
    ),
    pytest.param(
        batch(result_entry(2, findings=[pb.Finding(severity=pb.SEVERITY_OK, key="ok", summary="s")])),
        "finding 0: key",
        id="bad finding key",
    ),
    pytest.param(
        batch(pb.Entry(seq=2, ts_unix_ms=TS_MS, inventory=pb.Inventory(document_json="[1]"))),
        "not a JSON object",
        id="inventory not an object",
    ),
    pytest.param(
        batch(pb.Entry(seq=2, ts_unix_ms=TS_MS, inventory=pb.Inventory(document_json="{"))),
        "not valid JSON",
        id="inventory broken JSON",
    ),
    pytest.param(
        batch(pb.Entry(seq=2, ts_unix_ms=TS_MS, inventory=pb.Inventory(document_json="[" * 100_000))),
        "not valid JSON",
        id="inventory nested too deep",
    ),
    pytest.param(
        batch(pb.Entry(seq=2, ts_unix_ms=TS_MS, inventory=pb.Inventory(document_json="{}", sha256="0" * 64))),
        "does not match",
        id="inventory wrong digest",
    ),
    pytest.param(
        batch(pb.Entry(seq=2, ts_unix_ms=TS_MS, health=pb.AgentHealth(cpu_seconds_total=float("nan")))),
        "cpu_seconds_total",
        id="health NaN",
    ),
    pytest.param(
        batch(pb.Entry(seq=2, ts_unix_ms=TS_MS, health=pb.AgentHealth(check_duration_ms={"x y": 1.0}))),
        "not a check name",
        id="health bad check name",
    ),
]


@pytest.mark.parametrize(("bad", "message"), BAD_BATCHES)
def test_hostile_batches_are_rejected_whole(bad: pb.EntryBatch, message: str) -> None:
    with pytest.raises(IngestError, match=message.replace("(", r"\(").replace(")", r"\)")):
        decode(bad, limits=LIMITS, after_seq=1)


def test_the_error_names_the_offending_seq() -> None:
    good, bad = result_entry(2), result_entry(3, key="nope")
    with pytest.raises(IngestError, match=r"entry 1 \(seq 3\)"):
        decode(batch(good, bad), limits=LIMITS, after_seq=1)


def test_gap_reports() -> None:
    report = pb.GapReport(
        gaps=[pb.Gap(first_seq=10, last_seq=19, count=10, reason="spool_full", dropped_at_unix_ms=TS_MS)]
    )
    assert decode_gaps(report) == [GapRow(10, 19, 10, "spool_full", TS)]


@pytest.mark.parametrize(
    ("gap", "message"),
    [
        pytest.param(pb.Gap(first_seq=0, last_seq=1, count=1, dropped_at_unix_ms=TS_MS), "range", id="seq 0"),
        pytest.param(
            pb.Gap(first_seq=5, last_seq=4, count=1, dropped_at_unix_ms=TS_MS), "range", id="reversed"
        ),
        pytest.param(pb.Gap(first_seq=1, last_seq=2, count=3, dropped_at_unix_ms=TS_MS), "count", id="count"),
        pytest.param(
            pb.Gap(first_seq=1, last_seq=2, count=1, reason="DROP!", dropped_at_unix_ms=TS_MS),
            "reason",
            id="bad reason",
        ),
        pytest.param(pb.Gap(first_seq=1, last_seq=2, count=1), "dropped_at", id="no timestamp"),
    ],
)
def test_bad_gaps_are_rejected(gap: pb.Gap, message: str) -> None:
    with pytest.raises(IngestError, match=message):
        decode_gaps(pb.GapReport(gaps=[gap]))


def test_hello_facts() -> None:
    hello = pb.Hello(
        agent_id="a1",
        agent_version="0.1.0",
        hostname="web1",
        labels={"role": "db"},
        facts=pb.HostFacts(
            os_id="debian",
            os_version="12",
            kernel="6.1.0",
            arch="x86_64",
            cpu_count=2,
            memory_bytes=2**31,
            boot_time_unix_ms=TS_MS,
        ),
    )
    assert decode_hello(hello) == HostFactsRow(
        hostname="web1",
        agent_version="0.1.0",
        labels={"role": "db"},
        os_id="debian",
        os_version="12",
        kernel="6.1.0",
        arch="x86_64",
        cpu_count=2,
        memory_bytes=2**31,
        boot_time=TS,
    )


@pytest.mark.parametrize(
    ("hello", "message"),
    [
        pytest.param(pb.Hello(hostname="h" * 300), "more than 256", id="long hostname"),
        pytest.param(pb.Hello(labels={"Role": "db"}), "label key", id="bad label key"),
        pytest.param(pb.Hello(labels={f"k{i}": "v" for i in range(65)}), "65 labels", id="too many labels"),
        pytest.param(pb.Hello(facts=pb.HostFacts(boot_time_unix_ms=-1)), "boot_time", id="negative boot"),
        pytest.param(pb.Hello(facts=pb.HostFacts(memory_bytes=2**64 - 1)), "memory_bytes", id="huge memory"),
    ],
)
def test_bad_hellos_are_rejected(hello: pb.Hello, message: str) -> None:
    with pytest.raises(IngestError, match=message):
        decode_hello(hello)


def test_repeated_findings_are_validated_each_time_they_differ() -> None:
    """The findings cache is keyed on the finding's bytes: a changed finding is checked again."""
    good = pb.Finding(severity=pb.SEVERITY_OK, key="OK", summary="fine")
    first = decode(batch(result_entry(1, findings=[good, good])), limits=LIMITS, after_seq=0)
    again = decode(batch(result_entry(2, findings=[good])), limits=LIMITS, after_seq=1)
    assert (
        json.loads(first.results[0].findings_json) == [{"severity": "OK", "key": "OK", "summary": "fine"}] * 2
    )
    assert again.results[0].findings_json == '[{"severity":"OK","key":"OK","summary":"fine"}]'
    bad = pb.Finding(severity=pb.SEVERITY_OK, key="ok", summary="fine")
    with pytest.raises(IngestError, match="finding 1: key 'ok'"):
        decode(batch(result_entry(3, findings=[good, bad])), limits=LIMITS, after_seq=2)
    tight = IngestLimits(max_summary_len=3)  # the same bytes under tighter limits: refused
    with pytest.raises(IngestError, match="finding 0 summary: 4 characters"):
        decode(batch(result_entry(4, summary="ok", findings=[good])), limits=tight, after_seq=3)


def two_entries() -> bytes:
    second = result_entry(2)
    second.ts_unix_ms = TS_MS + 1000  # points are keyed on (series, ts)
    data: bytes = batch(result_entry(1), second).SerializeToString()
    return data


def test_the_ingest_process_decodes_stores_and_answers_each_batch(tmp_path: Path) -> None:
    """A real worker process: group commits many agents' batches, rejects what it must."""
    url = f"sqlite:///{tmp_path / 'collector.db'}"
    store = Store.open(url)
    agents = [store.enroll_agent("acme", host=f"h{i}")[0] for i in range(20)]
    store.revoke_agent(agents[-1].agent_id)
    worker = IngestProcess(url, {}, IngestLimits())
    worker.start()
    try:
        futures = [worker.submit(a, two_entries(), 0) for a in agents]
        invalid = worker.submit(agents[0], batch(result_entry(2)).SerializeToString(), 2)
        outcomes = [f.exception(30) or f.result() for f in futures]
        assert outcomes[:-1] == [(2, 2, 4, 2)] * 19  # durable through 2, max seq 2, 4 points, 2 entries
        assert isinstance(outcomes[-1], IngestRejected) and outcomes[-1].kind == "revoked"
        with pytest.raises(IngestRejected, match="not above the previous seq 2") as rejected:
            invalid.result(30)
        assert rejected.value.kind == "invalid"
        replay = worker.submit(agents[0], two_entries(), 0)
        assert replay.result(30) == (2, 2, 4, 2)  # acknowledged again, stored once
    finally:
        worker.close()
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM check_results")).scalar_one() == 2 * 19
        assert conn.execute(sa.text("SELECT COUNT(*) FROM points")).scalar_one() == 4 * 19
    store.close()


def test_each_ingest_worker_saves_detection_state_under_its_own_row() -> None:
    from collector.cli.config import CollectorConfig
    from collector.ingest.worker import LogSettings, _shard_config

    config = CollectorConfig()
    assert _shard_config(config, LogSettings()) is config
    names = {
        _shard_config(config, LogSettings(shard_count=3, shard_index=i)).emergency.detection.shard
        for i in range(3)
    }
    assert names == {"default.0-of-3", "default.1-of-3", "default.2-of-3"}
    assert config.emergency.detection.shard == "default"  # the original is unchanged


# --- the columnar form: CheckResult.metric_keys / metric_values ----------------------------------


def columnar(samples: list[pb.MetricSample]) -> dict[str, Any]:
    """``metrics=samples`` in the columnar form, as agent.wire writes it."""
    keys = pb.MetricKeys(keys=[pb.MetricKey(name=m.name, unit=m.unit, labels=m.labels) for m in samples])
    return {
        "metrics": [],
        "metric_keys": keys.SerializeToString(),
        "metric_values": [m.value for m in samples],
    }


def test_columnar_metrics_decode_to_exactly_what_samples_do() -> None:
    samples = decode(batch(result_entry(5, metrics=SAMPLES)), limits=LIMITS, after_seq=4)
    cols = decode(batch(result_entry(5, **columnar(SAMPLES))), limits=LIMITS, after_seq=4)
    assert cols == samples
    assert cols.point_rows()[0].labels == (("mount", "/var"),)
    # The second time, the key set comes from the cache: same refs, new values.
    again = decode(
        batch(result_entry(6, **{**columnar(SAMPLES), "metric_values": [1.0, 2.0]})),
        limits=LIMITS,
        after_seq=5,
    )
    assert again.point_refs == samples.point_refs and again.point_values == [1.0, 2.0]
    # The same key bytes under another check are that check's series, not the cached ones.
    other = decode(
        batch(result_entry(7, check="storage.inodes", **columnar(SAMPLES))), limits=LIMITS, after_seq=6
    )
    assert {ref[0] for ref in other.point_refs} == {"storage.inodes"}


def _bad_columnar(**fields: Any) -> pb.EntryBatch:
    return batch(result_entry(2, **{**columnar(SAMPLES), **fields}))


BAD_COLUMNAR = [
    pytest.param(
        _bad_columnar(metric_values=[1.0]), "1 metric_values for 2 metric_keys", id="too few values"
    ),
    pytest.param(
        _bad_columnar(metric_values=[1.0, 2.0, 3.0]),
        "3 metric_values for 2 metric_keys",
        id="too many values",
    ),
    pytest.param(
        _bad_columnar(metric_values=[1.0, float("nan")]),
        "metric storage_fs_free_bytes: value nan is not a finite number",
        id="nan value",
    ),
    pytest.param(
        _bad_columnar(metric_keys=b"\xff\xff\xff"),
        "metric_keys does not parse as MetricKeys",
        id="garbage keys",
    ),
    pytest.param(
        _bad_columnar(metric_keys=b"", metric_values=[1.0]), "1 metric_values for 0 metric_keys", id="no keys"
    ),
    pytest.param(
        batch(result_entry(2, metrics=SAMPLES, metric_keys=columnar(SAMPLES)["metric_keys"])),
        "both metrics and metric_keys",
        id="both forms",
    ),
    pytest.param(
        _bad_columnar(**columnar([pb.MetricSample(name="Bad-Name", unit="percent", value=1.0)])),
        "metric name 'Bad-Name' is not snake_case",
        id="bad name",
    ),
    pytest.param(
        _bad_columnar(**columnar([pb.MetricSample(name="x_percent", unit="bytes", value=1.0)])),
        "does not end with its unit",
        id="name without its unit",
    ),
    pytest.param(
        _bad_columnar(**columnar([SAMPLES[1], SAMPLES[1]])),
        "lists the series storage_fs_free_bytes {} twice",
        id="duplicate key",
    ),
    pytest.param(
        _bad_columnar(**columnar([pb.MetricSample(name=f"m{i}_bytes", unit="bytes") for i in range(6)])),
        "6 metric_keys, more than 5",
        id="too many keys",
    ),
    pytest.param(
        _bad_columnar(
            **columnar(
                [
                    pb.MetricSample(
                        name="x_bytes",
                        unit="bytes",
                        labels=[pb.Label(key=f"k{i}", value="v") for i in range(4)],
                    )
                ]
            )
        ),
        "4 labels, more than 3",
        id="too many labels",
    ),
    pytest.param(
        _bad_columnar(
            **columnar(
                [pb.MetricSample(name="x_bytes", unit="bytes", labels=[pb.Label(key="k", value="a\x00")])]
            )
        ),
        "NUL",
        id="NUL in a label value",
    ),
]


@pytest.mark.parametrize(("bad", "message"), BAD_COLUMNAR)
def test_hostile_columnar_metrics_are_rejected_whole(bad: pb.EntryBatch, message: str) -> None:
    with pytest.raises(
        IngestError, match=message.replace("(", r"\(").replace(")", r"\)").replace("{", r"\{")
    ):
        decode(bad, limits=LIMITS, after_seq=1)
    # Rejected key sets are not cached: the same bytes fail again.
    with pytest.raises(IngestError):
        decode(bad, limits=LIMITS, after_seq=1)
