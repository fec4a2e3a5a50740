"""A deterministic emergency-case scenario: real store, real gRPC ingest, a fake clock.

Agents are raw gRPC streams (as in tests/collector/test_grpc_server.py) sending
``EntryBatch`` messages whose sample times the test chooses; the in-process collector
stores them and calls the live observer, whose clock follows the samples.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped, unused-ignore]

from collector.cli.config import CollectorConfig
from collector.emergency.live import LiveDetection, make_observer
from collector.ingest.grpc_service import GrpcSettings
from collector.store import Scope, Store
from collector.store.cases import CaseRecord, CaseRepo
from protos.diag.v1 import agent_pb2 as pb
from tests.integration.harness import InProcessCollector, hello_msg, run_stream

T0 = 1_700_000_000.0
STEP = 60.0
SETTINGS = GrpcSettings(
    listen="127.0.0.1:0",
    max_message_bytes=4 * 1024 * 1024,
    max_batch_entries=1000,
    rate_limit_entries_per_s=1e6,
    rate_limit_burst=1_000_000,
    heartbeat_interval_s=30,
)
LAYER = {
    "storage.disk_io": "storage",
    "application.http": "application",
    "application.log_patterns": "application",
}


def noise(i: int) -> float:
    """Deterministic jitter in [0, 1): a scenario's normal wobble."""
    return ((i * 7919) % 13) / 13.0


def config(tmp: Path, **emergency: Any) -> CollectorConfig:
    base: dict[str, Any] = {
        "detection": {"silent_after_s": 180, "state_save_interval_s": 3600},
        "engine": {"silent_settle_s": 30},
    }
    for key, value in emergency.items():
        base[key] = {**base[key], **value} if isinstance(value, dict) and key in base else value
    return CollectorConfig.model_validate({"state_dir": str(tmp), "emergency": base})


@dataclass
class Agent:
    agent_id: str
    token: str
    seq: int = 0


@dataclass
class Scenario:
    """One store, one in-process collector, one live observer with a fake clock."""

    store: Store
    cfg: CollectorConfig
    now: float = T0
    agents: dict[str, Agent] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ids = (f"inc-{i}" for i in itertools.count(1))
        observer = make_observer(self.store, self.cfg, clock=lambda: self.now, new_id=lambda: next(ids))
        assert isinstance(observer, LiveDetection)
        self.observer = observer
        self.store.add_observer(observer)
        self.collector = InProcessCollector(self.store, SETTINGS)
        self.repo = CaseRepo(self.store)

    def close(self) -> None:
        self.collector.stop()
        self.observer.close()

    def enroll(self, customer: str, host: str) -> Agent:
        identity, token = self.store.enroll_agent(customer, host, f"{customer}-{host}")
        agent = self.agents[host] = Agent(identity.agent_id, token)
        return agent

    def send(self, host: str, entries: Iterable[tuple[float, pb.Entry]]) -> None:
        """Send entries (each built for a time) in one batch; the clock moves to the last time."""
        agent = self.agents[host]
        built = []
        last = self.now
        for ts, entry in entries:
            agent.seq += 1
            entry.seq = agent.seq
            entry.ts_unix_ms = int(ts * 1000)
            built.append(entry)
            last = max(last, ts)
        self.now = last
        msgs = [hello_msg(agent.agent_id), pb.AgentMessage(batch=pb.EntryBatch(entries=built))]
        replies, code, details = run_stream(self.collector.address, agent.token, msgs)
        assert code == grpc.StatusCode.OK, details
        assert replies[-1].ack.durable_through_seq == agent.seq

    def tick(self, now: float) -> None:
        self.now = now
        self.observer.tick(now)

    def cases(self, customer: str | None = None) -> list[CaseRecord]:
        return self.repo.list(Scope.everything(), customer=customer)


def metric(check: str, name: str, value: float, unit: str, **labels: str) -> pb.Entry:
    return pb.Entry(
        result=pb.CheckResult(
            check=check,
            layer=LAYER.get(check, check.split(".")[0]),
            severity=pb.SEVERITY_OK,
            key="OK",
            summary="ok",
            metrics=[
                pb.MetricSample(
                    name=name,
                    value=value,
                    unit=unit,
                    labels=[pb.Label(key=k, value=v) for k, v in sorted(labels.items())],
                )
            ],
        )
    )


def crit(check: str, key: str, item: str = "") -> pb.Entry:
    finding = pb.Finding(severity=pb.SEVERITY_CRIT, key=key, summary=f"{key} on {item}", item=item)
    return pb.Entry(
        result=pb.CheckResult(
            check=check,
            layer=LAYER.get(check, check.split(".")[0]),
            severity=pb.SEVERITY_CRIT,
            key=key,
            summary=f"{key} on {item}",
            findings=[finding],
        )
    )


def inventory(products: dict[str, str], **extra: Any) -> pb.Entry:
    text = json.dumps({"products": products, **extra}, sort_keys=True)
    return pb.Entry(
        inventory=pb.Inventory(document_json=text, sha256=hashlib.sha256(text.encode()).hexdigest())
    )


def series(
    check: str, name: str, unit: str, values: Sequence[float], start: float, **labels: str
) -> list[tuple[float, pb.Entry]]:
    """One sample per STEP from ``start``."""
    return [(start + i * STEP, metric(check, name, v, unit, **labels)) for i, v in enumerate(values)]


def disk_await(values: Sequence[float], start: float) -> list[tuple[float, pb.Entry]]:
    return series(
        "storage.disk_io", "storage_disk_read_await_seconds", "seconds", values, start, device="sdb"
    )


def app_latency(values: Sequence[float], start: float) -> list[tuple[float, pb.Entry]]:
    return series("application.http", "app_http_latency_seconds", "seconds", values, start, target="shop")


def error_rate(values: Sequence[float], start: float) -> list[tuple[float, pb.Entry]]:
    return series(
        "application.log_patterns", "app_log_matches_per_second", "per_second", values, start, pattern="error"
    )
