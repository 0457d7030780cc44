"""benchlib/free_target.py: the near-free SCIM target answers what the provisioner's SCIM
connector and the benchmark's account check ask, in process on a free port."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from pydantic import SecretStr

from accord.events import Profile
from accord.provisioner.adapters.scim import ScimConnector

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from benchlib import free_target
from benchlib.free_phase import retargeted
from benchlib.target import accounts_of_run


@pytest_asyncio.fixture
async def base_url() -> AsyncIterator[str]:
    store = free_target.Store()
    server = await asyncio.start_server(
        lambda r, w: free_target.serve_connection(store, r, w), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}/v2"
        server.close()


def profile(name: str) -> Profile:
    return Profile(user_name=name, given_name="Ada", family_name="Byron", email="a@example.com")


async def test_a_joiner_is_created_once_and_found_again(base_url: str) -> None:
    connector = ScimConnector("free", base_url, SecretStr("ignored"))
    try:
        await connector.health()
        created = await connector.ensure_account("u-1", profile("bench.r.1"))
        again = await connector.ensure_account("u-1", profile("bench.r.1"))
        account = await connector.get_account("u-1", "bench.r.1")
    finally:
        await connector.close()

    assert not created.already_existed
    assert again.already_existed
    assert again.account_id == created.account_id
    assert account is not None
    assert account.owner == "u-1"
    assert account.active


async def test_the_other_calls_of_the_connector(base_url: str) -> None:
    connector = ScimConnector("free", base_url, None)
    try:
        await connector.ensure_account("u-2", profile("bench.r.2"))
        await connector.update_account("u-2", profile("bench.r.2"))
        await connector.disable_account("u-2", "bench.r.2")
        disabled = await connector.get_account("u-2", "bench.r.2")
        await connector.add_member("u-2", "bench.r.2", "staff")
        members = await connector.list_members("staff")
        await connector.remove_member("u-2", "bench.r.2", "staff")
        left = await connector.list_members("staff")
        await connector.delete_account("u-2", "bench.r.2")
        gone = await connector.find_account("u-2", "bench.r.2")
    finally:
        await connector.close()

    assert disabled is not None
    assert not disabled.active
    assert members == [disabled.account_id]
    assert left == []
    assert gone is None


async def test_the_benchmarks_check_finds_the_run_by_prefix(base_url: str) -> None:
    connector = ScimConnector("free", base_url, None)
    try:
        for i in range(5):
            await connector.ensure_account(f"u-{i}", profile(f"bench.run.{i}"))
        await connector.ensure_account("other", profile("someone.else"))
    finally:
        await connector.close()
    expected = {f"bench.run.{i}" for i in range(5)}

    check = await accounts_of_run(base_url, "free", "bench.run.", expected)
    short = await accounts_of_run(base_url, "free", "bench.run.", expected | {"bench.run.9"})

    assert check["ok"], check
    assert check["accounts"] == 5
    assert not short["ok"]
    assert short["missing"] == 1


def test_the_targets_file_is_pointed_at_another_url() -> None:
    text = "targets:\n  - name: scim-demo\n    url: http://127.0.0.1:1/v2\n"

    assert "url: http://127.0.0.1:2/v2\n" in retargeted(
        text, "http://127.0.0.1:1/v2", "http://127.0.0.1:2/v2"
    )


def test_lookups_follow_replacements_and_deletions() -> None:
    """The eq filters read an index: it must follow every write."""
    store = free_target.Store()
    status, created = free_target.answer(store, "POST", "/v2/Users", b'{"userName": "a"}')
    user = f"/v2/Users/{created['id']}"

    def names(name: str) -> int:
        query = f'/v2/Users?filter=userName eq "{name}"'
        return int(free_target.answer(store, "GET", query, b"")[1]["totalResults"])

    assert status == 201
    assert free_target.answer(store, "POST", "/v2/Users", b'{"userName": "a"}')[0] == 409
    free_target.answer(store, "PUT", user, b'{"userName": "b"}')
    assert (names("a"), names("b")) == (0, 1)
    patch = b'{"Operations": [{"op": "replace", "path": "userName", "value": "c"}]}'
    free_target.answer(store, "PATCH", user, patch)
    assert (names("b"), names("c")) == (0, 1)
    free_target.answer(store, "DELETE", user, b"")
    assert names("c") == 0
    assert free_target.answer(store, "POST", "/v2/Users", b'{"userName": "c"}')[0] == 201
