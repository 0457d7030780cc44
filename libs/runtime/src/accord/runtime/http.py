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
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


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
