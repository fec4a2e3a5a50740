"""The seasonal envelope and the fading spike record (issue 18, round 2).

Synthetic series sampled every 5 minutes, real detectors, no mocks: a nightly job's spike
stops being news once it has recurred at its time of day; the same spike at another hour
still is; on a bursty series a burst no larger than the recent record is not a SPIKE, a
larger one is; both survive a restart.
"""

from __future__ import annotations

import json
import random

import pytest

from checks.api import Direction
from collector.detect.baseline import DAY_S, DetectorConfig
from collector.detect.detector import SeriesDetector

STEP = 300.0
PER_DAY = int(DAY_S // STEP)  # 288
T0 = 1_800_000_000.0 - 1_800_000_000.0 % DAY_S  # midnight UTC: sample i is at i * 5 min of day 0
NIGHTLY = 39  # 03:15


def nightly_job(rng: random.Random, days: int, spike: float = 60.0) -> list[float]:
    """CPU around 10 % (sd 0.5) with a one-sample spike at 03:15 every night but the first."""
    values = [10.0 + rng.gauss(0, 0.5) for _ in range(days * PER_DAY)]
    for day in range(1, days):
        values[day * PER_DAY + NIGHTLY] = spike + rng.gauss(0, 2.0)
    return values


def spikes(d: SeriesDetector, values: list[float]) -> list[tuple[int, str]]:
    """(sample, key) of every spike report; anomalies would fail the test (none expected)."""
    out = []
    for i, v in enumerate(values):
        assert d.update(T0 + i * STEP, v) is None, f"anomaly at sample {i}"
        if d.spike is not None:
            out.append((i, d.spike.key))
    return out


def test_a_nightly_spike_stops_being_news_but_the_same_spike_at_noon_is_one():
    rng = random.Random(1)
    values = nightly_job(rng, 7)
    noon = 5 * PER_DAY + 144
    values[noon] = 60.0
    no_record = DetectorConfig(spike_memory=0.0)  # the envelope alone
    got = spikes(SeriesDetector("cpu", Direction.UP_IS_BAD, no_record), values)
    nightly_reports = [i for i, key in got if i % PER_DAY == NIGHTLY and key == "SPIKE"]
    # the first nights are news; once two nights are known the job is usual at 03:15
    assert nightly_reports and max(nightly_reports) < 3 * PER_DAY
    assert (noon, "SPIKE") in got
    # without the envelope every night is a spike again: the envelope is what quiets it
    bare = SeriesDetector("cpu", Direction.UP_IS_BAD, DetectorConfig(envelope_margin=-1.0, spike_memory=0.0))
    late = [i for i, key in spikes(bare, values) if i % PER_DAY == NIGHTLY and i >= 3 * PER_DAY]
    assert len(late) == 4
    # with both (the default) the nights after the first are quiet too
    both = spikes(SeriesDetector("cpu", Direction.UP_IS_BAD), values)
    assert [i for i, _ in both if i % PER_DAY == NIGHTLY and i >= 3 * PER_DAY] == []


def test_a_bigger_nightly_spike_is_still_news():
    rng = random.Random(2)
    values = nightly_job(rng, 6)
    values[5 * PER_DAY + NIGHTLY] = 200.0  # far beyond the usual 60 at that hour
    got = spikes(SeriesDetector("cpu", Direction.UP_IS_BAD), values)
    assert (5 * PER_DAY + NIGHTLY, "SPIKE") in got


def test_envelope_explains_the_usual_range_at_this_time_of_day():
    rng = random.Random(3)
    d = SeriesDetector("cpu", Direction.UP_IS_BAD)
    values = nightly_job(rng, 4)
    for i, v in enumerate(values[: 3 * PER_DAY + NIGHTLY + 1]):
        d.update(T0 + i * STEP, v)
    low, high = d.baseline.envelope() or (0.0, 0.0)
    assert 50.0 < high < 70.0 and 8.0 < low < 10.0
    assert d.baseline.usual(62.0) and not d.baseline.usual(120.0)
    for i, v in enumerate(values[3 * PER_DAY + NIGHTLY + 1 :], 3 * PER_DAY + NIGHTLY + 1):
        d.update(T0 + i * STEP, v)
        if i % PER_DAY == 144:  # at noon nothing but noise was ever seen
            assert not d.baseline.usual(60.0)


def bursty(rng: random.Random, n: int, every: int, size: float) -> tuple[list[float], list[int]]:
    """Counts around 100 (sd 5) with a burst of ``size`` at random times about every ``every``."""
    values = [100.0 + rng.gauss(0, 5.0) for _ in range(n)]
    at = []
    i = 400
    while i < n:
        values[i] = size + rng.gauss(0, 5.0)
        at.append(i)
        i += every + rng.randrange(-40, 40)
    return values, at


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_a_burst_no_larger_than_the_recent_record_is_no_spike_a_larger_one_is(seed: int):
    rng = random.Random(seed)
    values, bursts = bursty(rng, 2000, 150, 200.0)
    big = bursts[-1] + 70
    values[big] = 400.0  # twice the usual burst
    record_only = DetectorConfig(envelope_margin=-1.0)  # the record alone
    with_record = SeriesDetector("tweets", Direction.UP_IS_BAD, record_only)
    got = [i for i, key in spikes(with_record, values) if key == "SPIKE"]
    assert big in got and [i for i in got if i in bursts] == []
    # without the record the usual bursts are spikes (one per alarm rest): the record quiets them
    neither = DetectorConfig(spike_memory=0.0, envelope_margin=-1.0)
    bare = SeriesDetector("tweets", Direction.UP_IS_BAD, neither)
    got = [i for i, key in spikes(bare, values) if key == "SPIKE"]
    assert big in got and len([i for i in got if i in bursts]) >= 3


def test_envelope_and_record_survive_a_restart_and_old_states_load():
    rng = random.Random(5)
    values = nightly_job(rng, 5)
    whole = SeriesDetector("cpu", Direction.UP_IS_BAD)
    first = SeriesDetector("cpu", Direction.UP_IS_BAD)
    cut = 3 * PER_DAY + 10
    a = [(whole.update(T0 + i * STEP, v), whole.alarm_score, whole.spike) for i, v in enumerate(values)]
    b = [(first.update(T0 + i * STEP, v), first.alarm_score, first.spike) for i, v in enumerate(values[:cut])]
    state = json.loads(json.dumps(first.to_state()))
    second = SeriesDetector.from_state(state)
    assert second.to_state() == first.to_state()
    b += [
        (second.update(T0 + i * STEP, v), second.alarm_score, second.spike)
        for i, v in enumerate(values[cut:], cut)
    ]
    assert a == b and any(s is not None for _, _, s in a)
    # a state saved before the envelope and the record loads, with both empty
    del state["record"]
    for key in ("highs", "lows", "bucket_range"):
        del state["baseline"][key]
    old = SeriesDetector.from_state(state)
    assert old.baseline.envelope() is None and old._record == 0.0
