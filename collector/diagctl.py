"""diagctl: the engineers' command line for the collector's HTTP API.

Finds the collector and its API token from ``--server URL`` / ``--token T``, else the
``DIAG_SERVER`` / ``DIAG_TOKEN`` environment variables, else ``~/.config/diagctl/config.yaml``
(keys ``server`` and ``token``; ``DIAGCTL_CONFIG`` names another file). It never opens
the database. Exit status: 0 ok, 1 the server refused or failed, 2 usage errors.

>>> parse_since("30m", now=1_700_000_000.0)
'2023-11-14T21:43:20+00:00'
>>> parse_since("2023-11-14T22:00:00Z", now=0)
'2023-11-14T22:00:00+00:00'
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TextIO
from urllib.parse import parse_qs, urlsplit

import httpx

from diagconfig.completion import add_completion_option
from diagconfig.terminal import table_lines, terminal_text

__all__ = ["UsageError", "main", "parse_since"]

DEFAULT_TIMEOUT_S = 15.0
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class UsageError(Exception):
    """Bad command line or missing settings: exit 2."""


class ServerError(Exception):
    """The collector refused or failed the request, or is unreachable: exit 1."""


def parse_since(value: str, now: float | None = None) -> str:
    """ISO 8601 time, or relative to now (``45s``, ``30m``, ``1h``, ``2d``, ``1w``) → ISO 8601 UTC."""
    match = _RELATIVE.match(value.strip())
    if match:
        ago = float(match.group(1)) * _UNIT_S[match.group(2)]
        moment = datetime.fromtimestamp((time.time() if now is None else now) - ago, UTC)
        return moment.isoformat(timespec="seconds")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise UsageError(
            f"--since {value!r}: expected an ISO 8601 time (2024-05-01T12:00:00Z) "
            "or a relative time like 30m, 1h, 2d"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.isoformat(timespec="seconds")


# --------------------------------------------------------------------------- settings


def _config_path() -> Path:
    if os.environ.get("DIAGCTL_CONFIG"):
        return Path(os.environ["DIAGCTL_CONFIG"])
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "diagctl" / "config.yaml"


def _file_settings(path: Path) -> dict[str, str]:
    from diagconfig import ConfigError, load_yaml_file

    if not path.exists():
        return {}
    try:
        raw = load_yaml_file(path, "diagctl config")
    except ConfigError as exc:  # never quotes the file's lines: the token is in there
        raise UsageError(str(exc)) from None
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(raw.get(k, ""), str) for k in ("server", "token")):
        raise UsageError(f"{path}: expected a mapping with string keys 'server' and 'token'")
    unknown = sorted(set(raw) - {"server", "token"})
    if unknown:
        raise UsageError(f"{path}: unknown key(s) {', '.join(unknown)}; valid keys: server, token")
    return {k: str(v) for k, v in raw.items()}


def resolve_settings(args: argparse.Namespace) -> tuple[str, str]:
    """(server URL, token): flags, then environment, then the config file."""
    path = _config_path()
    from_file: dict[str, str] | None = None

    def pick(flag: str | None, env: str, key: str) -> str | None:
        nonlocal from_file
        if flag:
            return flag
        if os.environ.get(env):
            return os.environ[env]
        if from_file is None:
            from_file = _file_settings(path)
        return from_file.get(key) or None

    server = pick(args.server, "DIAG_SERVER", "server")
    if not server:
        raise UsageError(
            "no collector configured: pass --server URL, or export DIAG_SERVER=http://127.0.0.1:8080, "
            f"or put 'server: URL' in {path}"
        )
    token = pick(args.token, "DIAG_TOKEN", "token")
    if not token:
        raise UsageError(
            "no API token: pass --token T, or export DIAG_TOKEN=..., "
            f"or put 'token: ...' in {path} (an engineer creates one with: "
            "diag-collector token create --name NAME)"
        )
    if not server.startswith(("http://", "https://")):
        server = "http://" + server
    return server.rstrip("/"), token


# --------------------------------------------------------------------------- HTTP


class Api:
    def __init__(self, server: str, token: str, transport: httpx.BaseTransport | None = None) -> None:
        self.server = server
        self._client = httpx.Client(
            base_url=server,
            headers={"Authorization": f"Bearer {token}", "User-Agent": "diagctl"},
            timeout=DEFAULT_TIMEOUT_S,
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def request(self, method: str, path: str, params: dict[str, Any] | None = None, body: Any = None) -> Any:
        return self._send(method, path, params, body).json()

    def pages(self, path: str, params: dict[str, Any], limit: int) -> list[Any]:
        """Up to ``limit`` rows of a paginated list, following its ``Link: rel="next"`` pages."""
        rows: list[Any] = []
        cursor: str | None = None
        while len(rows) < limit:
            page_params = {**params, "limit": min(limit - len(rows), PAGE_MAX), "cursor": cursor}
            response = self._send("GET", path, page_params, None)
            rows.extend(response.json())
            cursor = _next_cursor(response.headers.get("Link"))
            if cursor is None:
                break
        return rows[:limit]

    def _send(self, method: str, path: str, params: dict[str, Any] | None, body: Any) -> httpx.Response:
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._client.request(method, path, params=clean, json=body)
        except httpx.ConnectError:
            raise ServerError(
                f"cannot connect to the collector at {self.server}: is it running (diag-collector serve)? "
                "Check --server / DIAG_SERVER."
            ) from None
        except httpx.TimeoutException:
            raise ServerError(
                f"the collector at {self.server} did not answer within {DEFAULT_TIMEOUT_S:.0f} s"
            ) from None
        except httpx.HTTPError as exc:
            raise ServerError(f"request to {self.server} failed: {type(exc).__name__}") from None
        if response.status_code == 401:
            raise ServerError(
                "the collector rejected the API token (401): check --token / DIAG_TOKEN "
                "(a revoked or mistyped token; create one with: diag-collector token create --name NAME)"
            )
        if response.status_code >= 400:
            raise ServerError(f"{response.status_code}: {_detail(response)}")
        return response


PAGE_MAX = 1000
"""Rows the API answers per page at most."""


def _next_cursor(link: str | None) -> str | None:
    """The cursor of a ``Link: <...?cursor=X>; rel="next"`` header (None without one).

    >>> _next_cursor('</api/v1/gaps?limit=2&cursor=WzEsMl0>; rel="next"')
    'WzEsMl0'
    """
    if not link or 'rel="next"' not in link:
        return None
    target = link[link.find("<") + 1 : link.find(">")]
    values = parse_qs(urlsplit(target).query).get("cursor")
    return values[0] if values else None


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):  # not a JSON object: show the raw text
        return response.text[:300] or response.reason_phrase
    if isinstance(detail, list):  # FastAPI validation errors
        return "; ".join(f"{'.'.join(str(p) for p in e.get('loc', [])[1:])}: {e.get('msg')}" for e in detail)
    return str(detail)


# --------------------------------------------------------------------------- output


def _when(value: str | None) -> str:
    return "-" if not value else value.replace("T", " ").replace("+00:00", "Z")


def table(rows: Sequence[Sequence[object]], headers: Sequence[str], out: TextIO) -> None:
    """Columns aligned to their widest cell by display width (Chinese text takes two
    columns a character); '-' for empty values; control characters shown as escapes."""
    cells = [[("-" if c is None or c == "" else str(c)) for c in row] for row in rows]
    for line in table_lines(headers, cells):
        print(line, file=out)


def _emit(args: argparse.Namespace, data: Any, render: Callable[[Any, TextIO], None], out: TextIO) -> None:
    if args.format == "json":
        json.dump(data, out, indent=2, ensure_ascii=False)  # exact: json escapes controls itself
        print(file=out)
    else:
        # Rendered text carries agents' summaries, labels and notes: no terminal control
        # reaches the engineer's terminal (OSC title and clipboard writes, CSI).
        text = io.StringIO()
        render(data, text)
        out.write(terminal_text(text.getvalue()))


# --------------------------------------------------------------------------- commands


def cmd_hosts(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    data = api.request("GET", "/api/v1/hosts", {"customer": args.customer})

    def render(hosts: list[dict[str, Any]], out: TextIO) -> None:
        rows = [
            (
                h["customer"],
                h["name"],
                h["worst_severity"],
                " ".join(f"{k}={v}" for k, v in h["severity_counts"].items()),
                _when(h["last_seen"]),
                _problems(h),
            )
            for h in hosts
        ]
        table(rows, ("CUSTOMER", "HOST", "WORST", "CHECKS", "LAST SEEN", "AGENT PROBLEMS"), out)

    _emit(args, data, render, out)


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
            f"last seen: {_when(h['last_seen'])}",
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
            rows = [(r["check"], r["severity"], r["key"], _when(r["ts"]), r["summary"]) for r in results]
            table(rows, ("CHECK", "SEVERITY", "KEY", "TIME", "SUMMARY"), out)

    _emit(args, data, render, out)


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
            [(_when(r["ts"]), r["check"], r["severity"], r["key"], r["summary"]) for r in rows],
            ("TIME", "CHECK", "SEVERITY", "KEY", "SUMMARY"),
            out,
        )

    _emit(args, data, render, out)


def cmd_agents_list(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    data = api.request("GET", "/api/v1/agents", {"customer": args.customer})

    def render(rows: list[dict[str, Any]], out: TextIO) -> None:
        table(
            [
                (
                    a["agent_id"],
                    a["customer"],
                    a["host"],
                    a["token_prefix"] + "…",
                    "revoked" if a["revoked_at"] else "active",
                    _when(a["last_seen_at"]),
                    a["max_seq"],
                )
                for a in rows
            ],
            ("AGENT", "CUSTOMER", "HOST", "TOKEN", "STATE", "LAST SEEN", "MAX SEQ"),
            out,
        )

    _emit(args, data, render, out)


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

    _emit(args, data, render, out)


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

    _emit(args, data, render, out)


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
                    _when(g["dropped_at"]),
                )
                for g in rows
            ],
            ("CUSTOMER", "HOST", "AGENT", "SEQS", "COUNT", "REASON", "DROPPED"),
            out,
        )

    _emit(args, data, render, out)


def cmd_upgrades(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    data = api.request("GET", "/api/v1/upgrades", {"host": args.host, "customer": args.customer})

    def render(rows: list[dict[str, Any]], out: TextIO) -> None:
        table(
            [
                (_when(u["ts"]), u["customer"], u["host"], u["product"], u["from_version"], u["to_version"])
                for u in rows
            ],
            ("TIME", "CUSTOMER", "HOST", "PRODUCT", "FROM", "TO"),
            out,
        )

    _emit(args, data, render, out)


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
                    _when(q["quarantined_at"]),
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

    _emit(args, data, render, out)


# --------------------------------------------------------------------------- parser


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise UsageError(message)


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if not 1 <= number <= 1000:
        raise argparse.ArgumentTypeError("expected 1-1000")
    return number


def _global_options(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument(
        "--server", default=default, help="collector URL (else DIAG_SERVER, else the config file)"
    )
    parser.add_argument("--token", default=default, help="API token (else DIAG_TOKEN, else the config file)")
    parser.add_argument("--format", choices=("table", "json"), default=default)


def build_parser() -> argparse.ArgumentParser:
    from agent import __version__  # one version for the distribution; agent/__init__ imports nothing

    parser = _Parser(prog="diagctl", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"diagctl {__version__}")
    add_completion_option(parser)
    _global_options(parser, argparse.SUPPRESS)
    parser.set_defaults(server=None, token=None, format="table")
    # The same options after the command; SUPPRESS keeps a subcommand's unset option from
    # overwriting one given before the command.
    common = _Parser(add_help=False)
    _global_options(common, argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

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
    p.add_argument("--limit", type=_positive, default=100)
    p.add_argument("--customer")
    p = add("gaps", cmd_gaps, "results agents dropped (spool full)")
    p.add_argument("--host")
    p.add_argument("--customer")
    p.add_argument("--limit", type=_positive, default=100)
    p = add("upgrades", cmd_upgrades, "product version changes per host")
    p.add_argument("--host")
    p.add_argument("--customer")
    p = add("quarantine", cmd_quarantine, "acknowledged batches the collector could not store, and why")
    p.add_argument("--host")
    p.add_argument("--customer")
    p.add_argument("--limit", type=_positive, default=100)
    agents = sub.add_parser("agents", help="enroll, list and revoke agents", parents=[common])
    agents_sub = agents.add_subparsers(dest="agents_command", required=True, parser_class=_Parser)
    p = add("enroll", cmd_agents_enroll, "create an agent token and print its config file", agents_sub)
    p.add_argument("--customer", required=True)
    p.add_argument("--host")
    p.add_argument("--agent-id")
    p.add_argument("-o", "--output", metavar="FILE", help="write the config file here (new file, mode 0600)")
    p = add("list", cmd_agents_list, "list agents", agents_sub)
    p.add_argument("--customer")
    p = add("revoke", cmd_agents_revoke, "revoke an agent's token", agents_sub)
    p.add_argument("agent_id")
    from collector import diagctl_cases, diagctl_inspections, diagctl_tokens

    diagctl_cases.register(add, sub, common)
    diagctl_inspections.register(add, sub, common)
    diagctl_tokens.register(add, sub, common)
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
