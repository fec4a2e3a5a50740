"""``diag-collector replay``: run recorded series through the live detector code.

Input: CSV files with a ``timestamp`` column (ISO 8601, ``YYYY-MM-DD HH:MM:SS`` or Unix
seconds; a time without a zone is UTC) and one or more value columns, each a series.
Rows are streamed: a file is read once, row by row.

Output: one JSON line per event on stdout (``event`` = ``anomaly``, ``recovery``, or
``spike``: a single sample far off its band, reported but never an anomaly by itself),
with ``timestamp`` (the row at which it fired), ``series`` (``<file stem>.<column>``),
``score`` (0..1), ``key``, ``onset`` and ``baseline``. With ``--scores``, a CSV per input
column, ``timestamp,value,anomaly_score`` for every row, in ``--out-dir`` (default: next
to the input): ``<stem>.scores.csv`` for a single column, ``<stem>.<column>.scores.csv``
for several.

Bad input (missing file, empty file, no ``timestamp`` column, a bad timestamp, a
non-numeric value, a short row) stops with one line naming the file and line, exit 2.

    diag-collector replay --direction latency=up --scores --out-dir /tmp/out web.csv

>>> parse_timestamp("2014-04-01 00:05:00"), parse_timestamp("1396310700")
(1396310700.0, 1396310700.0)
>>> parse_timestamp("2014-04-01T02:05:00+02:00")
1396310700.0
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TextIO

from checks.api import Direction
from collector.detect.detector import Anomaly, SeriesDetector

__all__ = ["ReplayError", "main", "parse_timestamp", "replay_file"]

_DIRECTIONS = {"up": Direction.UP_IS_BAD, "down": Direction.DOWN_IS_BAD, "both": Direction.BOTH_BAD}


class ReplayError(ValueError):
    """Bad input: the message names the file and line."""


def parse_timestamp(text: str) -> float:
    """Unix seconds from ISO 8601 / ``YYYY-MM-DD HH:MM:SS`` (UTC when no zone) or Unix seconds."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        pass  # not a number: try the date formats below
    else:
        if not math.isfinite(value):
            raise ValueError(f"timestamp {text!r} is not finite")
        return value
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"bad timestamp {text!r} (want ISO 8601, 'YYYY-MM-DD HH:MM:SS' or Unix seconds)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _direction_arg(text: str) -> tuple[str, Direction]:
    column, sep, way = text.partition("=")
    if not sep or not column or way not in _DIRECTIONS:
        raise argparse.ArgumentTypeError(f"expected COLUMN=up|down|both, got {text!r}")
    return column, _DIRECTIONS[way]


def _scores_path(path: Path, column: str, several: bool, out_dir: Path | None) -> Path:
    folder = out_dir if out_dir is not None else path.parent
    name = f"{path.stem}.{column}.scores.csv" if several else f"{path.stem}.scores.csv"
    return folder / name


def replay_file(
    path: Path,
    out: TextIO,
    *,
    directions: dict[str, Direction],
    scores: bool = False,
    out_dir: Path | None = None,
) -> int:
    """Replay one CSV file; write event JSON lines to ``out``; return the number of anomalies."""
    try:
        fh = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise ReplayError(f"{path}: cannot read: {exc.strerror}") from None
    with fh, contextlib.ExitStack() as stack:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise ReplayError(
                f"{path}: line 1: empty file (want a header with a 'timestamp' column)"
            ) from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ReplayError(f"{path}: line 1: unreadable header: {exc}") from None
        header = [h.strip() for h in header]
        if "timestamp" not in header:
            raise ReplayError(f"{path}: line 1: no 'timestamp' column in header {header!r}")
        ts_col = header.index("timestamp")
        columns = [(i, name) for i, name in enumerate(header) if i != ts_col]
        if not columns:
            raise ReplayError(f"{path}: line 1: no value column besides 'timestamp'")
        for _, name in columns:
            if not name:
                raise ReplayError(f"{path}: line 1: a value column has no name")
        several = len(columns) > 1
        detectors = [
            SeriesDetector(f"{path.stem}.{name}", directions.get(name, Direction.BOTH_BAD))
            for _, name in columns
        ]
        writers: list[IO[str]] = []
        if scores:
            for _, name in columns:
                target = _scores_path(path, name, several, out_dir)
                try:
                    sink = stack.enter_context(target.open("w", encoding="utf-8", newline=""))
                except OSError as exc:
                    raise ReplayError(f"{target}: cannot write: {exc.strerror}") from None
                sink.write("timestamp,value,anomaly_score\n")
                writers.append(sink)
        width = len(header)
        anomalies = 0
        rows = 0
        try:
            for row in reader:
                lineno = reader.line_num
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # a blank line (often the last one) carries no sample
                if len(row) != width:
                    raise ReplayError(f"{path}: line {lineno}: {len(row)} fields, header has {width}")
                try:
                    ts = parse_timestamp(row[ts_col])
                except ValueError as exc:
                    raise ReplayError(f"{path}: line {lineno}: {exc}") from None
                rows += 1
                for (col, name), detector, k in zip(columns, detectors, range(len(columns)), strict=True):
                    text = row[col].strip()
                    try:
                        value = float(text)
                    except ValueError:
                        raise ReplayError(
                            f"{path}: line {lineno}: column {name!r}: {text!r} is not a number"
                        ) from None
                    if not math.isfinite(value):
                        raise ReplayError(f"{path}: line {lineno}: column {name!r}: {text!r} is not finite")
                    event = detector.update(ts, value)
                    if event is not None:
                        if isinstance(event, Anomaly):
                            anomalies += 1
                        out.write(json.dumps(event.to_dict()) + "\n")
                    elif detector.spike is not None:
                        out.write(json.dumps(detector.spike.to_dict()) + "\n")
                    if scores:
                        writers[k].write(f"{row[ts_col].strip()},{text},{detector.score:.6f}\n")
        except csv.Error as exc:
            raise ReplayError(f"{path}: line {reader.line_num}: {exc}") from None
        except UnicodeDecodeError:
            raise ReplayError(f"{path}: line {reader.line_num + 1}: not UTF-8 text") from None
        if rows == 0:
            raise ReplayError(f"{path}: line 2: no data rows after the header")
    return anomalies


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diag-collector replay",
        description="Run recorded series (CSV) through the detector; print anomalies as JSON lines.",
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE.csv")
    parser.add_argument("--scores", action="store_true", help="also write timestamp,value,anomaly_score CSVs")
    parser.add_argument("--out-dir", type=Path, help="where --scores files go (default: beside each input)")
    parser.add_argument(
        "--direction",
        action="append",
        type=_direction_arg,
        default=[],
        metavar="COLUMN=up|down|both",
        help="the bad direction of a column (default: both)",
    )
    return parser


def main(argv: Sequence[str]) -> int:
    """Entry point of ``diag-collector replay`` (``argv`` without the subcommand)."""
    args = build_parser().parse_args(list(argv))
    directions = dict(args.direction)
    if args.out_dir is not None and not args.out_dir.is_dir():
        print(f"replay: --out-dir {args.out_dir} is not a directory", file=sys.stderr)
        return 2
    try:
        for path in args.files:
            replay_file(path, sys.stdout, directions=directions, scores=args.scores, out_dir=args.out_dir)
    except ReplayError as exc:
        sys.stdout.flush()
        print(f"replay: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
