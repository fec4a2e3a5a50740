"""``diagctl cases``: list, show, acknowledge, annotate, resolve and close cases; the
service desk's commands (open, take, transfer, log time, ...) are in :mod:`diagctl.desk`.

Registered by :func:`diagctl.main.build_parser`; every command prints a table or
text, or the API's JSON with ``--format json``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, TextIO
from urllib.parse import quote

from diagctl import desk, surveys
from diagctl.client import Api, Parser, emit, positive, table, when

__all__ = ["register"]

STATES = ("new", "acknowledged", "in_progress", "waiting_on_customer", "resolved", "follow_up", "closed")


def _path(case_id: str, action: str = "") -> str:
    return f"/api/v1/cases/{quote(case_id, safe='')}" + (f"/{action}" if action else "")


def cmd_list(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    params = {
        "customer": args.customer,
        "state": args.state,
        "type": args.type,
        "channel": args.channel,
        "assignee": args.assignee,
    }
    if args.active:
        params["active"] = "true"
    data = api.pages("/api/v1/cases", params, args.limit)
    lang = args.lang

    def render(rows: list[dict[str, Any]], out: TextIO) -> None:
        if not rows:
            print("no cases", file=out)
            return
        table(
            [
                (
                    c["id"],
                    c["severity"],
                    desk.local(c, "state", lang),
                    desk.local(c, "type", lang),
                    desk.local(c, "channel", lang),
                    c["owner"],
                    when(c["opened_at"]),
                    ",".join(c["hosts"]),
                    c["title"],
                )
                for c in rows
            ],
            ("CASE", "SEVERITY", "STATE", "TYPE", "CHANNEL", "OWNER", "OPENED", "HOSTS", "TITLE"),
            out,
        )

    emit(args, data, render, out)


def _render_case(c: dict[str, Any], out: TextIO, lang: str = "en") -> None:
    print(f"{c['id']}  {c['severity']}  {desk.local(c, 'state', lang).upper()}  {c['title']}", file=out)
    print(
        f"  customer {c['customer']}, hosts {', '.join(c['hosts']) or '-'}, owner {c['owner'] or '-'}",
        file=out,
    )
    desk.render_desk_fields(c, out, lang)
    print(
        f"  onset {when(c['onset_at'])}, detected {when(c['detected_at'])}, opened {when(c['opened_at'])}"
        + (f", reopened {c['reopened']}x" if c["reopened"] else ""),
        file=out,
    )
    if c["causes"]:
        print("\nPROBABLE CAUSES", file=out)
        table(
            [
                (
                    i + 1,
                    f"{cause['confidence']:.2f}",
                    cause["kind"],
                    cause["layer"],
                    cause["host"],
                    cause["reason"],
                )
                for i, cause in enumerate(c["causes"])
            ],
            ("#", "CONF", "KIND", "LAYER", "HOST", "REASON"),
            out,
        )
    if c["members"]:
        print("\nEVIDENCE", file=out)
        table(
            [
                (
                    m["host"],
                    m["series"],
                    m["key"],
                    "-" if m["baseline"] is None else f"{m['baseline']:.6g}",
                    "-" if m["observed"] is None else f"{m['observed']:.6g}",
                    f"{m['score']:.2f}",
                    "recovered" if m["recovered_ts"] else "active",
                )
                for m in c["members"]
            ],
            ("HOST", "SERIES", "KEY", "BASELINE", "OBSERVED", "SCORE", "STATUS"),
            out,
        )
    print("\nTIMELINE", file=out)
    table(
        [(when(e["ts"]), e["kind"], e["actor"] or "collector", e["text"]) for e in c["events"]],
        ("TIME", "EVENT", "BY", "TEXT"),
        out,
    )


def cmd_show(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    emit(args, api.request("GET", _path(args.case_id)), lambda c, o: _render_case(c, o, args.lang), out)


def _action(
    action: str, body: Callable[[argparse.Namespace], dict[str, Any]]
) -> Callable[[Api, argparse.Namespace, TextIO], None]:
    def run(api: Api, args: argparse.Namespace, out: TextIO) -> None:
        data = api.request("POST", _path(args.case_id, action), body=body(args))

        def render(c: dict[str, Any], out: TextIO) -> None:
            last = c["events"][-1] if c["events"] else None
            print(f"{c['id']}: {c['state']}" + (f" ({last['text']})" if last else ""), file=out)

        emit(args, data, render, out)

    return run


def register(add: Callable[..., Any], sub: Any, common: Any) -> None:
    """Add this module's commands; ``add(name, func, help, owner)`` as in build_parser."""
    cases = sub.add_parser(
        "cases",
        help="cases: list, show, open, take, start, wait, resume, resolve, close, transfer, log-time, ...",
        parents=[common],
    )
    cases_sub = cases.add_subparsers(dest="cases_command", required=True, parser_class=Parser)
    p = add("list", cmd_list, "list cases, newest first", cases_sub)
    p.add_argument("--customer")
    p.add_argument("--state", choices=STATES)
    p.add_argument("--type", choices=desk.TYPES)
    p.add_argument("--channel", choices=desk.CHANNELS)
    p.add_argument("--assignee", help="only cases assigned to this person")
    p.add_argument("--active", action="store_true", help="only cases still being worked")
    p.add_argument("--limit", type=positive, default=100)
    desk.add_lang(p)
    p = add("show", cmd_show, "a case with its probable causes, evidence and timeline", cases_sub)
    p.add_argument("case_id", metavar="CASE")
    desk.add_lang(p)
    p = add(
        "ack",
        _action("ack", lambda a: {"owner": a.owner} if a.owner else {}),
        "acknowledge a case",
        cases_sub,
    )
    p.add_argument("case_id", metavar="CASE")
    p.add_argument("--owner", help="who owns it (default: the API token's name)")
    p = add(
        "note", _action("notes", lambda a: {"text": a.text}), "add a note to a case's timeline", cases_sub
    )
    p.add_argument("case_id", metavar="CASE")
    p.add_argument("text")
    p = add(
        "resolve",
        _action("resolve", lambda a: {"note": a.note} if a.note else {}),
        "resolve a case",
        cases_sub,
    )
    p.add_argument("case_id", metavar="CASE")
    p.add_argument("--note", help="how it was resolved")
    p = add("close", _action("close", lambda a: {}), "close a resolved case", cases_sub)
    p.add_argument("case_id", metavar="CASE")
    desk.register(add, cases_sub, _action)
    surveys.register_case_commands(add, cases_sub)
