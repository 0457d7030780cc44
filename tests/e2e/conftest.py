"""The whole platform, started once for the end-to-end tests, on the session's real parts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import pytest_asyncio

from accord.stack.platform import Platform, PlatformConfig
from accord.stack.testing import create_database

from .oidc_issuer import LocalIssuer

T = TypeVar("T")


@pytest.fixture(scope="session")
def oidc_issuer() -> Iterator[LocalIssuer]:
    """An OIDC issuer the platform's services trust."""
    issuer = LocalIssuer()
    issuer.start()
    yield issuer
    issuer.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def platform(
    kafka_bootstrap: str,
    postgres_server: str,
    oidc_issuer: LocalIssuer,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Platform]:
    """All four services, a scim2-server target, on the session broker and a fresh database."""
    home = Path(tmp_path_factory.mktemp("platform"))
    config = PlatformConfig.ephemeral(
        home,
        kafka_bootstrap_servers=kafka_bootstrap,
        database_url=await create_database(postgres_server, "accord_e2e"),
        extra_env={
            "ACCORD_LOG_LEVEL": "INFO",
            **oidc_issuer.env(),
            # Low enough for a test to reach, high enough for the pollers of other tests.
            "ACCORD_RATE_LIMIT_PER_S": "50",
            "ACCORD_RATE_LIMIT_BURST": "100",
            "ACCORD_AUTH_FAILURES_PER_MIN": "600",
            "ACCORD_AUTH_FAILURES_BURST": "100",
            # Leavers' accounts are deleted 2 s after the deletion; timers looked at often.
            "ACCORD_LEAVER_RETENTION_S": "2",
            "ACCORD_TIMER_POLL_S": "0.2",
            "ACCORD_SAGA_RETRY_BASE_S": "1",
            "ACCORD_SAGA_RETRY_CAP_S": "2",
        },
    )
    started = time.monotonic()
    platform = Platform(config)
    try:
        await platform.start()
    except BaseException:
        await platform.stop()
        _dump_logs(home)
        raise
    print(f"\nplatform ready in {time.monotonic() - started:.1f} s")
    try:
        yield platform
    finally:
        await platform.stop()


def _dump_logs(home: Path) -> None:
    for log in sorted((home / "logs").glob("*.log")):
        print(f"--- {log.name}")
        print("\n".join(log.read_text().splitlines()[-30:]))


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, timeout: float = 30.0, what: str = "condition"
) -> T:
    """Poll probe until it returns something truthy; fail with `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.1)


async def scim_users(platform: Platform, user_name: str) -> list[dict[str, Any]]:
    """Users named user_name in the demo SCIM target."""
    async with httpx.AsyncClient(
        base_url=f"{platform.scim.base_url}/v2",
        headers={"Authorization": f"Bearer {platform.scim.bearer_token}"},
        timeout=5,
    ) as client:
        response = await client.get("/Users", params={"filter": f'userName eq "{user_name}"'})
        response.raise_for_status()
        resources: list[dict[str, Any]] = response.json().get("Resources", [])
        return resources


async def target_account(platform: Platform, user_name: str, **expected: Any) -> dict[str, Any]:
    """The user's one account in the demo target, once it shows the expected values."""

    async def probe() -> dict[str, Any] | None:
        found = await scim_users(platform, user_name)
        assert len(found) <= 1, f"{len(found)} accounts for {user_name}"
        if found and all(found[0].get(k) == v for k, v in expected.items()):
            return found[0]
        return None

    return await eventually(probe, what=f"{user_name}'s account with {expected}")


async def no_account(platform: Platform, user_name: str) -> None:
    """Wait until the demo target holds no account of that name."""

    async def gone() -> bool:
        return await scim_users(platform, user_name) == []

    await eventually(gone, what=f"{user_name}'s account to go")


def api_client(platform: Platform, service: str, token: str | None = None) -> httpx.AsyncClient:
    """An HTTP client for one service's API, as the platform's admin unless given a token."""
    return httpx.AsyncClient(
        base_url=platform.endpoints()[service],
        headers={"Authorization": f"Bearer {token or platform.admin_token}"},
        timeout=5,
    )


async def audit_events(platform: Platform, **filters: str) -> list[dict[str, Any]]:
    """Audit records matching the filters, from the auditor's API."""
    async with api_client(platform, "auditor") as client:
        response = await client.get("/v1/audit/events", params={**filters, "limit": "1000"})
        response.raise_for_status()
        items: list[dict[str, Any]] = response.json()["items"]
        return items
