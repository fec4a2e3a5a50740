"""Request bodies: the caller authenticated first, then at most a per-route number of bytes.

Threat model: anyone who can reach the HTTP port, without a token. Before this guard a
600 MB ``PUT /api/v1/customers/acme/profile`` without any token was read whole into the
collector's memory (177 MB to 1.96 GB) and parsed on the event loop it shares with gRPC,
stalling ``/healthz`` and agents' Acks for seconds, and only then answered 401.

Now, for every request to ``/api/`` that may carry a body (POST, PUT, PATCH, DELETE):

1. the bearer token is checked (in a worker thread: the store is synchronous) before a
   single body byte is read; no or a bad token answers 401 and the body is never read;
2. a declared ``Content-Length`` over the route's limit answers 413 at once;
3. otherwise the body is read up to the limit (a chunked body that runs past it answers
   413, having buffered at most the limit) and handed to the endpoint.

Before any of that, a NUL character in the path, the query string or the body (raw, ``%00``
or JSON's ``\\u0000``) answers 400: PostgreSQL cannot store it in text, and left to the
store it was a 500 with a traceback. (A JSON string holding the six characters ``\\u0000``
literally is refused too; no field of this API needs them.)

Other requests (GET and friends) may carry at most :data:`NO_BODY_LIMIT` bytes: a GET body
is never read by an endpoint, but a large declared one is refused rather than left queued.
The endpoint then authenticates again through its ``Principal`` dependency (a cheap
indexed lookup), so nothing depends on this guard being the only check.

With bodies capped at :data:`DEFAULT_LIMIT` (1 MiB for a profile with its logo), decoding
JSON on the loop costs at most a few milliseconds; the logo's SVG check runs in a thread.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio.to_thread

from collector.http.problems import problem_response
from collector.store import Store

__all__ = ["BINARY_BODIES", "DEFAULT_LIMIT", "NO_BODY_LIMIT", "ROUTE_LIMITS", "BodyLimits", "limit_for"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_LIMIT = 64 * 1024
"""Bytes a JSON body may have (notes, enrolment, case actions are small)."""
NO_BODY_LIMIT = 16 * 1024
"""Bytes a request without a body endpoint (GET, HEAD, OPTIONS) may declare."""
ROUTE_LIMITS: tuple[tuple[str, re.Pattern[str], int], ...] = (
    # A logo of at most 512 KiB, base64-encoded (4/3), with the other fields.
    ("PUT", re.compile(r"/api/v1/customers/[^/]+/profile"), 1024 * 1024),
    # A customer document (collector.http.documents), raw bytes: the documents' own limit.
    ("POST", re.compile(r"/api/v1/customers/[^/]+/documents"), 10 * 1024 * 1024),
)
BINARY_BODIES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("POST", re.compile(r"/api/v1/customers/[^/]+/documents")),
)
"""Routes whose body is raw bytes (a PDF holds NULs): stored as bytes, never as text."""
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def limit_for(method: str, path: str) -> int:
    """The body size limit of a request, in bytes."""
    if method not in _BODY_METHODS:
        return NO_BODY_LIMIT
    for route_method, pattern, limit in ROUTE_LIMITS:
        if method == route_method and pattern.fullmatch(path):
            return limit
    return DEFAULT_LIMIT


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value)
    return None


def _too_large(limit: int) -> Any:
    return problem_response(
        413,
        f"the request body is larger than this endpoint accepts ({limit:,} bytes at most)",
        headers={"Connection": "close"},
    )


_NUL_IN_QUERY = re.compile(rb"%00|\x00")
_NUL_IN_JSON = re.compile(rb"\x00|\\u0000", re.IGNORECASE)


def _has_nul(data: bytes, *, query: bool = True) -> bool:
    """A NUL character: raw or percent-encoded in a query, raw or JSON-escaped in a body.

    >>> _has_nul(b"host=web%001"), _has_nul(b'{"text": "a\\u0000b"}', query=False)
    (True, True)
    >>> _has_nul(b'{"text": "100%00"}', query=False)
    False
    """
    return (_NUL_IN_QUERY if query else _NUL_IN_JSON).search(data) is not None


def _nul_refused(where: str) -> Any:
    return problem_response(
        400, f"{where} contains a NUL character (\\u0000 or %00); remove it and send the request again"
    )


class BodyLimits:
    """ASGI middleware: authenticate before reading a body, and cap its size per route."""

    def __init__(self, app: ASGIApp, store: Store) -> None:
        self.app = app
        self.store = store

    def _authenticated(self, authorization: bytes | None) -> bool:
        if authorization is None:
            return False
        scheme, _, token = authorization.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not token.strip() or "\x00" in token:
            return False
        return self.store.authenticate_api_token(token.strip()) is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        if "\x00" in path or _has_nul(scope.get("query_string", b"")):
            # PostgreSQL refuses NUL in text: left to the store it is a 500 with a traceback.
            await _nul_refused("the path or query string")(scope, receive, send)
            return
        limit = limit_for(method, path)
        declared = _header(scope, b"content-length")
        chunked = b"chunked" in (_header(scope, b"transfer-encoding") or b"").lower()
        if method not in _BODY_METHODS:
            declared_ok = declared is None or (declared.strip().isdigit() and int(declared) <= limit)
            if chunked or not declared_ok:
                await _too_large(limit)(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        authorization = _header(scope, b"authorization")
        if not await anyio.to_thread.run_sync(self._authenticated, authorization):
            detail = (
                "missing API token: send 'Authorization: Bearer <token>' "
                "(an engineer creates one with: diag-collector token create --name NAME)"
                if authorization is None
                else "invalid or revoked API token (or expired: list tokens with diag-collector token list)"
            )
            response = problem_response(
                401, detail, headers={"WWW-Authenticate": "Bearer", "Connection": "close"}
            )
            await response(scope, receive, send)
            return
        if declared is not None:
            if not declared.strip().isdigit():
                await problem_response(400, "Content-Length is not a number")(scope, receive, send)
                return
            if int(declared) > limit:
                await _too_large(limit)(scope, receive, send)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _too_large(limit)(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        binary = any(method == m and pattern.fullmatch(path) for m, pattern in BINARY_BODIES)
        if not binary and _has_nul(body, query=False):
            await _nul_refused("the request body")(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
