"""A profile as an inetOrgPerson entry, and the link that tells whose entry it is."""

from __future__ import annotations

import pytest

from accord.events import Profile
from accord.provisioner.domain.ldap_mapping import (
    MANAGED_FIELDS,
    attribute_values,
    entry_attributes,
    entry_profile,
    link_value,
    linked_user_id,
    person_attributes,
    stored_profile,
)


def test_every_mapped_attribute_with_absent_values_as_empty_lists() -> None:
    profile = Profile(user_name="ada", given_name="Ada", family_name="Lovelace", title="Analyst")

    attributes = entry_attributes("e-1", profile, link_attribute="description")

    assert attributes == {
        "uid": ["ada"],
        "cn": ["Ada Lovelace"],
        "sn": ["Lovelace"],
        "givenName": ["Ada"],
        "displayName": [],
        "mail": [],
        "title": ["Analyst"],
        "departmentNumber": [],
        "employeeNumber": [],
        "description": ["accord:e-1"],
    }


def test_required_names_fall_back_to_the_user_name() -> None:
    attributes = entry_attributes("e-2", Profile(user_name="bob"), link_attribute="seeAlso")
    assert (attributes["cn"], attributes["sn"], attributes["seeAlso"]) == (
        ["bob"],
        ["bob"],
        ["accord:e-2"],
    )


def test_the_link_names_the_identity_and_ignores_other_values() -> None:
    assert linked_user_id(["a note", link_value("e-3")]) == "e-3"
    assert linked_user_id(["a note"]) is None
    assert linked_user_id([]) is None


def test_an_entry_reads_back_as_the_profile_it_stores() -> None:
    profile = Profile(
        user_name="ada",
        given_name="Ada",
        family_name="Lovelace",
        display_name="Ada L.",
        email="ada@example.com",
        title="Analyst",
        department="Research",
        employee_number="E1",
        cost_center="CC-42",
    )

    read = entry_profile(person_attributes(profile))

    assert read == profile.model_copy(update={"cost_center": None})
    assert set(MANAGED_FIELDS) == set(Profile.model_fields) - {
        "cost_center",
        "manager_id",
        "active",
        "attributes",
        *("employee_type", "hire_date", "leave_date", "time_zone"),  # workflows', not LDAP's
    }


def test_attribute_names_match_case_insensitively_and_the_first_value_counts() -> None:
    attributes = {"UID": ["bob", "robert"], "SN": ["Builder"], "CN": ["Bob B."], "mail": []}

    read = entry_profile(attributes)

    assert (read.user_name, read.family_name, read.display_name, read.email) == (
        "bob",
        "Builder",
        "Bob B.",
        None,
    )
    assert attribute_values(attributes, "uid") == ["bob", "robert"]
    assert attribute_values(attributes, "title") == []


def test_an_entry_without_a_uid_is_no_profile() -> None:
    with pytest.raises(ValueError, match=r"user name .* is not a valid one"):
        entry_profile({"cn": ["Nobody"], "sn": ["Nobody"]})


@pytest.mark.parametrize(
    ("profile", "family_name", "display_name"),
    [
        (Profile(user_name="bob"), "bob", "bob"),
        (Profile(user_name="bob", given_name="Bob"), "bob", "Bob"),
        (Profile(user_name="bob", given_name="Bob", family_name="B"), "B", "Bob B"),
        (Profile(user_name="bob", family_name="B", display_name="Bobby"), "B", "Bobby"),
    ],
)
def test_as_stored_derives_sn_and_the_display_name_like_the_entry(
    profile: Profile, family_name: str, display_name: str
) -> None:
    stored = stored_profile(profile)

    assert (stored.family_name, stored.display_name) == (family_name, display_name)


def test_as_stored_keeps_the_fields_an_entry_does_not_hold() -> None:
    profile = Profile(user_name="bob", cost_center="CC-1", active=False, attributes={"k": "v"})

    stored = stored_profile(profile)

    assert (stored.cost_center, stored.active, stored.attributes) == ("CC-1", False, {"k": "v"})
