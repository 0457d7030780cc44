"""Which step each target needs when an identity moves, comes back or leaves, when a grant
gives or takes group memberships, or when a workflow task acts on accounts."""

from __future__ import annotations

import pytest

from accord.orchestrator.domain.account_saga import IdentityNow, Step, TaskIntent
from accord.orchestrator.domain.plans import every_account, memberships, mover_steps, task_steps

# --- mover_steps -----------------------------------------------------------------------------


def test_a_mover_updates_kept_creates_added_and_deletes_removed_accounts() -> None:
    steps = mover_steps(["slack", "github", "jira"], ["slack", "wiki", "jira"], active=True)

    assert steps == {
        "slack": "update",
        "jira": "update",
        "github": "create",
        "wiki": "delete",
    }


def test_an_inactive_mover_gets_no_new_accounts_but_kept_and_removed_ones_still_move() -> None:
    steps = mover_steps(["slack", "github"], ["slack", "wiki"], active=False)

    assert steps == {"slack": "update", "wiki": "delete"}


def test_an_inactive_mover_with_only_new_targets_gets_nothing_created() -> None:
    assert mover_steps(["github", "jira"], [], active=False) == {}


def test_a_mover_with_no_accounts_gets_every_desired_target_created() -> None:
    assert mover_steps(["github", "slack"], [], active=True) == {
        "github": "create",
        "slack": "create",
    }


def test_a_mover_that_wants_nothing_deletes_every_account() -> None:
    assert mover_steps([], ["github", "slack"], active=True) == {
        "github": "delete",
        "slack": "delete",
    }


@pytest.mark.parametrize("active", [True, False])
def test_a_mover_with_nothing_desired_or_held_gets_no_steps(active: bool) -> None:
    assert mover_steps([], [], active=active) == {}


def test_a_mover_whose_targets_did_not_change_only_updates() -> None:
    assert mover_steps(["slack", "github"], ["github", "slack"], active=True) == {
        "slack": "update",
        "github": "update",
    }


def test_mover_steps_accepts_iterators_and_repeated_targets() -> None:
    steps = mover_steps(iter(["slack", "slack", "github"]), iter(["slack", "slack"]), active=True)

    assert steps == {"slack": "update", "github": "create"}


# --- every_account ---------------------------------------------------------------------------


@pytest.mark.parametrize("operation", ["enable", "disable", "delete"])
def test_every_account_applies_the_same_operation_to_each_held_account(
    operation: str,
) -> None:
    steps = every_account(["slack", "github"], operation)  # type: ignore[arg-type]

    assert steps == {"slack": operation, "github": operation}


def test_every_account_with_no_accounts_is_empty() -> None:
    assert every_account([], "disable") == {}


def test_every_account_names_a_repeated_account_once() -> None:
    assert every_account(["slack", "slack"], "delete") == {"slack": "delete"}


# --- memberships -----------------------------------------------------------------------------


def test_a_grant_gets_one_membership_step_per_target_and_group() -> None:
    steps = memberships(
        [("ldap", "cn=sales"), ("ldap", "cn=crm users"), ("wiki", "editors")], "add_member"
    )

    assert steps == (
        Step("ldap", "add_member", group="cn=sales"),
        Step("ldap", "add_member", group="cn=crm users"),
        Step("wiki", "add_member", group="editors"),
    )


def test_a_revocation_removes_the_memberships() -> None:
    assert memberships([("wiki", "editors")], "remove_member") == (
        Step("wiki", "remove_member", group="editors"),
    )


def test_nothing_to_provision_gives_no_steps() -> None:
    assert memberships([], "add_member") == ()


def test_memberships_are_for_membership_operations_only() -> None:
    with pytest.raises(ValueError, match="group"):
        memberships([("wiki", "editors")], "create")


# --- task_steps: a workflow task's account work ------------------------------------------------

ACTIVE = IdentityNow("active")


def _plan(intent: TaskIntent, identity: IdentityNow = ACTIVE, **kw: object) -> list[tuple]:
    arguments: dict = {"birthright": ["ldap", "scim"], "held": ["scim", "wiki"], **kw}
    steps = task_steps(intent, identity=identity, **arguments)
    return [(s.target, s.operation, s.group) for s in steps]


def test_create_all_is_the_birthright_and_named_targets_are_taken_as_named() -> None:
    assert _plan(TaskIntent("create")) == [("ldap", "create", None), ("scim", "create", None)]
    # A team may name a target the birthright does not give: the task says so.
    assert _plan(TaskIntent("create", ("github",))) == [("github", "create", None)]


def test_account_operations_act_where_accounts_are_held() -> None:
    assert _plan(TaskIntent("update")) == [("scim", "update", None), ("wiki", "update", None)]
    assert _plan(TaskIntent("enable", ("wiki", "github"))) == [("wiki", "enable", None)]


def test_disable_and_delete_also_reach_accounts_whose_creation_is_in_doubt() -> None:
    doubt = {"in_doubt": ["ldap"]}
    assert [t for t, _, _ in _plan(TaskIntent("disable"), **doubt)] == ["ldap", "scim", "wiki"]
    assert [t for t, _, _ in _plan(TaskIntent("update"), **doubt)] == ["scim", "wiki"]


def test_the_identity_as_it_is_when_the_saga_begins_decides() -> None:
    deleted = IdentityNow("deleted")
    assert _plan(TaskIntent("create"), deleted) == []  # no account for someone who left
    assert _plan(TaskIntent("update"), deleted) == []
    assert [op for _, op, _ in _plan(TaskIntent("delete"), deleted)] == ["delete", "delete"]
    assert _plan(TaskIntent("enable"), IdentityNow("inactive")) == []
    assert _plan(TaskIntent("enable"), IdentityNow("active", locked=True)) == []
    # The birthright does not judge a task's named targets, even when the caller knows it.
    judged = IdentityNow("active", wanted=frozenset({"ldap"}))
    assert _plan(TaskIntent("create", ("github",)), judged) == [("github", "create", None)]


def test_memberships_are_the_named_ones_while_the_identity_allows_them() -> None:
    add = Step("scim", "add_member", group="sales")
    assert _plan(TaskIntent("add_member"), memberships=[add]) == [("scim", "add_member", "sales")]
    assert _plan(TaskIntent("add_member"), IdentityNow("deleted"), memberships=[add]) == []
    remove = Step("scim", "remove_member", group="sales")
    assert _plan(TaskIntent("remove_member"), IdentityNow("deleted"), memberships=[remove]) == [
        ("scim", "remove_member", "sales")
    ]
