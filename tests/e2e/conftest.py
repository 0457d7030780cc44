"""The whole platform, started once for the end-to-end tests, on the session's real parts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer

from accord.events import topics
from accord.events.brokers import broker_profile
from accord.stack.fault_proxy import FaultProxy
from accord.stack.ldap_target import LdapTarget
from accord.stack.platform import DepartmentTarget, LdapDirectory, Platform, PlatformConfig
from accord.stack.scim_target import ScimTarget
from accord.stack.testing import create_database

from .oidc_issuer import LocalIssuer

T = TypeVar("T")

CHAOS_DEPARTMENT = "Chaos"
"""Joiners of this department get an account in the chaos target only."""
CHAOS_MAX_ATTEMPTS = 3
"""The provisioner's attempts per request to the chaos target."""
OUTAGE_DEPARTMENT = "Outage"
"""Joiners of this department get an account in the outage target (and the demo target)."""
LDAP_DEPARTMENT = "Security"
"""Joiners of this department get an LDAP account (slapd) as well as the demo account."""
LDAP_TARGET = "ldap-corp"
SAGA_TRANSIENT_ROUNDS = 6
"""Rounds a saga failed for transient reasons only retries by itself, 1 s then 2 s apart:
11 s of waiting in all, more than the chaos target's 10 s outage."""


@dataclass(frozen=True)
class Chaos:
    """The chaos target: a scim2-server of its own behind a fault proxy the tests steer."""

    upstream: ScimTarget
    proxy: FaultProxy

    def target(self) -> DepartmentTarget:
        """How the platform declares it: the proxy's address, a breaker that stays closed."""
        return DepartmentTarget(
            name="scim-chaos",
            url=f"{self.proxy.base_url}/v2",
            token=self.upstream.bearer_token,
            department=CHAOS_DEPARTMENT,
            max_attempts=CHAOS_MAX_ATTEMPTS,
            # Far above the failures of any scenario: an open circuit would mask them.
            breaker_threshold=1000,
        )


@dataclass(frozen=True)
class Outage:
    """A target whose circuit opens: a scim2-server of its own behind a fault proxy, with a
    breaker that opens after 3 failures and tries again 2 s later."""

    upstream: ScimTarget
    proxy: FaultProxy

    def target(self) -> DepartmentTarget:
        """How the platform declares it."""
        return DepartmentTarget(
            name="scim-outage",
            url=f"{self.proxy.base_url}/v2",
            token=self.upstream.bearer_token,
            department=OUTAGE_DEPARTMENT,
            max_attempts=1,
            breaker_threshold=3,
            breaker_cooldown_s=2.0,
        )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def outage_parts(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Outage]:
    """The outage target's proxy, listening from the start; its scim2-server starts when a
    test asks for `outage`."""
    upstream = ScimTarget(log_dir=Path(tmp_path_factory.mktemp("outage")))
    proxy = FaultProxy(upstream.base_url)
    await proxy.start()
    try:
        yield Outage(upstream, proxy)
    finally:
        await proxy.stop()
        await upstream.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def outage(outage_parts: Outage, platform: Platform) -> Outage:
    """The outage target with its scim2-server started (stopped with `outage_parts`)."""
    await outage_parts.upstream.start()
    return outage_parts


@pytest.fixture(scope="session")
def oidc_issuer() -> Iterator[LocalIssuer]:
    """An OIDC issuer the platform's services trust."""
    issuer = LocalIssuer()
    issuer.start()
    yield issuer
    issuer.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def chaos_parts(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Chaos]:
    """The chaos target's proxy, listening from the start (the platform needs its address);
    its scim2-server starts only when a test asks for `chaos`."""
    upstream = ScimTarget(log_dir=Path(tmp_path_factory.mktemp("chaos")))
    proxy = FaultProxy(upstream.base_url)
    await proxy.start()
    try:
        yield Chaos(upstream, proxy)
    finally:
        await proxy.stop()
        await upstream.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def chaos_started(chaos_parts: Chaos) -> Chaos:
    """The chaos target with its scim2-server started (stopped with `chaos_parts`)."""
    await chaos_parts.upstream.start()
    return chaos_parts


@pytest_asyncio.fixture(loop_scope="session")
async def chaos(chaos_started: Chaos, platform: Platform) -> AsyncIterator[Chaos]:
    """The chaos target passing through with no requests counted; healed after the test."""
    chaos_started.proxy.reset()
    yield chaos_started
    await chaos_started.proxy.up()
    chaos_started.proxy.reset()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def platform(
    kafka_bootstrap: str,
    postgres_server: str,
    oidc_issuer: LocalIssuer,
    chaos_parts: Chaos,
    outage_parts: Outage,
    ldap_target: LdapTarget,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Platform]:
    """All six services, a scim2-server target, the chaos target and an LDAP target (slapd),
    on the session broker and a fresh database."""
    home = Path(tmp_path_factory.mktemp("platform"))
    config = PlatformConfig.ephemeral(
        home,
        kafka_bootstrap_servers=kafka_bootstrap,
        # The session's broker: its kind is in ACCORD_BROKER once kafka_bootstrap started it.
        broker=broker_profile().name,
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
            "ACCORD_SAGA_TRANSIENT_ROUNDS": str(SAGA_TRANSIENT_ROUNDS),
        },
        department_targets=[chaos_parts.target(), outage_parts.target()],
        ldap_directories=[
            LdapDirectory(
                name=LDAP_TARGET,
                url=ldap_target.url,
                bind_dn=ldap_target.bind_dn,
                password=ldap_target.password,
                people_dn=ldap_target.people_dn,
                groups_dn=ldap_target.groups_dn,
                department=LDAP_DEPARTMENT,
            )
        ],
    )
    async with running(config) as platform:
        yield platform


