"""What the auditor's HTTP routes share: the runtime of the app that serves them.

The routers are module-level; `serve` puts the runtime on the app once, and the routes get
it (or its pool) as a FastAPI dependency.
"""

from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, Request

from accord.runtime.app_deps import Mounted
from accord.runtime.service import Runtime

runtime_of = Mounted[Runtime]("auditor_runtime")
"""The runtime of the app serving the request."""


def serve(app: FastAPI, runtime: Runtime, *routers: APIRouter) -> None:
    """Let the auditor's routes on this app reach the runtime; mount `routers`."""
    runtime_of.mount(app, runtime, *routers)


def pool_of(request: Request) -> asyncpg.Pool:
    """The database pool of the app serving the request."""
    return runtime_of(request).pool


Pool = Annotated[asyncpg.Pool, Depends(pool_of)]
