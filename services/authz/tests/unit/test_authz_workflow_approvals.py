"""Workflow approvals (issue 22) on the in-memory ports: approval.requested resolved and
recorded once, decided by an approver (or an admin), never by the identity itself nor
after it expired, and approval.decided back to the run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

import pytest

from accord.authz import handlers
from accord.authz.catalogue import load_catalogue
from accord.authz.domain import workflow_approvals as rules
from accord.authz.domain.approvals import ApprovalSettings
from accord.authz.domain.policy_files import default_policy_dir, load_policy_dir
from accord.authz.fakes import Memory
from accord.authz.handlers.workflow_approvals import decide_workflow_approval
from accord.authz.ports import AuthzPorts
from accord.events import (
    ApprovalDecided,
    ApprovalRequested,
    Envelope,
    EventData,
    GroupCreated,
    GroupMembersChanged,
    UserCreated,
    new_event,
)
from accord.runtime.routes import HandlerContext

POLICIES = load_policy_dir(default_policy_dir())
CATALOGUE = load_catalogue(default_policy_dir() / "catalogue.yaml")
SOURCE = "urn:test:authz"
CTX = cast(HandlerContext, object())
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def memory(clock: Clock) -> Memory:
    """ada reports to mia; the it-leads group holds tom, ada and (nested) the oncall group
    with sam."""
    memory = Memory(clock=clock)
    for user_id, manager in (("mia", None), ("ada", "mia"), ("tom", None), ("sam", None)):
        await consume(memory, UserCreated(user_id=user_id, user_name=user_id, manager_id=manager))
    for group_id in ("it-leads", "oncall"):
        await consume(memory, GroupCreated(group_id=group_id, display_name=group_id))
    await consume(memory, GroupMembersChanged(group_id="oncall", added=("sam",)))
    await consume(memory, GroupMembersChanged(group_id="it-leads", added=("tom", "ada", "oncall")))
    return memory


def ports_of(memory: Memory) -> AuthzPorts:
    return memory.ports(lambda: (POLICIES, CATALOGUE), ApprovalSettings(), SOURCE)


async def consume(
    memory: Memory, data: EventData, *, event: Envelope | None = None
) -> list[Envelope]:
    routes = handlers.routes(lambda ctx: ports_of(memory))
    if event is None:
        sequence = None if data.event_type == "approval.requested" else 1
        event = new_event(data, source="urn:test", sequence=sequence)
    return list(await routes[event.type](event, CTX))


def asking(
    *approvers: str, approval_id: str = "run-1:approve:1", **more: object
) -> ApprovalRequested:
    return ApprovalRequested.model_validate(
        {
            "approval_id": approval_id,
            "user_id": "ada",
            "workflow_id": "contractor-end-date",
            "run_id": "run-1",
            "task_id": "approve",
            "approvers": approvers,
            "reason": "extend ada's contract by 3 months?",
            "expires_at": NOW + timedelta(days=3),
            **more,
        }
    )


async def decide(
    memory: Memory,
    by: str,
    *,
    approve: bool = True,
    admin: bool = False,
    comment: str | None = None,
) -> list[Envelope]:
    return await decide_workflow_approval(
        memory.stores(),
        "run-1:approve:1",
        approver_id=by,
        approve=approve,
        comment=comment,
        admin=admin,
        source=SOURCE,
    )


# --- resolution -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("asked", "resolved"),
    [
        (("manager",), ["mia"]),
        (("group:it-leads",), ["tom", "sam"]),  # nested groups count; ada is the subject
        (("user:tom",), ["tom"]),
        (("user:tom", "manager", "user:tom"), ["tom", "mia"]),  # each once, in order
    ],
)
async def test_each_kind_of_approver_resolves_in_the_directory(
    memory: Memory, asked: tuple[str, ...], resolved: list[str]
) -> None:
    assert await consume(memory, asking(*asked)) == []
    row = memory.workflow_approvals["run-1:approve:1"]
    assert sorted(row["approvers"]) == sorted(resolved)
    assert row["asked"] == list(asked)
    assert row["status"] == "pending"


async def test_the_identity_never_resolves_as_its_own_approver(memory: Memory) -> None:
    await consume(memory, asking("user:ada", "user:tom"))
    assert memory.workflow_approvals["run-1:approve:1"]["approvers"] == ["tom"]


@pytest.mark.parametrize(
    "asked",
    [("user:ada",), ("group:nobody-here",), ("manager",)],
    ids=["only-itself", "empty-group", "no-manager"],
)
async def test_an_ask_that_resolves_to_nobody_is_rejected_at_once(
    memory: Memory, asked: tuple[str, ...]
) -> None:
    subject = "tom" if asked == ("manager",) else "ada"  # tom has no manager
    request = asking(*asked, user_id=subject)
    cause = new_event(request, source="urn:accord:orchestrator")
    events = await consume(memory, request, event=cause)
    assert [type(e.data) for e in events] == [ApprovalDecided]
    data = events[0].data
    assert isinstance(data, ApprovalDecided)
    assert (data.approved, data.decided_by, data.reason) == (False, "authz", rules.NO_APPROVER)
    assert (data.approval_id, data.user_id, data.run_id, data.task_id) == (
        "run-1:approve:1",
        subject,
        "run-1",
        "approve",
    )
    assert events[0].correlationid == cause.correlationid
    assert events[0].causationid == cause.id
    assert memory.workflow_approvals["run-1:approve:1"]["status"] == "rejected"


async def test_a_redelivered_request_records_and_announces_nothing_again(memory: Memory) -> None:
    request = asking("user:ada")  # rejected at once: an announcement a redelivery must not repeat
    event = new_event(request, source="urn:accord:orchestrator")
    assert len(await consume(memory, request, event=event)) == 1
    assert await consume(memory, request, event=event) == []
    # Even a changed directory does not re-resolve a known ask.
    again = asking("user:tom")
    assert await consume(memory, again) == []
    assert memory.workflow_approvals["run-1:approve:1"]["approvers"] == []
    assert len(memory.workflow_approvals) == 1


async def test_an_escalation_is_a_new_ask_with_its_flag(memory: Memory) -> None:
    await consume(memory, asking("manager"))
    await consume(memory, asking("user:tom", approval_id="run-1:approve:2", escalation=True))
    assert memory.workflow_approvals["run-1:approve:2"]["escalation"] is True
    assert memory.workflow_approvals["run-1:approve:1"]["escalation"] is False


# --- deciding -------------------------------------------------------------------------------


async def test_an_approver_decides_and_the_run_hears_it(memory: Memory, clock: Clock) -> None:
    cause = new_event(asking("manager", "user:tom"), source="urn:accord:orchestrator")
    await consume(memory, cause.data, event=cause)
    clock.now = NOW + timedelta(hours=2)
    events = await decide(memory, "mia", comment="  fine by me ")
    assert len(events) == 1
    data = events[0].data
    assert data == ApprovalDecided(
        approval_id="run-1:approve:1",
        user_id="ada",
        run_id="run-1",
        task_id="approve",
        approved=True,
        decided_by="mia",
        decided_at=NOW + timedelta(hours=2),
        reason="fine by me",
    )
    assert events[0].subject == "ada"
    assert events[0].correlationid == cause.correlationid
    row = memory.workflow_approvals["run-1:approve:1"]
    assert (row["status"], row["decided_by"]) == ("approved", "mia")


async def test_a_rejection_is_approved_false(memory: Memory) -> None:
    await consume(memory, asking("group:it-leads"))
    (event,) = await decide(memory, "sam", approve=False)
    assert isinstance(event.data, ApprovalDecided)
    assert (event.data.approved, event.data.decided_by, event.data.reason) == (False, "sam", None)
    assert memory.workflow_approvals["run-1:approve:1"]["status"] == "rejected"


async def test_someone_not_involved_finds_no_approval(memory: Memory) -> None:
    await consume(memory, asking("user:tom"))
    with pytest.raises(rules.NotInvolved):
        await decide(memory, "mia")
    with pytest.raises(rules.ApprovalNotFound):
        await decide_workflow_approval(
            memory.stores(),
            "run-9:approve:1",
            approver_id="tom",
            approve=True,
            comment=None,
            admin=True,
            source=SOURCE,
        )
    assert memory.workflow_approvals["run-1:approve:1"]["status"] == "pending"


async def test_the_identity_never_decides_its_own_even_as_an_admin(memory: Memory) -> None:
    await consume(memory, asking("group:it-leads"))  # ada is in it-leads
    for admin in (False, True):
        with pytest.raises(rules.NotAnApprover, match="about themselves"):
            await decide(memory, "ada", admin=admin)
    assert memory.workflow_approvals["run-1:approve:1"]["status"] == "pending"


async def test_an_admin_decides_without_being_an_approver(memory: Memory) -> None:
    await consume(memory, asking("user:tom"))
    (event,) = await decide(memory, "root", admin=True)
    assert isinstance(event.data, ApprovalDecided)
    assert (event.data.approved, event.data.decided_by) == (True, "root")


async def test_a_decision_at_or_after_expiry_is_refused(memory: Memory, clock: Clock) -> None:
    await consume(memory, asking("user:tom"))
    clock.now = NOW + timedelta(days=3)
    with pytest.raises(rules.TooLate):
        await decide(memory, "tom")
    assert memory.workflow_approvals["run-1:approve:1"]["status"] == "pending"


async def test_a_second_decision_is_refused(memory: Memory) -> None:
    await consume(memory, asking("user:tom", "manager"))
    await decide(memory, "tom")
    with pytest.raises(rules.NotPending) as refused:
        await decide(memory, "mia", approve=False)
    assert refused.value.status == "approved"


def test_resolve_is_pure_and_ordered() -> None:
    assert rules.resolve(
        ["group:g", "manager", "user:x"],
        subject="x",
        manager="m",
        group_members={"g": ["a", "m"]},
    ) == ("a", "m")
