"""One error body everywhere: RFC 9457 problem details (``application/problem+json``).

Every error the API answers, whether raised by an endpoint (``HTTPException``), by request
validation (422) or by the body-limit middleware (401, 413), has the shape::

    {"type": "about:blank", "title": "Not Found", "status": 404,
     "detail": "no host 'web9' (list hosts with: diagctl hosts)"}

``detail`` is always one readable sentence (what went wrong, what to do next); a
validation error adds ``errors``: ``[{"loc": "query.limit", "msg": "..."}]`` (never the
rejected input, which may be a secret pasted in the wrong field). An unexpected exception
is a 500 problem that says only that, with no exception text: the traceback goes to the
collector's log, never to a caller.

:data:`ERROR_RESPONSES` documents these statuses in the OpenAPI document.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = [
    "ERROR_RESPONSES",
    "PROBLEM_TYPE",
    "Problem",
    "document_errors",
    "install",
    "install_openapi",
    "problem_response",
    "responses",
]

PROBLEM_TYPE = "application/problem+json"

log = logging.getLogger("collector.http")


class ValidationItem(BaseModel):
    loc: str
    msg: str


class Problem(BaseModel):
    """An RFC 9457 problem: the body of every error response."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[ValidationItem] | None = None


_DESCRIPTIONS = {
    400: "The request is malformed (e.g. a NUL byte, an out-of-range number).",
    401: "No API token, or an invalid, expired or revoked one.",
    403: "The token's role or customer does not allow this.",
    404: "No such object for this token (another customer's objects answer 404 too).",
    409: "The request conflicts with the current state.",
    413: "The request body is larger than this endpoint accepts.",
    422: "A parameter or the body failed validation; `errors` lists each problem.",
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for ``codes``, each a problem+json body."""
    return {
        code: {
            "model": Problem,
            "description": _DESCRIPTIONS[code],
            "content": {PROBLEM_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for code in codes
    }


ERROR_RESPONSES = responses(400, 401, 403, 404, 422)
"""What any authenticated ``/api/v1`` endpoint may answer."""


def problem_response(
    status: int, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """A problem+json response with ``status`` and a readable ``detail``."""
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_TYPE)


def _loc(parts: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in parts)


_PATTERN_MEANS = {
    "customer": "not a customer slug: lowercase letters, digits and '-', "
    "starting with a letter or digit, at most 63 characters",
}
"""What a field's pattern means, said instead of pydantic's 'should match pattern ...'."""


def _message(error: Any) -> str:
    loc = tuple(error.get("loc", ()))
    if error.get("type") == "string_pattern_mismatch" and loc and str(loc[-1]) in _PATTERN_MEANS:
        return _PATTERN_MEANS[str(loc[-1])]
    return str(error.get("msg", ""))


def _validation_problem(exc: RequestValidationError) -> JSONResponse:
    errors = [{"loc": _loc(e.get("loc", ())), "msg": _message(e)} for e in exc.errors()]
    # The readable sentence diagctl prints: "limit: Input should be less than or equal to 1000".
    detail = "; ".join(f"{_loc(tuple(e.get('loc', ()))[1:]) or 'body'}: {_message(e)}" for e in exc.errors())
    return problem_response(422, detail or "the request failed validation", errors=errors)


def _allowed_methods(app: FastAPI, request: Request) -> list[str]:
    from starlette.routing import Match, Route

    methods: set[str] = set()
    for route in app.router.routes:
        if isinstance(route, Route) and route.methods and route.matches(request.scope)[0] != Match.NONE:
            methods |= route.methods
    return sorted(methods)


def install(app: FastAPI) -> None:
    """Answer every error of ``app`` as problem details."""

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            # Starlette's Allow names only the first route of the path; a path with GET and
            # POST served by two routes must list both (RFC 9110 15.5.6).
            headers["Allow"] = ", ".join(_allowed_methods(app, request))
            detail = f"{request.method} is not allowed here; allowed: {headers['Allow']}"
        return problem_response(exc.status_code, detail, headers=headers or None)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return _validation_problem(exc)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The exception's text can hold SQL or file paths: logged, never answered.
        log.error("unhandled error answering %s %s", request.method, request.url.path, exc_info=exc)
        return problem_response(500, "internal error in the collector; the operator's log has the details")

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected)


# --------------------------------------------------------------------------- the OpenAPI document

_CONFLICT_PATHS = (
    "/api/v1/reports/inspection",
    "/api/v1/reports/fault/{case_id}",
    "/api/v1/hosts/{name}",
)
_RENDER_PATHS = ("/api/v1/reports/inspection", "/api/v1/reports/fault/{case_id}")


def _codes(path: str, method: str, operation: dict[str, Any]) -> set[int]:
    """The error statuses an ``/api`` operation can answer, from what the code raises where."""
    params = {p.get("name") for p in operation.get("parameters", [])}
    codes = {400, 401, 403, 422}  # NUL bytes; no token; role or customer; validation
    if "{" in path or params & {"host", "plan", "run", "customer", "session"}:
        codes.add(404)  # a named object that does not exist or is another customer's
    if method in ("post", "put", "patch", "delete"):
        codes |= {404, 409, 413}  # state conflicts; body over the route's limit
    if path in _CONFLICT_PATHS or "host" in params:
        codes.add(409)  # an ambiguous host name, a report that cannot be rendered
    if path in _RENDER_PATHS:
        codes.add(503)  # the render pool is busy or the render ran past its time limit
    return codes


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Add each ``/api`` operation's error statuses, all as problem+json, to an OpenAPI document."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(problem.pop("$defs", {}))
    components["Problem"] = problem
    content = {PROBLEM_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    descriptions = {
        **_DESCRIPTIONS,
        503: "Busy: the report is still rendering; retry after Retry-After seconds.",
    }
    for path, operations in schema.get("paths", {}).items():
        if not path.startswith("/api/"):
            continue
        for method, operation in operations.items():
            responses_ = operation.setdefault("responses", {})
            for code in sorted(_codes(path, method, operation)):
                responses_[str(code)] = {"description": descriptions[code], "content": content}
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema


def install_openapi(app: FastAPI) -> None:
    """Serve ``app``'s OpenAPI document with the error statuses of :func:`document_errors`."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
