"""Streaming, outlier-robust baseline of one series: what value to expect, and how far off is odd.

Two models learn side by side from every sample:

- *flat*: a level that follows the series (``level``, mean absolute deviation ``dev_flat``);
- *daily*: a time-of-day profile (``season_buckets`` buckets, each the median of its mean
  over the last ``season_days`` days, so one odd day does not teach it) plus a
  ``correction`` that follows the series' level away from the profile (``dev_daily``).

The daily model is used once ``season_min_days`` of history exist and it fits clearly
better (its deviation is below ``season_gain`` times the flat one); a series without a
daily pattern keeps the flat model. Residuals are clipped at ``winsor_z`` scales before
they update a level or a deviation, so a spike or the first samples of a level shift
barely move the baseline. A tail envelope of absolute residuals (jumps up, decays
slowly) widens the scale of bursty, heavy-tailed series (mostly-zero disk writes) beyond
what their deviation alone says. During the first ``cold_samples`` samples the means are
running averages (fast convergence) and the detector widens its bands.

The state is a few floats plus ``season_buckets * season_days`` daily means:
:meth:`Baseline.to_state` gives a JSON-able dict, :meth:`Baseline.from_state` restores it
exactly.

>>> b = Baseline(DetectorConfig())
>>> for i in range(100):
...     _ = b.observe(60.0 * i, 10.0 + (i % 3) * 0.1)   # 10.0, 10.1, 10.2, ...
>>> round(b.expected, 1), b.scale > 0
(10.1, True)
>>> b.observe(6000.0, 10.1) < 1.0     # a normal value is close to 0 scales off
True
>>> b.observe(6060.0, 20.0) > 50      # a jump of 10 is many scales off
True
"""

from __future__ import annotations

from array import array
from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["DAY_S", "Baseline", "DetectorConfig"]

