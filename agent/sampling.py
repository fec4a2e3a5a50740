"""The one-shot run's second sample: rates on the first run, as ``vmstat 1 2`` does.

A check that derives rates or utilisation from two readings (``Check.rates``) has
nothing to report on its first run but "first sample stored". ``diag-agent checks``
on a host with no state from an earlier run would then show no CPU utilisation, disk,
network or retransmit rates, exactly when an engineer needs them during an incident.

:func:`run_sampled` runs every plan once; then, for the rate checks that had no
previous reading and ran normally, it waits until ``interval_s`` after the first
pass started and runs them again on the state the first pass left. Their second
outcome replaces the first in the report; every other check's outcome is its first
and only one (an event count "since the last run" keeps its since-boot figure instead
of a one-second delta). ``interval_s`` 0 is a single pass, as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from agent.config import CheckPlan
from agent.runner import OutcomeKind, RunReport, run_all
from agent.state import StateStore
from checks.probe import Probe

__all__ = ["DEFAULT_SAMPLE_INTERVAL_S", "MAX_SAMPLE_INTERVAL_S", "needs_second_sample", "run_sampled"]

DEFAULT_SAMPLE_INTERVAL_S = 1.0
"""Seconds between the two readings of a first run (``vmstat 1 2``)."""
MAX_SAMPLE_INTERVAL_S = 60.0
"""Longest ``--sample-interval`` accepted: a one-shot run should not look hung."""


def needs_second_sample(plans: Sequence[CheckPlan], state: StateStore) -> list[CheckPlan]:
    """The plans of rate checks that have no previous reading in ``state``."""
    return [p for p in plans if p.check.rates and not state.has_reading(p.name)]


def run_sampled(
    plans: Sequence[CheckPlan],
    probe: Probe,
    state: StateStore,
    max_workers: int = 4,
    secrets: Sequence[str] = (),
    *,
    interval_s: float = DEFAULT_SAMPLE_INTERVAL_S,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> RunReport:
    """Run ``plans`` once, then the rate checks without a previous reading again.

    See the module docstring. Commits every finished check's store into ``state``
    (the second reading for the re-sampled checks); saving is the caller's job.
    """
    resample = needs_second_sample(plans, state) if interval_s > 0 else []
    started = clock()
    first = run_all(plans, probe, state, max_workers, secrets)
    ran = {o.check for o in first.outcomes if o.kind is OutcomeKind.OK}
    # A check that skipped, failed or timed out would do the same again: sample it once.
    resample = [p for p in resample if p.name in ran and p.name not in first.abandoned]
    if not resample:
        return first
    wait = started + interval_s - clock()
    if wait > 0:
        sleep(wait)
    second = run_all(resample, probe, state, max_workers, secrets)
    replaced = {o.check: o for o in second.outcomes}
    outcomes = tuple(replaced.get(o.check, o) for o in first.outcomes)
    return RunReport(
        records=tuple(o.record for o in outcomes if o.record is not None),
        skips=tuple(o.skip for o in outcomes if o.skip is not None),
        outcomes=outcomes,
        abandoned=tuple(sorted({*first.abandoned, *second.abandoned})),
    )
