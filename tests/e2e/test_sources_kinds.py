"""The same flow from a PostgreSQL view, a MariaDB table and an LDAP directory: a first run
creates the accounts, a second (one mover, one leaver) changes exactly those.

Each source is a real server the session starts (embedded PostgreSQL, MariaDB, slapd), read
by `accord sources run` beside the platform with its secret in the command's environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncmy
import asyncpg
import ldap3
import pytest

from accord.stack.ldap_target import LdapTarget
from accord.stack.platform import Platform
from accord.stack.testing import create_database

from .sources_kit import (
    MAPPINGS,
    accounts_become,
    expected_accounts,
    person,
    run_id_of,
    sources_cli,
    sources_yaml,
)

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

PEOPLE = 12
SECRET = "HR_SECRET"
#: One leaver of 12 is 8.3 %: past the default 5 %, within these.
SAFETY = {"max_deactivations_percent": 20, "max_deletions_percent": 20}

Loader = Callable[[list[dict[str, str]]], Awaitable[None]]


async def postgres_view(server: str) -> tuple[dict[str, Any], str, Loader]:
    dsn = await create_database(server, "hr_source")

    async def load(rows: list[dict[str, str]]) -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS staff (id text PRIMARY KEY, first text, last text,"
                " mail text, dept text, job text);"
                " CREATE OR REPLACE VIEW workers AS SELECT * FROM staff; TRUNCATE staff"
            )
            await conn.executemany(
                "INSERT INTO staff VALUES ($1, $2, $3, $4, $5, $6)", [_values(r) for r in rows]
            )
        finally:
            await conn.close()

    return {"kind": "sql", "sql": {"dsn_env": SECRET, "view": "workers"}}, dsn, load


async def mariadb_table(server: str) -> tuple[dict[str, Any], str, Loader]:
    name = f"hr_{uuid.uuid4().hex[:8]}"
    parts = urlsplit(server)

    async def connect(database: str | None) -> Any:
        return await asyncmy.connect(
            host=parts.hostname, port=parts.port, user=parts.username,
            password=parts.password, database=database, autocommit=True,
        )  # fmt: skip

    conn = await connect(None)
    async with conn.cursor() as cursor:
        await cursor.execute(f"CREATE DATABASE {name}")
    conn.close()

    async def load(rows: list[dict[str, str]]) -> None:
        conn = await connect(name)
        try:
            async with conn.cursor() as cursor:
                await cursor.execute(
                    "CREATE TABLE IF NOT EXISTS workers (id varchar(32) PRIMARY KEY,"
                    " first text, last text, mail text, dept text, job text)"
                )
                await cursor.execute("DELETE FROM workers")
                await cursor.executemany(
                    "INSERT INTO workers VALUES (%s, %s, %s, %s, %s, %s)",
                    [_values(r) for r in rows],
                )
        finally:
            conn.close()

    dsn = server.rsplit("/", 1)[0] + f"/{name}"
    return {"kind": "sql", "sql": {"dsn_env": SECRET, "view": "workers"}}, dsn, load


async def ldap_subtree(target: LdapTarget) -> tuple[dict[str, Any], str, Loader]:
    base = f"ou=hr-{uuid.uuid4().hex[:8]},{target.people_dn}"
    host = urlsplit(target.url)

    @contextlib.contextmanager
    def connection() -> Iterator[ldap3.Connection]:
        # ldap3's own `with` leaves a connection bound at its start bound (and its socket
        # open) at the end: unbind it here.
        server = ldap3.Server(host.hostname, port=host.port, get_info=ldap3.NONE)
        conn = ldap3.Connection(server, target.bind_dn, target.password, auto_bind=True)
        try:
            yield conn
        finally:
            conn.unbind()

    with connection() as conn:
        assert conn.add(base, ["organizationalUnit"]), conn.result

    async def load(rows: list[dict[str, str]]) -> None:
        with connection() as conn:
            conn.search(base, "(objectClass=inetOrgPerson)", attributes=["employeeNumber"])
            present = {str(entry.employeeNumber): entry.entry_dn for entry in conn.entries}
            wanted = {row["id"]: row for row in rows}
            for key, dn in present.items():
                if key not in wanted:
                    assert conn.delete(dn), conn.result
            for key, row in wanted.items():
                attributes = {
                    "givenName": row["first"], "sn": row["last"], "mail": row["mail"],
                    "departmentNumber": row["dept"], "title": row["job"],
                    "cn": f"{row['first']} {row['last']}", "employeeNumber": key, "uid": key,
                }  # fmt: skip
                dn = f"uid={key},{base}"
                if key in present:
                    changes = {k: [(ldap3.MODIFY_REPLACE, [v])] for k, v in attributes.items()}
                    assert conn.modify(dn, changes), conn.result
                else:
                    assert conn.add(dn, ["inetOrgPerson"], attributes), conn.result

    source = {
        "kind": "ldap",
        "ldap": {
            "url": target.url,
            "bind_dn": target.bind_dn,
            "password_env": SECRET,
            "base_dn": base,
            "scope": "one",
            "filter": "(objectClass=inetOrgPerson)",
            "attributes": [
                "employeeNumber",
                "givenName",
                "sn",
                "mail",
                "departmentNumber",
                "title",
            ],
        },
        "key": "employeeNumber",
        "mappings": {
            "user_name": 'lower(row.givenName) + "." + lower(row.sn)',
            "given_name": "givenName",
            "family_name": "sn",
            "email": "mail",
            "employee_number": "employeeNumber",
            "department": "departmentNumber",
            "title": "title",
        },
    }
    return source, target.password, load


def _values(row: dict[str, str]) -> tuple[str, ...]:
    return (row["id"], row["first"], row["last"], row["mail"], row["dept"], row["job"])


async def flow(
    platform: Platform, kind: str, opened: tuple[dict[str, Any], str, Loader], folder: Path
) -> None:
    """A first run creates the accounts; a second, with one mover and one leaver, changes
    exactly those."""
    source, secret, load = opened
    tag = uuid.uuid4().hex[:10]
    name = f"{kind}-{tag}"
    config = folder / f"{kind}.yaml"
    sources_yaml(config, {"name": name, "key": "id", "mappings": MAPPINGS, "safety": SAFETY,
                          **source})  # fmt: skip
    env = {SECRET: secret}
    rows = [person(tag, n) for n in range(1, PEOPLE + 1)]
    await load(rows)
    out = await sources_cli(platform, "run", name, "--file", str(config), env=env)
    assert f"published {PEOPLE} events: {PEOPLE} rows read; {PEOPLE} created" in out, kind
    await accounts_become(platform, tag, expected_accounts(tag, rows))

    changed = [rows[0], person(tag, 2, job="Head of Things"), *rows[3:]]  # person 3 leaves
    await load(changed)
    out = await sources_cli(platform, "run", name, "--file", str(config), env=env)
    assert "0 created, 1 updated, 0 linked, 0 deactivated, 0 reactivated, 1 deleted" in out, kind
    assert run_id_of(out)
    await accounts_become(platform, tag, expected_accounts(tag, changed))


async def test_a_database_and_a_directory_source_create_and_change_the_accounts(
    platform: Platform,
    postgres_server: str,
    mariadb_server: str,
    ldap_target: LdapTarget,
    tmp_path: Path,
) -> None:
    # The three kinds side by side: each its own source, people and accounts.
    await asyncio.gather(
        flow(platform, "postgresql", await postgres_view(postgres_server), tmp_path),
        flow(platform, "mariadb", await mariadb_table(mariadb_server), tmp_path),
        flow(platform, "ldap", await ldap_subtree(ldap_target), tmp_path),
    )
