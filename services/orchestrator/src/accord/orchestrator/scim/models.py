"""The SCIM models the inbound server serves, where RFC 7643 asks less than scim2-models.

RFC 7643 section 4.3 makes the enterprise manager's `value` and `$ref` RECOMMENDED, not
required, and Entra ID and Okta send `{"value": id}` only. The manager below accepts that,
and the bare id Entra ID's PATCH of the manager path carries; the service fills `$ref` in
when it answers (see `with_manager_reference`).

RFC 7643 has no hire or leave date, so Accord adds an extension of its own (`LifecycleUser`)
that lifecycle workflows read their dates from.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, model_validator
from scim2_models import (
    URN,
    Attribute,
    CaseExact,
    Extension,
    Reference,
    Required,
    Resource,
    Schema,
    User,
)
from scim2_models import EnterpriseUser as Rfc7643EnterpriseUser
from scim2_models.resources.enterprise_user import Manager as Rfc7643Manager

from accord.events.catalogue.base import DateOrTimestamp

USERS = "Users"
"""The endpoint of the Users, relative to the SCIM root: `$ref` is `Users/<value>`."""


class Manager(Rfc7643Manager):
    """The User's manager: its id (`value`), the URI of that User (`$ref`), both optional."""

    value: Annotated[str | None, Required.false, CaseExact.true] = None
    """The id of the SCIM resource representing the User's manager."""

    ref: Annotated[Reference[User] | None, Required.false] = Field(  # type: ignore[type-arg]
        None, serialization_alias="$ref", validation_alias="$ref"
    )
    """The URI of the SCIM resource representing the User's manager."""

    @model_validator(mode="before")
    @classmethod
    def _bare_id(cls, data: Any) -> Any:
        """Entra ID PATCHes `...:manager` with the manager's id as a string: it is `value`."""
        return {"value": data} if isinstance(data, str) else data


class EnterpriseUser(Rfc7643EnterpriseUser):
    """Enterprise User (RFC 7643 section 4.3): its manager may come without `$ref`."""

    manager: Manager | None = None
    """The User's manager."""


LIFECYCLE = "urn:accord:params:scim:schemas:extension:lifecycle:2.0:User"
"""The URN of Accord's lifecycle extension of the User (hire and leave dates)."""


class LifecycleUser(Extension):
    """Accord's lifecycle extension of the User: the dates lifecycle workflows run on.

    The attributes are dateTime (RFC 7643 section 2.3.5), and a date (`2025-03-03`) is
    accepted too: it means that day in the User's `timezone`, which is what an HR system
    knows of a first or last day. A value is kept and returned exactly as sent.
    """

    __schema__ = URN(LIFECYCLE)

    hire_date: Annotated[DateOrTimestamp | None, Required.false] = None
    """The first working day (a date, that day in the User's timezone) or instant."""

    leave_date: Annotated[DateOrTimestamp | None, Required.false] = None
    """The last working day (a date, that day in the User's timezone) or instant."""

    @classmethod
    def to_schema(cls) -> Schema:
        """The published schema: the dates are dateTime, although held as the text sent (a
        pydantic datetime would turn `2025-03-03` into midnight UTC, another day in Tokyo)."""
        schema = super().to_schema()
        schema.name = "Lifecycle User"
        schema.description = (
            "Accord's lifecycle extension of the User: hire and leave dates, each a dateTime"
            " or a date (that day in the User's timezone), kept as sent"
        )
        for attribute in schema.attributes or []:
            attribute.type = Attribute.Type.date_time
        return schema


def with_manager_reference(resource: Resource[Any]) -> Resource[Any]:
    """The resource, its manager's `$ref` filled in from `value` when the client sent none.

    The reference is relative to the SCIM root (RFC 7643 section 2.3.7); the service makes
    it a URL when it answers, as it does every reference.
    """
    extension = getattr(resource, EnterpriseUser.__name__, None)
    manager = getattr(extension, "manager", None)
    if isinstance(manager, Manager) and manager.value and manager.ref is None:
        manager.ref = Reference[User](f"{USERS}/{manager.value}")  # type: ignore[type-arg]
    return resource
