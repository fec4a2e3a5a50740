"""Scenario driver: a fake clock, counting ids and a tiny in-memory case layer.

``drive`` feeds timed steps to an :class:`IncidentEngine`, asks :func:`decide` about every
incident the step changed and acts like the wiring will (a new case id per OPEN_CASE,
``record_decision`` after each action), logging every non-NONE decision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from collector.incidents import (
    CaseAction,
    CasePolicy,
    EngineConfig,
    IncidentEngine,
    Signal,
    decide,
)

T0 = 1_800_000_000.0  # 2027-01-15 08:00 UTC


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Ids:
    def __init__(self, prefix: str = "inc") -> None:
        self.prefix = prefix
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return f"{self.prefix}-{self.n}"


Step = tuple[float, Signal | None]
"""(seconds after T0, a signal to feed — or None for a tick)."""


@dataclass
class Run:
    engine: IncidentEngine
    clock: Clock
    log: list[tuple[str, str, str | None]] = field(default_factory=list)
    """(action, incident id, case id) of every decision other than NONE."""
    case_ids: Ids = field(default_factory=lambda: Ids("case"))


def make_engine(
    config: EngineConfig | None = None, hosts: Mapping[str, Mapping[str, str | None]] | None = None
) -> Run:
    clock = Clock()
    engine = IncidentEngine(config, clock=clock, new_id=Ids())
    for customer, roster in (hosts or {}).items():
        engine.set_hosts(customer, roster)
    return Run(engine, clock)


def step(
    run: Run, at: float, signal: Signal | None, policy: CasePolicy, maintenance: Mapping[str, Sequence[str]]
) -> None:
    run.clock.now = T0 + at
    changed = run.engine.tick() if signal is None else run.engine.feed(signal)
    for incident in changed:
        decision = decide(incident, policy, maintenance=maintenance)
        if decision.action is CaseAction.NONE:
            continue
        case_id = run.case_ids() if decision.action is CaseAction.OPEN_CASE else decision.case_id
        run.engine.record_decision(decision, case_id=case_id)
        run.log.append((decision.action.value, incident.id, case_id))


def drive(
    steps: Sequence[Step],
    *,
    config: EngineConfig | None = None,
    policy: CasePolicy | None = None,
    hosts: Mapping[str, Mapping[str, str | None]] | None = None,
    maintenance: Mapping[str, Sequence[str]] | None = None,
    run: Run | None = None,
) -> Run:
    run = run or make_engine(config, hosts)
    for at, signal in steps:
        step(run, at, signal, policy or CasePolicy(), maintenance or {})
    return run
