"""diagctl: the engineers' command line for the collector's HTTP API.

Finds the collector and its API token from ``--server URL`` / ``--token T``, else the
``DIAG_SERVER`` / ``DIAG_TOKEN`` environment variables, else ``~/.config/diagctl/config.yaml``
(keys ``server`` and ``token``; ``DIAGCTL_CONFIG`` names another file). It never opens
the database. Exit status: 0 ok, 1 the server refused or failed, 2 usage errors.

The shared parts (settings, the HTTP client, output) are in :mod:`diagctl.client`; each
command group is a module with a ``register`` function: the fleet's hosts, results and
agents here, :mod:`diagctl.cases`, :mod:`diagctl.inspections`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import httpx

from diagconfig.completion import add_completion_option
from diagconfig.terminal import terminal_text
from diagctl import cases, customers, inspections, records, sessions, surveys, tokens
from diagctl.client import (
    EVERY_ROW,
    Api,
    Parser,
    ServerError,
    UsageError,
    emit,
    parse_since,
    positive,
    resolve_settings,
    table,
    when,
)

__all__ = ["build_parser", "main"]

# --------------------------------------------------------------------------- commands


def cmd_hosts(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    data = api.pages("/api/v1/hosts", {"customer": args.customer}, EVERY_ROW)

    def render(hosts: list[dict[str, Any]], out: TextIO) -> None:
        rows = [
            (
                h["customer"],
                h["name"],
                h["worst_severity"],
                " ".join(f"{k}={v}" for k, v in h["severity_counts"].items()),
                when(h["last_seen"]),
                _problems(h),
            )
            for h in hosts
        ]
        table(rows, ("CUSTOMER", "HOST", "WORST", "CHECKS", "LAST SEEN", "AGENT PROBLEMS"), out)

    emit(args, data, render, out)


def _problems(host: dict[str, Any]) -> str:
    """The agent's health problems, for a table cell ("-" when none)."""
    skew = host.get("clock_skew_s")
    if skew is None:
        return "-"
    return f"clock {skew:,.0f} s ahead (fix the host's time sync)"


