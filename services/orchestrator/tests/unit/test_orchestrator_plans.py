"""Which step each target needs when an identity moves, comes back or leaves, or when a grant
gives or takes group memberships."""

from __future__ import annotations

import pytest

from accord.orchestrator.domain.account_saga import Step
from accord.orchestrator.domain.plans import every_account, memberships, mover_steps

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
