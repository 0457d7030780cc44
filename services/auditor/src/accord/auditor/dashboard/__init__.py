"""The auditor's web dashboard: a page, its scripts, and the data routes it reads.

The page and its assets hold no data and are served without credentials: the page asks for
an API token and sends it with every call to the /v1 routes, which need audit:read.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from accord.auditor import live, web
from accord.auditor.dashboard import routes
from accord.runtime.security.middleware import override_csp
from accord.runtime.service import Runtime

PAGE_PATH = "/dashboard"
STATIC_PATH = f"{PAGE_PATH}/static"
#: The page runs its own scripts and styles and talks to its own origin, nothing else.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self';"
    " img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


@cache
def page_html() -> str:
    """The dashboard page (read once)."""
    return (resources.files(__name__) / "static" / "index.html").read_text(encoding="utf-8")


page = APIRouter(tags=["dashboard"])
"""The page itself (its assets are a static mount, its data the /v1/dashboard routes)."""


@page.get(
    PAGE_PATH,
    response_class=HTMLResponse,
    summary="The audit dashboard (a page; it asks for an API token itself)",
    responses={200: {"description": "The page", "content": {"text/html": {}}}},
)
async def dashboard() -> HTMLResponse:
    return HTMLResponse(page_html())


def configure(app: FastAPI, runtime: Runtime) -> None:
    """Mount the page, its assets, the data routes and the live stream."""
    web.serve(app, runtime)
    page_html()  # a missing page fails the start, not the first request
    app.include_router(page)
    app.mount(
        STATIC_PATH,
        StaticFiles(packages=[(__name__, "static")]),
        name="dashboard-static",
    )
    override_csp(app, PAGE_PATH, PAGE_CSP)
    app.include_router(routes.router)
    live.configure(app, runtime)
