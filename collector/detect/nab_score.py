"""Numenta Anomaly Benchmark (NAB) scoring, restated from ``nab/sweeper.py`` et al.

The rules follow ``shared/data/nab-dev/README.md`` exactly: labelled windows, the
scaled sigmoid, the probationary period, the three application profiles, the exact
threshold sweep and the normalisation against the null and perfect detectors.

Everything works on **row positions** (0-based, header not counted), never on time.

>>> round(scaled_sigmoid(-1.0), 6) == round(MAX_TP, 6)
True
>>> f = ScoredFile("f", n_rows=100, windows=((20, 29),), scores=[0.0] * 100)
>>> f.scores[20] = 1.0        # alarm on the first row of the window
>>> nab_result([f], STANDARD, threshold=0.5).score
100.0
>>> nab_result([f], STANDARD).threshold      # the sweep finds the same alarm
1.0
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "MAX_TP",
    "PROFILES",
    "REWARD_LOW_FN",
    "REWARD_LOW_FP",
    "STANDARD",
    "NabFile",
    "NabResult",
    "Profile",
    "ScoredFile",
    "by_category",
    "category_of",
    "leave_one_category_out",
    "load_corpus",
    "nab_result",
    "probation_rows",
    "raw_score",
    "row_values",
    "scaled_sigmoid",
    "sweep_threshold",
]


@dataclass(frozen=True, slots=True)
class Profile:
    """An application profile: weights of true positives, false positives, misses."""

    name: str
    a_tp: float
    a_fp: float
    a_fn: float


STANDARD = Profile("standard", 1.0, 0.11, 1.0)
REWARD_LOW_FP = Profile("reward_low_FP_rate", 1.0, 0.22, 1.0)
REWARD_LOW_FN = Profile("reward_low_FN_rate", 1.0, 0.11, 2.0)
PROFILES = (STANDARD, REWARD_LOW_FP, REWARD_LOW_FN)


def scaled_sigmoid(y: float) -> float:
    """NAB's S(y) = 2*sigma(-5y) - 1 for y <= 3, else -1.

    >>> scaled_sigmoid(0.0), scaled_sigmoid(3.5)
    (0.0, -1.0)
    """
    if y > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


MAX_TP = scaled_sigmoid(-1.0)
"""S(-1) = 0.9866142981514305: the value of an alarm on a window's first row, before scaling."""


def probation_rows(n_rows: int) -> int:
    """Warm-up rows of a file: min(floor(0.15 * N), 0.15 * 5000).

    >>> probation_rows(4032), probation_rows(4730), probation_rows(10_000)
    (604, 709, 750)
    """
    return min(math.floor(0.15 * n_rows), 750)


@dataclass(slots=True)
class ScoredFile:
    """One file's windows (inclusive row ranges, in order) and the detector's per-row scores."""

    name: str
    n_rows: int
    windows: tuple[tuple[int, int], ...]
    scores: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        previous_end = -1
        for start, end in self.windows:
            if not previous_end < start <= end < self.n_rows:
                raise ValueError(f"{self.name}: bad or overlapping window {start}..{end}")
            previous_end = end


def row_values(
    n_rows: int, windows: Sequence[tuple[int, int]], profile: Profile
) -> tuple[list[float], list[int]]:
    """Per row: the value an alarm there would have, and its window index (-1 outside).

    Inside window k (rows L..R, width w): A_TP * S(-(R - i + 1) / w) / MAX_TP. Outside,
    before any window has ended: -A_FP; after: A_FP * S((i - R') / (w' - 1)) for the most
    recent window that ended before i.

    >>> values, where = row_values(6, [(2, 3)], STANDARD)
    >>> [round(v, 4) for v in values], where
    ([-0.11, -0.11, 1.0, 0.8598, -0.1085, -0.11], [-1, -1, 0, 0, -1, -1])
    """
    values = [0.0] * n_rows
    where = [-1] * n_rows
    last_end = -1
    last_width = 0
    k = 0
    for i in range(n_rows):
        if k < len(windows) and windows[k][0] <= i <= windows[k][1]:
            start, end = windows[k]
            width = end - start + 1
            values[i] = profile.a_tp * scaled_sigmoid(-(end - i + 1) / width) / MAX_TP
            where[i] = k
            if i == end:
                last_end, last_width = end, width
                k += 1
        elif last_end < 0:
            values[i] = -profile.a_fp
        else:
            # NAB divides by (w' - 1): a one-row window (absent from NAB's labels) would
            # divide by zero, so an alarm after one counts as far away (S = -1).
            y = (i - last_end) / (last_width - 1) if last_width > 1 else math.inf
            values[i] = profile.a_fp * scaled_sigmoid(y)
    return values, where


