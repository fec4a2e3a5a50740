"""Detector scenarios: each builds a series, feeds it sample by sample and checks the events."""

from __future__ import annotations

import itertools
import json
import math
import random
from collections.abc import Callable

import pytest

from checks.api import Direction
from collector.detect.baseline import DetectorConfig
from collector.detect.detector import (
    Anomaly,
    DetectorBank,
    Recovery,
    SeriesDetector,
    catalogue_direction,
)

STEP = 60.0
T0 = 1_800_000_000.0  # 2027-01-15 08:00 UTC


def feed(d: SeriesDetector, values: list[float], start: int = 0) -> list[tuple[int, Anomaly | Recovery]]:
    events = []
    for i, v in enumerate(values, start=start):
        e = d.update(T0 + i * STEP, v)
        if e is not None:
            events.append((i, e))
    return events


def noisy(rng: random.Random, n: int, mean: float, sd: float) -> list[float]:
    return [mean + rng.gauss(0, sd) for _ in range(n)]


def anomalies(events: list[tuple[int, Anomaly | Recovery]]) -> list[tuple[int, Anomaly]]:
    return [(i, e) for i, e in events if isinstance(e, Anomaly)]


Scenario = Callable[[random.Random], tuple[list[float], int | None]]


def latency_step_up(rng: random.Random) -> tuple[list[float], int | None]:
    return noisy(rng, 600, 0.005, 0.0005) + noisy(rng, 20, 0.050, 0.001), 600


def latency_step_down(rng: random.Random) -> tuple[list[float], int | None]:
    return noisy(rng, 600, 0.005, 0.0005) + noisy(rng, 20, 0.001, 0.0001), None


def throughput_collapse(rng: random.Random) -> tuple[list[float], int | None]:
    return noisy(rng, 600, 1000, 50) + noisy(rng, 20, 50, 5), 600


def throughput_rise(rng: random.Random) -> tuple[list[float], int | None]:
    return noisy(rng, 600, 1000, 50) + noisy(rng, 20, 3000, 50), None


@pytest.mark.parametrize(
    ("scenario", "direction", "key"),
    [
        pytest.param(latency_step_up, Direction.UP_IS_BAD, "LEVEL_SHIFT_UP", id="latency up fires"),
        pytest.param(latency_step_down, Direction.UP_IS_BAD, None, id="latency down (good) is quiet"),
        pytest.param(
            throughput_collapse, Direction.DOWN_IS_BAD, "LEVEL_SHIFT_DOWN", id="throughput collapse"
        ),
        pytest.param(throughput_rise, Direction.DOWN_IS_BAD, None, id="throughput up (good) is quiet"),
        pytest.param(
            latency_step_down, Direction.BOTH_BAD, "LEVEL_SHIFT_DOWN", id="unknown series: both ways"
        ),
        pytest.param(latency_step_up, Direction.NEUTRAL, None, id="neutral series never fires"),
    ],
)
def test_step_scenarios(scenario: Scenario, direction: Direction, key: str | None):
    for seed in range(5):
        values, onset = scenario(random.Random(seed))
        d = SeriesDetector("s", direction)
        found = anomalies(feed(d, values))
        if key is None:
            assert found == [], f"seed {seed}"
            continue
        if direction is Direction.BOTH_BAD:
            onset = 600
        assert len(found) == 1, f"seed {seed}: {found}"
        i, event = found[0]
        assert event.key == key
        assert onset is not None and onset <= i <= onset + 1, "fires within 2 samples of the onset"
        assert event.onset_ts == T0 + onset * STEP, "onset is the first deviating sample"
        assert event.score >= 0.5
        assert not event.band_low <= event.observed <= event.band_high


def test_anomaly_explains_itself():
    rng = random.Random(1)
    d = SeriesDetector("web01/app_latency_seconds", Direction.UP_IS_BAD)
    [(_i, event)] = anomalies(feed(d, [*noisy(rng, 300, 0.005, 0.0005), 0.05, 0.05]))
    doc = event.to_dict()
    assert doc["timestamp"] == "2027-01-15T13:01:00Z" and doc["onset"] == "2027-01-15T13:00:00Z"
    assert doc["series"] == "web01/app_latency_seconds" and doc["key"] == "LEVEL_SHIFT_UP"
    assert doc["observed"] == 0.05 and doc["direction"] == "up"
    assert doc["baseline"]["expected"] == pytest.approx(0.005, rel=0.1)
    assert doc["baseline"]["low"] < 0.005 < doc["baseline"]["high"] < 0.05
    assert "rose to 0.05" in doc["summary"] and "LEVEL_SHIFT_UP" in doc["summary"]
    json.dumps(doc)


