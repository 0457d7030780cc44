"""Mapping an Accord profile onto a SCIM 2.0 User, and SCIM filter literals."""

from __future__ import annotations

import json

import pytest
from scim2_models import Context, Email, EnterpriseUser

from accord.events import Profile
from accord.provisioner.domain.scim_mapping import (
    MANAGED_FIELDS,
    ScimUser,
    as_stored,
    filter_literal,
    to_profile,
    to_scim_user,
)

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part.title() for part in rest)


def creation_payload(user_id: str, profile: Profile) -> dict[str, object]:
    payload: dict[str, object] = to_scim_user(user_id, profile).model_dump(
        scim_ctx=Context.RESOURCE_CREATION_REQUEST
    )
    return payload


def test_full_profile_maps_onto_core_and_enterprise_attributes() -> None:
    profile = Profile(
        user_name="ada.lovelace",
        given_name="Ada",
        family_name="Lovelace",
        display_name="Countess Lovelace",
        email="ada@example.org",
        title="Analyst",
        department="Research",
        employee_number="1001",
        cost_center="CC-7",
    )

    user = to_scim_user("e-1001", profile)

    assert user.external_id == "e-1001"
    assert user.user_name == "ada.lovelace"
    assert user.name is not None
    assert user.name.given_name == "Ada"
    assert user.name.family_name == "Lovelace"
    assert user.display_name == "Countess Lovelace"
    assert user.title == "Analyst"
    assert user.active is True
    assert user.emails is not None
    assert len(user.emails) == 1
    assert user.emails[0].value == "ada@example.org"
    assert user.emails[0].type == "work"
    assert user.emails[0].primary is True
    enterprise = user[EnterpriseUser]
    assert enterprise is not None
    assert enterprise.employee_number == "1001"
    assert enterprise.department == "Research"
    assert enterprise.cost_center == "CC-7"

    payload = creation_payload("e-1001", profile)
    assert payload["schemas"] == [CORE, ENTERPRISE]
    assert payload["externalId"] == "e-1001"
    assert payload["userName"] == "ada.lovelace"
    assert payload[ENTERPRISE] == {
        "employeeNumber": "1001",
        "department": "Research",
        "costCenter": "CC-7",
    }
    assert "id" not in payload  # the target assigns it


def test_minimal_profile_has_no_name_display_name_emails_or_extension() -> None:
    user = to_scim_user("e-1", Profile(user_name="ada"))

    assert user.external_id == "e-1"
    assert user.user_name == "ada"
    assert user.name is None
    assert user.display_name is None
    assert user.emails is None
    assert user.title is None
    assert user[EnterpriseUser] is None

    payload = creation_payload("e-1", Profile(user_name="ada"))
    assert payload == {"schemas": [CORE], "externalId": "e-1", "userName": "ada", "active": True}


@pytest.mark.parametrize(
    ("given", "family", "display"),
    [
        ("Ada", "Lovelace", "Ada Lovelace"),
        ("Ada", None, "Ada"),
        (None, "Lovelace", "Lovelace"),
    ],
)
def test_display_name_is_derived_when_missing(
    given: str | None, family: str | None, display: str
) -> None:
    user = to_scim_user("e-1", Profile(user_name="ada", given_name=given, family_name=family))

    assert user.display_name == display
    assert user.name is not None
    assert user.name.given_name == given
    assert user.name.family_name == family


def test_an_explicit_display_name_wins() -> None:
    profile = Profile(user_name="ada", given_name="Ada", family_name="L", display_name="Ada L.")
    assert to_scim_user("e-1", profile).display_name == "Ada L."


@pytest.mark.parametrize("field", ["employee_number", "department", "cost_center"], ids=lambda f: f)
def test_enterprise_extension_appears_when_any_one_of_its_fields_is_set(field: str) -> None:
    profile = Profile.model_validate({"user_name": "ada", field: "X-1"})

    user = to_scim_user("e-1", profile)

    enterprise = user[EnterpriseUser]
    assert enterprise is not None
    assert getattr(enterprise, field) == "X-1"
    payload = creation_payload("e-1", profile)
    assert payload["schemas"] == [CORE, ENTERPRISE]
    assert payload[ENTERPRISE] == {_camel(field): "X-1"}


def test_fields_outside_the_extension_do_not_create_it() -> None:
    profile = Profile(user_name="ada", title="Analyst", email="ada@example.org")

    user = to_scim_user("e-1", profile)

    assert user[EnterpriseUser] is None
    payload = creation_payload("e-1", profile)
    assert payload["schemas"] == [CORE]
    assert ENTERPRISE not in payload


