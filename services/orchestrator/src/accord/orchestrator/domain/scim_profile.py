"""An inbound SCIM User (RFC 7643 section 4.1, enterprise extension 4.3, Accord's lifecycle
extension) as a registry profile.

The SCIM resource is kept whole by the SCIM storage; the profile is what workflows and
target mappings use. Values a profile cannot hold (an e-mail address without an `@`, a
manager id with spaces, a `timezone` the tz database does not know, such as a Windows zone
name) are left out of the profile, never guessed at; values too long for any target are
refused, as are hire and leave dates that are neither a date nor a date-time with offset
(the lifecycle extension is Accord's own: a client that sends it means it).
"""

from __future__ import annotations

import re
from typing import Any

from accord.events.catalogue import Profile
from accord.events.catalogue.base import time_zone_names
from accord.events.timestamps import parse_date_or_date_time

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
LIFECYCLE = "urn:accord:params:scim:schemas:extension:lifecycle:2.0:User"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}$")
MAX_TEXT = 256
MAX_DATE = 64


class UnusableValue(ValueError):
    """A SCIM value the registry cannot hold (too long, control characters)."""


def profile_of(user: dict[str, Any]) -> Profile:
    """The registry profile of a SCIM User (as JSON, attribute names as in RFC 7643)."""
    name = _dict(user.get("name"))
    enterprise = _dict(user.get(ENTERPRISE))
    lifecycle = _dict(user.get(LIFECYCLE))
    time_zone = _text(user.get("timezone"), "timezone")
    manager = _dict(enterprise.get("manager")).get("value")
    external_id = _text(user.get("externalId"), "externalId")
    user_name = _text(user.get("userName"), "userName")
    if user_name is None:
        raise UnusableValue("userName is required")
    return Profile(
        user_name=user_name,
        given_name=_text(name.get("givenName"), "name.givenName"),
        family_name=_text(name.get("familyName"), "name.familyName"),
        display_name=_text(user.get("displayName"), "displayName"),
        email=_email(user.get("emails")),
        title=_text(user.get("title"), "title"),
        department=_text(enterprise.get("department"), "department"),
        employee_number=_text(enterprise.get("employeeNumber"), "employeeNumber"),
        cost_center=_text(enterprise.get("costCenter"), "costCenter"),
        manager_id=manager if isinstance(manager, str) and _IDENTIFIER.match(manager) else None,
        active=user.get("active") is not False,
        employee_type=_text(user.get("userType"), "userType"),
        hire_date=_date(lifecycle.get("hireDate"), "hireDate"),
        leave_date=_date(lifecycle.get("leaveDate"), "leaveDate"),
        time_zone=time_zone if time_zone in time_zone_names() else None,
        attributes={"external_id": external_id} if external_id else {},
    )


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any, attribute: str) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    if len(value) > MAX_TEXT:
        raise UnusableValue(f"{attribute} is longer than {MAX_TEXT} characters")
    if "\x00" in value:
        raise UnusableValue(f"{attribute} holds a NUL character")
    return value


def _date(value: Any, attribute: str) -> str | None:
    """A lifecycle date as sent: a date or an RFC 3339 date-time with offset."""
    text = _text(value, attribute)
    if text is None:
        return None
    if len(text) > MAX_DATE:
        raise UnusableValue(f"{attribute} is longer than {MAX_DATE} characters")
    try:
        parse_date_or_date_time(text)
    except ValueError as error:
        raise UnusableValue(f"{attribute}: {error}") from None
    return text


def _email(emails: Any) -> str | None:
    """The primary address, else the work address, else the first: the first usable one."""
    if not isinstance(emails, list):
        return None
    entries = [e for e in emails if isinstance(e, dict) and isinstance(e.get("value"), str)]
    ranked = sorted(entries, key=lambda e: (e.get("primary") is not True, e.get("type") != "work"))
    for entry in ranked:
        value = entry["value"]
        if len(value) <= 254 and _EMAIL.match(value):
            return str(value)
    return None
