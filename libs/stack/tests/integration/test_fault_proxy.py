"""The fault proxy in front of a real scim2-server: passes, injects statuses, goes down."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from accord.stack.fault_proxy import FaultProxy
from accord.stack.network import free_port
from accord.stack.scim_target import ScimTarget

pytestmark = pytest.mark.integration

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def upstream(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ScimTarget]:
    """One scim2-server for the module's tests."""
    async with ScimTarget(log_dir=Path(tmp_path_factory.mktemp("scim"))) as target:
        yield target


@pytest_asyncio.fixture(loop_scope="session")
async def proxy(upstream: ScimTarget) -> AsyncIterator[FaultProxy]:
    """A started proxy in front of the upstream."""
    async with FaultProxy(upstream.base_url) as started:
        yield started


def client(proxy: FaultProxy, upstream: ScimTarget) -> httpx.AsyncClient:
    """A SCIM client talking to the upstream through the proxy."""
    return httpx.AsyncClient(
        base_url=f"{proxy.base_url}/v2",
        headers={"Authorization": f"Bearer {upstream.bearer_token}"},
        timeout=5,
    )


async def test_requests_pass_through_and_are_counted_by_method(
    proxy: FaultProxy, upstream: ScimTarget, unique: str
) -> None:
    async with client(proxy, upstream) as scim:
        created = await scim.post(
            "/Users", json={"schemas": [USER_SCHEMA], "userName": f"ada.{unique}"}
        )
        found = await scim.get("/Users", params={"filter": f'userName eq "ada.{unique}"'})
    assert created.status_code == 201, created.text
    assert created.headers["content-type"].startswith("application/scim+json")
    assert [r["id"] for r in found.json()["Resources"]] == [created.json()["id"]]
    assert proxy.count("POST") == 1
    assert proxy.count("GET") == 1
    assert proxy.count("POST", containing=f"ada.{unique}") == 1
    assert proxy.count("POST", containing="somebody.else") == 0
    assert proxy.count(forwarded=False) == 0


async def test_a_status_is_injected_n_times_with_retry_after(
    proxy: FaultProxy, upstream: ScimTarget
) -> None:
    proxy.status(429, times=2, retry_after=1)
    async with client(proxy, upstream) as scim:
        answers = [await scim.get("/ServiceProviderConfig") for _ in range(3)]
    assert [a.status_code for a in answers] == [429, 429, 200]
    assert answers[0].headers["retry-after"] == "1"
    assert answers[0].json()["status"] == "429"
    assert "fault proxy" in answers[0].json()["detail"]
    assert proxy.count("GET", forwarded=False) == 2
    assert proxy.count("GET") == 1


async def test_a_status_forever_until_passthrough(proxy: FaultProxy, upstream: ScimTarget) -> None:
    proxy.status(500)
    async with client(proxy, upstream) as scim:
        failing = [await scim.get("/ServiceProviderConfig") for _ in range(5)]
        proxy.passthrough()
        passing = await scim.get("/ServiceProviderConfig")
    assert [a.status_code for a in failing] == [500] * 5
    assert "retry-after" not in failing[0].headers
    assert passing.status_code == 200
    with pytest.raises(ValueError, match="times"):
        proxy.status(500, times=0)


async def test_down_refuses_connections_then_listens_on_the_same_port(
    proxy: FaultProxy, upstream: ScimTarget
) -> None:
    port = proxy.port
    async with client(proxy, upstream) as scim:
        assert (await scim.get("/ServiceProviderConfig")).status_code == 200
        await proxy.down(0.5)
        assert not proxy.is_up
        with pytest.raises(httpx.ConnectError):
            await scim.get("/ServiceProviderConfig")
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)
        await proxy.wait_up()
        assert proxy.is_up
        assert proxy.port == port
        assert (await scim.get("/ServiceProviderConfig")).status_code == 200
    assert proxy.count("GET") == 2


async def test_up_cuts_a_down_short(proxy: FaultProxy, upstream: ScimTarget) -> None:
    await proxy.down(3600)
    await proxy.up()
    await proxy.up()
    await proxy.wait_up()
    async with client(proxy, upstream) as scim:
        assert (await scim.get("/ServiceProviderConfig")).status_code == 200


async def test_an_unreachable_upstream_is_a_bad_gateway(upstream: ScimTarget) -> None:
    proxy = FaultProxy(f"http://127.0.0.1:{free_port()}")
    async with proxy, client(proxy, upstream) as scim:
        answer = await scim.get("/ServiceProviderConfig")
    assert answer.status_code == 502
    assert "ConnectError" in answer.text
    assert proxy.requests[0].status == 502


async def test_reset_forgets_requests_and_faults(proxy: FaultProxy, upstream: ScimTarget) -> None:
    proxy.status(500)
    async with client(proxy, upstream) as scim:
        await scim.get("/ServiceProviderConfig")
        proxy.reset()
        assert proxy.requests == []
        assert (await scim.get("/ServiceProviderConfig")).status_code == 200


async def test_a_malformed_request_is_refused(proxy: FaultProxy) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"NONSENSE\r\n\r\n")
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    assert answer.startswith(b"HTTP/1.1 400 Bad Request")
    assert proxy.requests == []
