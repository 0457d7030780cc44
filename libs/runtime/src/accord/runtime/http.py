"""HTTP edge of a service: health probes on FastAPI, served by uvicorn inside our loop."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Generator
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from accord.runtime.problems import PROBLEM_RESPONSES, install_problem_handlers
from accord.runtime.security.input_guard import InputGuardMiddleware
from accord.runtime.security.middleware import BodyLimitMiddleware, SecurityHeadersMiddleware

ReadinessCheck = Callable[[], Awaitable[dict[str, Any]]]


def create_app(service: str, readiness: ReadinessCheck, *, version: str = "0.1.0") -> FastAPI:
    """A FastAPI app with /healthz (alive) and /readyz (dependencies usable)."""
    # No /docs or /redoc: they load scripts from a CDN, which the CSP (rightly) forbids.
    app = FastAPI(
        title=f"Accord {service}",
        version=version,
        docs_url=None,
        redoc_url=None,
        responses=PROBLEM_RESPONSES,
    )
    install_problem_handlers(app)
    _document_validation_as_400(app)

    @app.get("/healthz", tags=["health"], summary="Liveness: the process is serving")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @app.get("/readyz", tags=["health"], summary="Readiness: database, broker and consumer up")
    async def readyz() -> JSONResponse:
        report = await readiness()
        status = 200 if report.get("ready") else 503
        return JSONResponse({"service": service, **report}, status_code=status)

    return app


def _document_validation_as_400(app: FastAPI) -> None:
    """Drop FastAPI's generated 422 answers: validation errors are answered 400 (problems.py)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                answer = operation.get("responses", {}).get("422", {})
                if "HTTPValidationError" in str(answer):
                    del operation["responses"]["422"]
        schemas = schema.get("components", {}).get("schemas", {})
        if "HTTPValidationError" not in str(schema.get("paths")):
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
        _document_refused_characters(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


#: What InputGuardMiddleware refuses, as JSON Schema patterns: no NUL in a query or a body
#: (names of free-form objects included), no control character in a path.
NO_NUL = "^[^\\x00]*$"
NO_CONTROL = "^[^\\x00-\\x1f\\x7f]*$"


def _document_refused_characters(document: dict[str, Any]) -> None:
    """Say in the OpenAPI document what the input guard refuses, where no pattern says more.

    A client (or a fuzzer) reading the document then knows that such a value is no valid
    input, rather than learning it from a 400.
    """
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters", []):
                if parameter.get("in") in ("path", "query"):
                    pattern = NO_CONTROL if parameter["in"] == "path" else NO_NUL
                    _refuse_in_strings(parameter.get("schema", {}), pattern)
            for media in operation.get("requestBody", {}).get("content", {}).values():
                _refuse_in_strings(media.get("schema", {}), NO_NUL)
    for component in document.get("components", {}).get("schemas", {}).values():
        _refuse_in_strings(component, NO_NUL)


def _refuse_in_strings(schema: Any, pattern: str) -> None:
    """Give every string schema in schema (and every free-form object's names) the pattern."""
    pending = [schema]
    while pending:
        node = pending.pop()
        if not isinstance(node, dict):
            continue
        if node.get("type") == "string" and "pattern" not in node and "enum" not in node:
            node["pattern"] = pattern
        extra = node.get("additionalProperties")
        if node.get("type") == "object" and extra not in (None, False):
            names = node.setdefault("propertyNames", {})
            if isinstance(names, dict) and "$ref" not in names:
                names.setdefault("pattern", pattern)
        pending.extend(node.get("properties", {}).values())
        for keyword in ("items", "additionalProperties", "not"):
            pending.append(node.get(keyword))
        for keyword in ("anyOf", "oneOf", "allOf", "prefixItems"):
            pending.extend(node.get(keyword, []))


def secure(app: FastAPI, *, max_body_bytes: int) -> None:
    """Add the body size limit, the input guard and the security headers to every response."""
    # Innermost first: the guard reads bodies through the limit, which refuses a large one.
    app.add_middleware(InputGuardMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
    app.add_middleware(SecurityHeadersMiddleware)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # The service owns SIGTERM/SIGINT and shuts uvicorn down itself, in order.
        yield


def make_server(app: FastAPI, host: str, port: int) -> uvicorn.Server:
    """A uvicorn server to run as a task in the service's event loop."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="off",
        server_header=False,
    )
    return _Server(config)
