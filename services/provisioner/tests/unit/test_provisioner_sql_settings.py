"""SQL connector settings: names are checked and quoted; failures map onto the port's errors."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from pydantic import SecretStr

from accord.events import Profile
from accord.provisioner.adapters.sql import (
    SqlConnector,
    SqlSettings,
    column_values,
    failure,
    quote_name,
)
from accord.provisioner.ports import TargetRejected, TargetUnavailable

DSN = SecretStr("postgresql://app:hunter2@db.example.org/app")


def settings(**overrides: Any) -> SqlSettings:
    return SqlSettings(**{"dsn": DSN, "table": "app.users", **overrides})


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"table": 'users"; DROP TABLE users; --'}, id="table with a quote"),
        pytest.param({"table": "a.b.c"}, id="three-part table"),
        pytest.param({"table": "1users"}, id="table starting with a digit"),
        pytest.param({"table": "app. users"}, id="table with a space"),
        pytest.param({"table": ""}, id="empty table"),
        pytest.param({"table": "u" * 64}, id="table longer than PostgreSQL keeps"),
        pytest.param({"id_column": "app.id"}, id="qualified column"),
        pytest.param({"link_column": "accord id"}, id="column with a space"),
        pytest.param({"active_column": "active)"}, id="column with a parenthesis"),
        pytest.param({"columns": {"title": "title--"}}, id="mapped column with a comment"),
        pytest.param({"columns": {"password": "pw"}}, id="unknown profile field"),
        pytest.param({"columns": {"user_name": "login"}}, id="user name column disagrees"),
        pytest.param({"columns": {"title": "active"}}, id="mapped onto the active column"),
        pytest.param({"columns": {"title": "t", "department": "t"}}, id="one column twice"),
        pytest.param({"columns": {"email": "id"}}, id="writes the id column"),
        pytest.param({"timeout_s": 0}, id="no timeout"),
        pytest.param({"pool_size": 0}, id="empty pool"),
    ],
)
def test_unsafe_or_inconsistent_settings_are_refused_at_construction(
    overrides: dict[str, Any],
) -> None:
    with pytest.raises(ValueError, match=r"\S"):
        settings(**overrides)


def test_plain_names_are_accepted_and_quoted() -> None:
    chosen = settings(
        table="Users",
        columns={"user_name": "user_name", "title": "Job_Title"},
        id_column="user_name",  # a table keyed by the user name
    )

    assert chosen.columns["title"] == "Job_Title"
    assert quote_name("app.users") == '"app"."users"'
    assert quote_name("Users") == '"Users"'
    with pytest.raises(ValueError, match="plain SQL name"):
        quote_name('x"y')


def test_the_dsn_does_not_show_in_the_settings_repr() -> None:
    assert "hunter2" not in repr(settings())


def test_column_values_derive_a_display_name_when_absent() -> None:
    profile = Profile(user_name="ada", given_name="Ada", family_name="Lovelace", title="Analyst")

    values = column_values(profile)

    assert values["display_name"] == "Ada Lovelace"
    assert (values["user_name"], values["title"], values["email"]) == ("ada", "Analyst", None)
    assert column_values(Profile(user_name="bob"))["display_name"] is None


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (asyncpg.exceptions.ConnectionDoesNotExistError("gone"), TargetUnavailable),
        (asyncpg.exceptions.TooManyConnectionsError("too many"), TargetUnavailable),
        (asyncpg.exceptions.CannotConnectNowError("starting up"), TargetUnavailable),
        (asyncpg.exceptions.SerializationError("could not serialize"), TargetUnavailable),
        (asyncpg.exceptions.DeadlockDetectedError("deadlock"), TargetUnavailable),
        (asyncpg.exceptions.QueryCanceledError("statement timeout"), TargetUnavailable),
        (asyncpg.exceptions.AdminShutdownError("shutting down"), TargetUnavailable),
        (TimeoutError(), TargetUnavailable),
        (ConnectionRefusedError(111, "refused"), TargetUnavailable),
        (asyncpg.exceptions.UniqueViolationError("duplicate key"), TargetRejected),
        (asyncpg.exceptions.NotNullViolationError("null value"), TargetRejected),
        (asyncpg.exceptions.StringDataRightTruncationError("too long"), TargetRejected),
        (asyncpg.exceptions.UndefinedTableError("no such table"), TargetRejected),
        (asyncpg.exceptions.InsufficientPrivilegeError("permission denied"), TargetRejected),
        (asyncpg.exceptions.InvalidPasswordError("password failed"), TargetRejected),
        (asyncpg.exceptions.ClientConfigurationError("bad dsn"), TargetRejected),
    ],
)
def test_failures_map_onto_retry_or_reject(error: BaseException, kind: type[Exception]) -> None:
    mapped = failure("crm", "create in app.users", error)

    assert type(mapped) is kind
    assert str(mapped).startswith("crm: ")


async def test_the_pool_is_made_on_first_use_so_construction_and_close_need_no_database() -> None:
    connector = SqlConnector("lazy", settings())
    await connector.close()
    await connector.close()
