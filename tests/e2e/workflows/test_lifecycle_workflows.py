"""The shipped lifecycle workflow examples, end to end on the real platform (issue 22).

The orchestrator of the package's workflow platform (conftest.py) runs a folder of
workflows made from the shipped examples (services/orchestrator/.../workflows/examples/*.yaml)
with durations of seconds instead of days (folder.py: exact replacements, each checked to
apply once, so an example that changes makes this test fail rather than drift).
Everything around it is real: the provisioner writes to the scim2-server target, mail goes
over SMTP to an aiosmtpd process (accord.stack.smtp_sink), the leaver's custom extension is
an HTTP server here (extension.py) that checks the orchestrator's signature and calls back
signed, and the identities come as HR events on the broker with `hire_date`/`leave_date` a
few seconds ahead.

The sagas run beside the engine (v0). So that an account the pre-hire workflow creates is
the workflow's and not the joiner saga's, its joiners are in the platform's `Contractors`
department, whose birthright gives no target (accord.stack.platform's rules), and the test
copy of pre-hire names the demo target (`targets: [scim-demo]`) where the example says
`all`. The leavers and the contractor are in a department whose birthright gives the demo
account (the joiner saga creates it, as in production); the leaver saga's retention is the
default 30 days, so an account deleted seconds later was deleted by the workflow.

The department-move example asks its approval of authz for real: authz resolves the
manager from its directory and lists the ask to a token of the manager's (role approver),
whose decision comes back to the run as approval.decided; revoke_entitlement calls authz's
grants API with the platform's admin token (ACCORD_AUTHZ_URL, ACCORD_AUTHZ_TOKEN_FILE).

Two workflows no example has are written for the tests beside the examples: a leaver on
user.deleted that disables at once and deletes after a retention of seconds (a leaver
while pre-hire waits for the hire date), and an on-demand account in a target of its own
behind a fault proxy (`scim-flaky`, a scim2-server no birthright rule gives), whose create
retries with a backoff of a second while the test keeps the proxy down. The provisioner
tries that target once per request, with a breaker that never opens, so each of the
task's attempts meets the outage itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from accord.events import Publisher, UserCreated, UserDeactivated, UserDeleted, UserUpdated
from accord.runtime.security.roles import Role
from accord.stack.platform import CONTRACTORS, Platform
from accord.stack.smtp_sink import SmtpSink, SunkMail

from ..conftest import (
    accord_cli,
    api_client,
    audit_events,
    eventually,
    scim_users,
    users_in,
)
from .conftest import SENDER, Parts
from .extension import ExtensionCallReceived, callback
from .folder import (
    APPROVAL_TIMEOUT_S,
    DELETION_RETENTION_S,
    FLAKY_ATTEMPTS,
    FLAKY_TARGET,
)

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

#: Joiners of this department get the demo account from the joiner saga.
STAFF = "Engineering"
#: How late a timer may fire and still be "at" its time (poll 0.2 s, then Kafka and SCIM).
LATE_S = 4.0


def at(seconds: float) -> datetime:
    """An instant `seconds` from now, on a whole second (an RFC 3339 date-time of HR's)."""
    moment = datetime.now(UTC) + timedelta(seconds=seconds)
    return moment.replace(microsecond=0) + timedelta(seconds=1)


def person(user_id: str, **fields: Any) -> UserCreated:
    name = user_id.replace("-", ".")
    defaults: dict[str, Any] = {
        "user_id": user_id,
        "user_name": name,
        "given_name": "Ada",
        "family_name": f"Lovelace-{user_id}",
        "email": f"{name}@example.org",
        "employee_type": "employee",
        "time_zone": "Europe/Paris",
    }
    return UserCreated(**{**defaults, **fields})


async def manager(hr: Publisher, unique: str, role: str) -> UserCreated:
    """A manager with an e-mail in the registry (no dates: no workflow of theirs runs)."""
    boss = UserCreated(
        user_id=f"mgr-{role}-{unique}",
        user_name=f"grace.{role}.{unique}",
        given_name="Grace",
        family_name="Hopper",
        email=f"grace.{role}.{unique}@example.org",
        department=CONTRACTORS,
    )
    await hr.publish(boss, sequence=1)
    return boss


async def runs_of(platform: Platform, identity_id: str) -> list[dict[str, Any]]:
    """The identity's workflow runs, from the runs API."""
    async with api_client(platform, "orchestrator") as client:
        response = await client.get("/v1/workflow-runs", params={"identity_id": identity_id})
        response.raise_for_status()
        items: list[dict[str, Any]] = response.json()["items"]
        return items


async def run_of(platform: Platform, identity_id: str, workflow_id: str) -> dict[str, Any]:
    """The identity's one run of the workflow, with its tasks, from the runs API."""
    found = [r for r in await runs_of(platform, identity_id) if r["workflow_id"] == workflow_id]
    assert len(found) == 1, f"{len(found)} {workflow_id} runs of {identity_id}"
    async with api_client(platform, "orchestrator") as client:
        response = await client.get(f"/v1/workflow-runs/{found[0]['run_id']}")
        response.raise_for_status()
        run: dict[str, Any] = response.json()
        return run


async def run_in(
    platform: Platform, identity_id: str, workflow_id: str, *statuses: str, timeout: float = 30
) -> dict[str, Any]:
    """The identity's run of the workflow once it has one of the statuses."""

    async def probe() -> dict[str, Any] | None:
        found = [r for r in await runs_of(platform, identity_id) if r["workflow_id"] == workflow_id]
        if found and found[0]["status"] in statuses:
            return await run_of(platform, identity_id, workflow_id)
        return None

    return await eventually(probe, timeout=timeout, what=f"{workflow_id} run {statuses}")


async def run_when(
    platform: Platform,
    identity_id: str,
    workflow_id: str,
    check: Callable[[dict[str, Any]], bool],
) -> dict[str, Any]:
    """The identity's run of the workflow once `check` holds for it."""

    async def probe() -> dict[str, Any] | None:
        found = [r for r in await runs_of(platform, identity_id) if r["workflow_id"] == workflow_id]
        if not found:
            return None
        run = await run_of(platform, identity_id, workflow_id)
        return run if check(run) else None

    return await eventually(probe, what=f"{workflow_id} run of {identity_id} as expected")


def task(run: Mapping[str, Any], task_id: str) -> dict[str, Any]:
    [found] = [t for t in run["tasks"] if t["task_id"] == task_id]
    return dict(found)


async def account(
    platform: Platform, user_name: str, **expected: Any
) -> tuple[dict[str, Any], float]:
    """The user's one demo account once it shows the expected values, and when it did."""

    async def probe() -> dict[str, Any] | None:
        found = await scim_users(platform, user_name)
        if found and all(found[0].get(k) == v for k, v in expected.items()):
            return found[0]
        return None

    found = await eventually(probe, what=f"{user_name}'s account with {expected}")
    return found, time.time()


async def gone(platform: Platform, user_name: str) -> float:
    """When the user's demo account was seen gone."""

    async def probe() -> bool:
        return await scim_users(platform, user_name) == []

    await eventually(probe, what=f"{user_name}'s account deleted")
    return time.time()


async def mails_to(sink: SmtpSink, address: str) -> list[SunkMail]:
    async def probe() -> list[SunkMail]:
        return [m for m in sink.messages() if address in m.rcpt_tos]

    return await eventually(probe, what=f"a mail to {address}")


async def audited(platform: Platform, identity_id: str, *types: str) -> set[str]:
    """The event types the audit log holds about the identity, once it holds `types`."""

    async def probe() -> set[str] | None:
        found = {r["event_type"] for r in await audit_events(platform, subject=identity_id)}
        return found if found >= set(types) else None

    return await eventually(probe, what=f"{types} in {identity_id}'s audit trail")


# --- the cases -----------------------------------------------------------------------------------


async def test_pre_hire_creates_disabled_accounts_and_enables_them_at_the_hire_time(
    parts: Parts, hr: Publisher, unique: str
) -> None:
    platform = parts.platform
    boss = await manager(hr, unique, "prehire")
    hire = at(8)
    joiner = person(
        f"hire-{unique}",
        department=CONTRACTORS,
        manager_id=boss.user_id,
        hire_date=hire.isoformat(),
    )
    await hr.publish(joiner, sequence=1)

    # Created at hire - 6 s, disabled, before the hire time.
    created, seen = await account(platform, joiner.user_name, active=False)
    assert seen < hire.timestamp(), "the account appeared only after the hire time"
    assert seen >= hire.timestamp() - 6 - 0.5, "the account came before its time"
    run = await run_when(
        platform, joiner.user_id, "pre-hire", lambda r: task(r, "first_day")["status"] == "waiting"
    )
    assert run["trigger"]["kind"] == "timer"
    assert task(run, "create_accounts")["status"] == "completed"
    assert task(run, "first_day")["status"] == "waiting"

    # Enabled at hire + 1 s (the example's 08:00), and the manager told.
    _, enabled = await account(platform, joiner.user_name, active=True)
    assert enabled >= hire.timestamp() + 1 - 0.5, "enabled before its time"
    assert enabled <= hire.timestamp() + 1 + LATE_S, "enabled late"
    [welcome] = await mails_to(parts.sink, str(boss.email))
    assert welcome.mail_from == SENDER
    assert welcome.subject == f"Ada {joiner.family_name} starts today"
    assert "Hello Grace Hopper," in welcome.text
    done = await run_in(platform, joiner.user_id, "pre-hire", "completed")
    assert [t["status"] for t in done["tasks"]] == ["completed"] * 4
    assert created["id"] == (await scim_users(platform, joiner.user_name))[0]["id"]
    await audited(
        platform,
        joiner.user_id,
        "workflow.run_started",
        "workflow.task_waiting",
        "workflow.task_completed",
        "workflow.run_completed",
    )


async def test_a_contractor_s_accounts_are_disabled_at_the_end_date_and_deleted_after(
    parts: Parts, hr: Publisher, unique: str
) -> None:
    platform = parts.platform
    contractor = person(f"ctr-{unique}", department=STAFF, employee_type="contractor")
    await hr.publish(contractor, sequence=1)
    await account(platform, contractor.user_name, active=True)  # the joiner saga's
    # The end date comes once the account exists (HR sets it during the contract).
    leave = at(3)
    ending = contractor.model_dump() | {"leave_date": leave.isoformat()}
    await hr.publish(UserUpdated(**ending), sequence=2)

    _, disabled = await account(platform, contractor.user_name, active=False)
    assert disabled >= leave.timestamp() - 0.5, "disabled before the end date"
    assert disabled <= leave.timestamp() + LATE_S, "disabled late"
    deleted = await gone(platform, contractor.user_name)
    assert deleted >= leave.timestamp() + 3 - 0.5, "deleted before the retention ended"
    run = await run_in(platform, contractor.user_id, "contractor-end-date", "completed")
    assert task(run, "disable_accounts")["status"] == "completed"
    assert task(run, "delete_accounts")["status"] == "completed"
    # The contractor is still active at the end date: authn is asked to end the sessions.
    assert task(run, "revoke_sessions")["status"] == "completed"
    await audited(platform, contractor.user_id, "session.revoke_requested")
    await audited(platform, contractor.user_id, "workflow.run_started", "workflow.run_completed")


async def test_a_leaver_is_disabled_told_handed_over_by_callback_and_deleted(
    parts: Parts, hr: Publisher, unique: str
) -> None:
    platform, extension = parts.platform, parts.extension
    boss = await manager(hr, unique, "leaver")
    leaver = person(f"lvr-{unique}", department=STAFF, manager_id=boss.user_id)
    # Its extension never calls back: the task times out and, as the example's policy is to
    # fail (no continue_on_error), the run fails and the accounts are not deleted.
    silent = person(f"lvs-{unique}", department=STAFF, manager_id=boss.user_id)
    extension.never.add(silent.user_id)
    gate = extension.gates[leaver.user_id] = asyncio.Event()
    for someone in (leaver, silent):
        await hr.publish(someone, sequence=1)
    for someone in (leaver, silent):
        await account(platform, someone.user_name, active=True)  # the joiner saga's
        await hr.publish(UserDeactivated(user_id=someone.user_id, reason="resigned"), sequence=2)

    _, _ = await account(platform, leaver.user_name, active=False)

    async def called() -> list[ExtensionCallReceived]:
        return extension.calls_for(leaver.user_id)

    [call] = await eventually(called, what="the mailbox extension called")
    assert call.task_id == "mailbox_handover"
    assert call.idempotency_key == f"{call.run_id}:mailbox_handover"
    assert call.identity["user_name"] == leaver.user_name
    running_run = await run_of(platform, leaver.user_id, "leaver")
    assert task(running_run, "mailbox_handover")["status"] == "waiting"
    assert [t["status"] for t in running_run["tasks"][:3]] == ["completed"] * 3

    # A callback signed with another secret is refused and changes nothing.
    assert await callback(call, {"mailbox": "forged"}, secret=b"not-the-secret") == 401
    # Signed right but with another task's token: refused as well.
    stolen = ExtensionCallReceived({}, call.run_id, call.task_id, call.callback_url, "x" * 43, "")
    assert await callback(stolen, {"mailbox": "forged"}) == 401
    unsigned = await run_of(platform, leaver.user_id, "leaver")
    assert task(unsigned, "mailbox_handover")["status"] == "waiting"
    assert unsigned["revision"] == running_run["revision"]

    gate.set()  # the extension calls back, signed
    done = await run_in(platform, leaver.user_id, "leaver", "completed")
    assert call.callback_status == 202
    handover = task(done, "mailbox_handover")
    assert handover["status"] == "completed"
    assert set(handover["output_names"]) >= {"mailbox", "ticket"}
    deleted = await gone(platform, leaver.user_name)
    [told] = [
        m for m in await mails_to(parts.sink, str(boss.email)) if leaver.family_name in m.subject
    ]
    assert told.subject == f"Ada {leaver.family_name} has left"
    assert handover["finished_at"] is not None
    finished = datetime.fromisoformat(handover["finished_at"]).timestamp()
    assert deleted >= finished + 3 - 0.5, "deleted before the retention ended"
    await audited(platform, leaver.user_id, "workflow.task_waiting", "workflow.run_completed")
    # A second callback, after the first, is not delivered again.
    assert await callback(call, {"mailbox": "again"}) == 202

    # The silent extension's task timed out: the run failed there, nothing was deleted.
    failed = await run_in(platform, silent.user_id, "leaver", "failed")
    timed_out = task(failed, "mailbox_handover")
    assert timed_out["status"] == "failed"
    assert "no callback" in timed_out["error"]
    assert task(failed, "delete_accounts")["status"] == "cancelled"
    [kept] = await scim_users(platform, silent.user_name)
    assert kept["active"] is False
    [late] = extension.calls_for(silent.user_id)
    assert await callback(late, {"mailbox": "late"}) == 409
    await audited(platform, silent.user_id, "workflow.run_failed")
    assert extension.refused == 0, "the orchestrator's signature was refused"


async def test_a_moved_hire_date_moves_the_timer_and_a_removed_one_cancels_it(
    parts: Parts, hr: Publisher, unique: str
) -> None:
    platform = parts.platform
    first = at(12)  # would fire at first - 6 s
    moved = person(f"mov-{unique}", department=CONTRACTORS, hire_date=first.isoformat())
    dropped = person(f"drp-{unique}", department=CONTRACTORS, hire_date=first.isoformat())
    await hr.publish(moved, sequence=1)
    await hr.publish(dropped, sequence=1)
    ids = {moved.user_id, dropped.user_id}

    async def scheduled() -> bool:
        states = await timer_states(platform, ids)
        return set(states.values()) == {"scheduled"} and len(states) == 2

    await eventually(scheduled, what="both hire timers scheduled")
    later = first + timedelta(seconds=5)
    updated = moved.model_dump() | {"hire_date": later.isoformat()}
    await hr.publish(UserUpdated(**updated), sequence=2)
    removed = dropped.model_dump() | {"hire_date": None}
    await hr.publish(UserUpdated(**removed), sequence=2)

    # Nothing at the old time (first - 6 s), and past it.
    await asyncio.sleep(max(0.0, first.timestamp() - 6 + 2 - time.time()))
    for someone in (moved, dropped):
        assert await runs_of(platform, someone.user_id) == []
        assert await scim_users(platform, someone.user_name) == []
    # The moved one starts at the new time (later - 6 s); the removed one never.
    started = await run_in(platform, moved.user_id, "pre-hire", "running", "waiting", "completed")
    created_at = datetime.fromisoformat(started["created_at"]).timestamp()
    assert later.timestamp() - 6 - 0.5 <= created_at <= later.timestamp() - 6 + LATE_S
    assert started["trigger"]["date_value"] == later.isoformat()
    await account(platform, moved.user_name, active=False)
    assert await runs_of(platform, dropped.user_id) == []
    assert (await timer_states(platform, {dropped.user_id})).get(dropped.user_id) == "cancelled"


async def timer_states(platform: Platform, ids: set[str]) -> dict[str, str]:
    """The pre-hire timer's state per identity (the last planned one), from the database."""
    conn = await asyncpg.connect(platform.database_url)
    try:
        rows = await conn.fetch(
            "SELECT identity_id, state FROM orchestrator.workflow_timers"
            " WHERE workflow_id = 'pre-hire' AND identity_id = ANY($1::text[])"
            " ORDER BY fire_at",
            sorted(ids),
        )
    finally:
        await conn.close()
    return {row["identity_id"]: row["state"] for row in rows}


# --- department move: an approval through authz -------------------------------------------------


async def workflow_approvals(platform: Platform, token: str) -> list[dict[str, Any]]:
    """The pending workflow approvals authz lists to the token's subject."""
    async with api_client(platform, "authz", token) as client:
        response = await client.get("/v1/workflow-approvals")
        response.raise_for_status()
        items: list[dict[str, Any]] = response.json()["items"]
        return items


async def decide(platform: Platform, token: str, approval_id: str, verdict: str) -> httpx.Response:
    """POST approve or reject on a workflow approval, as the token's subject."""
    async with api_client(platform, "authz", token) as client:
        return await client.post(
            f"/v1/workflow-approvals/{approval_id}/{verdict}", json={"comment": "e2e"}
        )


async def test_a_department_move_asks_the_new_manager_through_authz(
    parts: Parts, hr: Publisher, unique: str
) -> None:
    """The department-move example with a real approval: authz resolves the manager and
    lists the ask to them; approved, the run keeps the access; rejected or unanswered
    (on_timeout: reject), revoke_not_allowed runs; the identity may not decide its own."""
    platform = parts.platform
    boss = await manager(hr, unique, "mover")
    kept = person(f"mvk-{unique}", department=CONTRACTORS, manager_id=boss.user_id)
    refused = person(f"mvr-{unique}", department=CONTRACTORS, manager_id=boss.user_id)
    ignored = person(f"mvi-{unique}", department=CONTRACTORS, manager_id=boss.user_id)
    movers = (kept, refused, ignored)
    for someone in movers:
        await hr.publish(someone, sequence=1)
    # authz knows them (and so their manager) before the move asks about them.
    for someone in movers:

        async def known(user_id: str = someone.user_id) -> bool:
            async with api_client(platform, "authz") as client:
                return (await client.get(f"/v1/principals/{user_id}")).status_code == 200

        await eventually(known, what=f"{someone.user_id} in authz")
    for someone in movers:
        moved = someone.model_dump() | {"department": "Finance"}
        await hr.publish(UserUpdated(**moved), sequence=2)
    asked_at = time.time()

    # authz lists the three asks to the manager, resolved from its directory.
    boss_token = await platform.issue_token(boss.user_id, {Role.APPROVER}, "e2e manager")
    ids = {someone.user_id for someone in movers}

    async def listed() -> dict[str, dict[str, Any]] | None:
        found = {
            a["user_id"]: a
            for a in await workflow_approvals(platform, boss_token)
            if a["user_id"] in ids
        }
        return found if len(found) == len(ids) else None

    asks = await eventually(listed, what="the three department-move asks listed to the manager")
    for someone in movers:
        ask = asks[someone.user_id]
        assert ask["workflow_id"] == "department-move"
        assert ask["task_id"] == "keep_access"
        assert ask["asked"] == ["manager"]
        assert ask["approvers"] == [boss.user_id]
        assert ask["status"] == "pending"
        assert ask["reason"] == "Keep the access this person had in their previous department?"
        waiting = await run_of(platform, someone.user_id, "department-move")
        assert waiting["run_id"] == ask["run_id"]
        assert task(waiting, "keep_access")["status"] == "waiting"

    # The identity itself may not decide its own approval (an approver of nothing else).
    own_token = await platform.issue_token(kept.user_id, {Role.APPROVER}, "e2e self")
    own = await decide(platform, own_token, asks[kept.user_id]["approval_id"], "approve")
    assert own.status_code == 403, own.text
    assert (await run_of(platform, kept.user_id, "department-move"))["status"] == "waiting"

    # The manager approves one and rejects another; the third is left to time out.
    approved = await decide(platform, boss_token, asks[kept.user_id]["approval_id"], "approve")
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    assert approved.json()["decided_by"] == boss.user_id
    rejected = await decide(platform, boss_token, asks[refused.user_id]["approval_id"], "reject")
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["status"] == "rejected"
    pending = {a["user_id"] for a in await workflow_approvals(platform, boss_token)}
    assert pending & ids == {ignored.user_id}

    # Approved: the run completes and revokes nothing.
    done = await run_in(platform, kept.user_id, "department-move", "completed")
    keep = task(done, "keep_access")
    assert keep["status"] == "completed"
    assert keep["outputs"] == {"approved": True, "decision": "approved", "by": boss.user_id}
    assert task(done, "revoke_not_allowed")["status"] == "skipped"

    # Rejected: revoke_not_allowed ran against authz's grants (the mover holds none).
    done = await run_in(platform, refused.user_id, "department-move", "completed")
    refusal = task(done, "keep_access")
    assert refusal["status"] == "completed"
    assert refusal["outputs"] == {"approved": False, "decision": "rejected", "by": boss.user_id}
    revoke = task(done, "revoke_not_allowed")
    assert revoke["status"] == "completed"
    assert revoke["outputs"] == {"revoked": 0, "kept": 0}

    # Nobody decided: at the timeout the ask is a rejection (on_timeout: reject).
    done = await run_in(
        platform, ignored.user_id, "department-move", "completed", timeout=APPROVAL_TIMEOUT_S + 20
    )
    assert time.time() >= asked_at + APPROVAL_TIMEOUT_S - 1, "timed out before its time"
    silence = task(done, "keep_access")
    assert silence["outputs"] == {"approved": False, "decision": "timed_out", "by": None}
    revoke = task(done, "revoke_not_allowed")
    assert revoke["status"] == "completed"
    assert revoke["outputs"] == {"revoked": 0, "kept": 0}
    # The run no longer waits: a decision now is refused.
    late = await decide(platform, boss_token, asks[ignored.user_id]["approval_id"], "approve")
    assert late.status_code == 409, late.text


# --- a leaver while a joiner waits; a target down during a run ----------------------------------


async def test_a_leaver_while_pre_hire_waits_cancels_it_and_the_enable_never_happens(
    parts: Parts, hr: Publisher, unique: str
) -> None:
    """user.deleted while pre-hire waits for the hire date: the leaver supersedes the
    joiner run (its wait, the enable and the welcome mail cancelled) and the account, in
    the target, stays disabled past the hire time until the leaver deletes it."""
    platform = parts.platform
    boss = await manager(hr, unique, "withdrawn")
    hire = at(8)
    joiner = person(
        f"wdr-{unique}",
        department=CONTRACTORS,
        manager_id=boss.user_id,
        hire_date=hire.isoformat(),
    )
    await hr.publish(joiner, sequence=1)
    await account(platform, joiner.user_name, active=False)  # pre-hire's, at hire - 6 s
    waiting = await run_when(
        platform, joiner.user_id, "pre-hire", lambda r: task(r, "first_day")["status"] == "waiting"
    )

    deleted_at = time.time()  # the leaver's retention starts after this
    await hr.publish(UserDeleted(user_id=joiner.user_id, reason="offer withdrawn"), sequence=2)

    cancelled = await run_in(platform, joiner.user_id, "pre-hire", "cancelled")
    assert cancelled["run_id"] == waiting["run_id"]
    assert cancelled["cancel_reason"] == "superseded"
    assert [(t["task_id"], t["status"]) for t in cancelled["tasks"]] == [
        ("create_accounts", "completed"),
        ("first_day", "cancelled"),
        ("enable_accounts", "cancelled"),
        ("welcome_manager", "cancelled"),
    ]
    # In the target: still there and disabled past the enable's time (hire + 1 s), while
    # the leaver's retention holds it.
    watch_until = min(hire.timestamp() + 1 + 2, deleted_at + DELETION_RETENTION_S - 0.5)
    assert watch_until >= hire.timestamp() + 1 + 1, "too late to see past the enable's time"
    while time.time() < watch_until:
        found = await scim_users(platform, joiner.user_name)
        assert [a["active"] for a in found] == [False], f"{joiner.user_name}: {found}"
        await asyncio.sleep(0.2)
    removed = await gone(platform, joiner.user_name)
    assert removed >= deleted_at + DELETION_RETENTION_S - 0.5, "deleted before the retention"
    done = await run_in(platform, joiner.user_id, "leaver-on-deletion", "completed")
    assert [t["status"] for t in done["tasks"]] == ["completed"] * 3
    assert not [m for m in parts.sink.messages() if str(boss.email) in m.rcpt_tos]

    # The audit log shows the joiner run cancelled, superseded by the leaver.
    await audited(platform, joiner.user_id, "workflow.run_cancelled", "workflow.run_completed")
    records = await audit_events(platform, subject=joiner.user_id)
    [cancel] = [r for r in records if r["event_type"] == "workflow.run_cancelled"]
    assert cancel["payload"]["run_id"] == waiting["run_id"]
    assert cancel["payload"]["workflow_id"] == "pre-hire"
    assert "superseded" in cancel["payload"]["reason"]
    completed = {
        r["payload"]["workflow_id"] for r in records if r["event_type"] == "workflow.run_completed"
    }
    assert completed == {"leaver-on-deletion"}


async def start_on_demand(platform: Platform, workflow_id: str, identity_id: str) -> str:
    """Start the workflow for the identity through the runs API, once the registry holds
    it (422 until then, starting nothing); the run's id."""

    async def started() -> str | None:
        async with api_client(platform, "orchestrator") as client:
            response = await client.post(
                f"/v1/workflows/{workflow_id}/runs", json={"identity_ids": [identity_id]}
            )
        if response.status_code == 422:
            return None
        assert response.status_code == 202, response.text
        [run_id] = response.json()["run_ids"]
        return str(run_id)

    return await eventually(started, what=f"a {workflow_id} run of {identity_id}")


async def test_a_target_down_during_a_run_is_retried_and_a_run_that_gave_up_is_retried(
    parts: Parts, hr: Publisher, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The flaky target refuses connections: a run whose attempts all meet the outage fails
    visibly; one whose target comes back between attempts completes; the failed one,
    retried with `accord workflows runs retry`, completes too. One account each."""
    platform, flaky = parts.platform, parts.flaky
    gave_up = person(f"fgu-{unique}", department=CONTRACTORS)
    came_back = person(f"fcb-{unique}", department=CONTRACTORS)
    for someone in (gave_up, came_back):
        await hr.publish(someone, sequence=1)

    await flaky.proxy.down(60)  # until the test brings it up
    try:
        # Down at all three attempts (0, 1 and 3 s): the run fails.
        failed_id = await start_on_demand(platform, "flaky-account", gave_up.user_id)
        failed = await run_in(platform, gave_up.user_id, "flaky-account", "failed")
        assert failed["run_id"] == failed_id
        create = task(failed, "create_account")
        assert create["attempts"] == FLAKY_ATTEMPTS
        assert create["status"] == "failed"
        # The reason of the attempt's saga (account tasks run on the saga machine).
        assert create["error"].startswith(f"provisioning failed in {FLAKY_TARGET}: "), create[
            "error"
        ]
        assert "ConnectError" in create["error"], create["error"]
        await audited(platform, gave_up.user_id, "workflow.run_failed")

        # Down at the first two attempts, back before the third (2 s after the second).
        await start_on_demand(platform, "flaky-account", came_back.user_id)

        def second_failed(run: dict[str, Any]) -> bool:
            create = task(run, "create_account")
            waiting = create["waiting_for"] or {}
            return create["attempts"] == 2 and waiting.get("kind") == "retry"

        retrying = await run_when(platform, came_back.user_id, "flaky-account", second_failed)
        assert "ConnectError" in task(retrying, "create_account")["waiting_for"]["reason"]
        assert await users_in(flaky.upstream, came_back.user_name) == []
    finally:
        await flaky.proxy.up()

    done = await run_in(platform, came_back.user_id, "flaky-account", "completed")
    assert task(done, "create_account")["attempts"] == 3
    [created] = await users_in(flaky.upstream, came_back.user_name)
    assert created["active"] is True

    # The run that gave up is still failed, with no account: retried by the CLI, it completes.
    assert (await run_of(platform, gave_up.user_id, "flaky-account"))["status"] == "failed"
    assert await users_in(flaky.upstream, gave_up.user_name) == []
    monkeypatch.setenv("ACCORD_ORCHESTRATOR_URL", platform.endpoints()["orchestrator"])
    code, out, err = await accord_cli(
        platform,
        "workflows",
        "runs",
        "retry",
        failed_id,
        "--token-file",
        str(platform.admin_token_file),
    )
    assert code == 0, err
    assert failed_id in out
    retried = await run_in(platform, gave_up.user_id, "flaky-account", "completed")
    assert task(retried, "create_account")["attempts"] == FLAKY_ATTEMPTS + 1
    await audited(platform, gave_up.user_id, "workflow.run_completed")
    # Completed, a run is retried no more (the API's 409); each identity has one account.
    async with api_client(platform, "orchestrator") as client:
        again = await client.post(f"/v1/workflow-runs/{failed_id}/retry")
    assert again.status_code == 409, again.text
    for someone in (gave_up, came_back):
        [one] = await users_in(flaky.upstream, someone.user_name)
        assert one["userName"] == someone.user_name
