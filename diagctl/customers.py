"""``diagctl customers show|contracts|contacts`` and ``diagctl sla``: the customer file and SLA clocks.

::

    diagctl customers show acme
    diagctl customers contracts list acme
    diagctl customers contracts add acme --name 2025 --tier gold --from 2025-01-01 --to 2025-12-31 \\
        --target emergency:15:240:1440 --rate-onsite 1500 --rate-remote 900 --calendar acme-calendar.yaml
    diagctl customers contracts set acme 3 --tier standard
    diagctl customers contacts list|add|set|remove acme ...
    diagctl sla [--customer acme]

Registered by :func:`diagctl.inspections.register` (customers) and :func:`diagctl.main.build_parser`
(sla); every command prints a table or text, or the API's JSON with ``--format json``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, TextIO
from urllib.parse import quote

from diagctl.client import Api, Parser, UsageError, emit, positive, table, when

__all__ = ["register", "register_customers"]


def _customer(customer: str, *rest: str) -> str:
    return "/".join([f"/api/v1/customers/{quote(customer, safe='')}", *rest])


def _minutes(value: float | None) -> str:
    if value is None:
        return "-"
    hours, minutes = divmod(round(value), 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m"


def _targets_text(targets: dict[str, Any]) -> str:
    if not targets:
        return "tier defaults"
    parts = []
    for kind, t in sorted(targets.items()):
        values = "/".join(_minutes(t.get(name)) for name in ("first_response", "restore", "resolve"))
        parts.append(f"{kind} {values}")
    return "; ".join(parts)


# --------------------------------------------------------------------------- show


def _render_contracts(rows: list[dict[str, Any]], out: TextIO) -> None:
    if not rows:
        print("no contracts", file=out)
        return
    table(
        [
            (
                c["id"],
                c["name"],
                c["tier"],
                f"{c['starts_on']} .. {c['ends_on']}",
                f"{c['rate_onsite']}/{c['rate_remote']} {c['currency']}",
                c["calendar"].get("timezone", "UTC")
                + (f" {c['calendar']['country']}" if c["calendar"].get("country") else ""),
                _targets_text(c["targets"]),
            )
            for c in rows
        ],
        ("ID", "NAME", "TIER", "PERIOD", "RATES ONSITE/REMOTE", "CALENDAR", "TARGETS FIRST/RESTORE/RESOLVE"),
        out,
    )


def _render_contacts(rows: list[dict[str, Any]], out: TextIO) -> None:
    if not rows:
        print("no contacts", file=out)
        return
    table(
        [(c["id"], c["name"], c["role"], c["email"], c["phone"], c["language"]) for c in rows],
        ("ID", "NAME", "ROLE", "E-MAIL", "PHONE", "LANGUAGE"),
        out,
    )


def cmd_show(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    def render(d: dict[str, Any], out: TextIO) -> None:
        print(f"{d['customer']}: {d['name']} ({d['timezone']}), {d['open_cases']} open cases", file=out)
        print(f"hosts: {', '.join(d['hosts']) or '-'}", file=out)
        print("\nCONTRACTS", file=out)
        _render_contracts(d["contracts"], out)
        print("\nCONTACTS", file=out)
        _render_contacts(d["contacts"], out)

    emit(args, api.request("GET", _customer(args.customer)), render, out)


# --------------------------------------------------------------------------- contracts


def _target(value: str) -> tuple[str, dict[str, int]]:
    """``TYPE:FIRST[:RESTORE[:RESOLVE]]`` in business minutes, ``-`` to leave one out."""
    kind, _, rest = value.partition(":")
    parts = rest.split(":") if rest else []
    if not kind or not 1 <= len(parts) <= 3:
        raise argparse.ArgumentTypeError(
            "expected TYPE:FIRST[:RESTORE[:RESOLVE]] in business minutes, "
            f"e.g. emergency:15:240:1440, got {value!r}"
        )
    found: dict[str, int] = {}
    for name, part in zip(("first_response", "restore", "resolve"), parts, strict=False):
        if part in ("", "-"):
            continue
        if not part.isdigit():
            raise argparse.ArgumentTypeError(f"{name} must be whole business minutes, got {part!r}")
        found[name] = int(part)
    return kind, found


def _calendar(path: str) -> dict[str, Any]:
    from diagconfig import ConfigError, load_yaml_file

    try:
        raw = load_yaml_file(path, "calendar file")
    except ConfigError as exc:
        raise UsageError(f"--calendar: {exc}") from None
    except OSError as exc:
        raise UsageError(f"--calendar {path}: {exc.strerror or type(exc).__name__}") from None
    if not isinstance(raw, dict):
        raise UsageError(
            f"--calendar {path}: expected a mapping of calendar settings (see deploy/calendar.example.yaml)"
        )
    return raw


def _contract_body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for flag, key in (
        ("name", "name"),
        ("tier", "tier"),
        ("starts", "starts_on"),
        ("ends", "ends_on"),
        ("rate_onsite", "rate_onsite"),
        ("rate_remote", "rate_remote"),
        ("currency", "currency"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            body[key] = value
    if args.target:
        body["targets"] = dict(args.target)
    if args.calendar is not None:
        body["calendar"] = _calendar(args.calendar)
    return body


def cmd_contracts_list(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    emit(args, api.request("GET", _customer(args.customer, "contracts")), _render_contracts, out)


def cmd_contracts_add(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    data = api.request("POST", _customer(args.customer, "contracts"), body=_contract_body(args))
    emit(
        args,
        data,
        lambda c, out: print(f"contract {c['id']} {c['name']} added for {c['customer']}", file=out),
        out,
    )


def cmd_contracts_set(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    body = _contract_body(args)
    if not body:
        raise UsageError(
            "nothing to change: give at least one of --name, --tier, --from, --to, --target, ..."
        )
    data = api.request("PATCH", _customer(args.customer, "contracts", str(args.id)), body=body)
    emit(args, data, lambda c, out: print(f"contract {c['id']} {c['name']} updated", file=out), out)


# --------------------------------------------------------------------------- contacts


def _contact_body(args: argparse.Namespace) -> dict[str, Any]:
    return {
        key: getattr(args, key)
        for key in ("name", "role", "email", "phone", "language")
        if getattr(args, key, None) is not None
    }


def cmd_contacts_list(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    emit(args, api.request("GET", _customer(args.customer, "contacts")), _render_contacts, out)


def cmd_contacts_add(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    data = api.request("POST", _customer(args.customer, "contacts"), body=_contact_body(args))
    emit(args, data, lambda c, out: print(f"contact {c['id']} {c['name']} added", file=out), out)


def cmd_contacts_set(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    body = _contact_body(args)
    if not body:
        raise UsageError(
            "nothing to change: give at least one of --name, --role, --email, --phone, --language"
        )
    data = api.request("PATCH", _customer(args.customer, "contacts", str(args.id)), body=body)
    emit(args, data, lambda c, out: print(f"contact {c['id']} {c['name']} updated", file=out), out)


def cmd_contacts_remove(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    api.request("DELETE", _customer(args.customer, "contacts", str(args.id)))
    emit(args, {"removed": args.id}, lambda d, out: print(f"contact {d['removed']} removed", file=out), out)


# --------------------------------------------------------------------------- sla


def cmd_sla(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    data = api.request("GET", "/api/v1/sla", {"customer": args.customer, "limit": args.limit})

    def render(rows: list[dict[str, Any]], out: TextIO) -> None:
        if not rows:
            print("no SLA clocks at risk or breached", file=out)
            return
        table(
            [
                (
                    r["state"].upper(),
                    r["case_id"],
                    r["case_type"],
                    r["target"],
                    f"{_minutes(r['elapsed_minutes'])} of {_minutes(r['target_minutes'])}",
                    when(r["due_at"]),
                    r["clock"],
                    r["title"],
                )
                for r in rows
            ],
            ("STATE", "CASE", "TYPE", "CLOCK", "USED (BUSINESS)", "DUE", "RUNNING", "TITLE"),
            out,
        )

    emit(args, data, render, out)


# --------------------------------------------------------------------------- parser


def _contract_options(p: argparse.ArgumentParser, *, new: bool) -> None:
    p.add_argument("--name", required=new, help="unique per customer, e.g. 2025 maintenance")
    p.add_argument("--tier", help="gold, standard, ... (default targets per tier)")
    p.add_argument(
        "--from", dest="starts", required=new, metavar="YYYY-MM-DD", help="first day of the contract"
    )
    p.add_argument("--to", dest="ends", required=new, metavar="YYYY-MM-DD", help="last day of the contract")
    p.add_argument(
        "--target",
        type=_target,
        action="append",
        metavar="TYPE:FIRST[:RESTORE[:RESOLVE]]",
        help="SLA targets of a case type in business minutes (repeat per type); '-' leaves one out",
    )
    p.add_argument("--rate-onsite", help="hourly rate on site, e.g. 1500.00")
    p.add_argument("--rate-remote", help="hourly rate remote, e.g. 900.00")
    p.add_argument("--currency", help="ISO 4217, e.g. CNY")
    p.add_argument(
        "--calendar", metavar="FILE", help="calendar settings (YAML, deploy/calendar.example.yaml)"
    )


def _contact_options(p: argparse.ArgumentParser, *, new: bool) -> None:
    p.add_argument("--name", required=new)
    p.add_argument("--role", required=new, help="e.g. IT manager, DBA")
    p.add_argument("--email")
    p.add_argument("--phone")
    p.add_argument("--language", choices=("en", "zh-CN"), help="preferred language (default zh-CN)")


def register_customers(add: Callable[..., Any], csub: Any) -> None:
    """Add ``show``, ``contracts`` and ``contacts`` under ``diagctl customers``."""
    p = add("show", cmd_show, "the customer file: contracts, contacts, hosts, open cases", csub)
    p.add_argument("customer")
    contracts = csub.add_parser("contracts", help="the customer's service contracts")
    sub = contracts.add_subparsers(dest="contracts_command", required=True, parser_class=Parser)
    p = add("list", cmd_contracts_list, "list the customer's contracts", sub)
    p.add_argument("customer")
    p = add("add", cmd_contracts_add, "add a contract (engineers, service managers)", sub)
    p.add_argument("customer")
    _contract_options(p, new=True)
    p = add("set", cmd_contracts_set, "change a contract", sub)
    p.add_argument("customer")
    p.add_argument("id", type=int)
    _contract_options(p, new=False)
    contacts = csub.add_parser("contacts", help="the customer's contacts")
    sub = contacts.add_subparsers(dest="contacts_command", required=True, parser_class=Parser)
    p = add("list", cmd_contacts_list, "list the customer's contacts", sub)
    p.add_argument("customer")
    p = add("add", cmd_contacts_add, "add a contact", sub)
    p.add_argument("customer")
    _contact_options(p, new=True)
    p = add("set", cmd_contacts_set, "change a contact", sub)
    p.add_argument("customer")
    p.add_argument("id", type=int)
    _contact_options(p, new=False)
    p = add("remove", cmd_contacts_remove, "remove a contact", sub)
    p.add_argument("customer")
    p.add_argument("id", type=int)


def register(add: Callable[..., Any], sub: Any, common: Any) -> None:
    """Add ``diagctl sla``; ``add(name, func, help, owner)`` as in build_parser."""
    p = add("sla", cmd_sla, "SLA clocks at risk (75% used) and breached, breached first", sub)
    p.add_argument("--customer")
    p.add_argument("--limit", type=positive, default=500)
