"""InspectionRequests on the agent: validation, one at a time, selection, the marker, the scheduler."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from agent.config import load_text
from agent.inspection import (
    MAX_ID_LEN,
    Inspection,
    InspectionQueue,
    marker_record,
    request_from_proto,
    select,
    valid_id,
)
from agent.records import CheckRecord
from agent.runner import AgentProbe
from agent.scheduler import Scheduler
from agent.sink import MemorySink
from agent.spool import Spool, decode_record
from agent.state import StateStore
from checks.application.agent import AGENT
from protos.diag.v1 import agent_pb2 as pb
from tests.agent import fakes

REGISTRY = {**fakes.ALL, AGENT.name: AGENT}


def _request(iid: str, checks: list[str] = [], layers: list[str] = [], deadline_in_s: float = 30.0) -> Any:  # noqa: B006
    return pb.InspectionRequest(
        inspection_id=iid,
        checks=checks,
        layers=layers,
        deadline_unix_ms=int((time.time() + deadline_in_s) * 1000),
    )


def _plans(text: str = "") -> Any:
    return load_text(text, "test.yaml", registry=REGISTRY).plans


# --- validation and the queue -------------------------------------------------------------


@pytest.mark.parametrize(
    "iid",
    ["", " ", "a b", "-leading-dash", "x" * (MAX_ID_LEN + 1), "id\x00nul", "naïve", "semi;colon", "a/b"],
)
def test_invalid_ids_are_refused(iid: str) -> None:
    assert not valid_id(iid)
    assert request_from_proto(_request(iid, ["host.test_metrics"])) is None


def test_valid_ids_and_hostile_names_are_kept_but_cleaned() -> None:
    assert (
        valid_id("acme-monthly-20261125T120000-1a2b") and valid_id("x" * MAX_ID_LEN) and valid_id("a.b:c@d_e")
    )
    long = "host." + "a" * 500
    insp = request_from_proto(_request("r1", ["host.x\x1b[31m", long, "host.x\x1b[31m"], ["host", "host"]))
    assert insp is not None
    assert insp.checks[0] == "host.x?[31m"  # control characters never echoed back
    assert len(insp.checks) == 2  # duplicates collapse
    assert len(insp.checks[1]) <= 128 and insp.checks[1].endswith("…")
    assert insp.layers == ("host",)
    many = request_from_proto(_request("r2", [f"host.c{i}" for i in range(5000)]))
    assert many is not None and len(many.checks) == 1000


def test_queue_runs_one_at_a_time_and_ignores_duplicates_and_overflow() -> None:
    q = InspectionQueue(max_queued=2, remember=2)
    assert q.offer(Inspection("a"))
    assert not q.offer(Inspection("a"))  # queued already
    assert q.offer(Inspection("b"))
    assert not q.offer(Inspection("c"))  # queue full
    assert not q.offer(None)  # invalid request
    first = q.take()
    assert first is not None and first.inspection_id == "a" and q.active is first
    assert q.take() is None  # one at a time
    assert not q.offer(Inspection("a"))  # running
    q.finish()
    assert not q.offer(Inspection("a"))  # done
    taken = q.take()
    assert taken is not None and taken.inspection_id == "b"
    q.finish()
    assert q.offer(Inspection("c")) and q.take() is not None
    q.finish()
    assert q.offer(Inspection("a"))  # forgotten after `remember` newer ones
    assert q.ignored == 5


def test_selection_names_layers_disabled_unknown_and_everything() -> None:
    plans = _plans("checks: {storage.test_raise: {enabled: false}}\n")
    sel = select(
        Inspection(
            "i", checks=("host.test_metrics", "host.test_warn", "host.nope"), layers=("storage", "moon")
        ),
        plans,
    )
    assert [p.name for p in sel.run] == ["host.test_metrics"]  # storage's only check is disabled
    assert sel.unavailable == (
        ("host.test_warn", "disabled"),
        ("host.nope", "unknown check"),
        ("moon", "unknown layer"),
    )
    assert sel.requested == 3
    every = select(Inspection("j"), plans)
    assert {p.name for p in every.run} == {p.name for p in plans if p.enabled}
    by_layer = select(Inspection("k", layers=("application",)), plans)
    assert {p.name for p in by_layer.run} == {
        "application.test_skip",
        "application.test_undeclared",
        AGENT.name,
    }


def test_marker_without_the_agent_check_still_answers_and_counts() -> None:
    insp = Inspection("m1", deadline_unix_ms=int((time.time() - 90) * 1000))
    unavailable = [(f"host.n{i}", "unknown check") for i in range(250)]
    marker = marker_record(insp, None, ["host.a", "host.b", "host.a"], unavailable, time.time())
    assert marker.check == "application.agent" and marker.layer == "application"
    assert marker.inspection_id == "m1"
    assert marker.summary.startswith("Inspection m1: 2 of 252 requested checks ran (answered 9")
    assert "after the deadline" in marker.summary and "and 240 more" in marker.summary
    assert len(marker.results) == 1 + 200 + 1
    assert marker.results[-1].summary == "and 50 more requested checks not available here"
    assert CheckRecord.from_dict(marker.to_dict()) == marker


# --- the scheduler ---------------------------------------------------------------------------


def _scheduler(text: str, sink: Any) -> Scheduler:
    loaded = load_text(text, "test.yaml", registry=REGISTRY)
    agent = loaded.config.agent
    return Scheduler(
        loaded.plans,
        probe=AgentProbe(),
        state=StateStore(None),
        sink=sink,
        agent_id=agent.id,
        base_interval_s=agent.interval_s,
        jitter_s=agent.effective_jitter_s,
        max_workers=agent.max_workers,
        grace_s=0.5,
    )


def _run_until(scheduler: Scheduler, done: Callable[[], bool], timeout: float = 15.0) -> None:
    def watch() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not done():
            time.sleep(0.02)
        scheduler.request_stop()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    scheduler.run()
    watcher.join()


def _markers(records: list[CheckRecord], iid: str) -> list[CheckRecord]:
    return [r for r in records if r.inspection_id == iid and r.check == AGENT.name]


# The scheduled run of network.test_hang hangs for the whole test (busy, not abandoned):
# an inspection runs its own copy, whose timeout the request's deadline cuts short.
CONFIG = (
    "agent: {id: t1, interval_s: 600, jitter_s: 0.05, max_workers: 2}\n"
    "checks: {network.test_hang: {timeout_s: 30}, application.test_undeclared: {enabled: false}}\n"
)
SHORT_DEADLINE_S = 2.5
"""Cuts an inspection run's timeout to max(1, 2.5 - 1) = 1.5 s."""