@contextlib.asynccontextmanager
async def running(config: PlatformConfig, where: str = "") -> AsyncIterator[Platform]:
    """A started platform, stopped on leaving; if it does not start, its logs' tails are
    printed and the platform is stopped."""
    started = time.monotonic()
    platform = Platform(config)
    try:
        await platform.start()
    except BaseException:
        await platform.stop()
        _dump_logs(config.home)
        raise
    print(f"\nplatform ready{where} in {time.monotonic() - started:.1f} s ({config.home})")
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


def scim_client(target: ScimTarget, timeout: float = 5) -> httpx.AsyncClient:
    """An HTTP client for a scim2-server's SCIM API, with its bearer token."""
    return httpx.AsyncClient(
        base_url=f"{target.base_url}/v2",
        headers={"Authorization": f"Bearer {target.bearer_token}"},
        timeout=timeout,
    )


async def users_in(target: ScimTarget, user_name: str) -> list[dict[str, Any]]:
    """Users named user_name in a scim2-server, asked directly."""
    async with scim_client(target) as client:
        response = await client.get("/Users", params={"filter": f'userName eq "{user_name}"'})
        response.raise_for_status()
        resources: list[dict[str, Any]] = response.json().get("Resources", [])
        return resources


async def scim_users(platform: Platform, user_name: str) -> list[dict[str, Any]]:
    """Users named user_name in the demo SCIM target."""
    return await users_in(platform.scim, user_name)


async def account_in(
    target: ScimTarget, user_name: str, *, timeout: float = 30.0, **expected: Any
) -> dict[str, Any]:
    """The user's one account in a scim2-server, once it shows the expected values."""

    async def probe() -> dict[str, Any] | None:
        found = await users_in(target, user_name)
        assert len(found) <= 1, f"{len(found)} accounts for {user_name}"
        if found and all(found[0].get(k) == v for k, v in expected.items()):
            return found[0]
        return None

    return await eventually(probe, timeout=timeout, what=f"{user_name}'s account with {expected}")


async def target_account(platform: Platform, user_name: str, **expected: Any) -> dict[str, Any]:
    """The user's one account in the demo target, once it shows the expected values."""
    return await account_in(platform.scim, user_name, **expected)


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
    """Every audit record matching the filters, from the auditor's API, page after page."""
    items: list[dict[str, Any]] = []
    after: int | None = 0
    async with api_client(platform, "auditor") as client:
        while after is not None:
            params = {**filters, "limit": "1000", "after": str(after)}
            response = await client.get("/v1/audit/events", params=params)
            response.raise_for_status()
            page = response.json()
            items += page["items"]
            after = page["next_after"]
    return items


async def joiner_saga(platform: Platform, user_id: str) -> dict[str, Any] | None:
    """The identity's joiner saga as the orchestrator's API shows it, if there is one."""
    async with api_client(platform, "orchestrator") as client:
        response = await client.get("/v1/sagas", params={"subject_id": user_id})
        response.raise_for_status()
    found = [s for s in response.json()["items"] if s["saga_type"] == "joiner"]
    assert len(found) <= 1, f"{len(found)} joiner sagas for {user_id}"
    return found[0] if found else None


async def accord_cli(platform: Platform, *args: str) -> tuple[int, str, str]:
    """Run the `accord` command against the platform: exit status, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "accord.events.cli",
        *args,
        # What the services get: the database, the broker, the targets file and its secrets.
        env=platform.service_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def publish_user_created_without_user_name(
    kafka_bootstrap: str, user_id: str, event_id: str
) -> None:
    """A user.created whose data lacks its user_name: every group that reads the topic
    dead-letters it (a source system's malformed event)."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            topics.USER_CREATED,
            key=user_id.encode(),
            value=json.dumps({"user_id": user_id}).encode(),
            headers=[
                ("ce_specversion", b"1.0"),
                ("ce_id", event_id.encode()),
                ("ce_source", b"urn:test:broken-hr"),
                ("ce_type", b"user.created"),
                ("ce_time", b"2026-11-25T10:00:00+00:00"),
                ("ce_subject", user_id.encode()),
                ("ce_sequence", b"1"),
            ],
        )
    finally:
        await producer.stop()
