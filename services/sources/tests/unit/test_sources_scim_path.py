"""SCIM attribute paths: the value each names in a User, and the paths refused."""

from __future__ import annotations

from typing import Any

import pytest

from accord.sources.scim_path import NoSingleValue, parse_path

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
USER: dict[str, Any] = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
    "id": "2819c223",
    "userName": "bjensen",
    "active": False,
    "name": {"givenName": "Barbara", "familyName": "Jensen"},
    "emails": [
        {"value": "bj@home.example", "type": "home"},
        {"value": "bjensen@example.com", "type": "work", "primary": True},
    ],
    "phoneNumbers": [{"value": "555-1", "type": "work"}, {"value": "555-2", "type": "work"}],
    "x-rank": 3,
    ENTERPRISE: {"employeeNumber": "701984", "manager": {"value": "26118915"}},
}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("userName", "bjensen"),
        ("USERNAME", "bjensen"),  # names without case (RFC 7643 section 2.1)
        ("urn:ietf:params:scim:schemas:core:2.0:User:userName", "bjensen"),
        ("name.givenName", "Barbara"),
        ("name.middleName", ""),  # absent: not set
        ("nickName", ""),
        ("active", "false"),
        ("x-rank", "3"),
        ("emails.value", "bjensen@example.com"),  # the primary one
        ("phoneNumbers.value", "555-1"),  # no primary: the first
        ("emails[primary eq true].value", "bjensen@example.com"),
        ('emails[type eq "home"].value', "bj@home.example"),
        ('emails[type eq "HOME"].value', "bj@home.example"),  # strings without case
        ('emails[type eq "other"].value', ""),
        ("emails[primary eq false].value", ""),  # absent is no false
        ("ims.value", ""),
        ("schemas", "urn:ietf:params:scim:schemas:core:2.0:User"),
        (f"{ENTERPRISE}:employeeNumber", "701984"),
        (f"{ENTERPRISE}:manager.value", "26118915"),
        (f"{ENTERPRISE}:costCenter", ""),
        ("urn:example:absent:2.0:User:employeeNumber", ""),
    ],
)
def test_a_path_reads_one_value(path: str, value: str) -> None:
    assert parse_path(path).value(USER) == value


@pytest.mark.parametrize(
    ("path", "message"),
    [("name", "name is an object"), ("emails", "emails is an object"), ("x", "")],
)
def test_no_single_value_is_an_error_for_the_row(path: str, message: str) -> None:
    user = {**USER, "x": [["nested"]]}
    with pytest.raises(NoSingleValue, match=message or "x is a list"):
        parse_path(path).value(user)


def test_the_requested_attribute_is_the_top_level_one() -> None:
    assert parse_path('emails[type eq "work"].value').requested == "emails"
    assert parse_path(f"{ENTERPRISE}:manager.value").requested == f"{ENTERPRISE}:manager"
    core = parse_path("urn:ietf:params:scim:schemas:core:2.0:User:name.givenName")
    assert (core.schema, core.requested) == (None, "name")


@pytest.mark.parametrize(
    "path",
    [
        "",
        "1userName",
        "name.givenName.x",
        'emails[type ne "work"].value',
        "emails[type eq work].value",
        "emails[primary eq TRUE].value",
        'emails[type eq "work"',
        "userName sw x",
    ],
)
def test_other_paths_are_refused(path: str) -> None:
    with pytest.raises(ValueError, match="no SCIM attribute path"):
        parse_path(path)