@pytest.mark.parametrize("active", [True, False])
def test_active_flag_is_carried(active: bool) -> None:
    profile = Profile(user_name="ada", active=active)

    assert to_scim_user("e-1", profile).active is active
    assert creation_payload("e-1", profile)["active"] is active


def test_payload_is_json_serialisable() -> None:
    profile = Profile(user_name="ada", given_name="Ada", email="ada@example.org", department="R")
    json.dumps(creation_payload("e-1", profile))


# --- reading back --------------------------------------------------------------------------


def managed(profile: Profile) -> dict[str, object]:
    return {field: getattr(profile, field) for field in sorted(MANAGED_FIELDS)}


FULL = Profile(
    user_name="ada.lovelace",
    given_name="Ada",
    family_name="Lovelace",
    display_name="Countess Lovelace",
    email="ada@example.org",
    title="Analyst",
    department="Research",
    employee_number="1001",
    cost_center="CC-7",
    manager_id="u-babbage",
    attributes={"floor": "3"},
)


@pytest.mark.parametrize(
    "profile",
    [
        FULL,
        Profile(user_name="ada"),
        Profile(user_name="ada", family_name="Lovelace", active=False),
        Profile(user_name="ada", department="Research"),
    ],
    ids=["full", "bare", "family name only", "extension only"],
)
def test_a_user_reads_back_as_the_stored_profile(profile: Profile) -> None:
    read = to_profile(to_scim_user("e-1", profile))

    assert managed(read) == managed(as_stored(profile))
    assert read.active is profile.active


def test_as_stored_derives_the_display_name_and_keeps_what_scim_does_not_carry() -> None:
    profile = FULL.model_copy(update={"display_name": None})

    stored = as_stored(profile)

    assert stored.display_name == "Ada Lovelace"
    assert (stored.manager_id, stored.attributes) == ("u-babbage", {"floor": "3"})
    assert as_stored(Profile(user_name="ada")).display_name is None
    assert as_stored(FULL) == FULL


def test_as_stored_normalises_the_e_mail_domain_as_the_scim_models_do() -> None:
    assert as_stored(Profile(user_name="ada", email="Ada@Example.ORG")).email == "Ada@example.org"


def test_the_primary_e_mail_wins_else_the_first() -> None:
    user = ScimUser(
        user_name="ada",
        emails=[Email(value="home@example.org"), Email(value="work@example.org", primary=True)],
    )
    assert to_profile(user).email == "work@example.org"
    user.emails = [Email(value="home@example.org"), Email(value="other@example.org")]
    assert to_profile(user).email == "home@example.org"


def test_a_user_without_an_active_flag_reads_as_active() -> None:
    assert to_profile(ScimUser(user_name="ada")).active is True


def test_values_a_profile_cannot_hold_read_as_none() -> None:
    user = ScimUser(user_name="ada", title="", display_name="x" * 300, nick_name="kept out")

    read = to_profile(user)

    assert (read.user_name, read.title, read.display_name) == ("ada", None, None)


@pytest.mark.parametrize("user_name", ["", "x" * 300, None])
def test_a_user_name_a_profile_cannot_hold_is_an_error(user_name: str | None) -> None:
    with pytest.raises(ValueError, match=r"user name .* is not a valid one"):
        to_profile(ScimUser(user_name=user_name, title=""))


# --- filter literals -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("ada", '"ada"'),
        ("", '""'),
        ('say "hi"', '"say \\"hi\\""'),
        ("back\\slash", '"back\\\\slash"'),
        ('\\"', '"\\\\\\""'),
        ('a"b\\c', '"a\\"b\\\\c"'),
        ("o'brien", '"o\'brien"'),
    ],
)
def test_filter_literal_escapes_quotes_and_backslashes(value: str, literal: str) -> None:
    assert filter_literal(value) == literal


@pytest.mark.parametrize("value", ["ada", 'a"b', "a\\b", '\\"\\', 'x\\"y"z\\\\', "日本"])
def test_filter_literal_is_a_json_string_that_decodes_to_the_value(value: str) -> None:
    # RFC 7644 section 3.4.2.2: filter string literals follow JSON string rules.
    assert json.loads(filter_literal(value)) == value


@pytest.mark.parametrize("value", ["tab\there", "line\nbreak", "bell\x07"])
def test_filter_literal_escapes_control_characters(value: str) -> None:
    assert json.loads(filter_literal(value)) == value
