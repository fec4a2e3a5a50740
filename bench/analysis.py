"""Service-operation analysis benchmark: a customer with 10,000 cases and 500 hosts over a year.

Seeds a temporary SQLite store through the store's own API: ``--hosts`` enrolled hosts,
each with an inventory (a product in one of three versions), and ``--cases`` desk cases
spread evenly over the year 2026 (types and hosts in rotation; one case in five with time
logged). Then builds the analysis of ``--period`` (default: the quarter 2026-Q4, compared
with the three quarters before it) the way ``POST /api/v1/records`` does
(``build_service_record``: queries, model, render, store), in HTML and in PDF, and, as
the baseline measured in the same run, renders today's inspection report of a customer
with the same number of hosts (``collector.reports.sample.synthetic_inspection``).

Prints one JSON document: ``analysis.html_s`` / ``analysis.pdf_s`` (targets: <= 5 s and
<= 30 s), ``baseline.html_s`` / ``baseline.pdf_s``, the ratios, sizes and ``seed_s``.

    python bench/analysis.py [--cases 10000] [--hosts 500] [--period 2026-Q4] [--lang zh-CN]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from collector.inspections.service import service_for  # noqa: E402 - after the sys.path fix above
from collector.records.stored import build_service_record  # noqa: E402
from collector.reports import Lang, render_inspection  # noqa: E402
from collector.reports.render import Format  # noqa: E402
from collector.reports.sample import synthetic_inspection  # noqa: E402
from collector.store import IngestBatch, Scope, Store  # noqa: E402
from collector.store.desk_cases import DeskRepo, NewCase  # noqa: E402
from collector.store.reports import ReportRecord  # noqa: E402
from collector.store.types import InventoryRow  # noqa: E402

YEAR_START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp()
YEAR_S = 365 * 86400.0
TYPES = ("consultation", "routine", "adaptive", "complaint", "onsite", "perfective")
ALL = Scope.everything()
T = TypeVar("T")


def seed(store: Store, hosts: int, cases: int) -> None:
    for h in range(hosts):
        agent, _ = store.enroll_agent("acme", f"h{h:03d}", f"acme-h{h:03d}")
        doc = {"os": "debian", "products": {"erp": f"5.{h % 3}.0", "db": f"14.{h % 2}"}}
        store.ingest(agent, IngestBatch(1, 1, [], [], [InventoryRow(1, YEAR_START, doc, f"{h:064x}")], []))
    desk = DeskRepo(store)
    for i in range(cases):
        kind = TYPES[i % len(TYPES)]
        at = YEAR_START + YEAR_S * i / cases
        new = NewCase(
            "acme", kind, "email", f"request {i}", host=f"h{(i * 7) % hosts:03d}",
            subtype="operation_error" if kind == "routine" else None,
        )  # fmt: skip
        case = desk.open(ALL, new, actor="desk", now=at)
        if i % 5 == 0:
            day = dt.datetime.fromtimestamp(at, dt.UTC).date()
            mode = ("onsite", "remote")[i % 2]
            desk.log_time(ALL, case.id, minutes=30 + i % 90, activity="work", mode=mode,
                          work_date=day, engineer="li", actor="li", now=at)  # fmt: skip


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Service-operation analysis of a large customer")
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--hosts", type=int, default=500)
    parser.add_argument("--period", default="2026-Q4")
    parser.add_argument("--lang", choices=("en", "zh-CN"), default="zh-CN")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(f"sqlite:///{tmp}/collector.db")
        _, seed_s = timed(lambda: seed(store, args.hosts, args.cases))
        runner = service_for(store).runner
        now = YEAR_START + YEAR_S

        lang: Lang = args.lang

        def analysis(fmt: Format) -> ReportRecord:
            return build_service_record(
                runner, ALL, "analysis", lang, fmt, now=now, customer="acme", period=args.period
            )

        html_record, html_s = timed(lambda: analysis("html"))
        pdf_record, pdf_s = timed(lambda: analysis("pdf"))
        report = synthetic_inspection(args.hosts)
        base_html, base_html_s = timed(lambda: render_inspection(report, "html", lang))
        base_pdf, base_pdf_s = timed(lambda: render_inspection(report, "pdf", lang))
        store.close()
    result = {
        "cases": args.cases,
        "hosts": args.hosts,
        "period": args.period,
        "lang": args.lang,
        "seed_s": round(seed_s, 2),
        "analysis": {
            "html_s": round(html_s, 3),
            "pdf_s": round(pdf_s, 3),
            "html_bytes": html_record.size,
            "pdf_bytes": pdf_record.size,
            "targets": {"html_s": 5.0, "pdf_s": 30.0},
            "within_targets": html_s <= 5.0 and pdf_s <= 30.0,
        },
        "baseline": {
            "what": f"inspection report of {args.hosts} hosts (synthetic_inspection), same run",
            "html_s": round(base_html_s, 3),
            "pdf_s": round(base_pdf_s, 3),
            "html_bytes": len(base_html),
            "pdf_bytes": len(base_pdf),
        },
        "ratio": {
            "html": round(html_s / base_html_s, 2) if base_html_s else None,
            "pdf": round(pdf_s / base_pdf_s, 2) if base_pdf_s else None,
        },
    }
    print(json.dumps(result, indent=2))
    return 0 if html_s <= 5.0 and pdf_s <= 30.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
