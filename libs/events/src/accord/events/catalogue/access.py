"""Access events: requests, decisions, grants and revocations."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from accord.events import topics
from accord.events.catalogue.base import (
    INTEGRAL,
    CedarType,
    EventData,
    Identifier,
    Integer,
    LongText,
    ShortText,
    Timestamp,
    ValueObject,
)


class Resource(ValueObject):
    """What access is asked for: an entitlement inside an application."""

    application: Identifier
    """Application (target system) id."""
    entitlement: Identifier
    """Entitlement (role, group, licence) id inside the application."""


class Provisioning(ValueObject):
    """Where an entitlement lives in a target system: a group there."""

    target: Identifier
    """Target system name, as declared in the provisioner's targets file."""
    group: ShortText
    """The group in that target whose members hold the entitlement."""


class AccessEvent(EventData):
    """Common shape of events about one access request."""

    subject_field: ClassVar[str] = "request_id"

    request_id: Identifier
    """The access request this event belongs to."""


class AccessRequested(AccessEvent):
    """Someone asks for an entitlement, for themselves or for another identity."""

    event_type: ClassVar[str] = topics.ACCESS_REQUESTED

    requester_id: Identifier
    """user_id of the person asking."""
    principal_id: Identifier
    """user_id of the identity that would get the access."""
    resource: Resource
    """The entitlement asked for."""
    justification: LongText | None = None
    """Business reason given by the requester."""
    duration_seconds: Annotated[int, Field(gt=0, le=366 * 24 * 3600), INTEGRAL] | None = None
    """Time-bound access: the grant expires this long after it is given."""


class AccessDecided(AccessEvent):
    """The policy decision on an access request."""

    event_type: ClassVar[str] = topics.ACCESS_DECIDED

    principal_id: Identifier
    """user_id of the identity the request is for."""
    resource: Resource
    """The entitlement asked for."""
    decision: Literal["permit", "deny", "approval_required"]
    """Outcome: granted at once, refused, or waiting for approvals."""
    reasons: tuple[ShortText, ...] = Field(default=(), max_length=64)
    """Ids of the policies (or separation-of-duties rules) that decided."""


class AccessGranted(AccessEvent):
    """An identity now holds an entitlement."""

    event_type: ClassVar[str] = topics.ACCESS_GRANTED

    grant_id: Identifier
    """Id of the grant, used to revoke it."""
    principal_id: Identifier
    """user_id of the identity holding the access."""
    resource: Resource
    """The entitlement granted."""
    expires_at: Timestamp | None = None
    """When a time-bound grant ends by itself."""
    provisioning: tuple[Provisioning, ...] = Field(default=(), max_length=16)
    """The group memberships that carry the entitlement (from the catalogue); empty when
    it lives in Accord only."""
    reaffirmed: bool = False
    """The principal already held this grant: the request is answered with it, nothing new
    is provisioned."""


class AccessRevoked(AccessEvent):
    """An identity no longer holds an entitlement."""

    event_type: ClassVar[str] = topics.ACCESS_REVOKED

    grant_id: Identifier
    """The grant that ended."""
    principal_id: Identifier
    """user_id of the identity that held the access."""
    resource: Resource
    """The entitlement revoked."""
    reason: ShortText
    """expired, revoked by an approver, leaver, ..."""
    provisioning: tuple[Provisioning, ...] = Field(default=(), max_length=16)
    """The group memberships to take away (as the grant had them)."""


class AccessApprovalRequested(AccessEvent):
    """A stage of an access request's approval chain waits for one of its approvers."""

    event_type: ClassVar[str] = topics.ACCESS_APPROVAL_REQUESTED

    principal_id: Identifier
    """user_id of the identity the request is for."""
    resource: Resource
    """The entitlement asked for."""
    stage: Integer = Field(ge=1, le=16)
    """Which stage of the chain (1 = first)."""
    stages: Integer = Field(ge=1, le=16)
    """How many stages the chain has."""
    stage_name: ShortText
    """What the stage is, as the policy names it (manager, application_owner, ...)."""
    approvers: tuple[Identifier, ...] = Field(min_length=1, max_length=64)
    """user_ids who may decide this stage (never the requester or the principal)."""
    due_at: Timestamp | None = None
    """When the stage escalates or expires if nobody decided."""
    escalated: bool = False
    """True when the stage went to its escalation approvers after its deadline."""


class AccessApprovalDecided(AccessEvent):
    """A stage of an approval chain was decided (or timed out)."""

    event_type: ClassVar[str] = topics.ACCESS_APPROVAL_DECIDED

    principal_id: Identifier
    """user_id of the identity the request is for."""
    stage: Integer = Field(ge=1, le=16)
    """Which stage."""
    outcome: Literal["approved", "denied", "expired"]
    """What happened to the stage."""
    approver_id: Identifier | None = None
    """Who decided (none when it expired)."""
    comment: LongText | None = None
    """The approver's comment."""


class AuthzDecided(EventData):
    """A decision of the decision API (POST /v1/authorize), for the audit log."""

    event_type: ClassVar[str] = topics.AUTHZ_DECIDED
    subject_field: ClassVar[str] = "principal_id"

    decision_id: Identifier
    """This decision."""
    principal_type: CedarType
    """Cedar entity type of the principal (User, ...)."""
    principal_id: ShortText
    """Its id."""
    action: ShortText
    """The action asked about."""
    resource_type: CedarType
    """Cedar entity type of the resource."""
    resource_id: ShortText
    """Its id."""
    decision: Literal["permit", "deny"]
    """The answer."""
    reasons: tuple[ShortText, ...] = Field(default=(), max_length=64)
    """The @ids of the policies that decided."""
    sample_rate: float = Field(default=1.0, gt=0, le=1)
    """Share of decisions emitted when this one was (1: every decision)."""
