"""Maps an Accord profile onto a SCIM 2.0 User (core + enterprise extension), and back."""

from __future__ import annotations

import json
from typing import Any

from scim2_models import Email, EnterpriseUser, Name, User

from accord.events.catalogue import Profile
from accord.provisioner.domain.profiles import TEXT_FIELDS, read_profile, with_stored

ScimUser = User[EnterpriseUser]

#: Profile fields a SCIM User carries (to_scim_user writes them, to_profile reads them). The
#: lifecycle fields (employee type, hire and leave dates, time zone) drive workflows and are
#: not written to targets, so reconciliation must not count their absence as drift.
NOT_WRITTEN = frozenset({"manager_id", "employee_type", "hire_date", "leave_date", "time_zone"})
MANAGED_FIELDS = TEXT_FIELDS - NOT_WRITTEN


def to_scim_user(user_id: str, profile: Profile) -> ScimUser:
    """The SCIM resource for an identity; externalId carries Accord's user_id."""
    display = profile.display_name or " ".join(
        p for p in (profile.given_name, profile.family_name) if p
    )
    user = ScimUser(
        user_name=profile.user_name,
        external_id=user_id,
        name=Name(given_name=profile.given_name, family_name=profile.family_name)
        if profile.given_name or profile.family_name
        else None,
        display_name=display or None,
        title=profile.title,
        active=profile.active,
        emails=[Email(value=profile.email, type="work", primary=True)] if profile.email else None,
    )
    enterprise = EnterpriseUser(
        employee_number=profile.employee_number,
        department=profile.department,
        cost_center=profile.cost_center,
    )
    if enterprise.model_dump(exclude_none=True, exclude={"schemas"}):
        user[EnterpriseUser] = enterprise
    return user


def to_profile(user: ScimUser) -> Profile:
    """The profile a SCIM User holds (the reverse of to_scim_user), `active` included.

    A value a Profile cannot hold (an empty title, a malformed e-mail) reads as None, so one
    odd account does not hide the others; a userName it cannot hold raises ValueError.
    """
    enterprise = user[EnterpriseUser]
    values: dict[str, Any] = {
        "user_name": user.user_name,
        "given_name": user.name.given_name if user.name else None,
        "family_name": user.name.family_name if user.name else None,
        "display_name": user.display_name,
        "email": _email(user),
        "title": user.title,
        "department": enterprise.department if enterprise else None,
        "employee_number": enterprise.employee_number if enterprise else None,
        "cost_center": enterprise.cost_center if enterprise else None,
        "active": user.active is not False,
    }
    return read_profile(values)


def as_stored(profile: Profile) -> Profile:
    """The profile as a SCIM target reads it back: the round trip through to_scim_user.

    The displayName derived from the names fills display_name; an e-mail domain is
    lower-cased (scim2-models normalises addresses). Fields outside MANAGED_FIELDS stay.
    """
    return with_stored(profile, to_profile(to_scim_user("", profile)), MANAGED_FIELDS)


def _email(user: ScimUser) -> str | None:
    """The primary e-mail address, else the first one."""
    emails = [e for e in user.emails or [] if e.value]
    primary = [e for e in emails if e.primary] or emails
    return str(primary[0].value) if primary else None


def filter_literal(value: str) -> str:
    """A SCIM filter string literal (RFC 7644 section 3.4.2.2: JSON string rules)."""
    return json.dumps(value, ensure_ascii=False)