DAY_S = 86_400.0
_SIGMA_PER_MAD = 1.2533  # a normal distribution's sigma per mean absolute deviation
_NAN = float("nan")
_INF = float("inf")


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    """Tuning of the baseline and of the anomaly rules (one configuration for every series)."""

    alpha: float = 0.02
    """Weight of a new sample in the level (memory of about 1/alpha samples)."""
    alpha_dev: float = 0.02
    """Weight of a new sample in the mean absolute deviation."""
    tail_jump: float = 0.2
    """The tail envelope of absolute residuals moves this fraction of the way up to a larger
    residual ..."""
    tail_decay: float = 0.001
    """... and decays by this fraction per sample ..."""
    tail_scale: float = 1.0 / 2.33
    """... and the scale is at least the envelope times this, so a series with heavy tails
    (bursty disk writes, mostly zero) gets wider bands than its MAD alone would give."""
    winsor_z: float = 3.0
    """Residuals are clipped at this many scales before they update the baseline."""
    anomaly_learn: float = 0.25
    """Learning rates are multiplied by this while an anomaly is open (slow re-baselining)."""
    cold_samples: int = 30
    """Samples of cold start: running averages and bands widened by ``cold_widen``."""
    cold_widen: float = 2.0
    """Band multiplier during cold start."""
    min_samples: int = 5
    """No sample counts as deviating before this many samples were seen."""
    rel_floor: float = 0.01
    """The scale is at least this fraction of the expected value (flat series)."""
    abs_floor: float = 1e-9
    """... and at least this (a series stuck at zero)."""
    season_buckets: int = 48
    """Time-of-day buckets of the daily model (48: half-hour buckets)."""
    season_days: int = 3
    """The daily profile is the median of this many days' bucket means."""
    season_min_days: float = 2.0
    """History needed before the daily model may be used."""
    season_gain: float = 0.7
    """The daily model is used when its deviation is below this fraction of the flat one."""
    envelope_margin: float = 0.5
    """Seasonal envelope: the largest (smallest) value of each time-of-day bucket and its
    two neighbours is kept per day; a value within the second-largest (smallest) of the
    last ``season_days`` days' extremes, widened by this fraction of its distance from the
    expected value, is *usual at this time of day* (a nightly batch job's CPU spike), so
    it raises no spike report. Negative: no envelope."""
    envelope_specific: float = 1.5
    """... only when that range reaches this many times further from the expected value
    than the median time of day's does (a recurrence at this time of day, not a series
    that is erratic at any hour)."""
    enter_z: float = 4.0
    """A sample deviates when it is this many scales off in the bad direction (score 0.5)."""
    exit_z: float = 2.0
    """A sample is back to normal when it is less than this many scales off."""
    enter_k: int = 2
    """An anomaly opens when ``enter_k`` of the last ``enter_n`` samples deviate ..."""
    enter_n: int = 2
    """... (the current one included)."""
    exit_m: int = 3
    """An anomaly closes after this many consecutive normal samples."""
    flat_run: int = 12
    """FLATLINE: at least this many identical values in a row (and twice the longest seen)."""
    saturation_frac: float = 0.98
    """SATURATION: an upward anomaly at or above this fraction of the series' ceiling."""
    rebase_after: int = 30
    """An anomaly still deviating after this many samples becomes the new baseline level."""
    shift_spread: float = 0.5
    """LEVEL_SHIFT when the deviating values spread less than this fraction of their offset."""

    spike_z: float = 5.0
    """SPIKE: a single sample at least this many scales off in the bad direction, with no
    anomaly open and past cold start, is reported (:attr:`SeriesDetector.spike`) but is not
    an anomaly: it counts for an engineer, a case still needs sustained evidence."""
    spike_memory: float = 3 * DAY_S
    """A SPIKE must also beat ``spike_record`` times the series' own record deviation,
    which decays linearly to nothing over ``spike_memory`` seconds (0: no record): on a
    bursty series a burst no larger than recent ones is not news ..."""
    spike_record: float = 1.0
    """... (the fraction of the record a spike must reach)."""
    spike_rest: int = 50
    """No spike is reported within this many samples of the previous spike or anomaly."""
    pattern_width: float = 1.5
    """NEW_PATTERN: each sample's deviation is binned into a level (``round(z / width)``,
    -3..3); a pair of consecutive levels never seen before on this series, ending in the
    bad direction, is a new pattern (reported like a spike; in the spirit of CAD OSE's
    contexts) ..."""
    pattern_warm: int = 300
    """... once the series has this many samples (its usual patterns are known)."""
    pattern_weight: float = 0.5
    """``alarm_score`` of a rare pattern: this / (1 + times the pattern was seen)."""
    score_memory: int = 500
    """``alarm_score``: a sample's score counts only when it beats the recent peak score,
    which decays by 1/``score_memory`` per sample (one episode scores once)."""
    drift_alpha: float = 0.1
    """DRIFT: the deviations (z, clipped at ±20) are averaged with this weight (a memory of
    about 1/drift_alpha samples) ..."""
    drift_z: float = 1.5
    """... and an average at least this many scales off in the bad direction, after
    ``pattern_warm`` samples, is reported like a spike: a change that no single sample
    shows (a slow level shift, a burst of moderate excursions, a broken daily shape)."""
    alarm_rest: int = 100
    """``alarm``: an anomaly opening or a spike report is news only when no alarm was
    raised in the previous ``alarm_rest`` samples (one alarm per episode, as an alert
    manager's repeat interval); spikes and drifts inside the rest are not reported.
    Anomaly events (and so cases) are never held back."""

    def __post_init__(self) -> None:
        if self.spike_z <= 0 or self.spike_rest < 0 or self.score_memory < 1:
            raise ValueError("need spike_z > 0, spike_rest >= 0 and score_memory >= 1")
        if self.spike_memory < 0 or self.spike_record < 0 or self.envelope_specific < 0:
            raise ValueError("need spike_memory >= 0, spike_record >= 0 and envelope_specific >= 0")
        if not 0 < self.drift_alpha <= 1 or self.drift_z <= 0 or self.alarm_rest < 0:
            raise ValueError("need 0 < drift_alpha <= 1, drift_z > 0 and alarm_rest >= 0")
        if self.pattern_width <= 0 or self.pattern_warm < 0 or not 0 <= self.pattern_weight <= 1:
            raise ValueError("need pattern_width > 0, pattern_warm >= 0 and 0 <= pattern_weight <= 1")
        if not 0 < self.alpha <= 1 or not 0 < self.alpha_dev <= 1:
            raise ValueError("alpha and alpha_dev must be in (0, 1]")
        if not 1 <= self.enter_k <= self.enter_n <= 30:
            raise ValueError("need 1 <= enter_k <= enter_n <= 30")
        if min(self.exit_m, self.season_buckets, self.season_days, self.cold_samples) < 1:
            raise ValueError("exit_m, season_buckets, season_days and cold_samples must be >= 1")
        if not 0 < self.exit_z <= self.enter_z:
            raise ValueError("need 0 < exit_z <= enter_z")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DetectorConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown detector settings: {', '.join(sorted(unknown))}")
        return cls(**data)


