"""Provisioning: the command to the provisioner and its results."""

from __future__ import annotations

from typing import ClassVar, Literal

from accord.events import topics
from accord.events.catalogue.base import EventData, Identifier, ShortText
from accord.events.catalogue.identity import Profile

Operation = Literal["create", "update", "disable", "enable", "delete"]


class ProvisioningEvent(EventData):
    """Common shape of provisioning events: one identity, one target, one step of one saga."""

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
