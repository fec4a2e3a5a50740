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
- ``live``: the same step and quiet series through the whole live path
  (:class:`collector.emergency.live.LiveDetection`: detector → signals → incident engine → case
  decision → cases in a real SQLite store), one stored batch per check interval: time
  from the first degraded sample to the emergency case in check intervals (target <= 2),
  false cases on the quiet series (target: none), and the observer's cost per sample on
  clean batches of 50 points (100 hosts).

Costs are given as wall clock (``us_per_sample``) and as the process's CPU time
(``cpu_us_per_sample``): on a shared, loaded machine the wall clock counts other
programs' work too, so compare CPU times (and ratios against a baseline in the same run).

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
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from checks.api import Direction  # noqa: E402
from collector.detect.baseline import DetectorConfig  # noqa: E402
from collector.detect.detector import Anomaly, SeriesDetector, ceiling_for  # noqa: E402
from collector.detect.nab_score import (  # noqa: E402
    PROFILES,
    STANDARD,
    NabFile,
    NabResult,
    ScoredFile,
    by_category,
    category_of,
    leave_one_category_out,
    load_corpus,
    nab_result,
)

INTERVAL_S = 60.0
DAY = 86_400.0
START_TS = 1_800_000_000.0  # a fixed epoch so every run is identical


REFERENCE = Path(__file__).resolve().parent / "nab_reference.json"
"""Published detectors scored by our scorer (regenerate with ``bench/nab_reference.py``)."""
HTM = "Numenta HTM"


def _row(r: NabResult) -> dict[str, Any]:
    return {
        "score": round(r.score, 2) if r.raw_perfect != r.raw_null else None,
        "threshold": round(r.threshold, 4),
        "windows_hit": r.tp,
        "windows": r.tp + r.fn,
        "fp_rows": r.fp,
    }


_STAMPS: dict[str, list[float]] = {}
"""Parsed timestamps per corpus file (every setting of the grid reads the same rows)."""


