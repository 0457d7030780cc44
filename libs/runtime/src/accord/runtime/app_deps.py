"""What an API module's routes work with, put on the app that mounts them.

The routers are module-level, so their routes cannot close over a runtime: `configure` puts
what they need on the app once, and each route gets it back as a FastAPI dependency.

    deps = Mounted[FactorsDeps]("authn_factors")

    def configure(app: FastAPI, runtime: Runtime) -> None:
        deps.mount(app, FactorsDeps(runtime), router)

    @router.get("/factors")
    async def list_factors(deps: FactorsDeps = Depends(deps)) -> ...
"""

# No `from __future__ import annotations`: FastAPI reads the annotation of `__call__` to
# know that it wants the request, and cannot resolve a string on an instance.

from typing import Generic, TypeVar

from fastapi import APIRouter, FastAPI, Request

T = TypeVar("T")


class Mounted(Generic[T]):
    """A value of type T kept on the app under `name`; called with a request, it returns it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def mount(self, app: FastAPI, value: T, *routers: APIRouter) -> None:
        """Put `value` on the app, then include the routers that depend on it."""
        setattr(app.state, self.name, value)
        for router in routers:
            app.include_router(router)

    def __call__(self, request: Request) -> T:
        value: T = getattr(request.app.state, self.name)
        return value
