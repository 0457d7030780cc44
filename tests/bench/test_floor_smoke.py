"""benchmarks/floor.py end to end on 50 events per HTTP client, on the session's real parts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio

from accord.stack.scim_target import ScimTarget
from accord.stack.testing import load_script

pytestmark = pytest.mark.integration

COUNT = 50


floor = load_script(
    Path(__file__).resolve().parents[2] / "benchmarks" / "floor.py", "accord_bench_floor"
)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def target() -> AsyncIterator[ScimTarget]:
    async with ScimTarget() as started:
        yield started


async def users_in(target: ScimTarget) -> int:
    async with httpx.AsyncClient(
        headers={"Authorization": f"Bearer {target.bearer_token}"}, timeout=10
    ) as client:
        response = await client.get(f"{target.base_url}/v2/Users", params={"count": 0})
    response.raise_for_status()
    total = response.json()["totalResults"]
    assert isinstance(total, int)
    return total


async def floor_schemas(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'floor\\_%'")
    finally:
        await conn.close()
    return [row["nspname"] for row in rows]


@pytest.mark.parametrize("http_client", floor.HTTP_CLIENTS)
async def test_floor_pushes_every_event_through(
    http_client: str, kafka_bootstrap: str, fresh_database: str, target: ScimTarget
) -> None:
    before = await users_in(target)
    messages: list[str] = []

    result = await floor.run_floor(
        bootstrap_servers=kafka_bootstrap,
        dsn=fresh_database,
        scim_base_url=f"{target.base_url}/v2",
        scim_token=target.bearer_token,
        count=COUNT,
        concurrency=4,
        http_client=http_client,
        progress=messages.append,
    )

    # events is the audit table's row count, read just before the run drops its schema.
    assert result.events == COUNT
    assert result.http_client == http_client
    assert result.concurrency == 4
    assert result.seconds > 0
    assert result.cpu_seconds >= 0
    assert await users_in(target) - before == COUNT
    assert await floor_schemas(fresh_database) == []
    assert messages


async def test_floor_refuses_an_unknown_http_client() -> None:
    with pytest.raises(ValueError, match="http_client"):
        await floor.run_floor(
            bootstrap_servers="127.0.0.1:1",
            dsn="postgresql://nobody@127.0.0.1:1/none",
            scim_base_url="http://127.0.0.1:1/v2",
            scim_token="t",
            http_client="requests",
        )


class ResetOnceHttp:
    """A target whose first answer is lost although it created the user."""

    def __init__(self) -> None:
        self.posts = 0

    async def post_user(self, body: bytes) -> tuple[int, str]:
        self.posts += 1
        if self.posts == 1:
            raise floor._Transient("ReadError")
        return 409, '{"detail": "userName is not unique"}'

    async def find_user(self, user_name: str) -> tuple[int, str]:
        return 200, '{"Resources": [{"id": "existing-id"}]}'

    async def aclose(self) -> None:
        return None


async def test_a_retried_post_adopts_the_user_its_lost_answer_created() -> None:
    http, retries = ResetOnceHttp(), floor._Retries()
    event = {"user_name": "floor.x.1", "user_id": "u-x-1"}

    assert await floor._create_user(http, event, retries) == "existing-id"
    assert http.posts == 2
    assert retries.describe() == "retried 1 x ReadError"
