"""Maps an Accord profile onto a SCIM 2.0 User (core + enterprise extension)."""

from __future__ import annotations

import json

from scim2_models import Email, EnterpriseUser, Name, User

from accord.events.catalogue import Profile

ScimUser = User[EnterpriseUser]


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


def filter_literal(value: str) -> str:
    """A SCIM filter string literal (RFC 7644 section 3.4.2.2: JSON string rules)."""
    return json.dumps(value, ensure_ascii=False)
