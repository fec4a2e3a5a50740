"""``diagctl tokens``: list, create (with an expiry) and revoke API tokens through the API.

Engineers manage every token; a customer admin its own customer's customer_admin and
viewer tokens. Listings show a token's first 8 characters; the token itself is printed
once, by ``create``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, TextIO

from diagctl.client import Api, Parser, emit, positive, table, when

__all__ = ["register"]


def _row(t: dict[str, Any]) -> tuple[object, ...]:
    return (
        t["id"], t["name"], t["role"], t["customer"], t["prefix"] + "…", t["state"],
        when(t["expires_at"]), when(t["last_used_at"]),
    )  # fmt: skip


_HEADERS = ("ID", "NAME", "ROLE", "CUSTOMER", "TOKEN", "STATE", "EXPIRES", "LAST USED")


def cmd_list(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    data = api.request("GET", "/api/v1/tokens", {"customer": args.customer, "limit": args.limit})
    emit(args, data, lambda rows, out: table([_row(t) for t in rows], _HEADERS, out), out)


def cmd_create(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    body = {
        "name": args.name,
        "role": args.role,
        "customer": args.customer,
        "expires_in_days": args.expires_days,
    }
    data = api.request("POST", "/api/v1/tokens", body={k: v for k, v in body.items() if v is not None})

    def render(d: dict[str, Any], out: TextIO) -> None:
        scope = f"customer {d['customer']}" if d["customer"] else "all customers"
        expiry = f", expires {when(d['expires_at'])}" if d["expires_at"] else ""
        print(f"API token {d['id']} {d['name']!r} ({d['role']}, {scope}{expiry}).", file=out)
        print("The token is shown only now; it is stored hashed.\n", file=out)
        print(d["token"], file=out)

    emit(args, data, render, out)


def cmd_revoke(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    data = api.request("POST", f"/api/v1/tokens/{args.id}/revoke")

    def render(d: dict[str, Any], out: TextIO) -> None:
        state = "revoked" if d["revoked"] else "was already revoked"
        print(f"API token {d['id']} {d['name']!r} ({d['prefix']}…) {state}", file=out)

    emit(args, data, render, out)


def register(add: Callable[..., Any], sub: Any, common: Any) -> None:
    """Add ``diagctl tokens ...``; ``add(name, func, help, owner)`` as in build_parser."""
    tokens = sub.add_parser("tokens", help="API tokens: list, create, revoke", parents=[common])
    tokens_sub = tokens.add_subparsers(dest="tokens_command", required=True, parser_class=Parser)
    p = add("list", cmd_list, "list API tokens (never the token itself)", tokens_sub)
    p.add_argument("--customer")
    p.add_argument("--limit", type=positive, default=100)
    p = add("create", cmd_create, "create an API token (printed once)", tokens_sub)
    p.add_argument("--name", required=True)
    p.add_argument(
        "--role", choices=("engineer", "customer_admin", "viewer", "service_manager"), default="viewer"
    )
    p.add_argument("--customer", help="required for customer_admin and viewer tokens")
    p.add_argument("--expires-days", type=positive, metavar="DAYS", help="refused after DAYS days")
    p = add("revoke", cmd_revoke, "revoke an API token by its id (from tokens list)", tokens_sub)
    p.add_argument("id", type=positive)
