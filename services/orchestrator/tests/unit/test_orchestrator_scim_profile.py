"""A SCIM User becomes the registry profile workflows and target mappings use."""

from __future__ import annotations

from typing import Any

import pytest

from accord.orchestrator.domain.scim_profile import ENTERPRISE, UnusableValue, profile_of


def user(**fields: Any) -> dict[str, Any]:
    return {"userName": "ada", **fields}


def test_core_and_enterprise_attributes_map_to_the_profile() -> None:
    profile = profile_of(
        user(
            externalId="00u1",
            name={"givenName": "Ada", "familyName": "Lovelace"},
            displayName="Ada L.",
            title="Analyst",
            active=False,
            emails=[{"value": "ada@example.com", "type": "work"}],
            **{
                ENTERPRISE: {
                    "department": "Engineering",
                    "employeeNumber": "1815",
                    "costCenter": "CC-7",
                    "manager": {"value": "u-boss"},
                }
            },
        )
    )
    assert profile.user_name == "ada"
    assert (profile.given_name, profile.family_name) == ("Ada", "Lovelace")
    assert profile.display_name == "Ada L."
    assert profile.title == "Analyst"
    assert profile.active is False
    assert profile.email == "ada@example.com"
    assert (profile.department, profile.employee_number, profile.cost_center) == (
        "Engineering",
        "1815",
        "CC-7",
    )
    assert profile.manager_id == "u-boss"
    assert profile.attributes == {"external_id": "00u1"}


def test_active_defaults_to_true_and_empty_strings_are_absent() -> None:
    profile = profile_of(user(title="  ", displayName=""))
    assert profile.active is True
    assert profile.title is None
    assert profile.display_name is None
    assert profile.attributes == {}


@pytest.mark.parametrize(
    ("emails", "expected"),
    [
        (
            [{"value": "h@home.org", "type": "home"}, {"value": "w@work.org", "type": "work"}],
            "w@work.org",
        ),
        (
            [{"value": "w@work.org", "type": "work"}, {"value": "p@x.org", "primary": True}],
            "p@x.org",
        ),
        ([{"value": "not an address", "primary": True}, {"value": "ok@x.org"}], "ok@x.org"),
        ([{"value": "nothing usable"}], None),
        ("not a list", None),
    ],
)
def test_the_profile_takes_the_first_usable_email_by_rank(
    emails: Any, expected: str | None
) -> None:
    assert profile_of(user(emails=emails)).email == expected


def test_a_manager_id_that_is_no_identifier_is_left_out() -> None:
    profile = profile_of(user(**{ENTERPRISE: {"manager": {"value": "has spaces"}}}))
    assert profile.manager_id is None


@pytest.mark.parametrize(
    "bad",
    [user(userName=None), user(title="x" * 257), user(displayName="nul\x00byte")],
    ids=["no userName", "too long", "NUL"],
)
def test_values_no_target_could_hold_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(UnusableValue):
        profile_of(bad)
