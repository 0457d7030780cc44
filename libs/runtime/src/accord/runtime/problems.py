"""Errors as RFC 9457 problem details (application/problem+json), never echoing input."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from accord.runtime.errors import INFRASTRUCTURE_ERRORS

log = logging.getLogger(__name__)
#: Failures that mean "not now", never "not ever": a 503 with Retry-After, not a 500.
UNAVAILABLE: tuple[type[Exception], ...] = tuple(
    e for e in INFRASTRUCTURE_ERRORS if issubclass(e, Exception)
)
PROBLEM_JSON = "application/problem+json"
_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[dict[str, str]] | None = None


def documented(description: str) -> dict[str, Any]:
    """An OpenAPI response of that description with a problem+json body (for `responses=`)."""
    return {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": Problem.model_json_schema()}},
    }


#: Error answers every endpoint may give, documented once for the whole API.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: documented("Malformed request: not valid JSON, or fails the schema (see errors)"),
    401: documented("No or invalid credentials"),
    403: documented("The caller lacks the permission"),
    404: documented("Not found, or not the caller's to see"),
    413: documented("Request body too large"),
    429: documented("Rate limit exceeded; see Retry-After"),
    503: documented("Not ready"),
}


def problem(
    status: int, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """A problem+json response."""
    body = {"type": "about:blank", "title": _TITLES.get(status, "Error"), "status": status}
    body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _allowed_methods(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every HTTP and validation error with problem+json."""

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            # Starlette names only the first matching route's methods; list them all.
            headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(request))}
        return problem(exc.status_code, str(exc.detail), headers=headers)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        # Name the fields, never repeat the values: a rejected value may be a secret.
        errors = [
            {"location": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", "")}
            for e in exc.errors()[:20]
        ]
        # 400, not FastAPI's 422: a request that fails the schema is malformed (RFC 9110
        # 15.5.1), and SCIM (RFC 7644 3.12) answers invalid values with 400 as well.
        return problem(400, "the request is invalid", errors=errors)

    async def dependency_down(request: Request, exc: Exception) -> JSONResponse:
        # Our own database (or another dependency) is unreachable: the request is fine,
        # try again shortly. The error's text stays in the log (it may name hosts).
        log.warning("dependency unavailable", extra={"error": type(exc).__name__})
        return problem(503, "a dependency is unavailable; try again", headers={"Retry-After": "5"})

    async def unstorable(request: Request, exc: Exception) -> JSONResponse:
        # PostgreSQL refused a value the request carried (a NUL, an out-of-range number):
        # the parameter types should have caught it; this net keeps it a 400, not a 500.
        log.warning("database refused a request value", extra={"error": type(exc).__name__})
        return problem(400, "a value in the request cannot be stored or searched as given")

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(asyncpg.DataError, unstorable)
    app.add_exception_handler(RequestValidationError, validation_error)
    for unavailable in UNAVAILABLE:
        app.add_exception_handler(unavailable, dependency_down)
