"""``diag-collector replay`` through its real entry point, on CSV files written by the tests."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

import pytest

from collector.cli.replay import main, parse_timestamp


def write_series(path: Path, *, columns: dict[str, list[float]], start: int = 1_800_000_000) -> Path:
    names = list(columns)
    n = len(columns[names[0]])
    lines = ["timestamp," + ",".join(names)]
    for i in range(n):
        stamp = f"{start + 60 * i}"
        lines.append(stamp + "," + ",".join(repr(columns[c][i]) for c in names))
    path.write_text("\n".join(lines) + "\n")
    return path


def latency(seed: int, n: int = 400, step_at: int = 300) -> list[float]:
    rng = random.Random(seed)
    return [(0.05 if i >= step_at else 0.005) + rng.gauss(0, 0.0004) for i in range(n)]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[dict[str, Any]], str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    return code, lines, captured.err


def test_json_line_per_anomaly(tmp_path, capsys):
    f = write_series(tmp_path / "web.csv", columns={"latency": latency(1)})
    code, events, err = run(capsys, "--direction", "latency=up", str(f))
    assert code == 0 and err == ""
    [anomaly] = [e for e in events if e["event"] == "anomaly"]
    assert anomaly["series"] == "web.latency"
    assert anomaly["key"] == "LEVEL_SHIFT_UP"
    assert anomaly["timestamp"] == "2027-01-15T13:01:00Z"  # row 301: the confirming sample
    assert anomaly["onset"] == "2027-01-15T13:00:00Z"  # row 300: the first deviating one
    assert 0.5 <= anomaly["score"] <= 1
    assert anomaly["baseline"]["expected"] == pytest.approx(0.005, rel=0.1)


def test_direction_good_way_is_quiet(tmp_path, capsys):
    rng = random.Random(2)
    values = [(0.001 if i >= 300 else 0.005) + abs(rng.gauss(0, 0.0002)) for i in range(400)]
    f = write_series(tmp_path / "web.csv", columns={"latency": values})
    assert run(capsys, "--direction", "latency=up", str(f))[1] == []
    code, events, _ = run(capsys, str(f))  # both ways by default
    assert code == 0 and [e["key"] for e in events if e["event"] == "anomaly"] == ["LEVEL_SHIFT_DOWN"]


def test_scores_csv_single_and_several_columns(tmp_path, capsys):
    one = write_series(tmp_path / "one.csv", columns={"value": latency(3)})
    two = write_series(tmp_path / "two.csv", columns={"a": latency(4), "b": latency(5, step_at=1000)})
    out = tmp_path / "out"
    out.mkdir()
    code, _, _ = run(capsys, "--scores", "--out-dir", str(out), str(one), str(two))
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["one.scores.csv", "two.a.scores.csv", "two.b.scores.csv"]
    with (out / "one.scores.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["timestamp", "value", "anomaly_score"]
    assert len(rows) == 400 and rows[0]["timestamp"] == "1800000000"
    scores = [float(r["anomaly_score"]) for r in rows]
    assert all(0 <= s <= 1 for s in scores)
    assert max(scores[:300]) < 0.5 <= min(scores[300:302])
    with (out / "two.b.scores.csv").open() as fh:
        assert max(float(r["anomaly_score"]) for r in csv.DictReader(fh)) < 0.5


def test_scores_default_next_to_input(tmp_path, capsys):
    f = write_series(tmp_path / "one.csv", columns={"value": latency(3)})
    assert run(capsys, "--scores", str(f))[0] == 0
    assert (tmp_path / "one.scores.csv").exists()


def test_nab_style_timestamps(tmp_path, capsys):
    f = tmp_path / "nab.csv"
    f.write_text("timestamp,value\n2014-04-01 00:00:00,1.5\n2014-04-01T00:05:00Z,-1.03989471325e-05\n")
    assert run(capsys, str(f))[0] == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param("", "empty.csv: line 1: empty file", id="empty file"),
        pytest.param("time,value\n1,2\n", "line 1: no 'timestamp' column", id="missing timestamp column"),
        pytest.param("timestamp\n1\n", "line 1: no value column", id="no value column"),
        pytest.param("timestamp,value\n", "line 2: no data rows", id="header only"),
        pytest.param(
            "timestamp,value\n1,2\nyesterday,3\n", "line 3: bad timestamp 'yesterday'", id="bad timestamp"
        ),
        pytest.param(
            "timestamp,value\n1,2\n2,abc\n", "line 3: column 'value': 'abc' is not a number", id="not numeric"
        ),
        pytest.param(
            "timestamp,value\n1,2\n2,nan\n", "line 3: column 'value': 'nan' is not finite", id="nan"
        ),
        pytest.param("timestamp,a,b\n1,2,3\n2,3\n", "line 3: 2 fields, header has 3", id="short row"),
    ],
)
def test_bad_input_names_file_and_line(tmp_path, capsys, content, message):
    f = tmp_path / ("empty.csv" if not content else "bad.csv")
    f.write_text(content)
    code, _, err = run(capsys, str(f))
    assert code == 2
    assert str(f) in err and message in err
    assert "Traceback" not in err


def test_missing_file_and_bad_direction(tmp_path, capsys):
    code, _, err = run(capsys, str(tmp_path / "nope.csv"))
    assert code == 2 and "nope.csv: cannot read" in err
    with pytest.raises(SystemExit) as exc:
        main(["--direction", "latency=sideways", str(tmp_path / "x.csv")])
    assert exc.value.code == 2


def test_parse_timestamp_forms():
    assert parse_timestamp("2014-04-01 00:00:00") == parse_timestamp("2014-04-01T00:00:00Z") == 1396310400.0
    assert parse_timestamp("1396310400.5") == 1396310400.5
    with pytest.raises(ValueError, match="bad timestamp"):
        parse_timestamp("01/04/2014")


def test_a_single_spike_is_reported_as_a_spike_not_an_anomaly(tmp_path, capsys):
    rng = random.Random(3)
    values = [0.005 + rng.gauss(0, 0.0004) for _ in range(400)]
    values[300] = 0.05
    f = write_series(tmp_path / "web.csv", columns={"latency": values})
    code, events, _ = run(capsys, "--direction", "latency=up", str(f))
    assert code == 0
    assert [(e["event"], e["key"], e["timestamp"]) for e in events] == [
        ("spike", "SPIKE", "2027-01-15T13:00:00Z")
    ]
    assert events[0]["baseline"]["expected"] == pytest.approx(0.005, rel=0.1)
    assert events[0]["baseline"]["high"] < 0.05
