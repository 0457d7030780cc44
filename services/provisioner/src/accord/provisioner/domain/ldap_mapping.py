"""Maps an Accord profile onto an LDAP inetOrgPerson entry (RFC 2798), and back.

The entry's RDN is `uid=<user name>`; Accord's user_id goes into a link attribute
(`description` by default, as `accord:<user_id>`) so the account is recognised even after a
rename, and an account made by someone else is never taken for one of ours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from accord.events.catalogue import Profile
from accord.provisioner.domain.profiles import read_profile, with_stored

OBJECT_CLASSES = ("top", "person", "organizationalPerson", "inetOrgPerson")
LINK_PREFIX = "accord:"

#: Profile field -> the attribute that stores it (cn is derived, and read back as a fallback).
_FIELD_ATTRIBUTES = {
    "user_name": "uid",
    "given_name": "givenName",
    "family_name": "sn",
    "display_name": "displayName",
    "email": "mail",
    "title": "title",
    "department": "departmentNumber",
    "employee_number": "employeeNumber",
}
MANAGED_FIELDS = frozenset(_FIELD_ATTRIBUTES)
"""The profile fields an entry stores and gives back."""
READ_ATTRIBUTES = (*_FIELD_ATTRIBUTES.values(), "cn")
"""The attributes entry_profile reads."""


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
    return {**person_attributes(profile), link_attribute: [link_value(user_id)]}


def person_attributes(profile: Profile) -> dict[str, list[str]]:
    """The attributes that hold the profile (all but the link); cn and sn are never empty."""
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
    }


def attribute_values(attributes: Mapping[str, Sequence[str]], name: str) -> list[str]:
    """The values of an attribute, its name matched case-insensitively as LDAP does."""
    wanted = name.lower()
    return [v for key, values in attributes.items() if key.lower() == wanted for v in values]


def entry_profile(attributes: Mapping[str, Sequence[str]]) -> Profile:
    """The profile an entry holds (the reverse of person_attributes); other fields default.

    A multi-valued attribute gives its first value; without a displayName the display name
    is the cn, which every entry has. Raises ValueError (a pydantic ValidationError) for an
    entry without a uid, or with values no profile may hold.
    """
    fields: dict[str, str | None] = {}
    for field, attribute in _FIELD_ATTRIBUTES.items():
        fields[field] = next(iter(attribute_values(attributes, attribute)), None)
    if fields["display_name"] is None:
        fields["display_name"] = next(iter(attribute_values(attributes, "cn")), None)
    return read_profile(fields)


def stored_profile(profile: Profile) -> Profile:
    """The profile as an entry stores and gives it back: sn and the display name derived."""
    return with_stored(profile, entry_profile(person_attributes(profile)), MANAGED_FIELDS)


def _optional(value: str | None) -> list[str]:
    return [value] if value else []
