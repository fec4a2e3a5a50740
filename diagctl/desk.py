"""``diagctl cases`` for the service desk: open, take, start, wait, resume, follow-up,
reopen, transfer, log-time, time, decide, release, complaint, overview.

Registered into the ``cases`` group by :func:`diagctl.cases.register`. Tables for people
(``--lang zh-CN`` shows states, types and channels in Chinese, aligned by display
width), the API's JSON with ``--format json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable
from typing import Any, TextIO
from urllib.parse import quote

from diagctl.client import Api, emit, positive, table

__all__ = ["CHANNELS", "TYPES", "add_lang", "local", "register", "render_desk_fields"]

TYPES = ("emergency", "routine", "adaptive", "perfective", "complaint", "consultation", "onsite")
SUBTYPES = ("operation_error", "data_error", "defect_l3", "user_training")
CHANNELS = ("hotline", "email", "remote", "onsite", "automatic")
STEPS = ("start", "wait", "resume", "follow-up", "reopen")
COMPLAINT_STEPS = ("handed_over", "supervised", "outcome", "callback")

ActionFactory = Callable[
    [str, Callable[[argparse.Namespace], dict[str, Any]]], Callable[[Api, argparse.Namespace, TextIO], None]
]


def add_lang(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--lang", choices=("en", "zh-CN"), default="en", help="language of states, types and channels"
    )


def local(case: dict[str, Any], key: str, lang: str) -> str:
    """A case's state, type, subtype or channel in ``lang`` (the API's ``labels``)."""
    labels = (case.get("labels") or {}).get(key)
    if labels:
        return str(labels.get(lang) or labels.get("en"))
    return str(case.get(key) or "")


def render_desk_fields(c: dict[str, Any], out: TextIO, lang: str) -> None:
    """The desk's lines of ``cases show``: type, channel, contact, ownership, decision."""
    kind = local(c, "type", lang) + (f" / {local(c, 'subtype', lang)}" if c.get("subtype") else "")
    print(
        f"  type {kind}, channel {local(c, 'channel', lang)}, contact {c.get('contact') or '-'}, "
        f"first responder {c.get('first_responder') or '-'}",
        file=out,
    )
    if c.get("description"):
        print(f"  {c['description']}", file=out)
    if c.get("decision"):
        print(f"  decision {c['decision']}: {c.get('decision_text') or ''}", file=out)
    if c.get("release"):
        upgrade = f" (upgrade record {c['upgrade_id']})" if c.get("upgrade_id") else ""
        print(f"  delivered in release {c['release']}{upgrade}", file=out)
    if c.get("allowed_actions"):
        print(f"  next steps: {', '.join(c['allowed_actions'])}", file=out)


def _path(case_id: str, action: str = "") -> str:
    return f"/api/v1/cases/{quote(case_id, safe='')}" + (f"/{action}" if action else "")


def _opened(c: dict[str, Any], out: TextIO) -> None:
    print(f"{c['id']}: {c['state']} ({c['type']}, {c['channel']}) {c['title']}", file=out)


