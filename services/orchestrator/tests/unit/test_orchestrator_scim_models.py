"""The inbound SCIM server's models (a manager without $ref) and its quiet error details."""

from __future__ import annotations

import json
from typing import Any

import pytest
from scim2_models import Context, Group, User

from accord.orchestrator.scim.errors import quiet, schema_words
from accord.orchestrator.scim.models import EnterpriseUser, with_manager_reference

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
KNOWN = schema_words([User[EnterpriseUser], EnterpriseUser, Group])


def created(manager: dict[str, Any] | str) -> User[EnterpriseUser]:
    payload = {"schemas": [CORE, ENTERPRISE], "userName": "ada", ENTERPRISE: {"manager": manager}}
    user: User[EnterpriseUser] = User[EnterpriseUser].model_validate(
        payload, scim_ctx=Context.RESOURCE_CREATION_REQUEST
    )
    return user


def test_a_manager_with_its_id_only_is_valid_and_gets_a_relative_ref() -> None:
    # Entra ID and Okta send {"value": id}: RFC 7643 4.3 makes $ref RECOMMENDED, not required.
    user = with_manager_reference(created({"value": "2819c223"}))
    dumped = user.model_dump()
    assert dumped[ENTERPRISE]["manager"] == {"value": "2819c223", "$ref": "Users/2819c223"}


def test_a_bare_manager_id_is_its_value() -> None:
    # Entra ID's PATCH of the manager path carries the id itself.
    user = with_manager_reference(created("2819c223"))
    dumped = user.model_dump()
    assert dumped[ENTERPRISE]["manager"] == {"value": "2819c223", "$ref": "Users/2819c223"}


def test_a_manager_ref_the_client_sent_is_kept() -> None:
    ref = "https://idp.example.org/scim/v2/Users/2819c223"
    user = with_manager_reference(created({"value": "2819c223", "$ref": ref}))
    assert user.model_dump()[ENTERPRISE]["manager"]["$ref"] == ref


def test_resources_without_a_manager_are_left_alone() -> None:
    assert with_manager_reference(Group(display_name="g")).model_dump() == {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "g",
    }
    user = with_manager_reference(created({}))
    assert "$ref" not in json.dumps(user.model_dump())


def test_the_schema_says_neither_manager_part_is_required() -> None:
    schema = EnterpriseUser.to_schema()
    assert str(schema.id) == ENTERPRISE
    (manager,) = [a for a in schema.attributes or [] if a.name == "manager"]
    assert {s.name: bool(s.required) for s in manager.sub_attributes or []} == {
        "value": False,
        "$ref": False,
        "displayName": False,
    }


PLANTED = "zzPlanted7Q"


@pytest.mark.parametrize(
    ("detail", "scim_type", "path", "query", "payload"),
    [
        (f"Extra inputs are not permitted: {PLANTED}", "invalidSyntax", "/Users", {}, {PLANTED: 1}),
        (f"Field not found: {PLANTED}", "invalidFilter", "/Users", {"filter": f"{PLANTED} pr"}, {}),
        (f"No SCIM endpoint at '/{PLANTED}'", None, f"/{PLANTED}", {}, {}),
        (f"userName '{PLANTED}' is taken", "uniqueness", "/Users", {}, {"userName": PLANTED}),
    ],
)
def test_a_detail_quoting_the_request_becomes_generic(
    detail: str, scim_type: str | None, path: str, query: dict[str, str], payload: dict[str, Any]
) -> None:
    body = {"status": "404" if scim_type is None else "400", "detail": detail}
    if scim_type:
        body["scimType"] = scim_type
    answered = quiet(
        body, path=path, query=query, payload=json.dumps(payload).encode(), known=KNOWN
    )
    assert PLANTED not in answered["detail"]
    assert {k: v for k, v in answered.items() if k != "detail"} == {
        k: v for k, v in body.items() if k != "detail"
    }


@pytest.mark.parametrize(
    "detail",
    [
        "Input should be a valid boolean, unable to interpret input: active",
        "name.givenName is longer than 256 characters",
        "externalId is longer than 256 characters",
        "Field 'userName' is required but value is missing, null or empty",
    ],
)
def test_a_detail_naming_only_attributes_is_kept(detail: str) -> None:
    payload = json.dumps(
        {"userName": "ada", "active": "yes", "externalId": "y" * 300, "name": {"givenName": "x"}}
    )
    body = {"status": "400", "scimType": "invalidValue", "detail": detail}
    assert quiet(body, path="/Users", query={}, payload=payload.encode(), known=KNOWN) == body
