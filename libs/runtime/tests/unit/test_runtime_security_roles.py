"""Roles, permissions and the Caller: what a caller may do, and how role claims are read."""

from __future__ import annotations

import dataclasses

import pytest
from fastapi import HTTPException

from accord.runtime.security.api import may_see, own_unless_allowed
from accord.runtime.security.roles import (
    ROLE_PERMISSIONS,
    Caller,
    Permission,
    Role,
    parse_roles,
)

ALL = frozenset(Permission)


def caller(*roles: Role, scopes: set[Permission] | None = None, subject: str = "user-1") -> Caller:
    return Caller(
        subject=subject,
        roles=frozenset(roles),
        kind="api-token",
        credential_id="0123456789abcdef",
        scopes=frozenset(scopes) if scopes is not None else None,
    )


# --- Caller.permissions ----------------------------------------------------------------------


def test_every_role_has_an_entry() -> None:
    assert set(ROLE_PERMISSIONS) == set(Role)


def test_admin_holds_every_permission() -> None:
    assert caller(Role.ADMIN).permissions == ALL
    assert all(caller(Role.ADMIN).may(p) for p in Permission)


def test_requester_may_only_ask_for_access_for_themselves_and_decide_what_is_assigned() -> None:
    assert caller(Role.REQUESTER).permissions == {
        Permission.SELF_SERVICE,
        Permission.ACCESS_REQUEST,
        Permission.ACCESS_APPROVE,
    }
    assert not caller(Role.REQUESTER).may(Permission.ACCESS_REQUEST_OTHERS)


def test_an_application_may_only_ask_for_decisions() -> None:
    assert caller(Role.APPLICATION).permissions == {Permission.AUTHORIZE}


def test_systems_have_no_self_service_and_people_do() -> None:
    # A SCIM client or an application acts for nobody: nothing of "its own" to see (README).
    systems = {Role.SCIM_CLIENT, Role.APPLICATION, Role.IDENTITY_PROVIDER, Role.SSF_RECEIVER}
    selves = {r for r in Role if caller(r).may(Permission.SELF_SERVICE)}
    assert selves == set(Role) - systems


def test_only_operators_and_admins_revoke_grants() -> None:
    revokers = {r for r in Role if caller(r).may(Permission.ACCESS_REVOKE)}
    assert revokers == {Role.ADMIN, Role.OPERATOR}


def test_no_roles_means_no_permissions() -> None:
    assert caller().permissions == frozenset()


def test_only_the_auditor_and_admin_read_the_audit_trail() -> None:
    readers = {r for r in Role if caller(r).may(Permission.AUDIT_READ)}
    assert readers == {Role.ADMIN, Role.AUDITOR}


def test_permissions_are_the_union_of_the_roles() -> None:
    both = caller(Role.APPROVER, Role.OPERATOR)
    assert both.permissions == ROLE_PERMISSIONS[Role.APPROVER] | ROLE_PERMISSIONS[Role.OPERATOR]
    assert caller(Role.REQUESTER, Role.APPROVER).permissions == ROLE_PERMISSIONS[Role.APPROVER]
    assert caller(Role.OPERATOR, Role.AUDITOR).may(Permission.AUDIT_READ)


def test_scopes_narrow_the_roles() -> None:
    narrowed = caller(Role.ADMIN, scopes={Permission.IDENTITIES_READ})
    assert narrowed.permissions == {Permission.IDENTITIES_READ}
    assert narrowed.may(Permission.IDENTITIES_READ)
    assert not narrowed.may(Permission.AUDIT_READ)


def test_scopes_never_widen_the_roles() -> None:
    # An operator's token scoped to audit:read does not gain audit:read.
    assert caller(Role.OPERATOR, scopes={Permission.AUDIT_READ}).permissions == frozenset()
    approver = caller(Role.APPROVER, scopes={Permission.POLICIES_READ, Permission.AUDIT_READ})
    assert approver.permissions == {Permission.POLICIES_READ}


def test_empty_scopes_grant_nothing_while_none_grants_all_the_roles_do() -> None:
    assert caller(Role.ADMIN, scopes=set()).permissions == frozenset()
    assert caller(Role.ADMIN, scopes=None).permissions == ALL


def test_caller_is_immutable() -> None:
    c = caller(Role.REQUESTER)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.roles = frozenset({Role.ADMIN})  # type: ignore[misc]


def test_may_see_own_object_without_the_permission() -> None:
    requester = caller(Role.REQUESTER, subject="alice")
    assert may_see(requester, Permission.IDENTITIES_READ, "alice")
    assert not may_see(requester, Permission.IDENTITIES_READ, "bob")


def test_may_see_everyones_object_with_the_permission() -> None:
    operator = caller(Role.OPERATOR, subject="carol")
    assert may_see(operator, Permission.IDENTITIES_READ, "bob")
    assert not may_see(operator, Permission.AUDIT_READ, "bob")


def test_a_listing_without_the_permission_is_narrowed_to_the_callers_own() -> None:
    requester = caller(Role.REQUESTER, subject="alice")
    assert own_unless_allowed(requester, Permission.ACCESS_READ, None, "grants") == "alice"
    assert own_unless_allowed(requester, Permission.ACCESS_READ, "alice", "grants") == "alice"
    with pytest.raises(HTTPException) as refused:
        own_unless_allowed(requester, Permission.ACCESS_READ, "bob", "grants")
    assert refused.value.status_code == 403
    assert refused.value.detail == "seeing someone else's grants needs access:read"


def test_a_listing_with_the_permission_keeps_the_asked_filter() -> None:
    operator = caller(Role.OPERATOR, subject="carol")
    assert own_unless_allowed(operator, Permission.ACCESS_READ, "bob", "grants") == "bob"
    assert own_unless_allowed(operator, Permission.ACCESS_READ, None, "grants") is None


# --- parse_roles -----------------------------------------------------------------------------


def test_parse_roles_from_a_list() -> None:
    assert parse_roles(["admin", "auditor"]) == {Role.ADMIN, Role.AUDITOR}


def test_parse_roles_from_other_collections() -> None:
    assert parse_roles(("operator",)) == {Role.OPERATOR}
    assert parse_roles({"approver"}) == {Role.APPROVER}
    assert parse_roles(frozenset({"requester"})) == {Role.REQUESTER}


def test_parse_roles_from_a_space_separated_string() -> None:
    assert parse_roles("admin  auditor\toperator\n") == {Role.ADMIN, Role.AUDITOR, Role.OPERATOR}
    assert parse_roles("approver") == {Role.APPROVER}
    assert parse_roles("") == frozenset()


def test_parse_roles_ignores_unknown_names() -> None:
    assert parse_roles(["admin", "root", "superuser", ""]) == {Role.ADMIN}
    assert parse_roles("root superuser") == frozenset()


def test_parse_roles_is_case_sensitive() -> None:
    assert parse_roles(["ADMIN", "Admin", " admin"]) == frozenset()


def test_parse_roles_ignores_items_that_are_not_strings() -> None:
    assert parse_roles([1, None, ["admin"], {"admin": True}, "operator"]) == {Role.OPERATOR}


@pytest.mark.parametrize(
    "value",
    [None, 42, 1.5, True, {"admin": True}, b"admin", object()],
    ids=["none", "int", "float", "bool", "dict", "bytes", "object"],
)
def test_parse_roles_of_a_non_list_is_empty(value: object) -> None:
    assert parse_roles(value) == frozenset()


def test_parse_roles_returns_roles() -> None:
    parsed = parse_roles(["admin"])
    assert isinstance(parsed, frozenset)
    assert all(isinstance(r, Role) for r in parsed)
