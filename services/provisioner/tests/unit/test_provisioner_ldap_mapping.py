"""A profile as an inetOrgPerson entry, and the link that tells whose entry it is."""

from __future__ import annotations

from accord.events import Profile
from accord.provisioner.domain.ldap_mapping import entry_attributes, link_value, linked_user_id


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