def score_detector(
    make: Callable[[str], SeriesDetector], corpus: list[NabFile]
) -> tuple[list[ScoredFile], list[ScoredFile]]:
    """Every file through a fresh detector: per-row alarm scores, and own alarms (1 where the
    detector raised an alarm: an Anomaly opened or a Spike was reported, once per
    ``alarm_rest``)."""
    swept_files: list[ScoredFile] = []
    alarm_files: list[ScoredFile] = []
    for f in corpus:
        detector = make(f.name)
        scores: list[float] = []
        alarms: list[float] = []
        stamps = _STAMPS.get(f.name)
        if stamps is None:
            stamps = _STAMPS[f.name] = [
                datetime.strptime(s, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()
                for s in f.timestamps
            ]
        for ts, value in zip(stamps, f.values, strict=True):
            detector.update(ts, value)
            scores.append(detector.alarm_score)
            alarms.append(1.0 if detector.alarm else 0.0)
        swept_files.append(ScoredFile(f.name, len(f.values), f.windows, scores))
        alarm_files.append(ScoredFile(f.name, len(f.values), f.windows, alarms))
    return swept_files, alarm_files


def nab_tables(swept_files: list[ScoredFile], alarm_files: list[ScoredFile]) -> dict[str, Any]:
    """Pooled (three profiles), per category and leave-one-category-out, both modes.

    *swept*: per-row scores, θ swept as NAB does (pooled: on all files; per category: on
    that category; leave-one-category-out: on the other categories only). *own_alarms*:
    the detector's Anomaly events at θ = 0.5, nothing tuned on the labels, so its
    leave-one-category-out score is its per-category score.
    """
    out: dict[str, Any] = {"pooled": {}}
    for profile in PROFILES:
        out["pooled"][profile.name] = {
            "swept": _row(nab_result(swept_files, profile)),
            "own_alarms": _row(nab_result(alarm_files, profile, threshold=0.5)),
        }
    per_swept = by_category(swept_files, STANDARD)
    per_alarms = by_category(alarm_files, STANDARD, threshold=0.5)
    loco = leave_one_category_out(swept_files, STANDARD)
    out["by_category"] = {
        c: {"swept": _row(per_swept[c]), "own_alarms": _row(per_alarms[c])} for c in per_swept
    }
    out["leave_one_category_out"] = {
        c: {"swept": _row(loco[c]), "own_alarms": _row(per_alarms[c])} for c in loco
    }
    return out


def reference_tables() -> dict[str, Any]:
    """The published detectors' scores (standard profile) from ``bench/nab_reference.json``."""
    ref = json.loads(REFERENCE.read_text(encoding="utf-8"))
    return {
        "source": ref["source"],
        "licence": ref["licence"],
        "pooled": {d: t["pooled"]["standard"]["score"] for d, t in ref["detectors"].items()},
        "by_category": {
            d: {c: v["score"] for c, v in t["by_category"].items()} for d, t in ref["detectors"].items()
        },
        "leave_one_category_out": {
            d: {c: v["score"] for c, v in t["leave_one_category_out"].items()}
            for d, t in ref["detectors"].items()
        },
    }


GRID: tuple[dict[str, float], ...] = tuple(
    {"drift_z": z, "alarm_rest": r, "spike_memory": m * DAY, "envelope_specific": e}
    for z in (1.5, 2.0)
    for r in (50, 100, 200)
    for m in (1, 3, 7)
    for e in (1.5, 2.0)
)
"""The detector settings leave-one-category-out chooses from (the default is one of them)."""


def _setting(cfg: dict[str, float]) -> str:
    return ",".join(f"{k}={v:g}" for k, v in cfg.items())


def loco_select(
    runs: dict[str, tuple[list[ScoredFile], list[ScoredFile]]],
) -> dict[str, dict[str, Any]]:
    """Leave one category out over settings too: for each category, the setting (and for
    *swept* the threshold) that scores best on the *other* categories, scored on it."""
    categories = sorted({category_of(f.name) for files, _ in runs.values() for f in files})
    out: dict[str, dict[str, Any]] = {}
    for c in categories:
        row: dict[str, Any] = {}
        for mode, index, threshold in (("swept", 0, None), ("own_alarms", 1, 0.5)):
            best: tuple[float, str] | None = None
            for name, pair in runs.items():
                rest = [f for f in pair[index] if category_of(f.name) != c]
                score = nab_result(rest, STANDARD, threshold).score
                if best is None or score > best[0]:
                    best = (score, name)
            assert best is not None
            chosen = runs[best[1]][index]
            held = leave_one_category_out(chosen, STANDARD, threshold)[c]
            row[mode] = {**_row(held), "setting": best[1]}
        out[c] = row
    return out


def run_nab(nab_dir: Path, grid: tuple[dict[str, float], ...] = GRID) -> dict[str, Any]:
    corpus = load_corpus(nab_dir)
    default = DetectorConfig()
    swept_files, alarm_files = score_detector(lambda name: SeriesDetector(name, Direction.BOTH_BAD), corpus)
    out: dict[str, Any] = {
        "files": len(corpus),
        "windows": sum(len(f.windows) for f in corpus),
        "rows": sum(len(f.values) for f in corpus),
        "setting": _setting({k: getattr(default, k) for k in grid[0]}),
        **nab_tables(swept_files, alarm_files),
    }
    runs = {out["setting"]: (swept_files, alarm_files)}
    for overrides in grid:
        name = _setting(overrides)
        if name not in runs:
            cfg = DetectorConfig.from_dict({**default.to_dict(), **overrides})

            def make(series: str, cfg: DetectorConfig = cfg) -> SeriesDetector:
                return SeriesDetector(series, Direction.BOTH_BAD, cfg)

            runs[name] = score_detector(make, corpus)
    out["leave_one_category_out"] = loco_select(runs)
    ref = reference_tables()
    out["published"] = ref
    htm = ref["leave_one_category_out"][HTM]
    out["loco_gap_to_htm"] = {
        c: {
            mode: None
            if htm.get(c) is None or v[mode]["score"] is None
            else round(v[mode]["score"] - htm[c], 2)
            for mode in ("swept", "own_alarms")
        }
        for c, v in out["leave_one_category_out"].items()
    }
    return out


def nab_table_text(nab: dict[str, Any]) -> str:
    """The NAB part as a readable table (standard profile): ours beside the published detectors."""
    ref = nab["published"]
    cats = list(nab["by_category"])
    short = {c: c.replace("artificial", "art").replace("real", "") for c in cats}
    head = f"{'detector':<28}{'pooled':>8}" + "".join(f"{short[c]:>16}" for c in cats)

    def cell(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    def line(name: str, pooled: float | None, values: dict[str, float | None]) -> str:
        return f"{name:<28}{cell(pooled):>8}" + "".join(f"{cell(values.get(c)):>16}" for c in cats)

    rows = ["NAB standard profile, per category (θ swept on the category):", head]
    ours = nab["by_category"]
    rows.append(
        line(
            "ours, swept",
            nab["pooled"]["standard"]["swept"]["score"],
            {c: ours[c]["swept"]["score"] for c in cats},
        )
    )
    rows.append(
        line(
            "ours, own alarms",
            nab["pooled"]["standard"]["own_alarms"]["score"],
            {c: ours[c]["own_alarms"]["score"] for c in cats},
        )
    )
    for d, per in ref["by_category"].items():
        rows.append(line(d, ref["pooled"][d], per))
    rows += [
        "",
        "Leave one category out (detector setting, and θ for swept, chosen on the other categories):",
        head,
    ]
    loco = nab["leave_one_category_out"]
    rows.append(line("ours, swept", None, {c: loco[c]["swept"]["score"] for c in cats}))
    rows.append(line("ours, own alarms", None, {c: loco[c]["own_alarms"]["score"] for c in cats}))
    for d, per in ref["leave_one_category_out"].items():
        rows.append(line(d, None, per))
    fp = {c: loco[c]["own_alarms"]["fp_rows"] for c in cats}
    rows.append("own alarms outside windows (rows): " + ", ".join(f"{short[c]} {fp[c]}" for c in cats))
    rows.append(f"shipped setting: {nab['setting']}; chosen without each category:")
    for c in cats:
        swept, own = loco[c]["swept"]["setting"], loco[c]["own_alarms"]["setting"]
        rows.append(f"  {short[c]}: swept {swept}; own alarms {own}")
    return "\n".join(rows)


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
    cpu_start = time.process_time()  # CPU time too: the wall clock counts the shared machine's load
    events = 0
    for i in range(per_series):
        for detector, stamps, values in streams:
            if detector.update(stamps[i], values[i]) is not None:
                events += 1
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    total = per_series * n_series
    state_bytes = [len(json.dumps(d.to_state())) for d, _, _ in streams]
    return {
        "samples": total,
        "series": n_series,
        "events": events,
        "us_per_sample": round(elapsed / total * 1e6, 3),
        "cpu_us_per_sample": round(cpu / total * 1e6, 3),
        "state_json_bytes_mean": round(sum(state_bytes) / len(state_bytes)),
    }


# the step kinds as the metrics a live agent sends (the throughput one is not in the
# catalogue, so its direction is BOTH_BAD there, as for any unknown metric)
_LIVE_METRICS = {
    "latency_seconds": ("application.http", "app_http_latency_seconds", "seconds"),
    "throughput_per_second": ("application.http", "app_requests_per_second", "per_second"),
    "disk_await_seconds": ("storage.disk_io", "storage_disk_read_await_seconds", "seconds"),
    "cpu_busy_percent": ("host.cpu", "host_cpu_busy_percent", "percent"),
    "unknown_gauge": ("application.custom", "app_custom_gauge_count", "count"),
}


class _Live:
    """A LiveDetection on a throw-away SQLite store, fed stored batches directly."""

    def __init__(self, directory: Path) -> None:
        from collector.cli.config import CollectorConfig
        from collector.emergency.live import LiveDetection
        from collector.store import Store

        self.now = START_TS
        self.store = Store.open(f"sqlite:///{directory / 'bench.db'}")
        cfg = CollectorConfig.model_validate({"state_dir": str(directory)})
        self.observer = LiveDetection(self.store, cfg.emergency, clock=lambda: self.now)
        self.hosts: dict[str, tuple[Any, int]] = {}

    def host(self, name: str) -> tuple[Any, int]:
        if name not in self.hosts:
            slug = name.replace("_", "-")
            identity, _ = self.store.enroll_agent(slug, name, slug)  # one customer each: runs stay apart
            self.hosts[name] = (identity, len(self.hosts) + 1)
        return self.hosts[name]

    def feed(self, name: str, seq: int, ts: float, points: list[tuple[str, str, str, float]]) -> None:
        from collector.store.observe import Committed
        from collector.store.store import ColumnarBatch, SeriesRef

        identity, host_id = self.host(name)
        # columnar, as collector.ingest.decode.decode hands batches to the store and its observers
        refs: list[SeriesRef] = [(check, metric, unit, ()) for check, metric, unit, _ in points]
        values = [value for *_, value in points]
        batch = ColumnarBatch(seq, seq, [], [], [], [], refs, values, [(seq, ts, len(refs))])
        self.now = ts
        self.observer.observe([Committed(identity, host_id, seq - 1, batch)])

    def cases(self) -> list[Any]:
        from collector.store import Scope

        return self.observer.repo.list(Scope.everything(), limit=1000)

    def close(self) -> None:
        self.store.close()


def run_live(seeds: int, quiet_days: int) -> dict[str, Any]:
    """Onset → case through the live observer, false cases, observer µs per sample."""
    import tempfile

    out: dict[str, Any] = {"steps": {}}
    history = 3 * 1440
    with tempfile.TemporaryDirectory() as tmp:
        live = _Live(Path(tmp))
        try:
            for kind in _STEP_KINDS:
                check, metric, unit = _LIVE_METRICS[kind]
                delays: list[int | None] = []
                for seed in range(seeds):
                    rng = random.Random(f"{kind}-{seed}")
                    onset = history + rng.randrange(1440)
                    stamps, values = _series(kind, rng, onset + 30, onset)
                    host = f"{kind}-{seed}"
                    before = len(live.cases())
                    for i, (ts, v) in enumerate(zip(stamps, values, strict=True)):
                        live.feed(host, i + 1, ts, [(check, metric, unit, v)])
                    opened = [c for c in live.cases() if host in c.hosts]
                    delay = None
                    if len(live.cases()) > before and opened:
                        delay = round((opened[0].opened_at - stamps[onset]) / INTERVAL_S) + 1
                    delays.append(delay)
                found = [d for d in delays if d is not None]
                out["steps"][kind] = {
                    "metric": metric,
                    "runs": seeds,
                    "cases": len(found),
                    "intervals_to_case_max": max(found) if found else None,
                    "intervals_to_case_mean": round(sum(found) / len(found), 2) if found else None,
                }
            cases_before = len(live.cases())
            samples = 0
            for kind in [*_STEP_KINDS, "unknown_gauge"]:
                check, metric, unit = _LIVE_METRICS[kind]
                rng = random.Random(f"live-quiet-{kind}")
                stamps, values = _series(kind, rng, quiet_days * 1440, None)
                for i, (ts, v) in enumerate(zip(stamps, values, strict=True)):
                    live.feed(f"quiet-{kind}", i + 1, ts, [(check, metric, unit, v)])
                samples += len(stamps)
            out["no_anomaly"] = {
                "days": quiet_days,
                "samples": samples,
                "false_cases": len(live.cases()) - cases_before,
            }
        finally:
            live.close()
    with tempfile.TemporaryDirectory() as tmp:
        live = _Live(Path(tmp))
        try:
            n_hosts, n_series, cycles = 100, 50, 120
            rng = random.Random("live-cost")
            base = [[rng.uniform(1, 100) for _ in range(n_series)] for _ in range(n_hosts)]
            from collector.store.observe import Committed
            from collector.store.store import ColumnarBatch, SeriesRef

            hosts = [live.host(f"h{h}") for h in range(n_hosts)]
            refs: list[SeriesRef] = [("host.cpu", f"host_s{j}_count", "count", ()) for j in range(n_series)]
            rounds = []  # built beforehand: only the observer is timed
            for c in range(cycles):
                ts = START_TS + c * INTERVAL_S
                rounds.append(
                    (
                        ts,
                        [
                            Committed(identity, host_id, c, ColumnarBatch(
                                c + 1, c + 1, [], [], [], [], refs,
                                [v * (1 + rng.gauss(0, 0.05)) for v in base[h]], [(c + 1, ts, n_series)],
                            ))
                            for h, (identity, host_id) in enumerate(hosts)
                        ],
                    )
                )  # fmt: skip
            start = time.perf_counter()
            cpu_start = time.process_time()
            for ts, committed in rounds:
                live.now = ts
                for one in committed:  # one agent's batch per call, as group commits mostly are
                    live.observer.observe([one])
            elapsed = time.perf_counter() - start
            cpu = time.process_time() - cpu_start
            total = n_hosts * n_series * cycles
            save_start = time.perf_counter()
            live.observer.save_state()
            save_pause = time.perf_counter() - save_start
            live.observer.wait_saved()
            out["cost"] = {
                "samples": total,
                "series": n_hosts * n_series,
                "points_per_batch": n_series,
                "us_per_sample": round(elapsed / total * 1e6, 3),
                "cpu_us_per_sample": round(cpu / total * 1e6, 3),
                "state_save_s": round(time.perf_counter() - save_start, 3),
                "state_save_ingest_pause_s": round(save_pause, 3),
            }
        finally:
            live.close()
    return out


def _default_nab_dir() -> Path:
    """``../shared/data/nab-dev`` from the checkout (or from its parent, for a worktree)."""
    for base in (REPO.parent, REPO.parent.parent):
        if (base / "shared" / "data" / "nab-dev").is_dir():
            return base / "shared" / "data" / "nab-dev"
    return REPO.parent / "shared" / "data" / "nab-dev"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nab-dir", type=Path, default=_default_nab_dir())
    parser.add_argument("--seeds", type=int, default=20, help="runs per synthetic step scenario")
    parser.add_argument("--quiet-days", type=int, default=14, help="length of the no-anomaly series")
    parser.add_argument("--cost-samples", type=int, default=200_000)
    parser.add_argument(
        "--live-seeds", type=int, default=5, help="runs per step scenario through the live path"
    )
    parser.add_argument(
        "--only-nab", action="store_true", help="the NAB tables only (no synthetic, cost, live)"
    )
    args = parser.parse_args(argv)
    if args.cost_samples < 200_000:
        parser.error("--cost-samples must be at least 200000")
    nab = run_nab(args.nab_dir)
    print(nab_table_text(nab), file=sys.stderr)  # for people; stdout stays one JSON document
    result: dict[str, Any] = {"nab": nab}
    if not args.only_nab:
        result["synthetic_steps"] = run_steps(args.seeds)
        result["synthetic_no_anomaly"] = run_quiet(max(1, args.seeds // 4), args.quiet_days)
        result["cost"] = run_cost(args.cost_samples)
        result["live"] = run_live(args.live_seeds, min(args.quiet_days, 7))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