def test_flapping_series_gives_one_anomaly_and_one_recovery():
    rng = random.Random(3)
    values = noisy(rng, 300, 10.0, 0.5)
    # 40 samples flapping between normal and degraded every 2 samples, then calm
    values += [30.0 if (i // 2) % 2 == 0 else 10.0 + rng.gauss(0, 0.5) for i in range(24)]
    values += noisy(rng, 100, 10.0, 0.5)
    events = feed(SeriesDetector("s", Direction.UP_IS_BAD), values)
    kinds = [type(e).__name__ for _, e in events]
    assert kinds == ["Anomaly", "Recovery"], events
    recovery = events[1][1]
    assert isinstance(recovery, Recovery) and recovery.reason == "back"
    assert recovery.key == events[0][1].key


def test_single_outliers_do_not_fire():
    rng = random.Random(4)
    values = noisy(rng, 3000, 100.0, 5.0)
    for i in range(50, 3000, 97):
        values[i] = 200.0  # a 20-sigma outlier, alone
    assert anomalies(feed(SeriesDetector("s", Direction.UP_IS_BAD), values)) == []


@pytest.mark.parametrize("seed", range(10))
def test_cold_start_does_not_fire_on_a_normal_series(seed: int):
    rng = random.Random(seed)
    # a few samples only, noisy, with the usual early wobble of a fresh process
    values = noisy(rng, 40, 50.0, 5.0)
    assert anomalies(feed(SeriesDetector("s", Direction.BOTH_BAD), values)) == []


def test_cold_start_still_sees_a_gross_step():
    values = [10.0, 10.5, 9.8, 10.2, 9.9, 10.1, 10.3, 9.7, 10.0, 10.2] + [100.0] * 4
    found = anomalies(feed(SeriesDetector("s", Direction.UP_IS_BAD), values))
    assert [i for i, _ in found] == [11]


def daily(ts: float) -> float:
    """Quiet nights, busy days, and a batch job at 02:00 (a sharp daily jump)."""
    hour = (ts % 86_400) / 3600
    value = 100 + 80 * math.sin(math.pi * (hour - 6) / 12) if 6 <= hour <= 18 else 100
    return value + (400 if 2 <= hour < 2.5 else 0)


def test_learnt_daily_pattern_does_not_fire_but_a_break_in_it_does():
    rng = random.Random(5)
    d = SeriesDetector("s", Direction.BOTH_BAD)
    days = 6
    values = [daily(T0 + i * STEP) + rng.gauss(0, 3) for i in range(days * 1440)]
    events = feed(d, values)
    learnt = [(i, e) for i, e in anomalies(events) if i >= 3 * 1440]
    assert learnt == [], "the daily batch job is part of the pattern once learnt"
    assert d.baseline.seasonal
    # the batch job runs at 02:00 every day; today it does not: that is a change
    start = days * 1440
    later = []
    for i in range(start, start + 1440):
        ts = T0 + i * STEP
        hour = (ts % 86_400) / 3600
        value = daily(ts) - (400 if 2 <= hour < 2.5 else 0)
        later.append(value + rng.gauss(0, 3))
    found = anomalies(feed(d, later, start=start))
    assert len(found) == 1 and found[0][1].key == "LEVEL_SHIFT_DOWN"
    hour = ((T0 + found[0][0] * STEP) % 86_400) / 3600
    assert 2 <= hour < 2.1


def test_saturation_and_spike_keys():
    rng = random.Random(6)
    cpu = SeriesDetector("host_cpu_busy_percent", Direction.UP_IS_BAD, ceiling=100.0)
    [(_, e)] = anomalies(feed(cpu, [*noisy(rng, 300, 30, 3), 99.8, 99.9, 99.7]))
    assert e.key == "SATURATION"
    spiky = SeriesDetector("s", Direction.UP_IS_BAD)
    [(_, e)] = anomalies(feed(spiky, [*noisy(rng, 300, 30, 3), 90.0, 200.0, 60.0]))
    assert e.key == "SPIKE_SUSTAINED"


def test_flatline_on_a_varying_series_of_unknown_direction():
    rng = random.Random(8)
    d = SeriesDetector("s", Direction.BOTH_BAD)
    values = noisy(rng, 500, 50, 5) + [50.0] * 30
    found = anomalies(feed(d, values))
    assert [e.key for _, e in found] == ["FLATLINE"]
    assert found[0][1].onset_ts == T0 + 500 * STEP
    flat = SeriesDetector("s", Direction.BOTH_BAD)
    assert anomalies(feed(flat, [45.0] * 2000)) == [], "a series flat by nature is not stuck"


def test_lasting_shift_becomes_the_new_normal():
    rng = random.Random(9)
    cfg = DetectorConfig()
    d = SeriesDetector("s", Direction.UP_IS_BAD, cfg)
    events = feed(d, noisy(rng, 300, 10, 1) + noisy(rng, 200, 30, 1))
    assert [type(e).__name__ for _, e in events] == ["Anomaly", "Recovery"]
    i, recovery = events[1]
    assert isinstance(recovery, Recovery) and recovery.reason == "new_level"
    assert i == 300 + 1 + cfg.rebase_after
    assert d.baseline.expected == pytest.approx(30, abs=2)


def test_state_round_trip_gives_identical_scores_and_events():
    rng = random.Random(10)
    values = [daily(T0 + i * STEP) + rng.gauss(0, 3) for i in range(4 * 1440)]
    values[3000:3010] = [900.0] * 10  # an anomaly open at the snapshot
    a = SeriesDetector("s", Direction.BOTH_BAD)
    feed(a, values[:3005])
    assert a.is_open
    b = SeriesDetector.from_state(json.loads(json.dumps(a.to_state())))
    assert b.to_state() == a.to_state()
    for i, v in enumerate(values[3005:], start=3005):
        ea = a.update(T0 + i * STEP, v)
        eb = b.update(T0 + i * STEP, v)
        assert (a.score, a.alarm_score, a.spike) == (b.score, b.alarm_score, b.spike) and ea == eb


def test_state_saved_before_spikes_and_alarm_scores_still_loads():
    d = SeriesDetector("s")
    feed(d, [1.0, 2.0, 1.5])
    old = {k: v for k, v in d.to_state().items() if k not in ("peak", "quiet")}
    restored = SeriesDetector.from_state(old)
    assert restored.baseline.n == 3 and restored.spike is None


def test_state_rejects_wrong_version_and_bucket_count():
    d = SeriesDetector("s")
    d.update(T0, 1.0)
    state = d.to_state()
    with pytest.raises(ValueError, match="version"):
        SeriesDetector.from_state({**state, "v": 99})
    with pytest.raises(ValueError, match="buckets"):
        SeriesDetector.from_state(state, DetectorConfig(season_buckets=24))
    with pytest.raises(ValueError, match="pattern counts"):
        SeriesDetector.from_state({**state, "patterns": [0, 1]})


def test_non_finite_values_are_skipped():
    d = SeriesDetector("s")
    for i in range(50):
        d.update(T0 + i * STEP, 5.0 + (i % 3))
    n = d.baseline.n
    assert d.update(T0 + 50 * STEP, math.nan) is None
    assert d.update(T0 + 51 * STEP, math.inf) is None
    assert d.baseline.n == n


def test_bank_uses_catalogue_directions_and_survives_restart():
    bank = DetectorBank(direction_of=catalogue_direction)
    rng = random.Random(11)
    for i in range(300):
        bank.update("host_memory_available_percent", T0 + i * STEP, 60 + rng.gauss(0, 1))
        bank.update("host_cpu_busy_percent", T0 + i * STEP, 20 + rng.gauss(0, 2))
    assert bank.detector("host_memory_available_percent").direction is Direction.DOWN_IS_BAD
    assert bank.detector("host_cpu_busy_percent").ceiling == 100.0
    assert catalogue_direction("no_such_metric_count") is Direction.BOTH_BAD
    restored = DetectorBank(direction_of=catalogue_direction)
    restored.load_state(json.loads(json.dumps(bank.to_state())))
    # memory available rising is good; falling is bad; both banks agree
    for b in (bank, restored):
        assert b.update("host_memory_available_percent", T0 + 300 * STEP, 95) is None
        b.update("host_memory_available_percent", T0 + 301 * STEP, 5)
        e = b.update("host_memory_available_percent", T0 + 302 * STEP, 5)
        assert isinstance(e, Anomaly) and e.key == "LEVEL_SHIFT_DOWN"
    assert [d.series for d in restored.open_anomalies()] == ["host_memory_available_percent"]


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"enter_k": 3, "enter_n": 2}, id="k > n"),
        pytest.param({"exit_z": 5.0}, id="exit above enter"),
        pytest.param({"alpha": 0.0}, id="alpha zero"),
    ],
)
def test_bad_config_rejected(kwargs):
    with pytest.raises(ValueError):
        DetectorConfig(**kwargs)


