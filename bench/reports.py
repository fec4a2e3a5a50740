"""Report rendering benchmark: an inspection report for a customer with many hosts.

Builds ``collector.reports.sample.synthetic_inspection(--hosts)`` (one row per host in
the host table; about a fifth of the hosts carry findings, grouped by finding; three
trend charts; a comparison with the previous inspection), then renders it to HTML and
to PDF (WeasyPrint, A4) in ``--lang`` and prints one JSON document:

- ``html_s`` / ``pdf_s``: wall seconds of the best of ``--repeat`` renders (targets:
  HTML <= 10 s, PDF <= 30 s for 1,000 hosts), and ``*_cpu_s`` the CPU seconds of it;
- ``html_bytes`` / ``pdf_bytes`` / ``pdf_pages``: output sizes;
- ``first_pdf_s``: the first PDF render of the process (it includes WeasyPrint's import
  and font discovery).

    python bench/reports.py                       # 1,000 hosts, zh-CN
    python bench/reports.py --hosts 5000 --lang en

WeasyPrint subsets fonts with HarfBuzz when ``libharfbuzz-subset0`` is installed;
without it, it falls back to fontTools, which needs about 5 s per Noto CJK face.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from collector.reports import render_inspection  # noqa: E402 - after the sys.path fix above
from collector.reports.sample import synthetic_inspection  # noqa: E402

T = TypeVar("T")


def _timed(fn: Callable[[], T]) -> tuple[T, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def _pdf_pages(pdf: bytes) -> int | None:
    """Page count through poppler's pdfinfo (None when it is not installed)."""
    if shutil.which("pdfinfo") is None:
        return None
    done = subprocess.run(["pdfinfo", "-"], input=pdf, capture_output=True, timeout=60, check=True)
    match = re.search(rb"^Pages:\s+(\d+)", done.stdout, re.MULTILINE)
    return int(match.group(1)) if match else None


def _font_subsetter() -> str:
    """ "harfbuzz" (fast) when libharfbuzz-subset0 is installed, else "fonttools" (slow with CJK fonts)."""
    from weasyprint.text.ffi import harfbuzz_subset  # type: ignore[import-untyped]

    return "fonttools" if harfbuzz_subset is None else "harfbuzz"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render a large inspection report to HTML and PDF")
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--lang", choices=("en", "zh-CN"), default="zh-CN")
    parser.add_argument("--repeat", type=int, default=2, help="renders per format; the best is reported")
    parser.add_argument("--out", type=Path, help="also write the HTML and PDF here (a directory)")
    args = parser.parse_args(argv)

    report, build_s, _ = _timed(lambda: synthetic_inspection(args.hosts))
    first_pdf, first_pdf_s, first_pdf_cpu = _timed(lambda: render_inspection(report, "pdf", args.lang))
    html_runs = [
        _timed(lambda: render_inspection(report, "html", args.lang)) for _ in range(max(1, args.repeat))
    ]
    pdf_runs = [(first_pdf, first_pdf_s, first_pdf_cpu)]
    pdf_runs += [
        _timed(lambda: render_inspection(report, "pdf", args.lang)) for _ in range(max(0, args.repeat - 1))
    ]
    html, html_s, html_cpu = min(html_runs, key=lambda r: r[1])
    pdf, pdf_s, pdf_cpu = min(pdf_runs, key=lambda r: r[1])
    pages = _pdf_pages(pdf)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"inspection-{args.hosts}.{args.lang}.html").write_bytes(html)
        (args.out / f"inspection-{args.hosts}.{args.lang}.pdf").write_bytes(pdf)
    result = {
        "hosts": args.hosts,
        "lang": args.lang,
        "hosts_with_findings": report.hosts_with_findings,
        "findings": len(report.findings),
        "finding_instances": sum(len(f.instances) for f in report.findings),
        "model_build_s": round(build_s, 3),
        "html_s": round(html_s, 3),
        "html_cpu_s": round(html_cpu, 3),
        "html_bytes": len(html),
        "pdf_s": round(pdf_s, 3),
        "pdf_cpu_s": round(pdf_cpu, 3),
        "first_pdf_s": round(first_pdf_s, 3),
        "pdf_bytes": len(pdf),
        "pdf_pages": pages,
        "font_subsetter": _font_subsetter(),
        "targets": {"html_s": 10, "pdf_s": 30},
        "ok": html_s <= 10 and pdf_s <= 30,
    }
    print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
