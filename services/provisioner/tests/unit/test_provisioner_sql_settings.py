"""SQL connector settings: names are checked and quoted; failures map onto the port's errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
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
    row_profile,
)
from accord.provisioner.ports import TargetRejected, TargetUnavailable
from accord.provisioner.targets import SqlTarget

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
        pytest.param({"membership_table": "m; DROP TABLE m"}, id="membership table injection"),
        pytest.param({"membership_table": ""}, id="empty membership table"),
        pytest.param({"group_column": "group name"}, id="group column with a space"),
        pytest.param({"member_column": 'a"b'}, id="member column with a quote"),
        pytest.param({"group_column": "g", "member_column": "g"}, id="one membership column"),
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


def test_membership_settings_reach_the_connector_from_the_targets_file() -> None:
    target = SqlTarget.model_validate(
        {
            "name": "crm",
            "kind": "sql",
            "dsn_env": "CRM_DSN",
            "table": "app.users",
            "membership_table": "app.Members",
            "member_column": "user_id",
        }
    )

    chosen = target.settings(DSN)

    assert (chosen.membership_table, chosen.group_column, chosen.member_column) == (
        "app.Members",
        "group_name",
        "user_id",
    )
    with pytest.raises(ValueError, match="membership_table"):
        SqlTarget.model_validate({**target.model_dump(), "membership_table": "x y"})


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.add_member("u-1", "ada", "staff"),
        lambda c: c.remove_member("u-1", "ada", "staff"),
        lambda c: c.list_members("staff"),
    ],
    ids=["add", "remove", "list"],
)
async def test_groups_without_a_membership_table_are_rejected_before_any_query(
    call: Callable[[SqlConnector], Awaitable[object]],
) -> None:
    connector = SqlConnector("crm", settings())  # the DSN is never used

    with pytest.raises(TargetRejected, match=r"crm: .*no membership table is configured"):
        await call(connector)
    await connector.close()


def test_managed_fields_are_the_user_name_and_the_mapped_fields() -> None:
    connector = SqlConnector("crm", settings(columns={"title": "job", "email": "mail"}))

    assert connector.managed_fields == {"user_name", "title", "email"}


def test_as_stored_derives_a_mapped_display_name_and_leaves_the_rest() -> None:
    mapped = SqlConnector("crm", settings(columns={"display_name": "dn", "title": "t"}))
    unmapped = SqlConnector("crm", settings(columns={"title": "t"}))
    profile = Profile(user_name="ada", given_name="Ada", family_name="Lovelace", title="A")

    assert mapped.as_stored(profile) == profile.model_copy(update={"display_name": "Ada Lovelace"})
    assert unmapped.as_stored(profile) == profile
    assert mapped.as_stored(Profile(user_name="bob")).display_name is None


def test_a_row_reads_back_as_a_profile_and_unholdable_values_as_none() -> None:
    read = row_profile(
        {"user_name": "ada", "title": "", "email": "not an address", "department": "R"},
        active=False,
    )

    assert (read.user_name, read.title, read.email, read.department) == ("ada", None, None, "R")
    assert read.active is False
    with pytest.raises(ValueError, match="user name"):
        row_profile({"user_name": "", "title": ""}, active=True)


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
