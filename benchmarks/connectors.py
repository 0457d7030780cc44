"""Operations per second of each connector kind against its real target, on this machine.

Creates N accounts (look-up-then-create, as the provisioner does), one at a time and then
8 at a time, then lists every account (what reconciliation reads), against scim2-server,
slapd, a PostgreSQL table and the reference webhook receiver (in this process, so it
shares the CPU with the connector). Usage: python benchmarks/connectors.py [N]
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
from pydantic import SecretStr

from accord.events import Profile
from accord.provisioner.adapters.ldap import LdapConnector, LdapSettings
from accord.provisioner.adapters.scim import ScimConnector
from accord.provisioner.adapters.sql import SqlConnector, SqlSettings
from accord.provisioner.adapters.webhook import WebhookConnector, WebhookSettings
from accord.provisioner.ports import Connector
from accord.provisioner.webhook_receiver import serve
from accord.stack.ldap_target import LdapTarget
from accord.stack.postgres import EmbeddedPostgres
from accord.stack.scim_target import ScimTarget


async def measure(name: str, connector: Connector, count: int) -> None:
    for concurrency in (1, 8):
        elapsed = await _creates(connector, count, concurrency)
        print(f"{name:<8} concurrency {concurrency}: {count / elapsed:7.0f} creates/s")
    started = time.perf_counter()
    listed = sum([1 async for _ in connector.list_accounts(page_size=200)])
    elapsed = time.perf_counter() - started
    print(f"{name:<8} list {listed} accounts: {listed / elapsed:7.0f} accounts/s")
    await connector.close()


async def _creates(connector: Connector, count: int, concurrency: int) -> float:
    """Seconds to create count new accounts, at most concurrency at a time."""
    run = uuid.uuid4().hex[:6]
    gate = asyncio.Semaphore(concurrency)

    async def create(i: int) -> None:
        async with gate:
            profile = Profile(user_name=f"b{run}.{i}", given_name="Bench", title="t")
            await connector.ensure_account(f"u-{run}-{i}", profile)

    started = time.perf_counter()
    await asyncio.gather(*(create(i) for i in range(count)))
    return time.perf_counter() - started


async def main(count: int) -> None:
    async with ScimTarget() as scim:
        url = f"{scim.base_url}/v2"
        await measure("scim", ScimConnector("bench", url, SecretStr(scim.bearer_token)), count)
    async with LdapTarget() as ldap:
        settings = LdapSettings(ldap.url, ldap.bind_dn, SecretStr(ldap.password), ldap.people_dn)
        await measure("ldap", LdapConnector("bench", settings), count)
    with tempfile.TemporaryDirectory() as home:
        await sql(Path(home), count, measure)
    secret = secrets.token_hex(16)
    async with serve(secret.encode()) as receiver:
        settings = WebhookSettings(receiver.url, SecretStr(secret), 10.0)
        await measure("webhook", WebhookConnector("bench", settings), count)


async def sql(
    home: Path, count: int, run: Callable[[str, Connector, int], Awaitable[None]]
) -> None:
    postgres = EmbeddedPostgres(home / "pg")
    await postgres.start()
    try:
        conn = await asyncpg.connect(postgres.dsn)
        await conn.execute(
            "CREATE SCHEMA app; CREATE TABLE app.users (id bigserial PRIMARY KEY,"
            " accord_id text UNIQUE, user_name text NOT NULL UNIQUE, display_name text,"
            " email text, title text, department text, active boolean NOT NULL DEFAULT true)"
        )
        await conn.close()
        settings = SqlSettings(
            dsn=SecretStr(postgres.dsn),
            table="app.users",
            columns={"display_name": "display_name", "email": "email", "title": "title"},
        )
        await run("sql", SqlConnector("bench", settings), count)
    finally:
        await postgres.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 300))
