"""The awaited callbacks' contract (effects registers, callback_api checks, the engine marks):
the same cases on the in-memory fake and on PostgreSQL (migration 0016)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

import asyncpg
import pytest
import pytest_asyncio

from accord.orchestrator.adapters.workflow_callbacks import PostgresCallbacks
from accord.orchestrator.workflows.callback_api import AwaitedCallback, CallbackState
from accord.orchestrator.workflows.effect_fakes import InMemoryCallbacks

from .contract_kit import rolled_back

pytestmark = pytest.mark.integration

ENV = {"HOOK_SECRET": "s3cret", "OTHER_SECRET": "rotated"}


class Callbacks(Protocol):
    async def register(self, run_id: str, task_id: str, *, token: str, secret_env: str) -> None: ...
    async def lookup(self, run_id: str, task_id: str) -> AwaitedCallback | None: ...
    async def mark(self, run_id: str, task_id: str, state: CallbackState) -> bool: ...


@pytest_asyncio.fixture(loop_scope="session", params=["fake", "postgres"])
async def callbacks(request: pytest.FixtureRequest, pool: asyncpg.Pool) -> AsyncIterator[Callbacks]:
    if request.param == "fake":
        yield InMemoryCallbacks(environ=ENV)
        return
    async with rolled_back(pool) as conn:
        yield PostgresCallbacks(conn, environ=ENV)


async def test_a_registered_callback_is_awaited_with_its_token_and_secret(
    callbacks: Callbacks,
) -> None:
    assert await callbacks.lookup("run-1", "hook") is None
    await callbacks.register("run-1", "hook", token="tok-1", secret_env="HOOK_SECRET")
    found = await callbacks.lookup("run-1", "hook")
    assert found == AwaitedCallback(CallbackState.AWAITING, secret=b"s3cret", token="tok-1")
    assert await callbacks.lookup("run-1", "other") is None


async def test_a_later_attempt_replaces_the_token_and_awaits_again(callbacks: Callbacks) -> None:
    await callbacks.register("run-1", "hook", token="tok-1", secret_env="HOOK_SECRET")
    assert await callbacks.mark("run-1", "hook", CallbackState.CLOSED)
    await callbacks.register("run-1", "hook", token="tok-2", secret_env="OTHER_SECRET")
    found = await callbacks.lookup("run-1", "hook")
    assert found == AwaitedCallback(CallbackState.AWAITING, secret=b"rotated", token="tok-2")


async def test_a_callback_is_delivered_once_and_a_closed_wait_takes_none(
    callbacks: Callbacks,
) -> None:
    await callbacks.register("run-1", "hook", token="tok", secret_env="HOOK_SECRET")
    assert await callbacks.mark("run-1", "hook", CallbackState.DELIVERED)
    assert not await callbacks.mark("run-1", "hook", CallbackState.DELIVERED)
    assert not await callbacks.mark("run-1", "hook", CallbackState.CLOSED)  # it came
    found = await callbacks.lookup("run-1", "hook")
    assert found is not None
    assert found.state is CallbackState.DELIVERED

    await callbacks.register("run-2", "hook", token="tok", secret_env="HOOK_SECRET")
    assert await callbacks.mark("run-2", "hook", CallbackState.CLOSED)
    assert not await callbacks.mark("run-2", "hook", CallbackState.DELIVERED)
    assert not await callbacks.mark("run-3", "hook", CallbackState.CLOSED)


async def test_without_its_secret_variable_nothing_can_be_checked(callbacks: Callbacks) -> None:
    await callbacks.register("run-1", "hook", token="tok", secret_env="UNSET_SECRET")
    assert await callbacks.lookup("run-1", "hook") is None
