"""Regenerate ``bench/nab_reference.json``: published detectors scored by our NAB scorer.

NAB (https://github.com/numenta/NAB, MIT licence, copyright 2014-2024 Numenta Inc.; the
licence text is ``../shared/data/nab-dev/LICENSE-NAB.txt``) ships every published
detector's per-row anomaly scores under ``results/<detector>/<category>/<detector>_<file>.csv``.
This script reads those rows for the files of our corpus (``windows.json`` of
``--nab-dir``) from a clone of NAB at ``--commit`` and scores them with
:mod:`collector.detect.nab_score`, exactly as ``bench/detect.py`` scores ours:

- ``pooled``: all files, θ swept on all of them, for the three profiles (the README's
  reference table, to check the scorer);
- ``by_category``: each category on its own, θ swept on it (standard profile);
- ``leave_one_category_out``: each category with θ swept on the other categories.

Only these derived numbers are committed (a few kB), not NAB's rows.

    python bench/nab_reference.py --nab-git /path/to/NAB/.git > bench/nab_reference.json
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from collector.detect.nab_score import (  # noqa: E402
    PROFILES,
    STANDARD,
    NabResult,
    ScoredFile,
    by_category,
    leave_one_category_out,
    load_corpus,
    nab_result,
)

COMMIT = "ea702d75cc2258d9d7dd35ca8e5e2539d71f3140"
DETECTORS = {
    "ARTime": "ARTime",
    "CAD OSE": "contextOSE",
    "Numenta HTM": "numenta",
    "Etsy Skyline (earthgecko)": "earthgeckoSkyline",
    "KNN CAD": "knncad",
    "Relative Entropy": "relativeEntropy",
    "Random Cut Forest": "randomCutForest",
    "Windowed Gaussian": "windowedGaussian",
}


def result_dict(r: NabResult, *, with_score: bool = True) -> dict[str, Any]:
    """The numbers a table shows of one result (score None when there is no window)."""
    return {
        "score": round(r.score, 2) if with_score and r.raw_perfect != r.raw_null else None,
        "threshold": round(r.threshold, 4),
        "windows_hit": r.tp,
        "windows": r.tp + r.fn,
        "fp_rows": r.fp,
    }


def scored_tables(files: list[ScoredFile]) -> dict[str, Any]:
    """pooled (three profiles), by_category and leave_one_category_out (standard)."""
    return {
        "pooled": {p.name: result_dict(nab_result(files, p)) for p in PROFILES},
        "by_category": {c: result_dict(r) for c, r in by_category(files, STANDARD).items()},
        "leave_one_category_out": {
            c: result_dict(r) for c, r in leave_one_category_out(files, STANDARD).items()
        },
    }


def _read_rows(git_dir: Path, commit: str, path: str) -> list[float]:
    text = subprocess.run(
        ["git", f"--git-dir={git_dir}", "show", f"{commit}:{path}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [float(row["anomaly_score"]) for row in csv.DictReader(io.StringIO(text))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nab-git", type=Path, required=True, help="git directory of a NAB clone")
    parser.add_argument("--commit", default=COMMIT)
    parser.add_argument("--nab-dir", type=Path, default=REPO.parent / "shared" / "data" / "nab-dev")
    args = parser.parse_args(argv)
    corpus = load_corpus(args.nab_dir)
    out: dict[str, Any] = {
        "source": f"https://github.com/numenta/NAB/tree/{args.commit}/results",
        "licence": "MIT, copyright 2014-2024 Numenta Inc. (LICENSE-NAB.txt beside the corpus)",
        "generated_by": "python bench/nab_reference.py --nab-git <NAB clone>/.git",
        "files": len(corpus),
        "windows": sum(len(f.windows) for f in corpus),
        "detectors": {},
    }
    for label, folder in DETECTORS.items():
        files = []
        for f in corpus:
            category, _, name = f.name.partition("/")
            scores = _read_rows(args.nab_git, args.commit, f"results/{folder}/{category}/{folder}_{name}")
            if len(scores) != len(f.values):
                raise SystemExit(
                    f"{folder}/{f.name}: {len(scores)} rows, the corpus file has {len(f.values)}"
                )
            files.append(ScoredFile(f.name, len(f.values), f.windows, scores))
        out["detectors"][label] = scored_tables(files)
        print(f"{label}: {out['detectors'][label]['pooled']['standard']['score']}", file=sys.stderr)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
