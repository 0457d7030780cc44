"""Provisioning commands: a group goes with membership operations, and only with them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from accord.events import Profile, ProvisionRequested

COMMON = {
    "user_id": "u-1",
    "target": "ldap",
    "saga_id": "s-1",
    "step_id": "s-1:ldap",
    "profile": Profile(user_name="ada"),
}


@pytest.mark.parametrize("operation", ["add_member", "remove_member"])
def test_a_membership_command_names_its_group(operation: str) -> None:
    command = ProvisionRequested(**COMMON, operation=operation, group="Finance Approvers")
    assert command.group == "Finance Approvers"
    with pytest.raises(ValidationError, match="group is required"):
        ProvisionRequested(**COMMON, operation=operation)


def test_an_account_command_takes_no_group() -> None:
    with pytest.raises(ValidationError, match="only there"):
        ProvisionRequested(**COMMON, operation="create", group="Admins")
