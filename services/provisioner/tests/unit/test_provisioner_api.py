"""The provisioner's HTTP routes on a bare app: targets and their health, from fakes.

The caller is let through (security is the runtime's, tested there); reconciliation runs
read the database and are tested end to end (tests/e2e/test_reconcile.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from types import SimpleNamespace
from typing import cast

import httpx
import pytest
from fastapi import FastAPI

from accord.provisioner import api
from accord.provisioner.fakes import ScriptedConnector
from accord.provisioner.ports import AccountRef, Connector, TargetRejected, TargetUnavailable
from accord.provisioner.targets import TargetsFile
from accord.runtime.security.roles import Caller, Role
from accord.runtime.service import Runtime

TARGETS = TargetsFile.model_validate(
    {
        "targets": [
            {"name": "crm", "kind": "scim", "url": "https://crm.example.org/scim/v2"},
            {"name": "hr", "kind": "sql", "dsn_env": "HR_DSN", "table": "people"},
        ]
    }
).targets
OK = AccountRef("unused", already_existed=True)


def client(connectors: Mapping[str, Connector]) -> httpx.AsyncClient:
    app = FastAPI()
    api.configure(app, cast(Runtime, SimpleNamespace(pool=None)), TARGETS, connectors)
    admin = Caller(
        subject="ada", roles=frozenset({Role.ADMIN}), kind="api-token", credential_id="t"
    )
    app.dependency_overrides[api.reader] = lambda: admin
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.fixture
async def crm() -> AsyncIterator[httpx.AsyncClient]:
    async with client({"crm": ScriptedConnector("crm", OK)}) as created:
        yield created


async def test_targets_are_listed_without_secrets(crm: httpx.AsyncClient) -> None:
    response = await crm.get("/v1/targets")

    assert response.status_code == 200
    assert response.json() == [
        {"name": "crm", "kind": "scim", "url": "https://crm.example.org/scim/v2"},
        {"name": "hr", "kind": "sql", "url": "sql:people"},
    ]


async def test_a_target_that_answers_is_healthy(crm: httpx.AsyncClient) -> None:
    response = await crm.get("/v1/targets/crm/health")

    assert response.status_code == 200
    assert response.json() == {"name": "crm", "healthy": True, "error": None}


@pytest.mark.parametrize(
    "error", [TargetUnavailable("crm: timed out"), TargetRejected("crm: 401 bad token")]
)
async def test_a_target_that_fails_is_unhealthy_with_its_error(error: Exception) -> None:
    async with client({"crm": ScriptedConnector("crm", error)}) as down:
        response = await down.get("/v1/targets/crm/health")

    assert response.status_code == 200
    assert response.json() == {"name": "crm", "healthy": False, "error": str(error)}


async def test_the_health_of_an_unknown_target_is_404(crm: httpx.AsyncClient) -> None:
    assert (await crm.get("/v1/targets/payroll/health")).status_code == 404


def test_every_route_needs_the_targets_read_permission() -> None:
    app = FastAPI()
    api.configure(app, cast(Runtime, SimpleNamespace(pool=None)), TARGETS, {})

    assert sorted(app.openapi()["paths"]) == [
        "/v1/reconciliations",
        "/v1/targets",
        "/v1/targets/{target}/health",
    ]
    assert [d.dependency for d in api.router.dependencies] == [api.reader]
