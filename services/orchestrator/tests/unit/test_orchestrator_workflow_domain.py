"""The workflows' pure decisions: what a saga plans, how it fails, which ids it gets."""

from __future__ import annotations

import pytest

from accord.events import AccessGranted, AccessRevoked, Profile
from accord.orchestrator.domain import account_saga as saga
from accord.orchestrator.domain.birthright import everyone
from accord.orchestrator.domain.workflow import (
    Accounts,
    Identity,
    WorkflowSettings,
    access_saga_id,
    identity_now,
    needs_accounts,
    options,
    plan,
    saga_id_of,
)

SETTINGS = WorkflowSettings(birthright=everyone(["crm", "wiki"]), transient_rounds=3)
#: What a comeback or a mover does with the accounts the birthright no longer wants.
GONE = {"old": "delete", "doubt": "delete"}
ACCOUNTS = Accounts(held=("crm", "old"), maybe=("crm", "doubt", "old"))


def identity(status: str = "active", locked_by: str | None = None) -> Identity:
    profile = Profile(user_name="ada", active=status == "active")
    return Identity("u-1", status, profile, locked_by)


@pytest.mark.parametrize(
    ("saga_type", "operation", "steps"),
    [
        ("joiner", None, {"crm": "create", "wiki": "create"}),
        ("mover", None, {"crm": "update", "wiki": "create", **GONE}),
        ("reactivation", None, {"crm": "enable", "wiki": "create", **GONE}),
        ("leaver", "delete", {"crm": "delete", "doubt": "delete", "old": "delete"}),
        ("lockout", None, {"crm": "disable", "doubt": "disable", "old": "disable"}),
    ],
)
def test_each_workflow_plans_from_the_birthright_and_the_accounts(
    saga_type: saga.SagaType, operation: saga.Operation | None, steps: dict[str, str]
) -> None:
    planned = plan(SETTINGS, identity(), ACCOUNTS, saga_type, operation)
    assert planned is not None
    assert dict(planned.steps) == steps  # type: ignore[arg-type]


def test_a_gone_or_deleted_identity_gets_no_joiner_mover_or_grant() -> None:
    assert plan(SETTINGS, None, ACCOUNTS, "leaver", "disable") is None
    for saga_type in ("joiner", "mover", "access_grant"):
        assert plan(SETTINGS, identity("deleted"), ACCOUNTS, saga_type, None) is None


def test_a_locked_identity_stays_disabled_and_does_not_come_back() -> None:
    locked = identity(locked_by="lock-1")
    back = plan(SETTINGS, locked, ACCOUNTS, "reactivation", None)
    assert back is not None
    assert (dict(back.steps), back.profile.active) == ({}, False)  # type: ignore[arg-type]
    assert not needs_accounts(locked, "unlock")
    assert needs_accounts(identity(), "unlock")


def test_an_access_saga_plans_its_grants_memberships() -> None:
    steps = (saga.Step("crm", "add_member", group="sales"),)
    planned = plan(SETTINGS, identity(), Accounts(), "access_grant", None, steps)
    assert planned is not None
    assert planned.steps == steps
    assert not needs_accounts(identity(), "access_grant")
    assert not needs_accounts(identity(), "joiner")


def test_a_retry_sees_the_identity_as_it_is_now() -> None:
    assert identity_now(SETTINGS, None) == saga.IdentityNow("deleted", wanted=frozenset())
    now = identity_now(SETTINGS, identity("inactive", locked_by="lock-1"))
    assert now == saga.IdentityNow("inactive", locked=True, wanted=frozenset({"crm", "wiki"}))


def test_leavers_retry_by_themselves_and_joiners_fail_as_configured() -> None:
    assert options(SETTINGS, "leaver") == {"retries_itself": True}
    assert options(SETTINGS, "lockout") == {"retries_itself": True}
    assert options(SETTINGS, "mover") == {"transient_rounds": 3}
    assert options(SETTINGS, "joiner") == {"transient_rounds": 3, "on_failure": "keep"}


def test_saga_ids_are_one_per_cause_and_per_grant_and_event_type() -> None:
    assert saga_id_of("e-1") == saga_id_of("e-1") != saga_id_of("e-2")
    grant = access_saga_id(AccessGranted, "g-1")
    assert grant == access_saga_id(AccessGranted, "g-1")
    assert grant != access_saga_id(AccessRevoked, "g-1")
