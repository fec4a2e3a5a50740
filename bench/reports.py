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
    python bench/reports.py --from-store          # the stored path, see below

``--from-store`` builds the report the way a run does instead: a temporary SQLite store
with ``--hosts`` hosts (tagged results of one run, a fifth with findings; 7 days of hourly
filesystem and memory history each), then ``InspectionRepo.gather`` → ``run_inspection``
→ ``to_report`` (with trend charts); it adds ``seed_s``, ``gather_s`` and ``evaluate_s``.

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

from collector.reports import InspectionReport, render_inspection  # noqa: E402 - after the sys.path fix above
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


def _stored_report(n_hosts: int, timings: dict[str, float]) -> InspectionReport:
    """Seed a temporary store like a finished run of ``n_hosts`` and build its report from it."""
    import tempfile

    from collector.inspections import parse_plan, run_inspection
    from collector.inspections.facts import HostFacts
    from collector.inspections.report import build_trends, to_report
    from collector.reports import Customer, SignOff
    from collector.store import IngestBatch, PointRow, ResultRow, Store
    from collector.store.inspections import InspectionRepo

    plan = parse_plan(
        {
            "name": "bench",
            "customer": "bench",
            "timezone": "Asia/Shanghai",
            "schedule": "@monthly",
            "layers": ["host", "storage"],
        },
        "bench.yaml",
    )
    run_id = "bench-run"
    now = time.time()
    start = now - 7 * 86400.0
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(f"sqlite:///{tmp}/bench.db")
        repo = InspectionRepo(store)
        t0 = time.perf_counter()
        names = [f"host{i:05d}" for i in range(n_hosts)]
        for i, name in enumerate(names):
            agent, _ = store.enroll_agent("bench", host=name, agent_id=f"bench-{name}")
            if i == 0:
                repo.create_run(run_id, "bench", plan.name, "manual", {})
            full = i % 5 == 0
            fs = '[{"severity": "WARN", "key": "FS_NEARLY_FULL", "summary": "/data 88%", "item": "/data"}]'
            results = [
                ResultRow(
                    1,
                    now,
                    "storage.filesystem",
                    "storage",
                    "WARN" if full else "OK",
                    "FS_NEARLY_FULL" if full else "OK",
                    "fs",
                    1.0,
                    fs if full else "[]",
                    run_id,
                ),
                ResultRow(2, now, "host.memory", "host", "OK", "OK", "memory fine", 1.0, "[]", run_id),
                ResultRow(
                    3,
                    now,
                    "application.agent",
                    "application",
                    "OK",
                    "INSPECTION_DONE",
                    "done",
                    1.0,
                    "[]",
                    run_id,
                ),
            ]
            points = []
            for h in range(7 * 24):
                ts = start + h * 3600.0
                points.append(
                    PointRow(
                        1,
                        ts,
                        "storage.filesystem",
                        "storage_fs_used_percent",
                        "percent",
                        (("mountpoint", "/data"),),
                        60.0 + (h / 24.0) * (3.0 if full else 0.2),
                    )
                )
                points.append(
                    PointRow(2, ts, "host.memory", "host_memory_used_bytes", "bytes", (), 2e9 + h * 1e6)
                )
            store.ingest(agent, IngestBatch(3, 1, results, points, [], []))
        timings["seed_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        gathered = repo.gather("bench", run_id, names, names, start, now, plan.check_names())
        facts = [HostFacts.from_evidence(e) for e in gathered]
        timings["gather_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = run_inspection(plan, run_id, facts, start, now, None)
        report = to_report(
            result,
            Customer("Bench Co.", "Asia/Shanghai"),
            SignOff("bench"),
            now,
            trends=build_trends(result, facts, "Asia/Shanghai"),
        )
        timings["evaluate_s"] = time.perf_counter() - t0
        store.close()
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render a large inspection report to HTML and PDF")
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--lang", choices=("en", "zh-CN"), default="zh-CN")
    parser.add_argument("--repeat", type=int, default=2, help="renders per format; the best is reported")
    parser.add_argument("--out", type=Path, help="also write the HTML and PDF here (a directory)")
    parser.add_argument("--from-store", action="store_true", help="build the report from a seeded store")
    args = parser.parse_args(argv)

    stored: dict[str, float] = {}
    if args.from_store:
        report, build_s, _ = _timed(lambda: _stored_report(args.hosts, stored))
    else:
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
        **{k: round(v, 3) for k, v in stored.items()},
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