class Baseline:
    """The expected value of one series and its scale, learnt one sample at a time."""

    __slots__ = (
        "_alpha",
        "_alpha_dev",
        "_bucket_s",
        "_cfg",
        "_learn",
        "_tail_down",
        "_tail_up",
        "bucket",
        "bucket_hi",
        "bucket_lo",
        "bucket_n",
        "bucket_sum",
        "correction",
        "dev_daily",
        "dev_flat",
        "expected",
        "first_ts",
        "fit_daily",
        "fit_flat",
        "highs",
        "history",
        "level",
        "lows",
        "miss_daily",
        "miss_flat",
        "miss_n",
        "n",
        "profile",
        "scale",
        "seasonal",
        "tail",
    )

    def __init__(self, config: DetectorConfig) -> None:
        self._cfg = config
        self._bucket_s = DAY_S / config.season_buckets
        self._learn = 1.0
        self.n = 0
        self.first_ts = 0.0
        self.level = 0.0
        self.dev_flat = 0.0
        self.tail = 0.0
        buckets = config.season_buckets
        self.profile = array("d", [_NAN]) * buckets
        self.history = array("d", [_NAN]) * (buckets * config.season_days)
        self.highs = array("d", [_NAN]) * (buckets * config.season_days)
        self.lows = array("d", [_NAN]) * (buckets * config.season_days)
        self.bucket = -1
        self.bucket_sum = 0.0
        self.bucket_n = 0
        self.bucket_hi = -_INF
        self.bucket_lo = _INF
        self.correction = 0.0
        self.dev_daily = 0.0
        self.fit_flat = 0.0
        self.fit_daily = 0.0
        self.miss_flat = 0.0
        self.miss_daily = 0.0
        self.miss_n = 0
        self.seasonal = False
        self.expected = 0.0
        self.scale = config.abs_floor
        self._set_rates()

    @property
    def learn_factor(self) -> float:
        """Multiplier of the learning rates (the detector lowers it during an anomaly)."""
        return self._learn

    @learn_factor.setter
    def learn_factor(self, factor: float) -> None:
        self._learn = factor
        self._set_rates()

    def _set_rates(self) -> None:
        cfg = self._cfg
        if self.n < cfg.cold_samples:
            # cold start: a running average converges much faster than an EWMA
            cold = 1.0 / (self.n + 1)
            self._alpha = max(cfg.alpha, cold) * self._learn
            self._alpha_dev = max(cfg.alpha_dev, cold) * self._learn
        else:
            self._alpha = cfg.alpha * self._learn
            self._alpha_dev = cfg.alpha_dev * self._learn
        self._tail_up = cfg.tail_jump * self._learn
        self._tail_down = 1.0 - cfg.tail_decay * self._learn

    def _roll(self, bucket: int, ts: float) -> None:
        """A new time-of-day bucket began: file the finished bucket's mean into the profile."""
        cfg = self._cfg
        done = self.bucket
        if done >= 0 and self.bucket_n:
            days = cfg.season_days
            base = done * days
            history = self.history
            # shift this bucket's daily means by one day; the newest goes last
            history[base : base + days - 1] = history[base + 1 : base + days]
            history[base + days - 1] = self.bucket_sum / self.bucket_n
            for extremes, value in ((self.highs, self.bucket_hi), (self.lows, self.bucket_lo)):
                extremes[base : base + days - 1] = extremes[base + 1 : base + days]
                extremes[base + days - 1] = value
            known = sorted(v for v in history[base : base + days] if v == v)
            mid = len(known) // 2
            self.profile[done] = known[mid] if len(known) % 2 else (known[mid - 1] + known[mid]) / 2
            # model choice over about two days, not the last hour: at night a flat model
            # fits as well as the daily one, and the choice must not flip back and forth
            if self.miss_n:
                slow = 1.0 / (2 * cfg.season_buckets)
                self.fit_flat += slow * (self.miss_flat / self.miss_n - self.fit_flat)
                self.fit_daily += slow * (self.miss_daily / self.miss_n - self.fit_daily)
        self.bucket = bucket
        self.bucket_sum = 0.0
        self.bucket_n = 0
        self.bucket_hi = -_INF
        self.bucket_lo = _INF
        self.miss_flat = 0.0
        self.miss_daily = 0.0
        self.miss_n = 0
        self.seasonal = (
            ts - self.first_ts >= cfg.season_min_days * DAY_S
            and self.fit_daily < cfg.season_gain * self.fit_flat
        )

    def observe(self, ts: float, value: float) -> float:
        """Score ``value`` against the baseline *before* learning it; return the signed z.

        ``expected`` and ``scale`` keep the baseline the sample was compared with.
        """
        cfg = self._cfg
        n = self.n
        if n == 0:
            self.first_ts = ts
            self.level = value
        bucket = int(ts % DAY_S // self._bucket_s)
        if bucket != self.bucket:
            self._roll(bucket, ts)
        level = self.level
        usual = self.profile[bucket]  # NaN until this bucket has a day of history
        if self.seasonal and usual == usual:
            expected = usual + self.correction
            dev = self.dev_daily
        else:
            expected = level
            dev = self.dev_flat
        scale = dev * _SIGMA_PER_MAD
        tail = self.tail * cfg.tail_scale
        if scale < tail:
            scale = tail
        floor = (expected if expected > 0 else -expected) * cfg.rel_floor + cfg.abs_floor
        if scale < floor:
            scale = floor
        self.expected = expected
        self.scale = scale
        err = value - expected
        z = err / scale

        # learn, with residuals winsorised at winsor_z scales
        alpha = self._alpha
        alpha_dev = self._alpha_dev
        # The tail envelope of absolute residuals jumps towards a larger one and decays
        # slowly: a bursty series (mostly zero, then huge) widens its own band.
        if err < 0:
            err = -err
        tail = self.tail
        tail = tail + (err - tail) * self._tail_up if err > tail else tail * self._tail_down
        self.tail = tail if tail > floor else floor
        limit = cfg.winsor_z * scale
        err = value - level
        if err > limit:
            err = limit
        elif err < -limit:
            err = -limit
        self.level = level + alpha * err
        if err < 0:
            err = -err
        self.dev_flat += alpha_dev * (err - self.dev_flat)
        if usual == usual:
            self.miss_flat += err
            err = value - usual - self.correction
            if err > limit:
                err = limit
            elif err < -limit:
                err = -limit
            self.correction += alpha * err
            if err < 0:
                err = -err
            self.dev_daily += alpha_dev * (err - self.dev_daily)
            self.miss_daily += err
            self.miss_n += 1
        else:
            self.dev_daily += alpha_dev * (self.dev_flat - self.dev_daily)
        self.bucket_sum += value
        self.bucket_n += 1
        if value > self.bucket_hi:
            self.bucket_hi = value
        if value < self.bucket_lo:
            self.bucket_lo = value

        self.n = n = n + 1
        if n <= cfg.cold_samples:
            self._set_rates()
        return z

    def envelope(self) -> tuple[float, float] | None:
        """The usual range at this time of day: (low, high) that values reached, in this
        bucket or a neighbouring one, on at least two of the last ``season_days`` days
        (None while fewer than two days are known). Only called on rare samples."""
        cfg = self._cfg
        if cfg.envelope_margin < 0 or self.bucket < 0:
            return None
        days = cfg.season_days
        buckets = cfg.season_buckets
        his: list[float] = []
        los: list[float] = []
        for d in range(days):
            hi = -_INF
            lo = _INF
            for b in (self.bucket - 1, self.bucket, self.bucket + 1):
                i = (b % buckets) * days + d
                h = self.highs[i]
                if h == h:
                    hi = max(hi, h)
                    lo = min(lo, self.lows[i])
            if hi > -_INF:
                his.append(hi)
                los.append(lo)
        if len(his) < 2:
            return None
        his.sort()
        los.sort()
        return los[1], his[-2]

    def typical_range(self) -> tuple[float, float] | None:
        """The median over all time-of-day buckets of the range reached on two of the last
        days: what any time of day reaches (an envelope is only time-specific beyond it)."""
        days = self._cfg.season_days
        his: list[float] = []
        los: list[float] = []
        for b in range(self._cfg.season_buckets):
            h = sorted(v for v in self.highs[b * days : (b + 1) * days] if v == v)
            if len(h) >= 2:
                his.append(h[-2])
                lo = sorted(v for v in self.lows[b * days : (b + 1) * days] if v == v)
                los.append(lo[1])
        if not his:
            return None
        his.sort()
        los.sort()
        return los[len(los) // 2], his[len(his) // 2]

    def usual(self, value: float) -> bool:
        """True when ``value`` is within the seasonal envelope (see ``envelope_margin``)."""
        env = self.envelope()
        if env is None:
            return False
        low, high = env
        typical = self.typical_range()
        if typical is None:
            return False
        expected = self.expected
        margin = self._cfg.envelope_margin
        specific = self._cfg.envelope_specific
        if value >= expected:
            return high - expected > specific * (typical[1] - expected) and value <= high + margin * (
                high - expected
            )
        return expected - low > specific * (expected - typical[0]) and value >= low - margin * (
            expected - low
        )

    def rebase(self, level: float) -> None:
        """Accept ``level`` as the new normal (a lasting shift), keeping the daily shape."""
        self.correction += level - self.expected
        self.level = level

    def to_state(self) -> dict[str, Any]:
        """A JSON-able snapshot (floats round-trip exactly through ``json``; NaN as null)."""
        return {
            "n": self.n,
            "first_ts": self.first_ts,
            "level": self.level,
            "dev_flat": self.dev_flat,
            "tail": self.tail,
            "history": [None if v != v else v for v in self.history],
            "bucket": self.bucket,
            "bucket_sum": self.bucket_sum,
            "bucket_n": self.bucket_n,
            "highs": [None if v != v else v for v in self.highs],
            "lows": [None if v != v else v for v in self.lows],
            "bucket_range": [None if abs(v) == _INF else v for v in (self.bucket_lo, self.bucket_hi)],
            "correction": self.correction,
            "dev_daily": self.dev_daily,
            "fit": [self.fit_flat, self.fit_daily, self.miss_flat, self.miss_daily, self.miss_n],
            "seasonal": self.seasonal,
            "learn": self._learn,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], config: DetectorConfig) -> Baseline:
        b = cls(config)
        history = [_NAN if v is None else float(v) for v in state["history"]]
        days = config.season_days
        if len(history) != config.season_buckets * days:
            raise ValueError(
                f"baseline state has {len(history)} history slots, config wants "
                f"{config.season_buckets} buckets x {days} days"
            )
        b.history = array("d", history)
        for bucket in range(config.season_buckets):
            known = sorted(v for v in history[bucket * days : (bucket + 1) * days] if v == v)
            if known:
                mid = len(known) // 2
                b.profile[bucket] = known[mid] if len(known) % 2 else (known[mid - 1] + known[mid]) / 2
        b.n = int(state["n"])
        b.first_ts = float(state["first_ts"])
        b.level = float(state["level"])
        b.dev_flat = float(state["dev_flat"])
        b.tail = float(state["tail"])
        b.bucket = int(state["bucket"])
        b.bucket_sum = float(state["bucket_sum"])
        b.bucket_n = int(state["bucket_n"])
        for name in ("highs", "lows"):  # absent in states saved before the envelope
            kept = state.get(name)
            if kept is not None:
                if len(kept) != len(history):
                    raise ValueError(f"baseline state has {len(kept)} {name}, expected {len(history)}")
                setattr(b, name, array("d", [_NAN if v is None else float(v) for v in kept]))
        lo, hi = state.get("bucket_range", [None, None])
        b.bucket_lo = _INF if lo is None else float(lo)
        b.bucket_hi = -_INF if hi is None else float(hi)
        b.correction = float(state["correction"])
        b.dev_daily = float(state["dev_daily"])
        fit = state["fit"]
        b.fit_flat, b.fit_daily, b.miss_flat, b.miss_daily = (float(v) for v in fit[:4])
        b.miss_n = int(fit[4])
        b.seasonal = bool(state["seasonal"])
        b.learn_factor = float(state["learn"])
        return b