def raw_score(files: Iterable[ScoredFile], profile: Profile, threshold: float) -> float:
    """raw(θ): the corpus' raw score with alarms at rows ``i >= P`` where ``score >= θ``."""
    total = 0.0
    for f in files:
        values, where = row_values(f.n_rows, f.windows, profile)
        best: list[float | None] = [None] * len(f.windows)
        for i in range(probation_rows(f.n_rows), f.n_rows):
            if f.scores[i] < threshold:
                continue
            k = where[i]
            if k < 0:
                total += values[i]
            else:
                current = best[k]
                if current is None or values[i] > current:
                    best[k] = values[i]
        total += sum(-profile.a_fn if b is None else b for b in best)
    return total


@dataclass(frozen=True, slots=True)
class NabResult:
    """Raw and normalised score of a corpus for one profile at one threshold."""

    profile: str
    threshold: float
    raw: float
    raw_null: float
    raw_perfect: float
    score: float
    tp: int
    """Windows with at least one alarm."""
    fn: int
    """Windows missed."""
    fp: int
    """Alarm rows outside every window (after the probationary period)."""


def _sweep(files: Sequence[ScoredFile], profile: Profile) -> float:
    """The threshold that maximises raw(θ); the highest such one on a tie (1.1 = no alarm)."""
    rows: list[tuple[float, float, int]] = []  # (score, value, global window id or -1)
    base = 0
    for f in files:
        values, where = row_values(f.n_rows, f.windows, profile)
        for i in range(probation_rows(f.n_rows), f.n_rows):
            k = where[i]
            rows.append((f.scores[i], values[i], base + k if k >= 0 else -1))
        base += len(f.windows)
    rows.sort(key=lambda r: -r[0])
    best_window: list[float | None] = [None] * base
    window_part = -profile.a_fn * base
    fp_part = 0.0
    best_total = window_part
    best_threshold = 1.1
    i = 0
    while i < len(rows):
        score = rows[i][0]
        # lower θ through each distinct score: every row with that score joins at once
        while i < len(rows) and rows[i][0] == score:
            _, value, k = rows[i]
            if k < 0:
                fp_part += value
            else:
                current = best_window[k]
                if current is None:
                    window_part += value + profile.a_fn
                    best_window[k] = value
                elif value > current:
                    window_part += value - current
                    best_window[k] = value
            i += 1
        total = window_part + fp_part
        if total > best_total:
            best_total = total
            best_threshold = score
    return best_threshold


def nab_result(files: Sequence[ScoredFile], profile: Profile, threshold: float | None = None) -> NabResult:
    """Score ``files`` under ``profile``: at ``threshold``, or with θ swept as NAB does.

    Binary detectors pass scores of 0/1 and ``threshold=0.5``.
    """
    theta = _sweep(files, profile) if threshold is None else threshold
    raw = raw_score(files, profile, theta)
    n_windows = sum(len(f.windows) for f in files)
    raw_perfect = profile.a_tp * n_windows
    raw_null = -profile.a_fn * n_windows
    tp = fp = 0
    for f in files:
        _, where = row_values(f.n_rows, f.windows, profile)
        hit: set[int] = set()
        for i in range(probation_rows(f.n_rows), f.n_rows):
            if f.scores[i] >= theta:
                if where[i] < 0:
                    fp += 1
                else:
                    hit.add(where[i])
        tp += len(hit)
    span = raw_perfect - raw_null
    score = 100.0 * (raw - raw_null) / span if span else 0.0
    return NabResult(
        profile=profile.name,
        threshold=theta,
        raw=raw,
        raw_null=raw_null,
        raw_perfect=raw_perfect,
        score=score,
        tp=tp,
        fn=n_windows - tp,
        fp=fp,
    )


