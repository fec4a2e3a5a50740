"""``diagctl`` commands: inspections, reports, customer profiles. Registered by ``build_parser``.

::

    diagctl inspections list | show PLAN|RUN | runs | run PLAN [--wait] | errors
    diagctl reports list [--kind inspection|fault]
    diagctl reports get ID [-o FILE]
    diagctl reports render ID        # render a stored report again (e.g. after installing fonts)
    diagctl reports inspection PLAN|RUN [--format html|pdf|json] [--lang en|zh-CN] [-o FILE]
    diagctl reports fault CASE [--format html|pdf|json] [--lang en|zh-CN] [-o FILE]
    diagctl customers profile CUSTOMER [--name N] [--timezone TZ] [--logo FILE | --clear-logo]

The global ``--format table|json`` chooses how listings print. The report commands that
download a document (``get``, ``inspection``, ``fault``) take their own ``--format
html|pdf|json`` (the document's format) *after* the command; they write the file named by
``-o`` (``-o -``: standard output), else ``<kind>-<subject>.<lang>.<format>`` here.
"""

from __future__ import annotations

import argparse
import base64
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import httpx

from diagctl import customers as customer_file
from diagctl.client import Api, Parser, ServerError, UsageError, emit, positive, table, when

__all__ = ["register"]

WAIT_POLL_S = 1.0
_FILENAME = re.compile(r'filename="([^"/\\]+)"')


def _fetch(api: Api, path: str, params: dict[str, Any]) -> tuple[bytes, str]:
    """GET a document: (bytes, suggested file name). Errors as :meth:`Api.request` reports them."""
    clean = {k: v for k, v in params.items() if v is not None}
    try:
        response = api._client.get(path, params=clean, timeout=300.0)
    except httpx.HTTPError as exc:
        raise ServerError(
            f"request to {api.server} failed: {type(exc).__name__}; is the collector running?"
        ) from None
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail")
        except (ValueError, AttributeError):
            detail = response.text[:300]
        raise ServerError(f"{response.status_code}: {detail}")
    match = _FILENAME.search(response.headers.get("content-disposition", ""))
    return response.content, match.group(1) if match else "report"


def _save(content: bytes, name: str, output: str | None, out: TextIO) -> None:
    if output == "-":
        if out is sys.stdout:
            sys.stdout.buffer.write(content)
        else:
            out.write(content.decode("utf-8", "replace"))
        return
    path = Path(output) if output else Path(name)
    try:
        path.write_bytes(content)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or type(exc).__name__}") from None
    print(f"wrote {path} ({len(content):,} bytes)", file=out)


# --------------------------------------------------------------------------- inspections


