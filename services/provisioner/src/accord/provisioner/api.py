"""Provisioner HTTP API: the configured targets, their health, and reconciliation runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query
from pydantic import BaseModel, ConfigDict

from accord.provisioner.adapters import ledger
from accord.provisioner.ports import Connector, TargetRejected, TargetUnavailable
from accord.provisioner.targets import Target
from accord.runtime.app_deps import Mounted
from accord.runtime.params import Id, Text
from accord.runtime.security.api import require
from accord.runtime.security.roles import Permission
from accord.runtime.service import Runtime

_OUT = ConfigDict(frozen=True)


class TargetInfo(BaseModel):
    """A configured target system, without its secrets."""

    model_config = _OUT
    name: str
    kind: Literal["scim", "ldap", "sql", "webhook"]
    url: str


class TargetHealth(BaseModel):
    """Whether a target answers and accepts Accord's credentials."""

    model_config = _OUT
    name: str
    healthy: bool
    error: str | None


class ReconciliationRun(BaseModel):
    """One reconciliation run, scheduled or from `accord reconcile`."""

    model_config = _OUT
    run_id: str
    target: str
    trigger: Literal["cli", "schedule"]
    fix: bool
    status: Literal["running", "completed", "failed"]
    started_at: str
    finished_at: str | None
    summary: dict[str, Any] | None
    error: str | None


@dataclass(frozen=True)
class ApiDeps:
    """What the provisioner's routes work with, set by `configure` on the app."""

    runtime: Runtime
    targets: Sequence[Target]
    connectors: Mapping[str, Connector]
    """The open connectors, by target name (filled when the service starts)."""


_deps = Mounted[ApiDeps]("provisioner_api")


#: Every route shows targets' configuration or state.
reader = require(Permission.TARGETS_READ)
router = APIRouter(dependencies=[Depends(reader)])


def configure(
    app: FastAPI,
    runtime: Runtime,
    targets: Sequence[Target],
    connectors: Mapping[str, Connector],
) -> None:
    """Mount the provisioner's routes."""
    _deps.mount(app, ApiDeps(runtime, targets, connectors), router)


@router.get("/v1/targets", summary="The configured target systems (no secrets)")
async def list_targets(deps: ApiDeps = Depends(_deps)) -> list[TargetInfo]:
    return [TargetInfo(name=t.name, kind=t.kind, url=t.url) for t in deps.targets]


@router.get(
    "/v1/targets/{target}/health",
    summary="Whether the target answers and accepts Accord's credentials",
)
async def target_health(target: Id, deps: ApiDeps = Depends(_deps)) -> TargetHealth:
    connector = deps.connectors.get(target)
    if connector is None:
        raise HTTPException(404, "no such target")
    try:
        await connector.health()
    except (TargetUnavailable, TargetRejected) as error:
        return TargetHealth(name=target, healthy=False, error=str(error))
    return TargetHealth(name=target, healthy=True, error=None)


@router.get("/v1/reconciliations", summary="Reconciliation runs, newest first")
async def list_reconciliations(
    deps: ApiDeps = Depends(_deps),
    target: Text | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 20,
) -> list[ReconciliationRun]:
    runs = await ledger.runs(deps.runtime.pool, target, limit=limit)
    return [ReconciliationRun.model_validate(run) for run in runs]
