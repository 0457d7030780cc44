"""Access events: requests, decisions, grants and revocations."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import Field

from accord.events import topics
from accord.events.catalogue.base import EventData, Identifier, LongText, ShortText, ValueObject


class Resource(ValueObject):
    """What access is asked for: an entitlement inside an application."""

    application: Identifier
    """Application (target system) id."""
    entitlement: Identifier
    """Entitlement (role, group, licence) id inside the application."""


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
    duration_seconds: int | None = Field(default=None, gt=0, le=366 * 24 * 3600)
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
    expires_at: datetime | None = None
    """When a time-bound grant ends by itself."""


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
