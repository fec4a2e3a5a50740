"""``diag-collector token list|revoke`` and ``create --expires``: API tokens, straight in the store.

For bootstrap and recovery (before any API token exists, or when every engineer token is
lost); with a working token, ``diagctl tokens ...`` does the same through the API.
Listings show a token's first 8 characters, never the token (it is stored hashed).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from datetime import UTC, datetime
from typing import Any

__all__ = ["parse_expiry", "print_tokens", "token_list", "token_revoke"]

_EXPIRY = re.compile(r"^(\d{1,5})([hdw])$")
_UNIT_S = {"h": 3600, "d": 86400, "w": 7 * 86400}


def parse_expiry(text: str) -> float:
    """Seconds from now for ``--expires``: 12h, 90d or 2w (at most ten years).

    >>> parse_expiry("90d"), parse_expiry("12h")
    (7776000.0, 43200.0)
    >>> parse_expiry("soon")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: expected a duration like 12h, 90d or 2w, not 'soon'
    """
    match = _EXPIRY.match(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"expected a duration like 12h, 90d or 2w, not {text!r}")
    seconds = float(int(match.group(1)) * _UNIT_S[match.group(2)])
    if seconds <= 0 or seconds > 3650 * 86400:
        raise argparse.ArgumentTypeError(f"{text!r}: between 1h and 3650d")
    return seconds


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%MZ")


def print_tokens(rows: list[Any], fmt: str, now: float) -> None:
    """A table (or JSON) of :class:`ApiTokenInfo` rows."""
    if fmt == "json":
        doc = [
            {
                "id": t.id, "name": t.name, "role": t.role, "customer": t.customer, "prefix": t.prefix,
                "state": t.state(now), "created_at": t.created_at, "expires_at": t.expires_at,
                "revoked_at": t.revoked_at, "last_used_at": t.last_used_at,
            }
            for t in rows
        ]  # fmt: skip
        print(json.dumps(doc, indent=2))
        return
    headers = ("ID", "NAME", "ROLE", "CUSTOMER", "TOKEN", "STATE", "EXPIRES", "LAST USED")
    cells = [
        (str(t.id), t.name, t.role, t.customer or "-", t.prefix + "…", t.state(now),
         _when(t.expires_at), _when(t.last_used_at))
        for t in rows
    ]  # fmt: skip
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(headers)]
    for row in [headers, *cells]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def token_list(store: Any, args: argparse.Namespace) -> int:
    from collector.store import Scope
    from collector.store.api_tokens import ApiTokenRepo

    rows = ApiTokenRepo(store).list(Scope.everything(), customer=args.customer, limit=args.limit)
    print_tokens(rows, args.format, time.time())
    return 0


def token_revoke(store: Any, args: argparse.Namespace) -> int:
    from collector.store import NotFound, Scope
    from collector.store.api_tokens import ApiTokenRepo

    try:
        info, changed = ApiTokenRepo(store).revoke(Scope.everything(), args.id)
    except NotFound:
        print(
            f"diag-collector: no API token {args.id} (list them with: diag-collector token list)",
            file=sys.stderr,
        )
        return 2
    what = "revoked" if changed else "was already revoked"
    print(f"API token {info.id} {info.name!r} ({info.prefix}…) {what}")
    return 0