def test_config_from_dict_names_unknown_keys():
    assert DetectorConfig.from_dict({"enter_z": 5.0}).enter_z == 5.0
    with pytest.raises(ValueError, match="enter_zz"):
        DetectorConfig.from_dict({"enter_zz": 5.0})


def test_outlier_normal_outlier_does_not_alarm():
    """Two outliers one sample apart are still single outliers: the rule is two *consecutive*
    deviating samples. A rule widened to 2 of 3 would alarm here (checked below)."""
    rng = random.Random(14)
    values = noisy(rng, 500, 100.0, 5.0)
    for i in range(200, 480, 40):
        values[i] = values[i + 2] = 200.0  # outlier, normal, outlier
    assert anomalies(feed(SeriesDetector("s", Direction.UP_IS_BAD), values)) == []
    widened = SeriesDetector("s", Direction.UP_IS_BAD, DetectorConfig(enter_k=2, enter_n=3))
    assert anomalies(feed(widened, values)) != []  # the test can fail: it sees the widened rule


def test_a_single_large_spike_is_reported_but_is_no_anomaly():
    rng = random.Random(15)
    values = noisy(rng, 600, 100.0, 2.0)
    values[300] = 160.0  # alone, far beyond the band
    values[320] = 160.0  # within spike_rest of the first: not reported again
    values[500] = 40.0  # the good way for UP_IS_BAD: no spike
    d = SeriesDetector("latency", Direction.UP_IS_BAD)
    spikes = []
    events = []
    for i, v in enumerate(values):
        e = d.update(T0 + i * STEP, v)
        if e is not None:
            events.append(e)
        if d.spike is not None:
            spikes.append((i, d.spike))
    assert events == []
    [(i, spike)] = spikes
    assert i == 300 and spike.key == "SPIKE" and spike.direction == "up"
    assert spike.ts == T0 + 300 * STEP and spike.observed == 160.0
    assert spike.band_low < spike.expected < spike.band_high < 160.0
    assert spike.expected == pytest.approx(100.0, abs=1.0)


