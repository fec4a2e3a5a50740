"""NAB scorer on hand-made cases; every expected number is worked out from the README's formulas."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from collector.detect.nab_score import (
    MAX_TP,
    REWARD_LOW_FN,
    REWARD_LOW_FP,
    STANDARD,
    ScoredFile,
    load_corpus,
    nab_result,
    probation_rows,
    raw_score,
    row_values,
    scaled_sigmoid,
)


def S(y: float) -> float:
    """The README's scaled sigmoid, written out independently of the module."""
    return -1.0 if y > 3 else 2 * (1 / (1 + math.exp(5 * y))) - 1


def make(n: int, windows: tuple[tuple[int, int], ...], alarms: dict[int, float]) -> ScoredFile:
    scores = [0.0] * n
    for i, s in alarms.items():
        scores[i] = s
    return ScoredFile("f.csv", n, windows, scores)


def test_sigmoid_constants_match_readme():
    assert pytest.approx(0.9866142981514305, abs=1e-15) == MAX_TP
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(3.0001) == -1.0
    # the README's table of in-window values S(y)/maxTP
    for y, expected in [(-0.75, 0.967), (-0.5, 0.860), (-0.25, 0.562), (-0.1, 0.248), (-0.05, 0.126)]:
        assert scaled_sigmoid(y) / MAX_TP == pytest.approx(expected, abs=0.0015)
    # and of after-window values S(y)
    for y, expected in [(0.05, -0.124), (0.1, -0.245), (0.25, -0.555), (0.5, -0.848), (1.0, -0.987)]:
        assert scaled_sigmoid(y) == pytest.approx(expected, abs=0.0015)


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        pytest.param(100, 15, id="small"),
        pytest.param(4032, 604, id="nab"),
        pytest.param(4730, 709, id="4730"),
        pytest.param(6000, 750, id="capped at 750"),
    ],
)
def test_probation(n, expected):
    assert probation_rows(n) == expected


# A 100-row file: probation = 15 rows; one window at rows 40..49 (w = 10).
W = ((40, 49),)


@pytest.mark.parametrize(
    ("alarms", "profile", "expected_raw"),
    [
        pytest.param({}, STANDARD, -1.0, id="no alarm: the window is missed (-A_FN)"),
        pytest.param({}, REWARD_LOW_FN, -2.0, id="miss under low-FN costs 2"),
        pytest.param({40: 1.0}, STANDARD, 1.0, id="first row of the window is worth A_TP"),
        pytest.param({45: 1.0}, STANDARD, S(-5 / 10) / S(-1), id="mid-window alarm: y=-(49-45+1)/10"),
        pytest.param({45: 1.0, 41: 1.0}, STANDARD, S(-9 / 10) / S(-1), id="only the earliest alarm counts"),
        pytest.param({20: 1.0}, STANDARD, -1.0 - 0.11, id="FP before any window costs A_FP, plus the miss"),
        pytest.param({20: 1.0}, REWARD_LOW_FP, -1.0 - 0.22, id="low-FP profile: A_FP = 0.22"),
        pytest.param({10: 1.0}, STANDARD, -1.0, id="alarm in the probationary period is ignored"),
        pytest.param({52: 1.0}, STANDARD, -1.0 + 0.11 * S(3 / 9), id="FP after window: y=(52-49)/(10-1)"),
        pytest.param({99: 1.0}, STANDARD, -1.0 + 0.11 * -1.0, id="FP far after the window (y > 3): -A_FP"),
        pytest.param({20: 1.0, 21: 1.0, 40: 1.0}, STANDARD, 1.0 - 0.22, id="each FP row costs separately"),
    ],
)
def test_raw_score_hand_made(alarms, profile, expected_raw):
    f = make(100, W, alarms)
    assert raw_score([f], profile, 0.5) == pytest.approx(expected_raw, abs=1e-12)


def test_normalised_score_against_null_and_perfect():
    # two files, three windows: raw_perfect = 3, raw_null = -3 (standard)
    a = make(100, ((40, 49), (70, 79)), {40: 1.0})  # hits one window on its first row, misses one
    b = make(200, ((100, 119),), {110: 1.0, 50: 1.0})  # hits at y = -(119-110+1)/20, one FP before
    raw = 1.0 - 1.0 + S(-10 / 20) / S(-1) - 0.11
    result = nab_result([a, b], STANDARD, threshold=0.5)
    assert result.raw == pytest.approx(raw)
    assert (result.raw_null, result.raw_perfect) == (-3.0, 3.0)
    assert result.score == pytest.approx(100 * (raw + 3) / 6)
    assert (result.tp, result.fn, result.fp) == (2, 1, 1)
    low_fn = nab_result([a, b], REWARD_LOW_FN, threshold=0.5)
    assert low_fn.raw == pytest.approx(1.0 - 2.0 + S(-0.5) / S(-1) - 0.11)
    assert low_fn.score == pytest.approx(100 * (low_fn.raw + 6) / 9)


def test_null_detector_scores_zero_and_perfect_detector_scores_100():
    null = make(100, W, {i: 0.5 for i in range(100)})
    assert nab_result([null], STANDARD).score == 0.0  # the sweep keeps θ = 1.1: no alarm
    perfect = make(100, W, {40: 1.0})
    assert nab_result([perfect], STANDARD).score == 100.0


