"""The event catalogue: every event type Accord knows, one module per area."""

from accord.events.catalogue.access import (
    AccessDecided,
    AccessGranted,
    AccessRequested,
    AccessRevoked,
    Resource,
)
from accord.events.catalogue.audit import AuditRecorded
from accord.events.catalogue.base import EventData, ValueObject
from accord.events.catalogue.identity import (
    GroupCreated,
    GroupDeleted,
    GroupMembersChanged,
    GroupUpdated,
    Profile,
    UserCreated,
    UserDeactivated,
    UserDeleted,
    UserReactivated,
    UserSnapshot,
    UserUpdated,
)
from accord.events.catalogue.provisioning import (
    AccountProvisioned,
    AccountProvisionFailed,
    ProvisionRequested,
)
from accord.events.catalogue.saga import SagaCompleted, SagaFailed, SagaStarted

CATALOGUE: tuple[type[EventData], ...] = (
    UserCreated,
    UserUpdated,
    UserDeactivated,
    UserReactivated,
    UserDeleted,
    GroupCreated,
    GroupUpdated,
    GroupDeleted,
    GroupMembersChanged,
    AccessRequested,
    AccessDecided,
    AccessGranted,
    AccessRevoked,
    ProvisionRequested,
    AccountProvisioned,
    AccountProvisionFailed,
    SagaStarted,
    SagaCompleted,
    SagaFailed,
    AuditRecorded,
)

__all__ = [
    "CATALOGUE",
    "AccessDecided",
    "AccessGranted",
    "AccessRequested",
    "AccessRevoked",
    "AccountProvisionFailed",
    "AccountProvisioned",
    "AuditRecorded",
    "EventData",
    "GroupCreated",
    "GroupDeleted",
    "GroupMembersChanged",
    "GroupUpdated",
    "Profile",
    "ProvisionRequested",
    "Resource",
    "SagaCompleted",
    "SagaFailed",
    "SagaStarted",
    "UserCreated",
    "UserDeactivated",
    "UserDeleted",
    "UserReactivated",
    "UserSnapshot",
    "UserUpdated",
    "ValueObject",
]