def test_inspection_runs_at_once_tags_results_and_emits_the_marker_last() -> None:
    sink = MemorySink()
    scheduler = _scheduler(CONFIG, sink)
    request = _request(
        "insp-1",
        ["host.test_metrics", "host.test_warn", "host.nope", "application.test_skip", "network.test_hang"],
        ["storage"],
        deadline_in_s=SHORT_DEADLINE_S,
    )
    timer = threading.Timer(0.3, scheduler.request_inspection, [request])
    timer.start()
    _run_until(scheduler, lambda: bool(_markers(sink.records, "insp-1")))
    timer.join()

    tagged = [r for r in sink.records if r.inspection_id == "insp-1"]
    assert tagged[-1].check == AGENT.name  # the marker comes last
    assert sorted(r.check for r in tagged[:-1]) == [
        "host.test_metrics",
        "network.test_hang",
        "storage.test_raise",
    ]
    by_check = {r.check: r for r in tagged}
    assert by_check["network.test_hang"].key == "CHECK_TIMEOUT"  # ran, and timed out: a result
    # cut short by the deadline (2.5 s away when sent), not by the check's own 30 s timeout
    assert by_check["network.test_hang"].duration_ms < 10_000
    assert re.search(r"within its 1(\.\d)? s timeout", by_check["network.test_hang"].summary)
    assert by_check["storage.test_raise"].key == "CHECK_ERROR"
    marker = tagged[-1]
    assert marker.summary.startswith("Inspection insp-1: 3 of 6 requested checks ran")
    for expected in (
        "host.test_warn (disabled)",
        "host.nope (unknown check)",
        "application.test_skip (skipped",
    ):
        assert expected in marker.summary
    assert {(r.key, r.item) for r in marker.results} >= {
        ("INSPECTION_CHECK_UNAVAILABLE", "host.test_warn"),
        ("INSPECTION_CHECK_UNAVAILABLE", "host.nope"),
        ("INSPECTION_CHECK_UNAVAILABLE", "application.test_skip"),
    }
    assert any(r.key == "AGENT_MEMORY_HIGH" or r.summary.startswith("Agent resident") for r in marker.results)
    # the scheduled runs were neither delayed nor fed the inspection's state
    scheduled = [r for r in sink.records if r.inspection_id is None and r.check == "host.test_metrics"]
    assert [r.summary for r in scheduled] == ["run 1"]
    assert by_check["host.test_metrics"].summary == "run 2"  # from a copy of the scheduled state
    assert scheduler.state.snapshot("host.test_metrics") == {"runs": 1}
    assert scheduler.inspections_answered == 1


