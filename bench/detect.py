"""Detector benchmark: NAB scores, synthetic step degradations, false alarms, cost per sample.

Prints one JSON document:

- ``nab``: per profile (standard, reward_low_FP_rate, reward_low_FN_rate) on the NAB
  development subset (``../shared/data/nab-dev`` from the repository root, or
  ``--nab-dir``), every file run through a fresh detector with direction BOTH_BAD:
  ``swept`` scores the per-row anomaly score with the threshold swept as NAB does
  (comparable with the README's reference table); ``fixed`` scores our own binary
  alarms (the rows where an Anomaly event fired) at θ = 0.5, with no threshold tuned on
  the labels: the honest number for what would open cases.
- ``synthetic``: step degradations on server-like series sampled every 60 s (latency
  5 ms → 50 ms, throughput collapse, disk await, CPU saturation), several seeds each,
  onset at varying times of day: delay from the first degraded sample to the Anomaly
  event in check intervals (target <= 2), and the rule key; plus long series with daily
  seasonality, noise and occasional single outliers but no anomaly: events raised
  (target: none).
- ``cost``: detector time per sample in µs over ``--cost-samples`` samples (>= 200k)
  spread across 100 series, measured with the series' values prepared beforehand.

    python bench/detect.py
    python bench/detect.py --nab-dir /path/to/nab-dev --cost-samples 500000
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from checks.api import Direction  # noqa: E402
from collector.detect.detector import Anomaly, SeriesDetector, ceiling_for  # noqa: E402
from collector.detect.nab_score import PROFILES, ScoredFile, load_corpus, nab_result  # noqa: E402

INTERVAL_S = 60.0
DAY = 86_400.0
START_TS = 1_800_000_000.0  # a fixed epoch so every run is identical


def run_nab(nab_dir: Path) -> dict[str, Any]:
    corpus = load_corpus(nab_dir)
    swept_files: list[ScoredFile] = []
    alarm_files: list[ScoredFile] = []
    for f in corpus:
        detector = SeriesDetector(f.name, Direction.BOTH_BAD)
        scores: list[float] = []
        alarms: list[float] = []
        for stamp, value in zip(f.timestamps, f.values, strict=True):
            ts = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()
            event = detector.update(ts, value)
            scores.append(detector.score)
            alarms.append(1.0 if isinstance(event, Anomaly) else 0.0)
        swept_files.append(ScoredFile(f.name, len(f.values), f.windows, scores))
        alarm_files.append(ScoredFile(f.name, len(f.values), f.windows, alarms))
    out: dict[str, Any] = {
        "files": len(corpus),
        "windows": sum(len(f.windows) for f in corpus),
        "rows": sum(len(f.values) for f in corpus),
    }
    for profile in PROFILES:
        swept = nab_result(swept_files, profile)
        fixed = nab_result(alarm_files, profile, threshold=0.5)
        out[profile.name] = {
            "swept": {
                "score": round(swept.score, 2),
                "threshold": round(swept.threshold, 4),
                "windows_hit": swept.tp,
                "fp_rows": swept.fp,
            },
            "fixed": {"score": round(fixed.score, 2), "windows_hit": fixed.tp, "fp_rows": fixed.fp},
        }
    return out


# --- synthetic server series ---------------------------------------------------------


def _daily(ts: float, amplitude: float) -> float:
    """A business-hours shape: high in the day, low at night (1 ± amplitude)."""
    return 1.0 + amplitude * math.sin(2 * math.pi * (ts % DAY) / DAY - math.pi / 2)


def _series(kind: str, rng: random.Random, n: int, onset: int | None) -> tuple[list[float], list[float]]:
    """Timestamps and values of one synthetic series; degraded from ``onset`` on."""
    stamps = [START_TS + i * INTERVAL_S for i in range(n)]
    values: list[float] = []
    for i, ts in enumerate(stamps):
        bad = onset is not None and i >= onset
        if kind == "latency_seconds":  # 5 ms with multiplicative noise → 50 ms
            v = 0.005 * _daily(ts, 0.2) * math.exp(rng.gauss(0, 0.1))
            if bad:
                v = 0.050 * math.exp(rng.gauss(0, 0.1))
        elif kind == "throughput_per_second":  # 1000 req/s with a daily swing → collapse to 5 %
            v = 1000.0 * _daily(ts, 0.4) * (1 + rng.gauss(0, 0.05))
            if bad:
                v *= 0.05
        elif kind == "disk_await_seconds":  # 2 ms, bursty (occasional 3x samples) → 40 ms
            v = 0.002 * (1 + abs(rng.gauss(0, 0.15))) * (3.0 if rng.random() < 0.02 else 1.0)
            if bad:
                v = 0.040 * (1 + abs(rng.gauss(0, 0.15)))
        elif kind == "cpu_busy_percent":  # 30 % ± 5 with a daily swing → pegged at 100 %
            v = min(100.0, max(0.0, 30.0 * _daily(ts, 0.3) + rng.gauss(0, 5)))
            if bad:
                v = min(100.0, 99.5 + rng.gauss(0, 0.3))
        elif kind == "unknown_gauge":  # no known direction: a noisy daily series
            v = 50.0 * _daily(ts, 0.5) + rng.gauss(0, 3)
        else:
            raise ValueError(kind)
        values.append(v)
    return stamps, values


_STEP_KINDS = {
    "latency_seconds": Direction.UP_IS_BAD,
    "throughput_per_second": Direction.DOWN_IS_BAD,
    "disk_await_seconds": Direction.UP_IS_BAD,
    "cpu_busy_percent": Direction.UP_IS_BAD,
}


def run_steps(seeds: int) -> dict[str, Any]:
    """Three days of normal history, then a step: delay to the alarm in check intervals."""
    out: dict[str, Any] = {}
    history = 3 * 1440
    for kind, direction in _STEP_KINDS.items():
        delays: list[int | None] = []
        keys: set[str] = set()
        early = 0
        for seed in range(seeds):
            rng = random.Random(f"{kind}-{seed}")
            onset = history + rng.randrange(1440)  # any time of day
            stamps, values = _series(kind, rng, onset + 30, onset)
            detector = SeriesDetector(kind, direction, ceiling=ceiling_for(kind))
            delay: int | None = None
            for i, (ts, v) in enumerate(zip(stamps, values, strict=True)):
                event = detector.update(ts, v)
                if isinstance(event, Anomaly):
                    if i < onset:
                        early += 1
                    elif delay is None:
                        delay = i - onset + 1  # intervals from the first bad sample's check
                        keys.add(event.key)
            delays.append(delay)
        found = [d for d in delays if d is not None]
        out[kind] = {
            "direction": direction.value,
            "runs": seeds,
            "detected": len(found),
            "intervals_to_alarm_max": max(found) if found else None,
            "intervals_to_alarm_mean": round(sum(found) / len(found), 2) if found else None,
            "false_alarms_before_onset": early,
            "keys": sorted(keys),
        }
    return out


def run_quiet(seeds: int, days: int) -> dict[str, Any]:
    """Long normal series with single outliers (5-8x the noise, 1 in 500): events raised."""
    kinds = {**_STEP_KINDS, "unknown_gauge": Direction.BOTH_BAD}
    n = days * 1440
    out: dict[str, Any] = {"days": days, "series": 0, "samples": 0, "false_alarms": 0, "by_kind": {}}
    for kind, direction in kinds.items():
        alarms = 0
        outliers = 0
        for seed in range(seeds):
            rng = random.Random(f"quiet-{kind}-{seed}")
            stamps, values = _series(kind, rng, n, None)
            for i in range(n):
                if rng.random() < 1 / 500:  # a single outlier in the bad direction
                    outliers += 1
                    factor = rng.uniform(1.5, 2.0)
                    values[i] = (
                        values[i] / factor if direction is Direction.DOWN_IS_BAD else values[i] * factor
                    )
            detector = SeriesDetector(kind, direction, ceiling=ceiling_for(kind))
            for ts, v in zip(stamps, values, strict=True):
                if isinstance(detector.update(ts, v), Anomaly):
                    alarms += 1
            out["series"] += 1
            out["samples"] += n
        out["false_alarms"] += alarms
        out["by_kind"][kind] = {"false_alarms": alarms, "single_outliers": outliers}
    return out


def run_cost(samples: int) -> dict[str, Any]:
    """µs per sample through SeriesDetector.update, 100 series interleaved like live ingest."""
    n_series = 100
    per_series = max(1, samples // n_series)
    rng = random.Random("cost")
    kinds = [*list(_STEP_KINDS), "unknown_gauge"]
    streams = []
    for s in range(n_series):
        kind = kinds[s % len(kinds)]
        stamps, values = _series(kind, rng, per_series, per_series // 2 if s % 10 == 0 else None)
        direction = _STEP_KINDS.get(kind, Direction.BOTH_BAD)
        streams.append((SeriesDetector(f"{kind}{s}", direction, ceiling=ceiling_for(kind)), stamps, values))
    start = time.perf_counter()
    events = 0
    for i in range(per_series):
        for detector, stamps, values in streams:
            if detector.update(stamps[i], values[i]) is not None:
                events += 1
    elapsed = time.perf_counter() - start
    total = per_series * n_series
    state_bytes = [len(json.dumps(d.to_state())) for d, _, _ in streams]
    return {
        "samples": total,
        "series": n_series,
        "events": events,
        "us_per_sample": round(elapsed / total * 1e6, 3),
        "state_json_bytes_mean": round(sum(state_bytes) / len(state_bytes)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nab-dir", type=Path, default=REPO.parent / "shared" / "data" / "nab-dev")
    parser.add_argument("--seeds", type=int, default=20, help="runs per synthetic step scenario")
    parser.add_argument("--quiet-days", type=int, default=14, help="length of the no-anomaly series")
    parser.add_argument("--cost-samples", type=int, default=200_000)
    args = parser.parse_args(argv)
    if args.cost_samples < 200_000:
        parser.error("--cost-samples must be at least 200000")
    result = {
        "nab": run_nab(args.nab_dir),
        "synthetic_steps": run_steps(args.seeds),
        "synthetic_no_anomaly": run_quiet(max(1, args.seeds // 4), args.quiet_days),
        "cost": run_cost(args.cost_samples),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