def test_no_spike_during_cold_start():
    d = SeriesDetector("s", Direction.BOTH_BAD)
    values = [10.0, 10.2, 9.9, 10.1, 10.0, 10.1, 9.9, 10.0, 500.0]
    seen = []
    for i, v in enumerate(values):
        d.update(T0 + i * STEP, v)
        seen.append(d.spike)
    assert seen == [None] * len(values)


def test_alarm_score_counts_an_episode_once():
    """The per-row score beats its recent peak at the start of a step, which raises the
    alarm (above 0.5); the rest of the episode (still deviating, its anomaly opening within
    ``alarm_rest``) scores 0, until the peak has decayed."""
    rng = random.Random(16)
    values = noisy(rng, 400, 100.0, 2.0) + [150.0] * 20
    d = SeriesDetector("s", Direction.UP_IS_BAD)
    alarm = []
    raw = []
    for i, v in enumerate(values):
        d.update(T0 + i * STEP, v)
        alarm.append(d.alarm_score)
        raw.append(d.score)
    assert all(r > 0.5 for r in raw[400:407])  # the deviating samples score past the band ...
    assert alarm[400] == 0.5 + 0.5 * raw[400] and raw[400] > 0.9  # ... the first is the alarm ...
    assert alarm[401:] == [0.0] * 19  # ... the rest of the episode is not
    assert max(alarm[:400]) < 0.5  # nothing before it was an alarm