def test_a_second_request_waits_duplicates_and_bad_ids_are_ignored_past_deadlines_answered() -> None:
    sink = MemorySink()
    scheduler = _scheduler(CONFIG, sink)

    def send() -> None:
        assert scheduler.request_inspection(
            _request("slow", ["network.test_hang"], deadline_in_s=SHORT_DEADLINE_S)
        )
        assert scheduler.request_inspection(_request("late", ["host.test_metrics"], deadline_in_s=-60))
        assert not scheduler.request_inspection(_request("slow", ["host.test_metrics"]))
        assert not scheduler.request_inspection(_request("bad id", ["host.test_metrics"]))

    timer = threading.Timer(0.2, send)
    timer.start()
    _run_until(scheduler, lambda: bool(_markers(sink.records, "late")))
    timer.join()

    order = [(r.inspection_id, r.check) for r in sink.records if r.inspection_id]
    slow_marker = order.index(("slow", AGENT.name))
    assert order[:slow_marker] == [("slow", "network.test_hang")]
    assert order[slow_marker + 1 :] == [("late", "host.test_metrics"), ("late", AGENT.name)]
    late = _markers(sink.records, "late")[0]
    assert "after the deadline" in late.summary
    assert len(_markers(sink.records, "slow")) == 1


def test_a_check_still_hung_from_an_earlier_inspection_is_reported_not_started_again() -> None:
    sink = MemorySink()
    scheduler = _scheduler(CONFIG, sink)

    def send() -> None:
        scheduler.request_inspection(_request("h1", ["network.test_hang"], deadline_in_s=SHORT_DEADLINE_S))
        scheduler.request_inspection(_request("h2", ["network.test_hang", "host.test_metrics"]))

    timer = threading.Timer(0.2, send)
    timer.start()
    _run_until(scheduler, lambda: bool(_markers(sink.records, "h2")))
    timer.join()
    h2 = [r for r in sink.records if r.inspection_id == "h2"]
    assert [r.check for r in h2] == ["host.test_metrics", AGENT.name]
    assert "network.test_hang (hung: an earlier run has not returned)" in h2[-1].summary
    assert scheduler.pool.abandoned_total >= 1


def test_marker_goes_through_the_spool_with_its_id(tmp_path) -> None:
    from agent.sink import SpoolSink

    spool = Spool(tmp_path / "spool.db")
    try:
        scheduler = _scheduler(CONFIG, SpoolSink(spool))
        timer = threading.Timer(0.2, scheduler.request_inspection, [_request("sp-1", ["host.test_metrics"])])
        timer.start()
        _run_until(scheduler, lambda: spool.stats().high_water > 0 and _spooled_marker(spool))
        timer.join()
        entries = [e for e in spool.read_from(1, 1000) if e.kind == "result"]
        tagged = [decode_record(e.payload) for e in entries]
        tagged = [r for r in tagged if r.inspection_id == "sp-1"]
        assert [r.check for r in tagged] == ["host.test_metrics", AGENT.name]
    finally:
        spool.close()


def _spooled_marker(spool: Spool) -> bool:
    for entry in spool.read_from(1, 1000):
        if entry.kind == "result":
            record = decode_record(entry.payload)
            if record.inspection_id and record.check == AGENT.name:
                return True
    return False