def cmd_plans(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    data = api.request("GET", "/api/v1/inspections/plans", {"customer": args.customer})

    def render(rows: list[dict[str, Any]], out: TextIO) -> None:
        table(
            [
                (
                    p["customer"],
                    p["name"],
                    p["schedule"],
                    p["timezone"],
                    when(p["next_due"]),
                    p["language"],
                    len(p["checks"]),
                )
                for p in rows
            ],
            ("CUSTOMER", "PLAN", "SCHEDULE", "TIME ZONE", "NEXT DUE", "LANG", "CHECKS"),
            out,
        )
        if not rows:
            print("no inspection plans: put plan files in the collector's inspections.plans_dir", file=out)

    emit(args, data, render, out)


def _run_rows(runs: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (
            r["id"],
            r["plan"],
            r["trigger"],
            r["state"],
            when(r["created_at"]),
            f"{r['hosts_answered'] if r['hosts_answered'] is not None else '-'}/{r['hosts_selected'] or '-'}",
            r["overall_score"],
            " ".join(f"{k}={v}" for k, v in r["counts"].items() if v),
        )
        for r in runs
    ]


_RUN_HEADERS = ("RUN", "PLAN", "TRIGGER", "STATE", "CREATED", "ANSWERED", "SCORE", "FINDINGS")


def _print_run(r: dict[str, Any], out: TextIO) -> None:
    print(f"run {r['id']} of plan {r['plan']} ({r['customer']}): {r['state']}", file=out)
    print(
        f"  trigger {r['trigger']}, created {when(r['created_at'])}, finished {when(r['finished_at'])}",
        file=out,
    )
    if r["hosts_selected"] is not None:
        coverage = r["coverage_percent"]
        print(
            f"  coverage: {r['hosts_answered'] or 0}/{r['hosts_selected']} hosts answered"
            + (f" ({coverage}%)" if coverage is not None else ""),
            file=out,
        )
    offline = r["hosts"].get("offline") or []
    if offline:
        print(f"  offline: {', '.join(offline)}", file=out)
    if r["overall_score"] is not None:
        layers = ", ".join(f"{k} {v}" for k, v in r["scores"].items() if v is not None)
        print(f"  score: {r['overall_score']} ({layers})", file=out)
        print("  findings: " + (" ".join(f"{k}={v}" for k, v in r["counts"].items()) or "none"), file=out)
    if r["error"]:
        print(f"  error: {r['error']}", file=out)
    for d in r.get("deliveries") or []:
        to = ", ".join(d["recipients"])
        if d["state"] == "sent":
            print(f"  report e-mailed to {to} at {when(d['sent_at'])}", file=out)
        elif d["state"] == "pending":
            next_at = when(d["next_at"])
            print(f"  report e-mail to {to}: pending, attempt {d['attempts'] + 1} at {next_at}", file=out)
        else:
            why = d["last_error"]
            print(f"  report e-mail to {to} FAILED after {d['attempts']} attempt(s): {why}", file=out)


def cmd_show(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    try:
        data = api.request("GET", f"/api/v1/inspections/plans/{args.name}", {"customer": args.customer})
    except ServerError as exc:
        if not str(exc).startswith("404"):
            raise
        data = api.request("GET", f"/api/v1/inspections/runs/{args.name}")

    def render(d: dict[str, Any], out: TextIO) -> None:
        if not isinstance(d.get("plan"), dict):  # a run (its "plan" is the plan's name)
            _print_run(d, out)
            return
        p = d["plan"]
        print(f"plan {p['name']} ({p['customer']}): {p['description'] or '-'}", file=out)
        print(f"  schedule {p['schedule']} ({p['timezone']}), next due {when(p['next_due'])}", file=out)
        selector = ", ".join(f"{k}={v}" for k, v in p["hosts"].items() if v) or "all hosts"
        print(f"  hosts: {selector}; answer deadline {p['answer_deadline_s']:g} s", file=out)
        print(f"  checks ({len(p['checks'])}): {', '.join(p['checks'])}", file=out)
        print(f"  report language {p['language']}; recipients {', '.join(p['recipients']) or '-'}", file=out)
        for rule, fields in sorted((p.get("thresholds") or {}).items()):
            shown = ", ".join(f"{k}={v:g}" for k, v in fields.items())
            print(f"  thresholds {rule}: {shown} (overrides the rule's defaults)", file=out)
        print("", file=out)
        table(_run_rows(d["runs"]), _RUN_HEADERS, out)

    emit(args, data, render, out)


def cmd_runs(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    params = {"customer": args.customer, "plan": args.plan, "limit": args.limit}
    data = api.request("GET", "/api/v1/inspections/runs", params)
    emit(args, data, lambda rows, out: table(_run_rows(rows), _RUN_HEADERS, out), out)


def _print_started(r: dict[str, Any], out: TextIO) -> None:
    print(
        f"started run {r['id']} of plan {r['plan']}; follow it with: diagctl inspections show {r['id']}",
        file=out,
    )


def cmd_run(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    run = api.request("POST", f"/api/v1/inspections/plans/{args.plan}/runs", {"customer": args.customer})
    if not args.wait:
        emit(args, run, _print_started, out)
        return
    deadline = time.monotonic() + args.timeout
    last = ""
    progress = sys.stderr if args.format == "json" else out
    while run["state"] in ("pending", "running"):
        if time.monotonic() > deadline:
            raise ServerError(
                f"run {run['id']} is still {run['state']} after {args.timeout:g} s; "
                f"check later with: diagctl inspections show {run['id']}"
            )
        answered = len(run["hosts"].get("answered") or [])
        asked = len(run["hosts"].get("asked") or [])
        line = f"{run['state']}: {run['hosts_selected'] or 0} host(s) selected, {asked} asked"
        if run["deadline_at"]:
            line += f", deadline {when(run['deadline_at'])}"
        line += f"{'' if not answered else f', {answered} answered'}"
        if line != last:
            print(line, file=progress, flush=True)
            last = line
        time.sleep(WAIT_POLL_S)
        run = api.request("GET", f"/api/v1/inspections/runs/{run['id']}")
    emit(args, run, _print_run, out)
    if run["state"] == "failed":
        raise ServerError(f"run {run['id']} failed: {run['error']}")


def cmd_plan_errors(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    data = api.request("GET", "/api/v1/inspections/plan-errors")

    def render(lines: list[str], out: TextIO) -> None:
        print("\n".join(lines) if lines else "every plan file is valid", file=out)

    emit(args, data, render, out)


# --------------------------------------------------------------------------- reports


def cmd_reports_list(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    params = {"customer": args.customer, "kind": args.kind, "subject": args.subject, "limit": args.limit}
    data = api.request("GET", "/api/v1/reports", params)

    def render(rows: list[dict[str, Any]], out: TextIO) -> None:
        table(
            [
                (
                    r["id"],
                    r["customer"],
                    r["kind"],
                    r["subject"],
                    r["lang"],
                    r["format"],
                    r["size"],
                    when(r["created_at"]),
                )
                for r in rows
            ],
            ("ID", "CUSTOMER", "KIND", "SUBJECT", "LANG", "FORMAT", "BYTES", "CREATED"),
            out,
        )

    emit(args, data, render, out)


def cmd_reports_get(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    content, name = _fetch(api, f"/api/v1/reports/{args.id}/content", {})
    _save(content, name, args.output, out)


def cmd_reports_render(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    data = api.request("POST", f"/api/v1/reports/{args.id}/render")

    def render(r: dict[str, Any], out: TextIO) -> None:
        print(
            f"report {args.id} rendered again as report {r['id']} ({r['kind']} {r['subject']}, "
            f"{r['lang']}, {r['format']}, {r['size']:,} bytes); "
            f"download it with: diagctl reports get {r['id']}",
            file=out,
        )

    emit(args, data, render, out)


def cmd_reports_inspection(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    params = {"customer": args.customer, "format": args.report_format, "lang": args.lang}
    try:
        content, name = _fetch(api, "/api/v1/reports/inspection", {**params, "run": args.target})
    except ServerError as exc:
        if not str(exc).startswith("404"):
            raise
        content, name = _fetch(api, "/api/v1/reports/inspection", {**params, "plan": args.target})
    _save(content, name, args.output, out)


def cmd_reports_fault(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    params = {"format": args.report_format, "lang": args.lang}
    content, name = _fetch(api, f"/api/v1/reports/fault/{args.case}", params)
    _save(content, name, args.output, out)


# --------------------------------------------------------------------------- customers


def cmd_profile(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    body: dict[str, Any] = {}
    if args.name is not None:
        body["name"] = args.name
    if args.timezone is not None:
        body["timezone"] = args.timezone
    if args.logo is not None:
        try:
            body["logo_base64"] = base64.b64encode(Path(args.logo).read_bytes()).decode("ascii")
        except OSError as exc:
            raise UsageError(f"--logo {args.logo}: {exc.strerror or type(exc).__name__}") from None
    if args.clear_logo:
        body["clear_logo"] = True
    path = f"/api/v1/customers/{args.customer}/profile"
    data = api.request("PUT", path, body=body) if body else api.request("GET", path)

    def render(d: dict[str, Any], out: TextIO) -> None:
        logo = f"logo {d['logo_bytes']:,} bytes" if d["has_logo"] else "no logo"
        print(f"{d['customer']}: {d['name']} ({d['timezone']}), {logo}", file=out)

    emit(args, data, render, out)


# --------------------------------------------------------------------------- parser


def _document_parser(
    owner: Any, name: str, func: Callable[..., None], helptext: str
) -> argparse.ArgumentParser:
    """A subcommand that downloads a document: its own --format html|pdf|json (not --format table|json)."""
    p: argparse.ArgumentParser = owner.add_parser(name, help=helptext)
    p.add_argument("--server", default=argparse.SUPPRESS, help="collector URL (else DIAG_SERVER)")
    p.add_argument("--token", default=argparse.SUPPRESS, help="API token (else DIAG_TOKEN)")
    p.add_argument("-o", "--output", metavar="FILE", help="where to write it ('-': standard output)")
    p.set_defaults(func=func)
    return p


def _document_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", dest="report_format", choices=("html", "pdf", "json"), default="html")
    p.add_argument("--lang", choices=("en", "zh-CN"), default="en")


def register(add: Callable[..., Any], sub: Any, common: Any) -> None:
    """Add this module's commands; ``add(name, func, help, owner)`` as in build_parser."""
    inspections = sub.add_parser("inspections", help="inspection plans and runs (定期巡检)", parents=[common])
    isub = inspections.add_subparsers(dest="inspections_command", required=True, parser_class=Parser)
    p = add("list", cmd_plans, "inspection plans loaded by the collector", isub)
    p.add_argument("--customer")
    p = add("show", cmd_show, "one plan with its latest runs, or one run", isub)
    p.add_argument("name", metavar="PLAN|RUN")
    p.add_argument("--customer", help="needed when two customers have a plan of this name")
    p = add("runs", cmd_runs, "inspection runs, newest first", isub)
    p.add_argument("--customer")
    p.add_argument("--plan")
    p.add_argument("--limit", type=positive, default=20)
    p = add("run", cmd_run, "start a run of PLAN now", isub)
    p.add_argument("plan")
    p.add_argument("--customer", help="needed when two customers have a plan of this name")
    p.add_argument("--wait", action="store_true", help="wait for the run to finish, showing progress")
    p.add_argument("--timeout", type=float, default=3600.0, help="give up waiting after this many seconds")
    add("errors", cmd_plan_errors, "plan files the collector skipped, and why", isub)

    reports = sub.add_parser("reports", help="inspection and fault-analysis reports", parents=[common])
    rsub = reports.add_subparsers(dest="reports_command", required=True, parser_class=Parser)
    p = add("list", cmd_reports_list, "stored reports (the customers' service records)", rsub)
    p.add_argument("--customer")
    p.add_argument("--kind", choices=("inspection", "fault"))
    p.add_argument("--subject", help="run id or case id")
    p.add_argument("--limit", type=positive, default=50)
    p = _document_parser(rsub, "get", cmd_reports_get, "download a stored report")
    p.add_argument("id", type=int)
    p = add("render", cmd_reports_render, "render a stored report again as a new record", rsub)
    p.add_argument("id", type=int)
    p = _document_parser(rsub, "inspection", cmd_reports_inspection, "the inspection report of a plan or run")
    p.add_argument("target", metavar="PLAN|RUN")
    p.add_argument("--customer", help="needed when two customers have a plan of this name")
    _document_options(p)
    p = _document_parser(rsub, "fault", cmd_reports_fault, "the fault-analysis report of an emergency case")
    p.add_argument("case", metavar="CASE")
    _document_options(p)

    customers = sub.add_parser(
        "customers", help="the customer file: profile, contracts, contacts", parents=[common]
    )
    csub = customers.add_subparsers(dest="customers_command", required=True, parser_class=Parser)
    p = add("profile", cmd_profile, "show or set a customer's report name, time zone and logo", csub)
    p.add_argument("customer")
    p.add_argument("--name", help="display name in reports")
    p.add_argument("--timezone", help="IANA zone for report times and plan schedules, e.g. Asia/Shanghai")
    p.add_argument("--logo", metavar="FILE", help="PNG, JPEG, GIF, WebP or SVG (at most 512 KiB)")
    p.add_argument("--clear-logo", action="store_true")
    customer_file.register_customers(add, csub)