def test_a_never_seen_step_between_deviation_levels_is_a_new_pattern_once():
    """Not a spike (below spike_z) but a jump from normal to the top level never seen on
    this series: NEW_PATTERN, reported once; the same jump later is known."""
    rng = random.Random(17)
    d = SeriesDetector("latency", Direction.UP_IS_BAD)
    reports = []
    for i in range(700):
        b = d.baseline
        v = 100.0 + rng.uniform(-2.0, 2.0)  # bounded noise: its own level pairs are all seen early
        if i in (399, 599):
            v = b.expected  # level 0 just before ...
        if i in (400, 600):
            v = b.expected + 4.4 * b.scale  # ... z about 4.4: level 3, below spike_z
        event = d.update(T0 + i * STEP, v)
        assert not isinstance(event, Anomaly)
        if d.spike is not None:
            reports.append((i, d.spike.key))
    assert reports == [(400, "NEW_PATTERN")]


def seasonal(rng: random.Random, n: int, sd: float, period: int = 288) -> list[float]:
    """A daily sine (5-minute samples) around 100 with Gaussian noise."""
    return [100.0 + 30.0 * math.sin(2 * math.pi * i / period) + rng.gauss(0, sd) for i in range(n)]


def run_alarms(d: SeriesDetector, values: list[float], step: float = 300.0) -> list[tuple[int, str]]:
    """Feed ``values`` every ``step`` seconds: (sample, spike key or the anomaly's rule) per alarm."""
    out = []
    for i, v in enumerate(values):
        event = d.update(T0 + i * step, v)
        if d.alarm:
            assert d.alarm_score >= 0.5
            out.append((i, event.key if isinstance(event, Anomaly) else d.spike.key if d.spike else "?"))
        else:
            assert d.alarm_score < 0.5
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_clean_seasonal_and_noisy_series_raise_no_drift_or_anomaly(seed: int):
    """Two weeks of a daily pattern with noise, and of plain noise: no anomaly, no spike,
    no drift. (A first-seen pair of deviation levels, NEW_PATTERN, may come up in Gaussian
    noise now and then: rare, never a case.)"""
    rng = random.Random(100 + seed)
    for values in (seasonal(rng, 4032, 2.0), noisy(rng, 4032, 50.0, 5.0)):
        alarms = run_alarms(SeriesDetector("s", Direction.BOTH_BAD), values)
        assert {key for _, key in alarms} <= {"NEW_PATTERN"} and len(alarms) <= 10


def test_break_in_a_seasonal_series_raises_one_alarm_at_its_start():
    """Five days learnt, then the daily swing stops (the value stays at its mean): the
    break is found within a few samples and gives one alarm, not one per sample."""
    rng = random.Random(21)
    values = seasonal(rng, 2200, 1.0)
    start = 1440 + 72  # at a daily peak, where flat is far below the usual
    for i in range(start, start + 300):
        values[i] = 100.0 + rng.gauss(0, 1.0)
    alarms = run_alarms(SeriesDetector("s", Direction.BOTH_BAD), values)
    assert alarms and start <= alarms[0][0] <= start + 6
    assert [i for i, _ in alarms if i < start] == []
    assert all(b - a > DetectorConfig().alarm_rest for (a, _), (b, _) in itertools.pairwise(alarms))


def test_a_step_is_one_alarm_and_an_anomaly_within_two_samples():
    rng = random.Random(22)
    values = noisy(rng, 600, 100.0, 2.0) + noisy(rng, 60, 130.0, 2.0)
    d = SeriesDetector("latency", Direction.UP_IS_BAD)
    events = feed(d, values)
    [(i, anomaly)] = anomalies(events)
    assert 600 <= i <= 601 and anomaly.key == "LEVEL_SHIFT_UP"
    d2 = SeriesDetector("latency", Direction.UP_IS_BAD)
    alarms = run_alarms(d2, values)
    assert len(alarms) == 1 and 600 <= alarms[0][0] <= 601