def sweep_threshold(files: Sequence[ScoredFile], profile: Profile) -> float:
    """The threshold NAB's sweep chooses on ``files`` (1.1 when no alarm beats none)."""
    return _sweep(files, profile)


def category_of(name: str) -> str:
    """The category of a corpus file: the folder of ``<category>/<file>.csv``.

    >>> category_of("realTweets/Twitter_volume_FB.csv")
    'realTweets'
    """
    return name.split("/", 1)[0]


def _categories(files: Sequence[ScoredFile]) -> dict[str, list[ScoredFile]]:
    grouped: dict[str, list[ScoredFile]] = {}
    for f in files:
        grouped.setdefault(category_of(f.name), []).append(f)
    return grouped


def by_category(
    files: Sequence[ScoredFile], profile: Profile, threshold: float | None = None
) -> dict[str, NabResult]:
    """Each category scored on its own: null and perfect from its windows, θ swept on it
    (or ``threshold``). A category without windows scores 0 (null = perfect): read its
    ``fp`` and ``raw``."""
    return {c: nab_result(fs, profile, threshold) for c, fs in sorted(_categories(files).items())}


def leave_one_category_out(
    files: Sequence[ScoredFile], profile: Profile, threshold: float | None = None
) -> dict[str, NabResult]:
    """Each category scored with θ swept on the *other* categories only (or ``threshold``,
    when nothing is tuned): how the detector does on data its threshold never saw.

    >>> a = ScoredFile("a/1.csv", 100, ((50, 59),), [0.0] * 100)
    >>> b = ScoredFile("b/1.csv", 100, ((50, 59),), [0.0] * 100)
    >>> a.scores[50] = 0.9; b.scores[50] = 0.4; b.scores[20] = 0.9
    >>> {c: (r.threshold, round(r.score, 1)) for c, r in leave_one_category_out([a, b], STANDARD).items()}
    {'a': (0.4, 100.0), 'b': (0.9, -5.5)}
    """
    grouped = _categories(files)
    out: dict[str, NabResult] = {}
    for c, held_out in sorted(grouped.items()):
        theta = threshold
        if theta is None:
            rest = [f for other, fs in grouped.items() if other != c for f in fs]
            theta = _sweep(rest, profile)
        out[c] = nab_result(held_out, profile, theta)
    return out


@dataclass(frozen=True, slots=True)
class NabFile:
    """One corpus file: its relative name, timestamps (as written), values and windows (rows)."""

    name: str
    timestamps: list[str]
    values: list[float]
    windows: tuple[tuple[int, int], ...]


def load_corpus(nab_dir: Path) -> list[NabFile]:
    """Read ``windows.json`` and every file it names under ``nab_dir/data``.

    Window ends are mapped to the first row whose timestamp equals the label (the
    ``.000000`` fraction dropped), as NAB does.
    """
    labels = json.loads((nab_dir / "windows.json").read_text(encoding="utf-8"))
    corpus: list[NabFile] = []
    for name in sorted(labels):
        path = nab_dir / "data" / name
        timestamps: list[str] = []
        values: list[float] = []
        with path.open(encoding="utf-8") as fh:
            header = fh.readline().strip()
            if header != "timestamp,value":
                raise ValueError(f"{path}: line 1: expected header 'timestamp,value', got {header!r}")
            for lineno, line in enumerate(fh, start=2):
                ts, sep, value = line.rstrip("\n").partition(",")
                if not sep:
                    raise ValueError(f"{path}: line {lineno}: expected 'timestamp,value'")
                timestamps.append(ts)
                try:
                    values.append(float(value))
                except ValueError:
                    raise ValueError(f"{path}: line {lineno}: value {value!r} is not a number") from None
        first_row: dict[str, int] = {}
        for i, ts in enumerate(timestamps):
            first_row.setdefault(ts, i)
        windows: list[tuple[int, int]] = []
        for start, end in labels[name]:
            try:
                windows.append((first_row[start.split(".")[0]], first_row[end.split(".")[0]]))
            except KeyError as exc:
                raise ValueError(f"{path}: window timestamp {exc.args[0]!r} matches no row") from None
        corpus.append(NabFile(name, timestamps, values, tuple(windows)))
    return corpus
