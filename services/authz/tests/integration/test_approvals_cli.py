"""`accord approvals` on a real PostgreSQL: list, show, approve and deny an approval chain."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
import pytest_asyncio

from accord.authz import access
from accord.authz.catalogue import load_catalogue
from accord.authz.domain.policy_files import default_policy_dir, load_policy_dir
from accord.authz.testing import consume
from accord.events import AccessRequested, Resource, UserCreated, new_event
from accord.runtime import db
from accord.runtime.consumer import HandlerContext
from accord.stack.testing import run_accord as accord

pytestmark = pytest.mark.integration
SCHEMA = "authz"
POLICIES = load_policy_dir(default_policy_dir())
CATALOGUE = load_catalogue(default_policy_dir() / "catalogue.yaml")
SETTINGS = access.ApprovalSettings(timeout=timedelta(hours=1), on_timeout="escalate")


@pytest_asyncio.fixture(loop_scope="session")
async def pool(fresh_database: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[asyncpg.Pool]:
    """authz's tables with people in them; the CLI's DATABASE_URL is this database."""
    await db.migrate(fresh_database, SCHEMA, ["accord.authz.migrations"])
    monkeypatch.setenv("DATABASE_URL", fresh_database)
    monkeypatch.delenv("ACCORD_POLICY_DIR", raising=False)
    created = await db.create_pool(fresh_database, SCHEMA, max_size=2)
    try:
        await people(created)
        yield created
    finally:
        await created.close()


async def people(pool: asyncpg.Pool) -> None:
    """bob reports to mia, mia to the ceo; payroll is owned by payroll-owner."""
    users = [("ceo", None), ("mia", "ceo"), ("bob", "mia"), ("payroll-owner", None)]
    for user_id, manager in users:
        data = UserCreated(user_id=user_id, user_name=user_id, manager_id=manager)
        async with pool.acquire() as conn, conn.transaction():
            ctx = HandlerContext(conn=conn, source="urn:test", topic=data.event_type)
            await consume(new_event(data, source="urn:test", sequence=1), ctx)


async def ask(pool: asyncpg.Pool, request_id: str, entitlement: str = "viewer") -> None:
    """bob asks for a high-risk payroll entitlement: manager, then owner, must approve."""
    request = AccessRequested(
        request_id=request_id,
        requester_id="bob",
        principal_id="bob",
        resource=Resource(application="payroll", entitlement=entitlement),
        justification="month-end close",
    )
    async with pool.acquire() as conn, conn.transaction():
        await access.decide_request(
            conn,
            new_event(request, source="urn:test"),
            policies=POLICIES,
            catalogue=CATALOGUE,
            settings=SETTINGS,
            source="urn:test:authz",
        )


async def test_manager_then_owner_approve_and_the_grant_is_queued(
    pool: asyncpg.Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    await ask(pool, "req-cli-1")

    code, out, err = await accord(capsys, "approvals", "list")
    assert code == 0, err
    header, row = out.splitlines()
    assert header.split() == ["REQUEST", "PRINCIPAL", "ENTITLEMENT", "STAGE", "APPROVERS", "DUE"]
    assert row.split()[:6] == ["req-cli-1", "bob", "payroll/viewer", "1/2", "manager", "mia"]

    code, out, err = await accord(capsys, "approvals", "list", "--approver", "mia", "--json")
    assert code == 0, err
    (item,) = [json.loads(line) for line in out.splitlines()]
    assert (item["request_id"], item["stage"], item["stages"]) == ("req-cli-1", 1, 2)
    code, out, _ = await accord(capsys, "approvals", "list", "--approver", "payroll-owner")
    assert (code, out.strip()) == (0, "no approvals waiting for payroll-owner")

    code, out, err = await accord(capsys, "approvals", "approve", "req-cli-1", "--as", "bob")
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        "accord: error: bob cannot approve req-cli-1: nobody approves their own request"
    ]
    code, _, err = await accord(
        capsys, "approvals", "approve", "req-cli-1", "--as", "payroll-owner"
    )
    assert code == 1
    assert "not an approver of this request's current stage" in err

    code, out, err = await accord(
        capsys, "approvals", "approve", "req-cli-1", "--as", "mia", "--comment", "ok for Q4"
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "approved stage 1/2 (manager) of req-cli-1 as mia"
    assert "by mia at" in out
    assert '"ok for Q4"' in out
    assert lines[-1] == (
        "request req-cli-1 now waits for stage 2/2 (application_owner): payroll-owner"
    )

    code, out, err = await accord(
        capsys, "approvals", "approve", "req-cli-1", "--as", "payroll-owner"
    )
    assert code == 0, err
    assert (
        out.splitlines()[0]
        == "approved stage 2/2 (application_owner) of req-cli-1 as payroll-owner"
    )
    assert out.splitlines()[-1].startswith("request req-cli-1 is approved: access granted")

    assert (
        await pool.fetchval("SELECT status FROM access_requests WHERE request_id = 'req-cli-1'")
        == "approved"
    )
    topics = await pool.fetch("SELECT topic FROM outbox WHERE key = $1", b"req-cli-1")
    assert [r["topic"] for r in topics].count("access.granted") == 1
    assert [r["topic"] for r in topics].count("access.approval_decided") == 2

    code, out, err = await accord(capsys, "approvals", "show", "req-cli-1")
    assert code == 0, err
    assert "status:        approved" in out
    assert "justification: month-end close" in out

    code, out, err = await accord(capsys, "approvals", "approve", "req-cli-1", "--as", "mia")
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        "accord: error: access request req-cli-1 is approved, not waiting for approval"
    ]


async def test_a_denial_ends_the_request(
    pool: asyncpg.Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    await ask(pool, "req-cli-2", "admin")

    code, out, err = await accord(
        capsys, "approvals", "deny", "req-cli-2", "--as", "mia", "--comment", "not needed"
    )

    assert code == 0, err
    assert out.splitlines()[0] == "denied stage 1/2 (manager) of req-cli-2 as mia"
    assert out.splitlines()[-1] == "request req-cli-2 is denied"
    code, out, err = await accord(capsys, "approvals", "show", "req-cli-2", "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["request"]["status"] == "denied"
    assert [s["status"] for s in shown["approvals"]] == ["denied", "skipped"]
    topics = await pool.fetch("SELECT topic FROM outbox WHERE key = $1", b"req-cli-2")
    assert [r["topic"] for r in topics] == ["access.approval_decided"]


async def test_unknown_requests_are_one_line_errors(
    pool: asyncpg.Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    for action in (["approve", "--as", "mia"], ["deny", "--as", "mia"], ["show"]):
        code, out, err = await accord(capsys, "approvals", action[0], "req-nope", *action[1:])
        assert (code, out) == (1, ""), action
        assert err.splitlines() == ["accord: error: access request req-nope not found"]


async def test_someone_the_request_does_not_name_is_told_so(
    pool: asyncpg.Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    # The API answers them 404 (not their business); the operator at the CLI learns why.
    await ask(pool, "req-cli-3")

    code, out, err = await accord(capsys, "approvals", "approve", "req-cli-3", "--as", "zed")

    assert (code, out) == (1, "")
    assert err.splitlines() == [
        "accord: error: zed cannot approve req-cli-3: not an approver of it"
    ]


async def test_without_authz_tables_the_cli_says_so(
    fresh_database: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", fresh_database)
    code, out, err = await accord(capsys, "approvals", "list")
    assert (code, out) == (1, "")
    assert err.splitlines() == ["accord: error: no authz tables in this database: has authz run?"]