def test_variance_change_is_a_drift_not_an_anomaly():
    """The noise triples with the level unchanged: no sample need pass the band twice in a
    row, but the average excursion (downwards, for throughput) drifts: DRIFT, one alarm."""
    rng = random.Random(23)
    calm = noisy(rng, 1000, 1000.0, 10.0)
    wild = [1000.0 - abs(rng.gauss(0, 40.0)) for _ in range(200)]  # one-sided: dips only
    d = SeriesDetector("throughput", Direction.DOWN_IS_BAD)
    alarms = run_alarms(d, calm + wild)
    alarms = [(i, key) for i, key in alarms if key != "NEW_PATTERN" or i >= 1000]
    assert alarms and 1000 <= alarms[0][0] <= 1030
    assert all(
        key in ("DRIFT", "SPIKE", "NEW_PATTERN", "SPIKE_SUSTAINED", "LEVEL_SHIFT_DOWN") for _, key in alarms
    )
    # the same excursions upwards are the good way for throughput: no DRIFT
    up = SeriesDetector("throughput", Direction.DOWN_IS_BAD)
    assert [k for i, k in run_alarms(up, calm + [2000.0 - v for v in wild]) if i >= 1000] == []


def test_a_slow_drift_is_reported_with_its_baseline():
    """A ramp of 1.5 sd per 10 samples, too gentle for two consecutive 4-sd samples at first."""
    rng = random.Random(24)
    values = noisy(rng, 600, 100.0, 2.0) + [100.0 + 0.3 * k + rng.gauss(0, 2.0) for k in range(100)]
    d = SeriesDetector("latency", Direction.UP_IS_BAD)
    drifts = []
    for i, v in enumerate(values):
        d.update(T0 + i * STEP, v)
        if d.spike is not None:
            drifts.append((i, d.spike))
    assert drifts, "the ramp was not reported"
    i, spike = drifts[0]
    assert 600 < i < 650 and spike.key in ("DRIFT", "SPIKE", "NEW_PATTERN")
    assert spike.band_low < spike.expected < spike.band_high
    assert spike.to_dict()["key"] == spike.key


def test_no_alarm_within_alarm_rest_but_anomalies_still_open():
    """Two short steps 45 samples apart: both open anomalies (cases are never held back); only the
    first is an alarm."""
    rng = random.Random(25)
    values = noisy(rng, 600, 100.0, 2.0) + [150.0] * 5 + noisy(rng, 40, 100.0, 2.0) + [300.0] * 5
    values += noisy(rng, 50, 100.0, 2.0)
    d = SeriesDetector("latency", Direction.UP_IS_BAD)
    events = anomalies(feed(d, values))
    assert len(events) == 2
    d2 = SeriesDetector("latency", Direction.UP_IS_BAD)
    late = [i for i, _ in run_alarms(d2, values, step=STEP) if i >= 600]
    assert late in ([600], [])  # [] when a NEW_PATTERN in the noise before began the rest
    d3 = SeriesDetector("latency", Direction.UP_IS_BAD, DetectorConfig(alarm_rest=5))
    assert {600, 645} <= {i for i, _ in run_alarms(d3, values, step=STEP)}


def test_drift_and_alarm_rest_survive_a_restart():
    rng = random.Random(26)
    values = noisy(rng, 700, 100.0, 2.0)
    values[650:660] = [150.0] * 10
    whole = SeriesDetector("s", Direction.BOTH_BAD)
    first = SeriesDetector("s", Direction.BOTH_BAD)
    a = [(whole.update(T0 + i * STEP, v), whole.alarm, whole.alarm_score) for i, v in enumerate(values)]
    b = [(first.update(T0 + i * STEP, v), first.alarm, first.alarm_score) for i, v in enumerate(values[:655])]
    second = SeriesDetector.from_state(json.loads(json.dumps(first.to_state())))
    b += [
        (second.update(T0 + i * STEP, v), second.alarm, second.alarm_score)
        for i, v in enumerate(values[655:], 655)
    ]
    assert a == b and any(alarm for _, alarm, _ in a)


@pytest.mark.parametrize("kwargs", [{"drift_alpha": 0.0}, {"drift_z": 0.0}, {"alarm_rest": -1}])
def test_bad_drift_and_rest_settings_rejected(kwargs):
    with pytest.raises(ValueError, match="drift_alpha"):
        DetectorConfig(**kwargs)
