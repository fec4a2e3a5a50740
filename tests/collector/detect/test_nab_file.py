"""A real NAB series (AWS RDS CPU) through the detector: its labelled anomalies are found."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

from checks.api import Direction
from collector.detect.detector import Anomaly, SeriesDetector
from collector.detect.nab_score import probation_rows

DATA = Path(__file__).parent / "data" / "rds_cpu_utilization_e47b3b.csv"
# NAB labels/combined_windows.json for this file
WINDOWS = [("2014-04-12 22:32:00", "2014-04-13 15:12:00"), ("2014-04-18 15:07:00", "2014-04-19 07:47:00")]


def test_detector_finds_both_labelled_windows_of_a_real_series():
    with DATA.open(newline="") as fh:
        rows = [(r["timestamp"], float(r["value"])) for r in csv.DictReader(fh)]
    index = {ts: i for i, (ts, _) in reversed(list(enumerate(rows)))}
    windows = [(index[a], index[b]) for a, b in WINDOWS]
    detector = SeriesDetector("rds_cpu", Direction.BOTH_BAD)
    fired: list[int] = []
    for i, (ts, value) in enumerate(rows):
        stamp = datetime.strptime(ts, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()
        if isinstance(detector.update(stamp, value), Anomaly):
            fired.append(i)
    scored = [i for i in fired if i >= probation_rows(len(rows))]
    for start, end in windows:
        assert any(start <= i <= end for i in scored), f"window {start}..{end} missed; alarms at {scored}"
    outside = [i for i in scored if not any(a <= i <= b for a, b in windows)]
    assert len(outside) <= 1, f"false alarms at {outside}"