def test_sweep_finds_the_best_threshold_and_prefers_the_highest_on_ties():
    # scores: 0.9 at the window's first row, 0.8 on 20 rows outside (costly), 0.7 nowhere special
    f = make(100, W, {40: 0.9, **{i: 0.8 for i in range(60, 80)}})
    best = nab_result([f], STANDARD)
    assert best.threshold == 0.9
    assert best.raw == pytest.approx(1.0)
    # two scores giving the same total: 0.95 on the window's first row, 0.6 on a row of
    # the same window later on (adds nothing): the highest threshold wins
    g = make(100, W, {40: 0.95, 45: 0.6})
    assert nab_result([g], STANDARD).threshold == 0.95


def test_sweep_equals_brute_force_over_every_candidate():
    import random

    rng = random.Random(7)
    files = [
        ScoredFile("a", 300, ((100, 129), (200, 239)), [round(rng.random(), 2) ** 3 for _ in range(300)]),
        ScoredFile("b", 200, (), [round(rng.random(), 2) ** 4 for _ in range(200)]),
    ]
    for profile in (STANDARD, REWARD_LOW_FP, REWARD_LOW_FN):
        candidates = sorted(
            {1.1} | {s for f in files for s in f.scores[probation_rows(f.n_rows) :]}, reverse=True
        )
        brute = max(candidates, key=lambda t: (round(raw_score(files, profile, t), 12), t))
        swept = nab_result(files, profile)
        assert swept.threshold == brute
        assert swept.raw == pytest.approx(raw_score(files, profile, brute))


def test_row_values_match_the_formulas():
    values, where = row_values(20, [(5, 8)], STANDARD)
    assert where[5:9] == [0, 0, 0, 0] and where[4] == where[9] == -1
    assert values[4] == -0.11
    assert values[6] == pytest.approx(S(-(8 - 6 + 1) / 4) / S(-1))
    assert values[10] == pytest.approx(0.11 * S((10 - 8) / 3))


def test_bad_windows_rejected():
    with pytest.raises(ValueError, match="overlapping"):
        ScoredFile("x", 100, ((10, 20), (15, 30)), [0.0] * 100)


def test_load_corpus_maps_window_labels_to_first_matching_rows(tmp_path: Path):
    data = tmp_path / "data" / "cat"
    data.mkdir(parents=True)
    rows = ["2014-01-01 00:00:00", "2014-01-01 00:05:00", "2014-01-01 00:05:00", "2014-01-01 00:10:00"]
    (data / "f.csv").write_text("timestamp,value\n" + "".join(f"{t},{i}e-1\n" for i, t in enumerate(rows)))
    labels = {"cat/f.csv": [["2014-01-01 00:05:00.000000", "2014-01-01 00:10:00.000000"]]}
    (tmp_path / "windows.json").write_text(json.dumps(labels))
    [f] = load_corpus(tmp_path)
    assert f.windows == ((1, 3),)  # the duplicate timestamp maps to its first row
    assert f.values == [0.0, 0.1, 0.2, 0.3]


def test_load_corpus_names_file_and_line_on_bad_value(tmp_path: Path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "f.csv").write_text("timestamp,value\n2014-01-01 00:00:00,abc\n")
    (tmp_path / "windows.json").write_text('{"f.csv": []}')
    with pytest.raises(ValueError, match=r"f\.csv: line 2: value 'abc' is not a number"):
        load_corpus(tmp_path)


def test_by_category_and_leave_one_category_out():
    """Per category: null and perfect from that category alone; leave-one-out: θ from the others."""
    from collector.detect.nab_score import by_category, leave_one_category_out, sweep_threshold

    a1 = make(200, ((100, 119),), {100: 0.8, 40: 0.3})
    a1.name = "catA/1.csv"
    a2 = make(200, ((60, 79),), {60: 0.3})
    a2.name = "catA/2.csv"
    b = make(200, ((150, 169),), {150: 0.6, 50: 0.7})
    b.name = "catB/1.csv"
    quiet = make(200, (), {90: 0.9})
    quiet.name = "catC/1.csv"
    files = [a1, a2, b, quiet]
    per = by_category(files, STANDARD)
    assert list(per) == ["catA", "catB", "catC"]
    assert per["catA"] == nab_result([a1, a2], STANDARD)
    assert per["catA"].threshold == 0.3  # both windows are worth one false positive
    assert per["catC"].raw_perfect == per["catC"].raw_null == 0.0  # no window: read fp, not score
    loo = leave_one_category_out(files, STANDARD)
    theta_b = sweep_threshold([a1, a2, quiet], STANDARD)
    assert loo["catB"] == nab_result([b], STANDARD, threshold=theta_b)
    assert theta_b == 0.3 and loo["catB"].tp == 1 and loo["catB"].fp == 1
    assert loo["catA"].threshold == sweep_threshold([b, quiet], STANDARD) == 0.6
    assert loo["catA"].tp == 1  # 0.3 is below the threshold chosen without catA
    fixed = leave_one_category_out(files, STANDARD, threshold=0.5)
    assert {c: r.threshold for c, r in fixed.items()} == {"catA": 0.5, "catB": 0.5, "catC": 0.5}
