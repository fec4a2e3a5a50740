"""Pages of a list response: at most ``limit`` rows and at most a byte budget, with a next link.

Threat model: a viewer asking for everything at once. ``GET /api/v1/results?limit=1000``
once returned 499 MB (results carry their findings) and took the collector to 2.56 GB;
``GET /api/v1/gaps`` had no limit at all. A list endpoint now answers one page:

- at most ``limit`` rows (1 to 1000, default 100), and
- at most :data:`PAGE_BYTES` of JSON: rows are added while the page stays under it (a
  single row larger than the budget is still answered alone, so every row is reachable;
  how large a row may be is bounded at ingest);
- when more rows follow, a ``Link: <...&cursor=...>; rel="next"`` header (RFC 8288) gives
  the URL of the next page. The cursor is opaque (the position the page ended at), so
  pages stay consistent while new rows arrive. The body stays a JSON array.

``diagctl`` follows the next links until it has the rows it was asked for.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any, TypeVar
from urllib.parse import urlencode

from fastapi import HTTPException, Request, Response
from pydantic import BaseModel

__all__ = [
    "CURSOR_DESCRIPTION",
    "PAGE_BYTES",
    "decode_cursor",
    "encode_cursor",
    "offset_of",
    "page",
    "page_by_offset",
]

PAGE_BYTES = 4 * 1024 * 1024
CURSOR_DESCRIPTION = "Where the previous page ended: copy it from that page's Link rel=next header."

M = TypeVar("M", bound=BaseModel)


def encode_cursor(ts: float, row_id: int) -> str:
    """The opaque cursor of a position (a time and a row id).

    >>> decode_cursor(encode_cursor(1700000000.5, 42))
    (1700000000.5, 42)
    """
    raw = json.dumps([ts, row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[float, int] | None:
    """The position in a cursor; 422 naming the parameter for one this API did not give."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        ts, row_id = json.loads(raw)
        if not isinstance(ts, int | float) or not isinstance(row_id, int) or isinstance(row_id, bool):
            raise ValueError("bad types")
        if not (0 <= row_id < 2**63) or ts != ts or abs(ts) > 1e12:  # ts != ts: NaN
            raise ValueError("out of range")
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise HTTPException(
            422, "cursor: not a cursor from this API (copy it from a page's Link rel=next header)"
        ) from None
    return float(ts), row_id


def page(
    request: Request,
    response: Response,
    rows: Sequence[M],
    positions: Sequence[tuple[float, int]],
    limit: int,
    budget: int = PAGE_BYTES,
) -> list[M]:
    """The rows of one page, and the next link on ``response`` when more follow.

    ``rows`` holds up to ``limit + 1`` rows (one more tells that a next page exists);
    ``positions[i]`` is row i's (time, id) for the cursor.
    """
    out: list[M] = []
    size = 2
    for row in rows[:limit]:
        row_size = len(row.model_dump_json()) + 1
        if out and size + row_size > budget:
            break
        out.append(row)
        size += row_size
    if len(out) < len(rows):
        ts, row_id = positions[len(out) - 1]
        params: dict[str, Any] = {k: v for k, v in request.query_params.items() if k != "cursor"}
        params["cursor"] = encode_cursor(ts, row_id)
        # A relative reference (RFC 8288 allows it): no Host header echoed back.
        response.headers["Link"] = f'<{request.url.path}?{urlencode(params)}>; rel="next"'
    return out


def offset_of(cursor: str | None) -> int:
    """Where a page of a name-ordered list (hosts, agents) starts: its cursor holds the offset.

    Such lists change rarely and are ordered by name, not time, so an offset is their
    position; a host enrolled while someone pages may shift one row between pages.
    """
    position = decode_cursor(cursor)
    return 0 if position is None else position[1]


def page_by_offset(
    request: Request, response: Response, rows: Sequence[M], offset: int, limit: int
) -> list[M]:
    """:func:`page` for a list read with ``limit + 1`` rows from ``offset``."""
    positions = [(0.0, offset + i + 1) for i in range(len(rows))]
    return page(request, response, rows, positions, limit)
