"""Maps an Accord profile onto an LDAP inetOrgPerson entry (RFC 2798).

The entry's RDN is `uid=<user name>`; Accord's user_id goes into a link attribute
(`description` by default, as `accord:<user_id>`) so the account is recognised even after a
rename, and an account made by someone else is never taken for one of ours.
"""

from __future__ import annotations

from accord.events.catalogue import Profile

OBJECT_CLASSES = ("top", "person", "organizationalPerson", "inetOrgPerson")
LINK_PREFIX = "accord:"


def link_value(user_id: str) -> str:
    """The link attribute's value for an identity."""
    return f"{LINK_PREFIX}{user_id}"


def linked_user_id(values: list[str]) -> str | None:
    """The Accord user_id an entry's link attribute names, if any."""
    for value in values:
        if value.startswith(LINK_PREFIX):
            return value.removeprefix(LINK_PREFIX)
    return None


def entry_attributes(
    user_id: str, profile: Profile, *, link_attribute: str
) -> dict[str, list[str]]:
    """Every mapped attribute, an empty list meaning "no value" (so an update removes it)."""
    full_name = " ".join(p for p in (profile.given_name, profile.family_name) if p)
    return {
        "uid": [profile.user_name],
        "cn": [profile.display_name or full_name or profile.user_name],
        "sn": [profile.family_name or profile.user_name],
        "givenName": _optional(profile.given_name),
        "displayName": _optional(profile.display_name),
        "mail": _optional(profile.email),
        "title": _optional(profile.title),
        "departmentNumber": _optional(profile.department),
        "employeeNumber": _optional(profile.employee_number),
        link_attribute: [link_value(user_id)],
    }


def _optional(value: str | None) -> list[str]:
    return [value] if value else []
