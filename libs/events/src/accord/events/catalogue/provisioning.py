"""Provisioning: the command to the provisioner and its results."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import ConfigDict, Field, model_validator
from pydantic.config import JsonDict

from accord.events import topics
from accord.events.catalogue.base import (
    EventData,
    Identifier,
    Integer,
    ShortText,
    ValueObject,
)
from accord.events.catalogue.identity import Profile

Operation = Literal[
    "create", "update", "disable", "enable", "delete", "add_member", "remove_member"
]
MEMBERSHIP_OPERATIONS: frozenset[str] = frozenset({"add_member", "remove_member"})
#: `_group_goes_with_membership` in JSON Schema, so the published schema refuses what it does.
_GROUP_GOES_WITH_MEMBERSHIP: JsonDict = {
    "if": {"properties": {"operation": {"enum": [*sorted(MEMBERSHIP_OPERATIONS)]}}},
    "then": {"required": ["group"], "properties": {"group": {"type": "string"}}},
    "else": {"properties": {"group": {"type": "null"}}},
}


class ProvisioningEvent(EventData):
    """Common shape of provisioning events: one identity, one target, one step of one saga."""

    model_config = ConfigDict(json_schema_extra=_GROUP_GOES_WITH_MEMBERSHIP)
    subject_field: ClassVar[str] = "user_id"

    user_id: Identifier
    """The identity whose account this is about."""
    target: Identifier
    """Target system name, as declared in the provisioner's targets file."""
    operation: Operation
    """What to do (or what was done) to the account."""
    saga_id: Identifier
    """The saga that asked; results are routed back to it."""
    step_id: Identifier
    """Saga step id; with saga_id it makes retries of one step recognisable."""
    group: ShortText | None = None
    """add_member / remove_member: the group in the target (its name there)."""

    @model_validator(mode="after")
    def _group_goes_with_membership(self) -> ProvisioningEvent:
        if (self.group is not None) != (self.operation in MEMBERSHIP_OPERATIONS):
            raise ValueError("group is required for add_member/remove_member, and only there")
        return self


class ProvisionRequested(ProvisioningEvent):
    """Command: make the account of an identity in a target match this profile."""

    event_type: ClassVar[str] = topics.PROVISION_REQUESTED

    profile: Profile
    """Desired attributes of the account."""


class AccountProvisioned(ProvisioningEvent):
    """The target now holds the account as requested."""

    event_type: ClassVar[str] = topics.ACCOUNT_PROVISIONED

    account_id: ShortText
    """The account's id in the target (SCIM id, LDAP DN, ...)."""
    already_existed: bool = False
    """True when the account was found instead of created (a replay or an adopted account)."""


class AccountProvisionFailed(ProvisioningEvent):
    """The target could not be brought to the requested state."""

    event_type: ClassVar[str] = topics.ACCOUNT_PROVISION_FAILED

    reason: ShortText
    """What went wrong, safe to show (never a secret)."""
    retryable: bool
    """False for permanent errors (bad data, refused by the target)."""


# --- reconciliation ------------------------------------------------------------------------


class Difference(ValueObject):
    """One attribute that differs between what an identity should have and what a target has."""

    field: ShortText
    """Profile field (e.g. `title`), or `active` for the account's status."""
    expected: ShortText | None
    """The value the identity should have there (as the target would store it)."""
    actual: ShortText | None
    """The value the target holds."""


class AccountDriftDetected(EventData):
    """A target's account differs from what the identity should have, or is missing."""

    event_type: ClassVar[str] = topics.ACCOUNT_DRIFT_DETECTED
    subject_field: ClassVar[str] = "user_id"

    user_id: Identifier
    """The identity whose account drifted."""
    target: Identifier
    """Target system name."""
    run_id: Identifier
    """The reconciliation run that found it."""
    kind: Literal["attributes", "missing"]
    """attributes: the account differs; missing: the identity should have one and has none."""
    account_id: ShortText | None = None
    """The account in the target (none when missing)."""
    differences: tuple[Difference, ...] = Field(default=(), max_length=64)
    """What differs, field by field (empty when missing)."""
    repair_requested: bool = False
    """True when the run repairs it (`--fix`): a provision.requested follows."""


class AccountOrphanDetected(EventData):
    """A target holds an account no identity should have there."""

    event_type: ClassVar[str] = topics.ACCOUNT_ORPHAN_DETECTED
    subject_field: ClassVar[str] = "target"

    target: Identifier
    """Target system name."""
    run_id: Identifier
    """The reconciliation run that found it."""
    account_id: ShortText
    """The account in the target."""
    user_name: ShortText
    """Its login name there."""
    owner: ShortText | None = None
    """The identity the account is linked to, if any."""
    reason: Literal["unlinked", "unknown_owner", "not_entitled"]
    """unlinked: nobody claims it; unknown_owner: linked to an identity Accord never
    provisioned there; not_entitled: its identity should have no account there (any more)."""


class ReconciliationCompleted(EventData):
    """A reconciliation run over one target finished."""

    event_type: ClassVar[str] = topics.RECONCILIATION_COMPLETED
    subject_field: ClassVar[str] = "target"

    target: Identifier
    """Target system name."""
    run_id: Identifier
    """The run."""
    accounts: Integer = Field(ge=0)
    """Accounts read from the target."""
    in_sync: Integer = Field(ge=0)
    """Accounts exactly as they should be."""
    drifted: Integer = Field(ge=0)
    """Accounts whose attributes or status differ."""
    missing: Integer = Field(ge=0)
    """Accounts that should exist and do not."""
    orphans: Integer = Field(ge=0)
    """Accounts nobody should have."""
    repairs_requested: Integer = Field(ge=0)
    """Drifted and missing accounts the run asked the provisioner to repair (`--fix`)."""
    duration_ms: Integer = Field(ge=0)
    """How long the run took."""
