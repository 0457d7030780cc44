"""The sql and ldap options: complete ones load; mistakes are refused, named, before a run."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from accord.sources.config import LdapOptions, SqlOptions

LDAP: dict[str, Any] = {
    "url": "ldaps://directory.example.org:636",
    "bind_dn": "cn=reader,dc=example,dc=org",
    "password_env": "DIRECTORY_PASSWORD",
    "base_dn": "ou=people,dc=example,dc=org",
    "attributes": ["uid", "givenName", "sn", "mail", "1.2.840.113556.1.4.221"],
}


def test_sql_takes_a_query_or_a_view() -> None:
    assert SqlOptions(dsn_env="HR_DB", view="hr.workers").prefetch == 500
    assert SqlOptions(dsn_env="HR_DB", query="SELECT 1 AS id").view is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"dsn_env": "HR_DB"}, "either `query` or `view`"),
        ({"dsn_env": "HR_DB", "view": "w", "query": "SELECT 1"}, "either `query` or `view`"),
        ({"dsn_env": "HR_DB", "query": "  "}, "`query` is empty"),
        ({"dsn_env": "HR_DB", "view": "hr.workers; DROP TABLE x"}, "is no plain name"),
        ({"dsn_env": "postgresql://u:p@h/db", "view": "w"}, "dsn_env"),
        ({"dsn_env": "HR_DB", "view": "w", "prefetch": 0}, "prefetch"),
        ({"dsn": "postgresql://u:p@h/db", "view": "w"}, "Extra inputs are not permitted"),
    ],
)
def test_sql_mistakes_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SqlOptions.model_validate(options)


def test_ldap_options_load_with_defaults() -> None:
    options = LdapOptions.model_validate(LDAP)
    assert (options.scope, options.filter, options.page_size) == (
        "sub",
        "(objectClass=person)",
        500,
    )


def test_ldap_may_be_anonymous() -> None:
    anonymous = {k: v for k, v in LDAP.items() if k not in ("bind_dn", "password_env")}
    assert LdapOptions.model_validate(anonymous).bind_dn is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"url": "http://directory"}, "url"),
        ({"filter": "objectClass=person"}, "no parenthesised LDAP filter"),
        ({"filter": "(&(uid=a)(sn=b)"}, "no parenthesised LDAP filter"),
        ({"attributes": []}, "attributes"),
        ({"attributes": ["uid", "dn"]}, "`dn` is always read"),
        ({"attributes": ["mail", "Mail"]}, "attributes named twice"),
        ({"attributes": ["given name"]}, "is no attribute name"),
        ({"password_env": None}, "`bind_dn` and `password_env` go together"),
        ({"scope": "subtree"}, "scope"),
        ({"password": "secret"}, "Extra inputs are not permitted"),
    ],
)
def test_ldap_mistakes_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        LdapOptions.model_validate({**LDAP, **changes})
