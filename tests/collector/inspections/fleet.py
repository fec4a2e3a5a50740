"""A small customer fleet for inspection-run tests: a real store, real gRPC, fake agents.

A :class:`FakeAgent` is a raw gRPC client that follows the agent's inspection contract:
on an ``InspectionRequest`` it streams the requested checks' results tagged with the
inspection id, then (last) its own ``application.agent`` result, the completion marker.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from collector.store import IngestBatch, PointRow, ResultRow, Store
from collector.store.schema import check_results, customers, hosts
from protos.diag.v1 import agent_pb2 as pb
from tests.integration.harness import LiveStream

DAY = 86400.0
SEV = {
    "OK": pb.SEVERITY_OK,
    "WARN": pb.SEVERITY_WARN,
    "CRIT": pb.SEVERITY_CRIT,
    "UNKNOWN": pb.SEVERITY_UNKNOWN,
}

# What each host reports when inspected: (check, layer, severity, key, summary, item).
ANSWERS: dict[str, list[tuple[str, str, str, str, str, str | None]]] = {
    "db1": [
        ("storage.filesystem", "storage", "CRIT", "FS_NEARLY_FULL", "/data is 95% full", "/data"),
        ("host.memory", "host", "WARN", "MEM_LOW", "available memory 9%", None),
    ],
    "db2": [
        ("storage.filesystem", "storage", "WARN", "FS_NEARLY_FULL", "/data is 85% full", "/data"),
        ("host.memory", "host", "OK", "OK", "memory fine", None),
    ],
    "web1": [
        ("storage.filesystem", "storage", "OK", "OK", "all filesystems fine", None),
        ("host.memory", "host", "OK", "OK", "memory fine", None),
    ],
}


@dataclass
class FakeAgent:
    """Connects as ``agent_id`` and answers inspection requests per :data:`ANSWERS`."""

    address: str
    token: str
    agent_id: str
    host: str
    labels: dict[str, str]
    answer: bool = True
    seq: int = 1000
    requests: list[pb.InspectionRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.stream = LiveStream(self.address, self.token)
        self.stream.send(
            pb.AgentMessage(
                hello=pb.Hello(
                    protocol_version=1, agent_id=self.agent_id, hostname=self.host, labels=self.labels
                )
            )
        )
        welcome = self.stream.next()
        assert welcome.WhichOneof("body") == "welcome"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self.stream.next(timeout=0.2)
            except queue.Empty:
                continue
            except BaseException:  # noqa: BLE001 - the stream ended: the agent stops
                return
            if msg.WhichOneof("body") == "inspection":
                self.requests.append(msg.inspection)
                if self.answer:
                    self._answer(msg.inspection)

    def _answer(self, request: pb.InspectionRequest) -> None:
        entries = []
        now_ms = int(request.deadline_unix_ms) - 1000
        for check, layer, severity, key, summary, item in ANSWERS.get(self.host, []):
            self.seq += 1
            findings = [pb.Finding(severity=SEV[severity], key=key, summary=summary, item=item or "")]
            entries.append(
                pb.Entry(
                    seq=self.seq,
                    ts_unix_ms=now_ms,
                    result=pb.CheckResult(
                        check=check,
                        layer=layer,
                        severity=SEV[severity],
                        key=key,
                        summary=summary,
                        duration_ms=1.0,
                        findings=findings,
                        inspection_id=request.inspection_id,
                    ),
                )
            )
        self.seq += 1
        entries.append(
            pb.Entry(
                seq=self.seq,
                ts_unix_ms=now_ms,
                result=pb.CheckResult(
                    check="application.agent",
                    layer="application",
                    severity=pb.SEVERITY_OK,
                    key="INSPECTION_DONE",
                    summary="all requested checks ran",
                    duration_ms=1.0,
                    inspection_id=request.inspection_id,
                ),
            )
        )
        self.stream.send(pb.AgentMessage(batch=pb.EntryBatch(entries=entries)))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.stream.close()


def seed_history(store: Store, agent: Any, now: float, days: int = 10) -> None:
    """Hourly filesystem usage growing 1 point a day on /data (for capacity trends)."""
    rows = []
    seq = 1
    start = now - days * DAY
    for h in range(days * 24):
        ts = start + h * 3600.0
        rows.append(
            PointRow(
                seq,
                ts,
                "storage.filesystem",
                "storage_fs_used_percent",
                "percent",
                (("mountpoint", "/data"),),
                80.0 + h / 24.0,
            )
        )
        seq += 1
    result = ResultRow(seq, now - DAY, "storage.filesystem", "storage", "OK", "OK", "fine", 1.0, "[]", None)
    store.ingest(agent, IngestBatch(seq, 1, [result], rows, [], []))


def tagged_counts(store: Store, customer: str, run_id: str) -> dict[str, int]:
    """Severity -> number of distinct (key, host) non-OK findings among the run's tagged results,
    counted independently of the engine, straight from check_results."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(hosts.c.name, check_results.c.findings)
            .join(hosts, hosts.c.id == check_results.c.host_id)
            .join(customers, customers.c.id == hosts.c.customer_id)
            .where(check_results.c.inspection_id == run_id, customers.c.slug == customer)
        ).all()
    seen: dict[tuple[str, str], str] = {}
    for name, findings in rows:
        for f in json.loads(findings) if isinstance(findings, str) else findings:
            if f["severity"] != "OK":
                seen[(f["key"], name)] = f["severity"]
    counts: dict[str, int] = {}
    for severity in seen.values():
        counts[severity] = counts.get(severity, 0) + 1
    return counts


def wait(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def enroll_fleet(store: Store, customer: str, names: Sequence[str]) -> dict[str, tuple[Any, str]]:
    return {name: store.enroll_agent(customer, host=name, agent_id=f"{customer}-{name}") for name in names}
