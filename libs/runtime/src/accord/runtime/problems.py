"""Errors as RFC 9457 problem details (application/problem+json), never echoing input."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import Scope

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


SCIM_JSON = "application/scim+json"
SCIM_ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
_SCIM_PREFIXES = "scim_prefixes"


def scim_error(
    status: int,
    detail: str,
    *,
    scim_type: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A SCIM error response (RFC 7644 section 3.12): status as a string, scimType if any."""
    body = {"schemas": [SCIM_ERROR], "status": str(status), "detail": detail}
    if scim_type is not None:
        body["scimType"] = scim_type
    return JSONResponse(body, status_code=status, headers=headers, media_type=SCIM_JSON)


def serve_scim_errors(app: Starlette, prefix: str) -> None:
    """Answer the refusals of the shared middleware under prefix (a SCIM mount) as SCIM errors.

    Kept on the app's state, so a service mounting SCIM can ask for it after the middleware
    was added. Every other path is answered with problem+json.
    """
    if not prefix.startswith("/") or prefix.endswith("/"):
        raise ValueError(f"a SCIM prefix is a path without a trailing slash, not {prefix!r}")
    prefixes: set[str] = getattr(app.state, _SCIM_PREFIXES, set())
    prefixes.add(prefix)
    setattr(app.state, _SCIM_PREFIXES, prefixes)


def refusal(
    scope: Scope,
    status: int,
    detail: str,
    *,
    scim_type: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """What middleware answers when it refuses a request: the error format of its path.

    scim_type (RFC 7644 section 3.12: invalidPath, invalidValue, ...) is used under a SCIM
    prefix only.
    """
    state = getattr(scope.get("app"), "state", None)
    prefixes: set[str] = getattr(state, _SCIM_PREFIXES, None) or set()
    path: str = scope.get("path", "")
    if any(path == p or path.startswith(p + "/") for p in prefixes):
        return scim_error(status, detail, scim_type=scim_type, headers=headers)
    return problem(status, detail, headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


#: Shown instead of a validator's message that quotes the rejected value.
_INVALID = "the value is not valid here"


def _shown(error: Mapping[str, Any]) -> tuple[str, str]:
    """A validation error as (location, message), naming declared fields, never input.

    A rejected value may be a secret, and so may a name the caller made up: an unknown
    field's name and a mapping's key are input, so the location stops at the object
    holding them. A validator's message that quotes the value is replaced.
    """
    loc = [str(part) for part in error.get("loc", ())]
    message = str(error.get("msg", ""))
    if "[key]" in loc:  # ("body", "attrs", <the key>, "[key]"): the key is input
        loc = loc[: max(loc.index("[key]") - 1, 1)]
    if error.get("type") == "extra_forbidden":
        loc, message = loc[:-1], "holds a field the schema does not declare"
    value = error.get("input")
    if isinstance(value, str) and len(value) >= _QUOTABLE and value in message:
        message = _INVALID
    return ".".join(loc), message


#: Shorter values may appear in a message by chance ("1" in "at most 10"), and give nothing away.
_QUOTABLE = 3


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
        errors = list(dict.fromkeys(_shown(e) for e in exc.errors()))[:20]
        # 400, not FastAPI's 422: a request that fails the schema is malformed (RFC 9110
        # 15.5.1), and SCIM (RFC 7644 3.12) answers invalid values with 400 as well.
        return problem(
            400,
            "the request is invalid",
            errors=[{"location": location, "message": message} for location, message in errors],
        )

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
