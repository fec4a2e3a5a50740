"""What every diagctl command uses: settings, the HTTP client, errors, output and argument types.

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

from diagconfig.terminal import table_lines, terminal_text

__all__ = [
    "EVERY_ROW",
    "Api",
    "Parser",
    "ServerError",
    "UsageError",
    "emit",
    "parse_since",
    "positive",
    "resolve_settings",
    "table",
    "when",
]

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
        self.token = token
        self._client = httpx.Client(
            base_url=server,
            headers={"Authorization": f"Bearer {token}", "User-Agent": "diagctl"},
            timeout=DEFAULT_TIMEOUT_S,
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def request(self, method: str, path: str, params: dict[str, Any] | None = None, body: Any = None) -> Any:
        response = self._send(method, path, params, body)
        return None if response.status_code == 204 else response.json()  # 204: nothing to read

    def raw(self, method: str, path: str) -> httpx.Response:
        """The response itself (a download: its bytes and headers)."""
        return self._send(method, path, None, None)

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
EVERY_ROW = 10**9
"""A limit for :meth:`Api.pages` that means every row (a fleet list: hosts, agents, upgrades)."""
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


def when(value: str | None) -> str:
    return "-" if not value else value.replace("T", " ").replace("+00:00", "Z")


def table(rows: Sequence[Sequence[object]], headers: Sequence[str], out: TextIO) -> None:
    """Columns aligned to their widest cell by display width (Chinese text takes two
    columns a character); '-' for empty values; control characters shown as escapes."""
    cells = [[("-" if c is None or c == "" else str(c)) for c in row] for row in rows]
    for line in table_lines(headers, cells):
        print(line, file=out)


def emit(args: argparse.Namespace, data: Any, render: Callable[[Any, TextIO], None], out: TextIO) -> None:
    if args.format == "json":
        json.dump(data, out, indent=2, ensure_ascii=False)  # exact: json escapes controls itself
        print(file=out)
    else:
        # Rendered text carries agents' summaries, labels and notes: no terminal control
        # reaches the engineer's terminal (OSC title and clipboard writes, CSI).
        text = io.StringIO()
        render(data, text)
        out.write(terminal_text(text.getvalue()))


# --------------------------------------------------------------------------- parser


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise UsageError(message)


def positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if not 1 <= number <= 1000:
        raise argparse.ArgumentTypeError("expected 1-1000")
    return number
