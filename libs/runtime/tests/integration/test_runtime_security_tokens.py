"""API tokens in a real PostgreSQL: issue, verify, revoke, expire, list; and `accord token`."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from accord.events.cli import main
from accord.runtime.security import api_tokens
from accord.runtime.security.api_tokens import InvalidToken, IssuedToken, TokenStore
from accord.runtime.security.roles import Permission, Role
from accord.stack.testing import run_accord as accord

pytestmark = pytest.mark.integration

#: Python's clock against PostgreSQL's now(): how far created_at + lifetime may be off.
SLACK = timedelta(seconds=5)
TOKEN = re.compile(r"acc_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")


def secret_of(issued: IssuedToken) -> str:
    match = TOKEN.fullmatch(issued.token)
    assert match is not None, issued.token
    return match.group(2)


@pytest_asyncio.fixture
async def pool(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    await api_tokens.migrate(fresh_database)
    pool = await asyncpg.create_pool(fresh_database, min_size=1, max_size=3)
    assert pool is not None
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
def store(pool: asyncpg.Pool) -> TokenStore:
    return TokenStore(pool)


async def expire(pool: asyncpg.Pool, token_id: str) -> None:
    """Move a token into the past, keeping CHECK (expires_at > created_at)."""
    result = await pool.execute(
        "UPDATE accord_auth.api_tokens SET created_at = now() - interval '2 days',"
        " expires_at = now() - interval '1 day' WHERE token_id = $1",
        token_id,
    )
    assert result == "UPDATE 1"


# --- migrate ---------------------------------------------------------------------------------


async def test_migrate_is_idempotent(fresh_database: str) -> None:
    await api_tokens.migrate(fresh_database)
    await api_tokens.migrate(fresh_database)
    await asyncio.gather(*(api_tokens.migrate(fresh_database) for _ in range(3)))
    conn = await asyncpg.connect(fresh_database)
    try:
        applied = await conn.fetch(
            "SELECT package, name FROM accord_auth.schema_migrations ORDER BY name"
        )
        assert [(r["package"], r["name"]) for r in applied] == [
            (api_tokens.MIGRATIONS, "0001_api_tokens.sql")
        ]
        assert await conn.fetchval("SELECT to_regclass('accord_auth.api_tokens')") is not None
        # Only the token table: no inbox/outbox of the runtime in the shared auth schema.
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'accord_auth'"
        )
        assert {r["table_name"] for r in tables} == {"api_tokens", "schema_migrations"}
    finally:
        await conn.close()


async def test_migrate_again_keeps_the_tokens(fresh_database: str, store: TokenStore) -> None:
    issued = await store.issue("keep", {Role.AUDITOR})
    await api_tokens.migrate(fresh_database)
    assert (await store.verify(issued.token)).subject == "keep"


# --- issue and verify ------------------------------------------------------------------------


async def test_issue_then_verify_gives_the_caller(store: TokenStore) -> None:
    issued = await store.issue(
        "user-42",
        {Role.OPERATOR, Role.APPROVER},
        scopes={Permission.IDENTITIES_READ, Permission.POLICIES_READ},
        lifetime=timedelta(days=7),
        description="ci pipeline",
    )
    match = TOKEN.fullmatch(issued.token)
    assert match is not None
    assert match.group(1) == issued.info.token_id

    caller = await store.verify(issued.token)
    assert caller.subject == "user-42"
    assert caller.roles == {Role.OPERATOR, Role.APPROVER}
    assert caller.scopes == frozenset({Permission.IDENTITIES_READ, Permission.POLICIES_READ})
    assert caller.kind == "api-token"
    assert caller.credential_id == issued.info.token_id
    assert caller.permissions == {Permission.IDENTITIES_READ, Permission.POLICIES_READ}

    info = issued.info
    assert info.subject == "user-42"
    assert info.roles == ("approver", "operator")
    assert info.scopes == ("identities:read", "policies:read")
    assert info.description == "ci pipeline"
    assert info.revoked_at is None
    assert info.expires_at - info.created_at == pytest.approx(timedelta(days=7), abs=SLACK)


async def test_a_token_without_scopes_has_all_its_roles_grant(store: TokenStore) -> None:
    issued = await store.issue("admin-1", {Role.ADMIN})
    assert issued.info.scopes is None
    caller = await store.verify(issued.token)
    assert caller.scopes is None
    assert caller.permissions == frozenset(Permission)
    assert issued.info.expires_at - issued.info.created_at == pytest.approx(
        timedelta(days=90), abs=SLACK
    )


async def test_tokens_are_unique(store: TokenStore) -> None:
    tokens = [await store.issue("same", {Role.AUDITOR}) for _ in range(5)]
    assert len({t.token for t in tokens}) == 5
    assert len({t.info.token_id for t in tokens}) == 5
    assert len({secret_of(t) for t in tokens}) == 5


async def test_the_secret_is_stored_nowhere(store: TokenStore, pool: asyncpg.Pool) -> None:
    issued = await store.issue("user-7", {Role.ADMIN}, description="no secrets here")
    secret = secret_of(issued)
    rows = await pool.fetch("SELECT * FROM accord_auth.api_tokens")
    assert len(rows) == 1
    for column, value in rows[0].items():
        assert secret not in str(value), column
        assert issued.token not in str(value), column
    as_text = await pool.fetchval("SELECT t::text FROM accord_auth.api_tokens t")
    assert secret not in as_text
    # What is kept is a SHA-256 of the secret.
    assert rows[0]["secret_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    # Nor is it in the returned info.
    assert secret not in repr(issued.info)


async def test_a_wrong_secret_for_a_real_id_is_invalid(store: TokenStore) -> None:
    issued = await store.issue("user-8", {Role.ADMIN})
    secret = secret_of(issued)
    wrong = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    with pytest.raises(InvalidToken, match="unknown API token"):
        await store.verify(f"acc_{issued.info.token_id}_{wrong}")


async def test_an_unknown_id_is_invalid(store: TokenStore) -> None:
    issued = await store.issue("user-9", {Role.ADMIN})
    other_id = "0" * 16 if issued.info.token_id != "0" * 16 else "1" * 16
    with pytest.raises(InvalidToken, match="unknown API token"):
        await store.verify(f"acc_{other_id}_{secret_of(issued)}")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: "",
        lambda t: "acc_",
        lambda t: t[:-1],
        lambda t: t + "x",
        lambda t: " " + t,
        lambda t: t + "\n",
        lambda t: t.upper(),
        lambda t: t.replace("acc_", "ACC_", 1),
        lambda t: t.replace("acc_", "acd_", 1),
        lambda t: "Bearer " + t,
        lambda t: t.replace("_", ".", 2),
    ],
    ids=[
        "empty",
        "prefix-only",
        "short-secret",
        "long-secret",
        "leading-space",
        "trailing-newline",
        "upper-case",
        "upper-prefix",
        "other-prefix",
        "with-scheme",
        "dots",
    ],
)
async def test_a_malformed_token_is_invalid(
    store: TokenStore, mangle: Callable[[str], str]
) -> None:
    issued = await store.issue("user-10", {Role.ADMIN})
    with pytest.raises(InvalidToken, match=r"malformed API token|unknown API token"):
        await store.verify(mangle(issued.token))


async def test_a_malformed_token_needs_no_database() -> None:
    store = TokenStore(None)
    with pytest.raises(InvalidToken, match="malformed API token"):
        await store.verify("acc_nothex_x")


# --- revoke and expire -----------------------------------------------------------------------


async def test_a_revoked_token_is_invalid(store: TokenStore) -> None:
    issued = await store.issue("user-11", {Role.ADMIN})
    other = await store.issue("user-12", {Role.ADMIN})
    assert await store.revoke(issued.info.token_id) is True
    with pytest.raises(InvalidToken, match=r"^revoked API token$"):
        await store.verify(issued.token)
    assert await store.revoke(issued.info.token_id) is False
    assert await store.revoke("no-such-token") is False
    # Revoking one token leaves the others alone.
    assert (await store.verify(other.token)).subject == "user-12"


async def test_an_expired_token_is_invalid(store: TokenStore, pool: asyncpg.Pool) -> None:
    issued = await store.issue("user-13", {Role.ADMIN})
    await expire(pool, issued.info.token_id)
    with pytest.raises(InvalidToken, match=r"^expired API token$"):
        await store.verify(issued.token)


async def test_the_table_refuses_expiry_before_creation(
    store: TokenStore, pool: asyncpg.Pool
) -> None:
    issued = await store.issue("user-14", {Role.ADMIN})
    with pytest.raises(asyncpg.CheckViolationError):
        await pool.execute(
            "UPDATE accord_auth.api_tokens SET expires_at = created_at - interval '1 second'"
            " WHERE token_id = $1",
            issued.info.token_id,
        )


async def test_a_wrong_secret_of_a_revoked_token_says_unknown(store: TokenStore) -> None:
    # The secret is checked first: without it, nobody learns that the id was revoked.
    issued = await store.issue("user-15", {Role.ADMIN})
    await store.revoke(issued.info.token_id)
    with pytest.raises(InvalidToken, match="unknown API token"):
        await store.verify(f"acc_{issued.info.token_id}_{'x' * 43}")


# --- list ------------------------------------------------------------------------------------


async def test_list_hides_revoked_and_expired_unless_asked(
    store: TokenStore, pool: asyncpg.Pool
) -> None:
    active = await store.issue("active", {Role.AUDITOR})
    revoked = await store.issue("revoked", {Role.AUDITOR})
    expired = await store.issue("expired", {Role.AUDITOR})
    newest = await store.issue("newest", {Role.OPERATOR}, scopes={Permission.SAGAS_READ})
    await store.revoke(revoked.info.token_id)
    await expire(pool, expired.info.token_id)

    live = await store.list()
    assert [t.token_id for t in live] == [newest.info.token_id, active.info.token_id]

    everything = await store.list(include_inactive=True)
    assert {t.token_id for t in everything} == {
        active.info.token_id,
        revoked.info.token_id,
        expired.info.token_id,
        newest.info.token_id,
    }
    by_id = {t.token_id: t for t in everything}
    assert by_id[revoked.info.token_id].revoked_at is not None
    assert by_id[expired.info.token_id].expires_at < datetime.now(UTC)
    assert by_id[newest.info.token_id].scopes == ("sagas:read",)
    created = [t.created_at for t in everything]
    assert created == sorted(created, reverse=True)


async def test_list_of_an_empty_store(store: TokenStore) -> None:
    assert await store.list() == []
    assert await store.list(include_inactive=True) == []


# --- issue refusals --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "roles", "lifetime", "message"),
    [
        ("x", set(), timedelta(days=1), "role"),
        ("", {Role.ADMIN}, timedelta(days=1), "subject"),
        ("x" * 257, {Role.ADMIN}, timedelta(days=1), "subject"),
        ("x", {Role.ADMIN}, timedelta(0), "lifetime"),
        ("x", {Role.ADMIN}, timedelta(seconds=-1), "lifetime"),
        ("x", {Role.ADMIN}, timedelta(days=-90), "lifetime"),
        ("x", {Role.ADMIN}, timedelta(days=3661), "lifetime"),
    ],
    ids=[
        "no-roles",
        "empty-subject",
        "long-subject",
        "zero-lifetime",
        "negative-lifetime",
        "negative-days",
        "over-ten-years",
    ],
)
async def test_issue_refuses(
    store: TokenStore,
    pool: asyncpg.Pool,
    subject: str,
    roles: set[Role],
    lifetime: timedelta,
    message: str,
) -> None:
    with pytest.raises(ValueError, match=message):
        await store.issue(subject, roles, lifetime=lifetime)
    assert await pool.fetchval("SELECT count(*) FROM accord_auth.api_tokens") == 0


async def test_issue_accepts_the_bounds(store: TokenStore) -> None:
    await store.issue("x" * 256, {Role.ADMIN}, lifetime=timedelta(days=3660))
    await store.issue("y", {Role.ADMIN}, lifetime=timedelta(minutes=1))
    assert len(await store.list()) == 2


# --- accord token (in-process) ---------------------------------------------------------------


@pytest.fixture
def database_url(fresh_database: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DATABASE_URL", fresh_database)
    return fresh_database


@pytest.fixture
def cli_store(database_url: str, store: TokenStore) -> TokenStore:
    """The token store of the CLI's database (DATABASE_URL is the test's database)."""
    return store


async def test_cli_create_list_revoke(
    capsys: pytest.CaptureFixture[str], cli_store: TokenStore
) -> None:
    code, out, err = await accord(
        capsys, "token", "create", "--subject", "x", "--role", "admin", "--expires-in", "1d"
    )
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 1
    match = TOKEN.fullmatch(lines[0])
    assert match is not None, out
    token_id, secret = match.groups()
    assert f"id {token_id}" in err
    assert "subject x" in err
    assert "roles admin" in err
    assert "Shown once" in err
    assert secret not in err

    caller = await cli_store.verify(lines[0])
    assert caller.subject == "x"
    assert caller.roles == {Role.ADMIN}
    [info] = await cli_store.list()
    assert info.expires_at - info.created_at == pytest.approx(timedelta(days=1), abs=SLACK)

    code, out, err = await accord(capsys, "token", "list")
    assert code == 0, err
    assert token_id in out
    assert secret not in out
    assert secret not in err
    [row] = [line for line in out.splitlines() if token_id in line]
    assert row.split()[-1] == "active"
    assert " x " in row

    code, out, err = await accord(capsys, "token", "revoke", token_id)
    assert code == 0, err
    assert out.strip() == f"revoked {token_id}"
    with pytest.raises(InvalidToken, match="revoked API token"):
        await cli_store.verify(lines[0])

    code, out, _ = await accord(capsys, "token", "list")
    assert code == 0
    assert token_id not in out
    code, out, _ = await accord(capsys, "token", "list", "--all")
    assert code == 0
    [row] = [line for line in out.splitlines() if token_id in line]
    assert row.split()[-1] == "revoked"

    code, out, err = await accord(capsys, "token", "revoke", token_id)
    assert code == 1
    assert out == ""
    assert err.strip() == f"accord: error: no active token {token_id}"


async def test_cli_create_with_scopes_and_description(
    capsys: pytest.CaptureFixture[str], cli_store: TokenStore
) -> None:
    code, out, err = await accord(
        capsys,
        "token",
        "create",
        "--subject",
        "robot",
        "--role",
        "operator",
        "--role",
        "auditor",
        "--scope",
        "sagas:read",
        "--description",
        "nightly report",
    )
    assert code == 0, err
    caller = await cli_store.verify(out.strip())
    assert caller.roles == {Role.OPERATOR, Role.AUDITOR}
    assert caller.scopes == frozenset({Permission.SAGAS_READ})
    [info] = await cli_store.list()
    assert info.description == "nightly report"
    assert info.expires_at - info.created_at == pytest.approx(timedelta(days=90), abs=SLACK)


async def test_cli_lifetime_refused_by_the_store_is_exit_2(
    capsys: pytest.CaptureFixture[str], cli_store: TokenStore
) -> None:
    code, out, err = await accord(
        capsys, "token", "create", "--subject", "x", "--role", "admin", "--expires-in", "0m"
    )
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("accord: error: lifetime")
    assert await cli_store.list(include_inactive=True) == []


async def test_cli_list_all_marks_expired_tokens(
    capsys: pytest.CaptureFixture[str], cli_store: TokenStore, pool: asyncpg.Pool
) -> None:
    issued = await cli_store.issue("old", {Role.ADMIN})
    await expire(pool, issued.info.token_id)
    code, out, _ = await accord(capsys, "token", "list", "--all")
    assert code == 0
    [row] = [line for line in out.splitlines() if issued.info.token_id in line]
    assert row.split()[-1] != "active"


async def test_cli_without_database_url_is_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    for argv in (
        ["token", "create", "--subject", "x", "--role", "admin"],
        ["token", "list"],
        ["token", "revoke", "0123456789abcdef"],
    ):
        code, out, err = await accord(capsys, *argv)
        assert code == 2, argv
        assert out == ""
        assert err.splitlines() == ["accord: error: DATABASE_URL is not set"]


async def test_cli_unreachable_database_is_exit_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, postgres_server: str
) -> None:
    base, _, _ = postgres_server.rpartition("/")
    missing = f"no_such_database_{id(capsys)}"
    monkeypatch.setenv("DATABASE_URL", f"{base}/{missing}")
    code, out, err = await accord(capsys, "token", "list")
    assert code == 1
    assert out == ""
    # PostgreSQL's own words, not only the exception's class.
    assert err.splitlines() == [f'accord: error: PostgreSQL: database "{missing}" does not exist']


async def test_cli_bad_duration_is_exit_2(
    capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    code, out, err = await accord(
        capsys, "token", "create", "--subject", "x", "--role", "admin", "--expires-in", "5x"
    )
    assert code == 2
    assert out == ""
    assert err.splitlines() == ["accord: error: '5x' is not a duration like 90d, 12h or 30m"]


def test_cli_unknown_role_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(SystemExit) as exit_info:
        main(["token", "create", "--subject", "x", "--role", "nobody"])
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "invalid choice: 'nobody'" in err


def test_cli_whose_reader_goes_away_ends_quietly(fresh_database: str, tmp_path: Path) -> None:
    """`accord token list | head`, unbuffered: the closed pipe shows while the database is
    open, and is still nobody's failure (exit 141, the shell's code for SIGPIPE)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    env = {**os.environ, "DATABASE_URL": fresh_database, "PYTHONUNBUFFERED": "1"}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "accord.events.cli", "token", "list"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            env=env,
            cwd=tmp_path,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr.decode()) == (141, "")
