"""``diagctl surveys list|show`` (satisfaction surveys of the follow-up step) and
``diagctl cases callback`` (the callback's result on a case).

Tables for people; the API's JSON with ``--format json``. Errors come from the API (a
case of another customer is "not found"; a case not in follow-up or closed says so).
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable
from typing import Any, TextIO
from urllib.parse import quote

from diagctl.client import Api, Parser, emit, positive, table

__all__ = ["register", "register_case_commands"]


def _ts(value: float | None) -> str:
    if value is None:
        return "-"
    return dt.datetime.fromtimestamp(value, dt.UTC).strftime("%Y-%m-%d %H:%M") + "Z"


def _rated(s: dict[str, Any]) -> str:
    return "-" if s.get("mean") is None else f"{s['mean']:.1f}/5"


def cmd_list(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    params = {"customer": args.customer, "state": args.state, "case": args.case, "limit": args.limit}
    data = api.request("GET", "/api/v1/surveys", {k: v for k, v in params.items() if v is not None})

    def render(rows: list[dict[str, Any]], out: TextIO) -> None:
        if not rows:
            print("no surveys (a survey is sent when a case with a contact e-mail is resolved)", file=out)
            return
        table(
            [(s["id"], s["case_id"], s["state"], _ts(s["created_at"]), _ts(s["expires_at"]), _rated(s),
              s["contact"]) for s in rows],
            ("ID", "CASE", "STATE", "SENT", "EXPIRES", "RATING", "CONTACT"),
            out,
        )  # fmt: skip

    emit(args, data, render, out)


def cmd_show(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    data = api.request("GET", f"/api/v1/surveys/{args.survey_id}")

    def render(s: dict[str, Any], out: TextIO) -> None:
        print(f"survey {s['id']} of {s['case_id']} ({s['customer']}): {s['state']}", file=out)
        print(f"  {s['case_title']}", file=out)
        print(
            f"  sent {_ts(s['created_at'])} to {s['contact']} ({s['language']}), "
            f"expires {_ts(s['expires_at'])}",
            file=out,
        )
        if s["answered_at"] is None:
            return
        print(f"  answered {_ts(s['answered_at'])}, mean {_rated(s)}", file=out)
        table(sorted((s["ratings"] or {}).items()), ("QUESTION", "RATING"), out)
        if s.get("comment"):
            print(f"  comment: {s['comment']}", file=out)

    emit(args, data, render, out)


def cmd_callback(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    body: dict[str, Any] = {"result": args.result, "note": args.note or ""}
    if args.satisfied is not None:
        body["satisfied"] = args.satisfied
    data = api.request("POST", f"/api/v1/cases/{quote(args.case_id, safe='')}/callback", body=body)

    def render(c: dict[str, Any], out: TextIO) -> None:
        satisfied = f", satisfied {c['satisfied']}/5" if c.get("satisfied") else ""
        print(
            f"{c['case_id']}: callback {c['result'].replace('_', ' ')}{satisfied} (by {c['recorded_by']})",
            file=out,
        )

    emit(args, data, render, out)


def _satisfaction(value: str) -> int:
    if value not in ("1", "2", "3", "4", "5"):
        raise argparse.ArgumentTypeError(
            f"expected 1 (very dissatisfied) to 5 (very satisfied), not {value!r}"
        )
    return int(value)


def register_case_commands(add: Callable[..., Any], cases_sub: Any) -> None:
    """``diagctl cases callback``."""
    p = add("callback", cmd_callback, "record the callback (回访) to the customer on a case", cases_sub)
    p.add_argument("case_id", metavar="CASE")
    p.add_argument("--result", required=True, choices=("reached", "no_answer"))
    p.add_argument(
        "--satisfied", type=_satisfaction, metavar="1-5", help="the customer's satisfaction (reached)"
    )
    p.add_argument("--note", help="what the customer said")


def register(add: Callable[..., Any], sub: Any, common: Any) -> None:
    """``diagctl surveys``."""
    surveys = sub.add_parser("surveys", help="satisfaction surveys: list, show", parents=[common])
    surveys_sub = surveys.add_subparsers(dest="surveys_command", required=True, parser_class=Parser)
    p = add("list", cmd_list, "surveys sent, newest first", surveys_sub)
    p.add_argument("--customer")
    p.add_argument("--state", choices=("open", "answered", "expired"))
    p.add_argument("--case", metavar="CASE", help="only this case's surveys")
    p.add_argument("--limit", type=positive, default=100)
    p = add("show", cmd_show, "one survey with its answers", surveys_sub)
    p.add_argument("survey_id", type=positive, metavar="ID")