def cmd_host(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    data = api.request("GET", f"/api/v1/hosts/{args.name}", {"customer": args.customer})

    def render(d: dict[str, Any], out: TextIO) -> None:
        h = d["host"]
        print(
            f"{h['name']} ({h['customer']})  worst: {h['worst_severity'] or '-'}  "
            f"last seen: {when(h['last_seen'])}",
            file=out,
        )
        facts = d["facts"]
        if facts:
            print(
                f"  {facts.get('os_id', '?')} {facts.get('os_version', '')}, "
                f"kernel {facts.get('kernel', '?')}, {facts.get('cpu_count', '?')} CPUs, "
                f"agent {facts.get('agent_version', '?')}",
                file=out,
            )
        if not d["layers"]:
            print("  no results yet", file=out)
        for layer, results in d["layers"].items():
            print(f"\n{layer.upper()}", file=out)
            rows = [(r["check"], r["severity"], r["key"], when(r["ts"]), r["summary"]) for r in results]
            table(rows, ("CHECK", "SEVERITY", "KEY", "TIME", "SUMMARY"), out)

    emit(args, data, render, out)


def cmd_results(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    params = {
        "host": args.host,
        "customer": args.customer,
        "check": args.check,
        "since": parse_since(args.since) if args.since else None,
    }
    data = api.pages("/api/v1/results", params, args.limit)

    def render(rows: list[dict[str, Any]], out: TextIO) -> None:
        table(
            [(when(r["ts"]), r["check"], r["severity"], r["key"], r["summary"]) for r in rows],
            ("TIME", "CHECK", "SEVERITY", "KEY", "SUMMARY"),
            out,
        )

    emit(args, data, render, out)


def cmd_agents_list(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    data = api.pages("/api/v1/agents", {"customer": args.customer}, EVERY_ROW)

    def render(rows: list[dict[str, Any]], out: TextIO) -> None:
        table(
            [
                (
                    a["agent_id"],
                    a["customer"],
                    a["host"],
                    a["token_prefix"] + "…",
                    "revoked" if a["revoked_at"] else "active",
                    when(a["last_seen_at"]),
                    a["max_seq"],
                )
                for a in rows
            ],
            ("AGENT", "CUSTOMER", "HOST", "TOKEN", "STATE", "LAST SEEN", "MAX SEQ"),
            out,
        )

    emit(args, data, render, out)


def cmd_agents_enroll(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    if args.output and os.path.lexists(args.output):  # before enrolling: a token nobody can read is waste
        raise UsageError(f"{args.output} exists; name a new file for the agent's config")
    body = {"customer": args.customer, "host": args.host, "agent_id": args.agent_id}
    data = api.request("POST", "/api/v1/agents", body=body)

    if args.output:
        _write_secret_file(args.output, data["config"])
        print(
            f"diagctl: enrolled agent {data['agent_id']} (host {data['host']}, customer {data['customer']}); "
            f"wrote its config to {args.output}: copy it to /etc/diag-agent/agent.yaml on that host",
            file=sys.stderr,
        )
        return

    def render(d: dict[str, Any], out: TextIO) -> None:
        # stdout is the config file itself (diagctl agents enroll ... > agent.yaml); the note goes to stderr.
        print(
            f"diagctl: enrolled agent {d['agent_id']} (host {d['host']}, customer {d['customer']}); "
            "its config follows (the token is shown only now)",
            file=sys.stderr,
        )
        out.write(d["config"])

    emit(args, data, render, out)


def _write_secret_file(path: str, text: str) -> None:
    """A new file only the user can read (it holds a token); never overwrites one."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or type(exc).__name__}") from None


def cmd_agents_revoke(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    data = api.request("POST", f"/api/v1/agents/{args.agent_id}/revoke")

    def render(d: dict[str, Any], out: TextIO) -> None:
        state = "revoked" if d["revoked"] else "was already revoked"
        print(f"agent {d['agent_id']} {state}", file=out)

    emit(args, data, render, out)


def cmd_gaps(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    data = api.pages("/api/v1/gaps", {"host": args.host, "customer": args.customer}, args.limit)

    def render(rows: list[dict[str, Any]], out: TextIO) -> None:
        table(
            [
                (
                    g["customer"],
                    g["host"],
                    g["agent_id"],
                    f"{g['first_seq']}-{g['last_seq']}",
                    g["count"],
                    g["reason"],
                    when(g["dropped_at"]),
                )
                for g in rows
            ],
            ("CUSTOMER", "HOST", "AGENT", "SEQS", "COUNT", "REASON", "DROPPED"),
            out,
        )

    emit(args, data, render, out)


def cmd_upgrades(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    data = api.pages("/api/v1/upgrades", {"host": args.host, "customer": args.customer}, EVERY_ROW)

    def render(rows: list[dict[str, Any]], out: TextIO) -> None:
        table(
            [
                (when(u["ts"]), u["customer"], u["host"], u["product"], u["from_version"], u["to_version"])
                for u in rows
            ],
            ("TIME", "CUSTOMER", "HOST", "PRODUCT", "FROM", "TO"),
            out,
        )

    emit(args, data, render, out)


def cmd_quarantine(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    data = api.request(
        "GET",
        "/api/v1/ingest/quarantine",
        {"host": args.host, "customer": args.customer, "limit": args.limit},
    )

    def render(rows: list[dict[str, Any]], out: TextIO) -> None:
        if not rows:
            print("nothing quarantined: every acknowledged batch was stored", file=out)
            return
        table(
            [
                (
                    when(q["quarantined_at"]),
                    q["customer"],
                    q["host"],
                    q["agent_id"],
                    f"{q['first_seq']}-{q['last_seq']}",
                    q["points"],
                    # One line per row: the full reason is in --format json.
                    " ".join(q["error"].split())[:80],
                )
                for q in rows
            ],
            ("QUARANTINED", "CUSTOMER", "HOST", "AGENT", "SEQS", "POINTS", "ERROR"),
            out,
        )

    emit(args, data, render, out)


def _global_options(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument(
        "--server", default=default, help="collector URL (else DIAG_SERVER, else the config file)"
    )
    parser.add_argument("--token", default=default, help="API token (else DIAG_TOKEN, else the config file)")
    parser.add_argument("--format", choices=("table", "json"), default=default)


def build_parser() -> argparse.ArgumentParser:
    from agent import __version__  # one version for the distribution; agent/__init__ imports nothing

    parser = Parser(prog="diagctl", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"diagctl {__version__}")
    add_completion_option(parser)
    _global_options(parser, argparse.SUPPRESS)
    parser.set_defaults(server=None, token=None, format="table")
    # The same options after the command; SUPPRESS keeps a subcommand's unset option from
    # overwriting one given before the command.
    common = Parser(add_help=False)
    _global_options(common, argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    def add(
        name: str, func: Callable[[Api, argparse.Namespace, TextIO], None], helptext: str, owner: Any = sub
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = owner.add_parser(name, help=helptext, parents=[common])
        p.set_defaults(func=func)
        return p

    p = add("hosts", cmd_hosts, "list hosts with their worst current severity")
    p.add_argument("--customer")
    p = add("host", cmd_host, "latest result per check of one host, grouped by layer")
    p.add_argument("name")
    p.add_argument("--customer", help="needed when two customers have a host of this name")
    p = add("results", cmd_results, "results of one host, newest first")
    p.add_argument("--host", required=True)
    p.add_argument("--check")
    p.add_argument("--since", help="ISO 8601 time or relative: 30m, 1h, 2d")
    p.add_argument("--limit", type=positive, default=100)
    p.add_argument("--customer")
    p = add("gaps", cmd_gaps, "results agents dropped (spool full)")
    p.add_argument("--host")
    p.add_argument("--customer")
    p.add_argument("--limit", type=positive, default=100)
    p = add("upgrades", cmd_upgrades, "product version changes per host")
    p.add_argument("--host")
    p.add_argument("--customer")
    p = add("quarantine", cmd_quarantine, "acknowledged batches the collector could not store, and why")
    p.add_argument("--host")
    p.add_argument("--customer")
    p.add_argument("--limit", type=positive, default=100)
    agents = sub.add_parser("agents", help="enroll, list and revoke agents", parents=[common])
    agents_sub = agents.add_subparsers(dest="agents_command", required=True, parser_class=Parser)
    p = add("enroll", cmd_agents_enroll, "create an agent token and print its config file", agents_sub)
    p.add_argument("--customer", required=True)
    p.add_argument("--host")
    p.add_argument("--agent-id")
    p.add_argument("-o", "--output", metavar="FILE", help="write the config file here (new file, mode 0600)")
    p = add("list", cmd_agents_list, "list agents", agents_sub)
    p.add_argument("--customer")
    p = add("revoke", cmd_agents_revoke, "revoke an agent's token", agents_sub)
    p.add_argument("agent_id")
    cases.register(add, sub, common)
    inspections.register(add, sub, common)
    tokens.register(add, sub, common)
    customers.register(add, sub, common)
    sessions.register(add, sub, common)
    records.register(add, sub, common)
    surveys.register(add, sub, common)
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    out: TextIO | None = None,
    transport: httpx.BaseTransport | None = None,
) -> int:
    out = out or sys.stdout
    try:
        args = build_parser().parse_args(argv)
        server, token = resolve_settings(args)
        api = Api(server, token, transport)
        try:
            args.func(api, args, out)
        finally:
            api.close()
    except UsageError as exc:
        print(f"diagctl: {terminal_text(str(exc))}", file=sys.stderr)
        return 2
    except ServerError as exc:
        print(f"diagctl: {terminal_text(str(exc))}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # Output piped into `head`: not an error. Point stdout at devnull so the
        # interpreter's final flush does not complain again.
        if out is sys.stdout:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