def cmd_open(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    body = {
        "customer": args.customer,
        "type": args.type,
        "subtype": args.subtype,
        "channel": args.channel,
        "title": args.title,
        "description": args.description,
        "host": args.host,
        "contact": args.contact,
        "severity": args.severity,
    }
    data = api.request("POST", "/api/v1/cases", body={k: v for k, v in body.items() if v is not None})
    emit(args, data, _opened, out)


def cmd_time(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    data = api.request("GET", _path(args.case_id, "time"))

    def render(log: dict[str, Any], out: TextIO) -> None:
        if not log["entries"]:
            print(f"no time logged on {log['case_id']}", file=out)
            return
        table(
            [(e["work_date"], e["engineer"], e["minutes"], e["mode"], e["activity"]) for e in log["entries"]],
            ("DATE", "ENGINEER", "MINUTES", "MODE", "ACTIVITY"),
            out,
        )
        print(
            f"total {log['total_minutes']} min (on-site {log['onsite_minutes']}, "
            f"remote {log['remote_minutes']})",
            file=out,
        )

    emit(args, data, render, out)


def cmd_log_time(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    body: dict[str, Any] = {
        "minutes": args.minutes,
        "activity": args.activity,
        "mode": "onsite" if args.onsite else "remote",
    }
    if args.date is not None:
        body["work_date"] = args.date.isoformat()
    if args.engineer:
        body["engineer"] = args.engineer
    data = api.request("POST", _path(args.case_id, "time"), body=body)

    def render(e: dict[str, Any], out: TextIO) -> None:
        print(
            f"{e['case_id']}: {e['engineer']} {e['minutes']} min {e['mode']} on {e['work_date']}: "
            f"{e['activity']}",
            file=out,
        )

    emit(args, data, render, out)


def cmd_overview(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    data = api.request("GET", "/api/v1/desk/overview", {"customer": args.customer})

    def render(v: dict[str, Any], out: TextIO) -> None:
        table(sorted(v["by_state"].items()), ("STATE", "CASES"), out)
        print(file=out)
        table(sorted(v["by_type"].items()), ("TYPE (ACTIVE)", "CASES"), out)
        for title, key in (
            ("unassigned", "unassigned"),
            ("waiting on customer", "waiting_on_customer"),
            ("open complaints", "complaints_open"),
            ("SLA breached", "sla_breached"),
            ("SLA at risk", "sla_at_risk"),
        ):
            print(f"\n{title}: {', '.join(v.get(key, [])) or '-'}", file=out)
        print(f"time logged in the last 30 days: {v['minutes_logged_30d']} min", file=out)
        print(
            f"surveys unanswered: {v.get('surveys_open', 0)} open, "
            f"{v.get('surveys_expired_unanswered', 0)} expired; callbacks due: "
            f"{', '.join(v.get('callbacks_due', [])) or '-'} "
            f"({v.get('callbacks_no_answer', 0)} not answered)",
            file=out,
        )

    emit(args, data, render, out)


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date like 2026-03-01, not {value!r}") from None


def register(add: Callable[..., Any], cases_sub: Any, action: ActionFactory) -> None:
    """Add the desk's commands to ``diagctl cases`` (``action``: the group's step runner)."""
    p = add("open", cmd_open, "open a case (hotline, e-mail, remote, on-site request)", cases_sub)
    p.add_argument("--customer", required=True)
    p.add_argument("--type", required=True, choices=TYPES)
    p.add_argument("--subtype", choices=SUBTYPES, help="required for --type routine")
    p.add_argument("--channel", required=True, choices=CHANNELS[:-1])
    p.add_argument("--title", required=True)
    p.add_argument("--description")
    p.add_argument("--host", help="one of the customer's hosts")
    p.add_argument("--contact", metavar="NAME", help="the customer's contact person")
    p.add_argument("--severity", choices=("CRIT", "WARN", "INFO"))
    p = add(
        "take", action("take", lambda a: {}), "take a new case: you become its first responder", cases_sub
    )
    p.add_argument("case_id", metavar="CASE")
    for step, text in (
        ("start", "start work on an acknowledged case"),
        ("wait", "wait on the customer (the SLA clocks pause)"),
        ("resume", "resume work after waiting on the customer"),
        ("follow-up", "start the follow-up (回访) of a resolved case"),
        ("reopen", "reopen a resolved, follow-up or closed case"),
    ):
        p = add(step, action(step, lambda a: {"note": a.note} if a.note else {}), text, cases_sub)
        p.add_argument("case_id", metavar="CASE")
        p.add_argument("--note", help="why, for the timeline")
    p = add(
        "transfer",
        action("transfer", lambda a: {"to": a.to, "reason": a.reason}),
        "hand a case to someone else (its first responder stays accountable)",
        cases_sub,
    )
    p.add_argument("case_id", metavar="CASE")
    p.add_argument("--to", required=True, help="who takes it over")
    p.add_argument("--reason", required=True, help="why")
    p = add("log-time", cmd_log_time, "log time worked on a case", cases_sub)
    p.add_argument("case_id", metavar="CASE")
    p.add_argument("--minutes", type=positive, required=True)
    p.add_argument("--activity", required=True, help="what was done")
    p.add_argument("--onsite", action="store_true", help="worked on site (default: remote)")
    p.add_argument("--date", type=_date, help="the day worked (default: today)")
    p.add_argument("--engineer", help="who worked (default: the API token's name)")
    p = add("time", cmd_time, "time logged on a case, with totals", cases_sub)
    p.add_argument("case_id", metavar="CASE")
    p = add(
        "decide",
        action("decision", lambda a: {"decision": a.decision, "text": a.text}),
        "record the product team's decision on an adaptive or perfective case",
        cases_sub,
    )
    p.add_argument("case_id", metavar="CASE")
    p.add_argument("--decision", required=True, choices=("accepted", "rejected", "deferred"))
    p.add_argument("--text", required=True, help="the product team's reasons")
    p = add(
        "release",
        action(
            "release",
            lambda a: {"release": a.release, **({"upgrade_id": a.upgrade} if a.upgrade else {})},
        ),
        "record the release that delivers an accepted change",
        cases_sub,
    )
    p.add_argument("case_id", metavar="CASE")
    p.add_argument("--release", required=True)
    p.add_argument("--upgrade", type=positive, help="the upgrade record id (diagctl upgrades)")
    p = add(
        "complaint",
        action(
            "complaint-steps",
            lambda a: {
                k: v
                for k, v in {"step": a.step, "text": a.text, "team": a.team, "summary": a.summary}.items()
                if v is not None
            },
        ),
        "record a complaint's handling: handed_over, supervised, outcome, callback",
        cases_sub,
    )
    p.add_argument("case_id", metavar="CASE")
    p.add_argument("--step", required=True, choices=COMPLAINT_STEPS)
    p.add_argument("--text", required=True)
    p.add_argument("--team", help="handed_over: the responsible team")
    p.add_argument("--summary", help="outcome: its summary")
    p = add("overview", cmd_overview, "the service manager's view of the desk", cases_sub)
    p.add_argument("--customer")
