"""Streaming per-series degradation detector: a score per sample, events on state changes.

A :class:`SeriesDetector` compares each sample with its :class:`~collector.detect.baseline.Baseline`
in the metric's bad direction only (``Direction.UP_IS_BAD``: latency; ``DOWN_IS_BAD``:
throughput, free space; ``BOTH_BAD``: series of unknown meaning; ``NEUTRAL``: never
anomalous). A sample *deviates* when it is at least ``enter_z`` scales off in the bad
direction; its score is ``z²/(z² + enter_z²)`` (0.5 exactly at the band edge, towards 1
beyond). Hysteresis keeps noisy series from flapping: an anomaly opens when
``enter_k`` of the last ``enter_n`` samples deviate and closes only after ``exit_m``
consecutive samples within ``exit_z`` scales. Opening yields an :class:`Anomaly` whose
onset is the first deviating sample (not the confirming one); closing yields a
:class:`Recovery`.

Rule keys: ``LEVEL_SHIFT_UP`` / ``LEVEL_SHIFT_DOWN`` (the deviating samples agree on a
new level), ``SPIKE_SUSTAINED`` (repeated but erratic excursions), ``SATURATION``
(upwards, at the series' ceiling, e.g. 100 % CPU), ``FLATLINE`` (a varying series of
unknown direction got stuck on one value).

>>> from checks.api import Direction
>>> d = SeriesDetector("app_latency_seconds", Direction.UP_IS_BAD)
>>> events = [d.update(60.0 * i, 0.005 + 0.0005 * (i % 5)) for i in range(200)]
>>> [e for e in events if e is not None]
[]
>>> d.update(12_000.0, 0.05), d.update(12_060.0, 0.05).key
(None, 'LEVEL_SHIFT_UP')
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from checks.api import Direction
from collector.detect.baseline import Baseline, DetectorConfig

__all__ = [
    "DEFAULT_CONFIG",
    "Anomaly",
    "DetectorBank",
    "Event",
    "Recovery",
    "SeriesDetector",
    "Spike",
    "iso",
]

DEFAULT_CONFIG = DetectorConfig()
STATE_VERSION = 1
_NEVER = 1 << 30
"""Samples since the last alarm, before the first one."""

_DIRECTION_CODE = {
    Direction.UP_IS_BAD: 1,
    Direction.DOWN_IS_BAD: -1,
    Direction.BOTH_BAD: 2,
    Direction.NEUTRAL: 0,
}


def iso(ts: float) -> str:
    """Unix seconds as ISO 8601 in UTC.

    >>> iso(0.0)
    '1970-01-01T00:00:00Z'
    >>> iso(1.5)
    '1970-01-01T00:00:01.500000Z'
    """
    text = datetime.fromtimestamp(ts, UTC).isoformat()
    return text.replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Anomaly:
    """An anomaly opened on a series: what was expected, what was seen, since when, by which rule."""

    series: str
    key: str
    direction: str
    """``up`` or ``down``: which way the series moved."""
    ts: float
    """When the anomaly was confirmed (the sample that opened it)."""
    onset_ts: float
    """The first deviating sample of the run that opened it."""
    observed: float
    expected: float
    band_low: float
    band_high: float
    """The band of normal values at the time (expected ± enter_z scales)."""
    score: float

    @property
    def summary(self) -> str:
        moved = "rose" if self.direction == "up" else "fell"
        return (
            f"{self.series} {moved} to {self.observed:.6g} (expected {self.expected:.6g}, "
            f"normal {self.band_low:.6g}..{self.band_high:.6g}) since {iso(self.onset_ts)}: {self.key}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": "anomaly",
            "timestamp": iso(self.ts),
            "series": self.series,
            "key": self.key,
            "direction": self.direction,
            "score": round(self.score, 4),
            "onset": iso(self.onset_ts),
            "observed": self.observed,
            "baseline": {"expected": self.expected, "low": self.band_low, "high": self.band_high},
            "summary": self.summary,
        }


@dataclass(frozen=True, slots=True)
class Recovery:
    """The end of an anomaly: the series has been back within its band for ``exit_m`` samples."""

    series: str
    key: str
    ts: float
    onset_ts: float
    observed: float
    expected: float
    peak_score: float
    reason: str
    """``back``: within the band again; ``new_level``: deviated for ``rebase_after``
    samples, so the baseline accepted the new level (the incident layer decides whether
    that is a recovery or a lasting degradation)."""

    @property
    def duration_s(self) -> float:
        return self.ts - self.onset_ts

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": "recovery",
            "timestamp": iso(self.ts),
            "series": self.series,
            "key": self.key,
            "onset": iso(self.onset_ts),
            "duration_s": self.duration_s,
            "reason": self.reason,
            "observed": self.observed,
            "baseline": {"expected": self.expected},
            "peak_score": round(self.peak_score, 4),
        }


@dataclass(frozen=True, slots=True)
class Spike:
    """One odd sample while no anomaly is open: worth a look, not a case.

    ``SPIKE``: at least ``spike_z`` scales off in the bad direction and at least
    ``spike_record`` times the series' own largest deviation of the last ``spike_memory``
    seconds (fading linearly), so a bursty series' usual bursts are not news. ``NEW_PATTERN``: the
    step from the previous sample's deviation level to this one's was never seen on this
    series (``pattern_width``). ``DRIFT``: the average deviation of recent samples
    (``drift_alpha``) is ``drift_z`` scales off in the bad direction, though no single
    sample need be (``observed`` is the sample, ``expected`` and the band the baseline's).
    No spike or pattern is reported for a value inside the seasonal envelope
    (:meth:`~collector.detect.baseline.Baseline.usual`: reached at this time of day on two
    of the last days, further out than at other times of day: a nightly job's spike).
    None of them ever opens an anomaly (that needs
    ``enter_k`` of ``enter_n`` deviating samples); they are reported so an engineer (and
    the NAB score) sees them, with the same explanation as an anomaly: baseline, band, time.
    """

    series: str
    ts: float
    direction: str
    observed: float
    expected: float
    band_low: float
    band_high: float
    score: float
    key: str = "SPIKE"

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": "spike",
            "timestamp": iso(self.ts),
            "series": self.series,
            "key": self.key,
            "direction": self.direction,
            "score": round(self.score, 4),
            "onset": iso(self.ts),
            "observed": self.observed,
            "baseline": {"expected": self.expected, "low": self.band_low, "high": self.band_high},
        }


Event = Anomaly | Recovery


class SeriesDetector:
    """Detector of one series. :meth:`update` costs a few µs; events are rare."""

    __slots__ = (
        "_bits",
        "_cfg",
        "_decay",
        "_dir",
        "_drift",
        "_enter",
        "_mask",
        "_patterns",
        "_peak",
        "_prev_level",
        "_quiet",
        "_recent",
        "_record",
        "_record_ts",
        "_since",
        "_width",
        "alarm",
        "alarm_score",
        "baseline",
        "ceiling",
        "direction",
        "flat_run",
        "flat_since",
        "last_value",
        "max_run",
        "ok_run",
        "open_key",
        "open_level",
        "open_onset",
        "open_peak",
        "open_run",
        "score",
        "series",
        "spike",
    )

    def __init__(
        self,
        series: str,
        direction: Direction = Direction.BOTH_BAD,
        config: DetectorConfig = DEFAULT_CONFIG,
        *,
        ceiling: float | None = None,
    ) -> None:
        self.series = series
        self.direction = direction
        self.ceiling = ceiling
        self._cfg = config
        self._dir = _DIRECTION_CODE[direction]
        self._mask = (1 << config.enter_n) - 1
        self._bits = 0
        self._recent: list[tuple[int, float, float]] = []  # (sample no., ts, value) of deviating samples
        self.baseline = Baseline(config)
        self._enter = self._band_for(0)
        self.score = 0.0
        self.alarm_score = 0.0
        self.alarm = False
        self.spike: Spike | None = None
        self._drift = 0.0
        self._since = _NEVER
        self._record = 0.0
        self._record_ts = 0.0
        self._peak = 0.0
        self._decay = 1.0 - 1.0 / config.score_memory
        self._quiet = 0
        self._width = 1.0 / config.pattern_width
        self._patterns = [0] * 49  # (previous level, level) pairs seen, levels -3..3
        self._prev_level = 0
        self.open_key: str | None = None
        self.open_onset = 0.0
        self.open_peak = 0.0
        self.open_level = 0.0
        self.open_run = 0
        self.ok_run = 0
        self.flat_run = 0
        self.flat_since = 0.0
        self.max_run = 0
        self.last_value: float | None = None

    @property
    def is_open(self) -> bool:
        """True while an anomaly is open on this series."""
        return self.open_key is not None

    def _band_for(self, n: int) -> float:
        cfg = self._cfg
        if n < cfg.min_samples:
            return float("inf")
        if n < cfg.cold_samples:
            return cfg.enter_z * cfg.cold_widen
        return cfg.enter_z

    def update(self, ts: float, value: float) -> Event | None:
        """Feed one sample (Unix seconds, value); return an event when the state changes.

        ``self.score`` holds the sample's score (0..1); ``self.spike`` a :class:`Spike`
        when this sample is one (else None); ``self.alarm`` is True when this sample raised
        an alarm (an anomaly opened or a spike was reported, and none in the previous
        ``alarm_rest`` samples). ``self.alarm_score`` ranks samples for a threshold: above
        0.5 exactly on alarms (0.5 + half the peak-beating score), below it elsewhere (0.49
        times the score when it beats the recent peak, else 0: the rest of an episode is
        not news). Non-finite values are ignored.
        """
        if not -1e300 < value < 1e300:  # NaN or infinite: treat as a missing sample
            return None
        baseline = self.baseline
        n = baseline.n
        z = baseline.observe(ts, value)
        code = self._dir
        bad = (z if z > 0 else -z) if code == 2 else z * code
        enter = self._enter
        if n < self._cfg.cold_samples:
            self._enter = self._band_for(n + 1)
        if bad > 0:
            bad2 = bad * bad
            score = bad2 / (bad2 + enter * enter)
        else:
            score = 0.0
        deviates = bad >= enter
        bits = ((self._bits << 1) | deviates) & self._mask
        self._bits = bits

        event: Event | None = None
        if self.open_key is None:
            if deviates:
                event = self._deviating(n, ts, value, z, score, bits)
        else:
            event = self._while_open(ts, value, bad, score)

        self.score = score
        cfg = self._cfg
        # contextual rarity: the pair (previous level, level) of binned deviations; only a
        # pair ending off level 0 can be a pattern, so only those are counted (the usual
        # sample, at level 0, costs one comparison)
        novel = False
        alarm = score
        q = z * self._width
        if n >= cfg.cold_samples and not -0.5 <= q <= 0.5:  # else level 0 (as round(q) gives)
            level = 3 if q >= 2.5 else -3 if q <= -2.5 else round(q)
            if level:
                patterns = self._patterns
                pair = self._prev_level * 7 + level + 24
                seen = patterns[pair]
                patterns[pair] = seen + 1
                if n >= cfg.pattern_warm and (code == 2 or level * code > 0):
                    novel = seen == 0
                    rare = cfg.pattern_weight / (1 + seen)
                    if rare > alarm:
                        alarm = rare
            self._prev_level = level
        else:
            self._prev_level = 0
        peak = self._peak
        if alarm > peak:
            ranked = self._peak = alarm
        else:
            ranked = 0.0
            peak *= self._decay
            self._peak = alarm if alarm > peak else peak
        # DRIFT: the average deviation, clipped so one wild sample cannot carry it
        drift = self._drift + cfg.drift_alpha * (
            (20.0 if z > 20.0 else -20.0 if z < -20.0 else z) - self._drift
        )
        self._drift = drift
        # the series' own record deviation, decaying: a spike must beat a share of it
        record = self._record
        big = bad >= cfg.spike_z and bad >= cfg.spike_record * record
        if record:
            keep = 1.0 - (ts - self._record_ts) / cfg.spike_memory if cfg.spike_memory else 0.0
            record *= keep if 0.0 < keep < 1.0 else 1.0 if keep >= 1.0 else 0.0
        if n >= cfg.cold_samples:  # cold-start deviations are not the series' own
            self._record = bad if bad > record else record
            self._record_ts = ts
        if event is not None:
            self._quiet = 0
            self.spike = None
        elif novel or big:
            self._quiet += 1
            if self.open_key is None and n >= cfg.cold_samples:
                key = "SPIKE" if big else "NEW_PATTERN"
                if self._quiet > cfg.spike_rest and not self.baseline.usual(value):
                    self.spike = self._spike(ts, value, z, score, key)
                else:
                    self.spike = None
                self._quiet = 0
            else:
                self.spike = None
        else:
            self._quiet += 1
            self.spike = None
        if (
            self.spike is None
            and event is None
            and n >= cfg.pattern_warm
            and (drift if code == 1 else -drift if code == -1 else abs(drift) if code == 2 else 0.0)
            >= cfg.drift_z
            and self.open_key is None
        ):
            self.spike = self._spike(ts, value, drift, score, "DRIFT")
        if code == 2:
            if value == self.last_value:
                self.flat_run += 1
                if self.flat_run >= self._cfg.flat_run and event is None and self.open_key is None:
                    event = self._flat(ts, value)
            else:
                if self.flat_run > self.max_run and self.open_key is None:
                    self.max_run = self.flat_run
                self.flat_run = 0
                self.flat_since = ts
            self.last_value = value
        # one alarm per episode: nothing is news within alarm_rest samples of the last alarm
        since = self._since + 1
        if (self.spike is not None or isinstance(event, Anomaly)) and since > cfg.alarm_rest:
            self.alarm = True
            self.alarm_score = 0.5 + 0.5 * ranked
            since = 0
        else:
            self.alarm = False
            self.alarm_score = 0.49 * ranked
            self.spike = None
        self._since = since if since < _NEVER else _NEVER
        return event

    # --- slow paths: only on deviating samples and state changes --------------------

    def _deviating(self, n: int, ts: float, value: float, z: float, score: float, bits: int) -> Event | None:
        cfg = self._cfg
        recent = self._recent
        oldest = n - cfg.enter_n
        while recent and recent[0][0] <= oldest:
            del recent[0]
        recent.append((n, ts, value))
        if bits.bit_count() < cfg.enter_k:
            return None
        values = [v for _, _, v in recent]
        baseline = self.baseline
        expected = baseline.expected
        offset = sum(values) / len(values) - expected
        spread = max(values) - min(values)
        up = z > 0
        if up and self.ceiling is not None and value >= cfg.saturation_frac * self.ceiling:
            key = "SATURATION"
        elif spread <= cfg.shift_spread * abs(offset):
            key = "LEVEL_SHIFT_UP" if up else "LEVEL_SHIFT_DOWN"
        else:
            key = "SPIKE_SUSTAINED"
        return self._open(key, "up" if up else "down", recent[0][1], ts, value, score)

    def _spike(self, ts: float, value: float, z: float, score: float, key: str) -> Spike:
        baseline = self.baseline
        band = self._enter * baseline.scale
        return Spike(
            series=self.series,
            ts=ts,
            direction="up" if z > 0 else "down",
            observed=value,
            expected=baseline.expected,
            band_low=baseline.expected - band,
            band_high=baseline.expected + band,
            score=score,
            key=key,
        )

    def _flat(self, ts: float, value: float) -> Event | None:
        cfg = self._cfg
        baseline = self.baseline
        # fire once, when the run becomes longer than twice any run seen while normal, and
        # only if the series varied before it got stuck (a flat series is flat by nature)
        if self.flat_run != max(cfg.flat_run, 2 * self.max_run + 1):
            return None
        floor = abs(baseline.expected) * cfg.rel_floor + cfg.abs_floor
        if baseline.scale <= 2 * floor:
            return None
        self.score = max(self.score, 0.75)
        direction = "up" if value >= baseline.expected else "down"
        return self._open("FLATLINE", direction, self.flat_since, ts, value, 0.75)

    def _open(self, key: str, direction: str, onset: float, ts: float, value: float, score: float) -> Anomaly:
        baseline = self.baseline
        band = self._enter * baseline.scale
        self.open_key = key
        self.open_onset = onset
        self.open_peak = score
        self.open_level = value
        self.open_run = 0
        self.ok_run = 0
        self._recent.clear()
        baseline.learn_factor = self._cfg.anomaly_learn
        return Anomaly(
            series=self.series,
            key=key,
            direction=direction,
            ts=ts,
            onset_ts=onset,
            observed=value,
            expected=baseline.expected,
            band_low=baseline.expected - band,
            band_high=baseline.expected + band,
            score=score,
        )

    def _while_open(self, ts: float, value: float, bad: float, score: float) -> Event | None:
        cfg = self._cfg
        self.open_run += 1
        self.open_level += 0.25 * (value - self.open_level)
        if bad < cfg.exit_z:
            self.ok_run += 1
            if self.ok_run >= cfg.exit_m:
                return self._close(ts, value, "back")
            return None
        self.ok_run = 0
        if score > self.open_peak:
            self.open_peak = score
        if self.open_run >= cfg.rebase_after:
            # deviating for so long that it is the new normal: learn it and say so
            self.baseline.rebase(self.open_level)
            return self._close(ts, value, "new_level")
        return None

    def _close(self, ts: float, value: float, reason: str) -> Recovery:
        key = self.open_key or ""
        self.open_key = None
        self.ok_run = 0
        self._bits = 0
        self.baseline.learn_factor = 1.0
        return Recovery(
            series=self.series,
            key=key,
            ts=ts,
            onset_ts=self.open_onset,
            observed=value,
            expected=self.baseline.expected,
            peak_score=self.open_peak,
            reason=reason,
        )

    # --- persistence ------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """A JSON-able snapshot; :meth:`from_state` continues exactly where this left off."""
        return {
            "v": STATE_VERSION,
            "series": self.series,
            "direction": self.direction.value,
            "ceiling": self.ceiling,
            "baseline": self.baseline.to_state(),
            "bits": self._bits,
            "recent": [list(r) for r in self._recent],
            "score": self.score,
            "peak": self._peak,
            "quiet": self._quiet,
            "patterns": list(self._patterns),
            "level": self._prev_level,
            "drift": self._drift,
            "record": [self._record, self._record_ts],
            "since": self._since,
            "open": None
            if self.open_key is None
            else {
                "key": self.open_key,
                "onset": self.open_onset,
                "peak": self.open_peak,
                "level": self.open_level,
                "run": self.open_run,
            },
            "ok_run": self.ok_run,
            "flat_run": self.flat_run,
            "flat_since": self.flat_since,
            "max_run": self.max_run,
            "last_value": self.last_value,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], config: DetectorConfig = DEFAULT_CONFIG) -> SeriesDetector:
        if state.get("v") != STATE_VERSION:
            raise ValueError(f"detector state version {state.get('v')!r}, expected {STATE_VERSION}")
        ceiling = state.get("ceiling")
        d = cls(
            str(state["series"]),
            Direction(state["direction"]),
            config,
            ceiling=None if ceiling is None else float(ceiling),
        )
        d.baseline = Baseline.from_state(state["baseline"], config)
        d._enter = d._band_for(d.baseline.n)
        d._bits = int(state["bits"]) & d._mask
        d._recent = [(int(i), float(t), float(v)) for i, t, v in state["recent"]]
        d.score = float(state["score"])
        d._peak = float(state.get("peak", 0.0))  # absent in states saved before alarm scores
        d._quiet = int(state.get("quiet", 0))
        patterns = state.get("patterns")
        if patterns is not None:
            if len(patterns) != 49:
                raise ValueError(f"detector state has {len(patterns)} pattern counts, expected 49")
            d._patterns = [int(c) for c in patterns]
        d._prev_level = max(-3, min(3, int(state.get("level", 0))))
        d._drift = float(state.get("drift", 0.0))  # absent in states saved before DRIFT
        record = state.get("record", [0.0, 0.0])  # absent in states saved before the record
        d._record, d._record_ts = float(record[0]), float(record[1])
        d._since = max(0, min(_NEVER, int(state.get("since", _NEVER))))
        opened = state["open"]
        if opened is not None:
            d.open_key = str(opened["key"])
            d.open_onset = float(opened["onset"])
            d.open_peak = float(opened["peak"])
            d.open_level = float(opened["level"])
            d.open_run = int(opened["run"])
        d.ok_run = int(state["ok_run"])
        d.flat_run = int(state["flat_run"])
        d.flat_since = float(state["flat_since"])
        d.max_run = int(state["max_run"])
        last = state["last_value"]
        d.last_value = None if last is None else float(last)
        return d


def ceiling_for(metric_name: str) -> float | None:
    """The hard ceiling of a metric, from its name's unit suffix: 100 for ``*_percent``.

    For series that arrive without a unit (replayed CSV, old stored data); live detection
    takes the samples' unit (:func:`collector.incidents.signals.ceiling_from`).

    >>> ceiling_for("host_cpu_busy_percent"), ceiling_for("app_latency_seconds")
    (100.0, None)
    """
    return 100.0 if metric_name.endswith("_percent") else None


class DetectorBank:
    """One detector per series, created on first sight, with the direction from a lookup.

    ``direction_of(series)`` tells the bad direction of a new series; the live collector
    passes a lookup into the metric catalogue (``checks.registry.catalogue()``), replay
    passes the directions given on the command line.
    """

    def __init__(
        self,
        direction_of: Callable[[str], Direction] = lambda _series: Direction.BOTH_BAD,
        config: DetectorConfig = DEFAULT_CONFIG,
        ceiling_of: Callable[[str], float | None] = ceiling_for,
    ) -> None:
        self._direction_of = direction_of
        self._ceiling_of = ceiling_of
        self.config = config
        self.detectors: dict[str, SeriesDetector] = {}

    def detector(self, series: str) -> SeriesDetector:
        d = self.detectors.get(series)
        if d is None:
            d = SeriesDetector(
                series, self._direction_of(series), self.config, ceiling=self._ceiling_of(series)
            )
            self.detectors[series] = d
        return d

    def update(self, series: str, ts: float, value: float) -> Event | None:
        d = self.detectors.get(series)
        if d is None:
            d = self.detector(series)
        return d.update(ts, value)

    def open_anomalies(self) -> Iterator[SeriesDetector]:
        return (d for d in self.detectors.values() if d.open_key is not None)

    def to_state(self) -> dict[str, Any]:
        return {"v": STATE_VERSION, "series": [d.to_state() for d in self.detectors.values()]}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore detectors saved by :meth:`to_state` (replacing those of the same series)."""
        if state.get("v") != STATE_VERSION:
            raise ValueError(f"detector bank state version {state.get('v')!r}, expected {STATE_VERSION}")
        for item in state["series"]:
            d = SeriesDetector.from_state(item, self.config)
            self.detectors[d.series] = d


def catalogue_direction(metric_name: str) -> Direction:
    """The bad direction of a catalogue metric; BOTH_BAD for a metric the catalogue lacks."""
    from checks.registry import catalogue  # imports every check: only when first needed

    spec = catalogue().get(metric_name)
    return Direction.BOTH_BAD if spec is None else spec.direction
