"""SCIM's userType and timezone and Accord's lifecycle extension become profile fields."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from scim2_models import Context, User

from accord.orchestrator.domain.scim_profile import LIFECYCLE, UnusableValue, profile_of
from accord.orchestrator.scim.models import LIFECYCLE as MODEL_LIFECYCLE
from accord.orchestrator.scim.models import EnterpriseUser, LifecycleUser

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"


def user(**fields: Any) -> dict[str, Any]:
    return {"userName": "ada", **fields}


def test_user_type_timezone_and_the_dates_map_to_the_profile() -> None:
    profile = profile_of(
        user(
            userType="Intern",
            timezone="America/Sao_Paulo",
            **{LIFECYCLE: {"hireDate": "2025-03-03", "leaveDate": "2025-08-29T17:00:00-03:00"}},
        )
    )
    assert (profile.employee_type, profile.time_zone) == ("Intern", "America/Sao_Paulo")
    assert (profile.hire_date, profile.leave_date) == ("2025-03-03", "2025-08-29T17:00:00-03:00")


def test_absent_values_stay_absent() -> None:
    profile = profile_of(user(userType="", **{LIFECYCLE: {}}))
    assert (profile.employee_type, profile.time_zone, profile.hire_date) == (None, None, None)


@pytest.mark.parametrize("zone", ["W. Europe Standard Time", "Europe/Atlantis", "+01:00", 7])
def test_a_timezone_the_tz_database_does_not_know_is_left_out(zone: Any) -> None:
    assert profile_of(user(timezone=zone)).time_zone is None


@pytest.mark.parametrize("value", ["03/03/2025", "2025-02-30", "2025-03-03T09:00:00", "x" * 65])
def test_a_date_that_is_no_date_is_refused(value: str) -> None:
    with pytest.raises(UnusableValue, match="hireDate"):
        profile_of(user(**{LIFECYCLE: {"hireDate": value}}))


def test_the_extension_model_keeps_dates_as_sent_and_refuses_others() -> None:
    model = User[EnterpriseUser | LifecycleUser]
    payload = {"schemas": [CORE, MODEL_LIFECYCLE], "userName": "ada"}
    valid = model.model_validate(
        {**payload, MODEL_LIFECYCLE: {"hireDate": "2025-03-03"}},
        scim_ctx=Context.RESOURCE_CREATION_REQUEST,
    )
    assert valid.model_dump()[MODEL_LIFECYCLE] == {"hireDate": "2025-03-03"}
    with pytest.raises(ValidationError, match="hireDate"):
        model.model_validate(
            {**payload, MODEL_LIFECYCLE: {"hireDate": "tomorrow"}},
            scim_ctx=Context.RESOURCE_CREATION_REQUEST,
        )


def test_the_published_schema_says_date_time_and_optional() -> None:
    schema = LifecycleUser.to_schema()
    assert str(schema.id) == LIFECYCLE == MODEL_LIFECYCLE
    assert {(a.name, a.type, bool(a.required)) for a in schema.attributes or []} == {
        ("hireDate", "dateTime", False),
        ("leaveDate", "dateTime", False),
    }
