"""PostgresScimStorage against a real PostgreSQL: scim2-server's storage contract, and ours."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from scim2_models import (
    InvalidValueException,
    Resource,
    ResourceType,
    ScimProvider,
    SearchRequest,
    UniquenessException,
)
from scim2_server.testing import AsyncScimStorageContract
from scim2_server.utils import load_default_provider, parametrize

from accord.orchestrator.adapters.scim_storage import (
    ChangeHook,
    PostgresScimStorage,
    ResourceChange,
)
from accord.runtime import db

pytestmark = pytest.mark.integration

SCHEMA = "orchestrator"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def connector(dsn: str) -> Callable[[], AbstractAsyncContextManager[asyncpg.Connection]]:
    """Open a connection of its own, on the running loop, that sees the orchestrator's schema."""

    @asynccontextmanager
    async def connect() -> AsyncIterator[asyncpg.Connection]:
        conn = await asyncpg.connect(dsn, server_settings={"search_path": SCHEMA})
        try:
            yield conn
        finally:
            await conn.close()

    return connect


@pytest_asyncio.fixture(loop_scope="session")
async def scim_database(fresh_database: str) -> str:
    """DSN of a fresh database where the orchestrator's migrations ran."""
    await db.migrate(fresh_database, SCHEMA, ["accord.orchestrator.migrations"])
    return fresh_database


class TestPostgresScimStorageContract(AsyncScimStorageContract):
    """Every rule scim2-server sets for a storage."""

    @pytest.fixture
    def async_storage(self, provider: ScimProvider, scim_database: str) -> PostgresScimStorage:
        return PostgresScimStorage(provider, connector(scim_database))


class Recorder:
    """A change hook noting every change, that raises an exception when told to."""

    def __init__(self) -> None:
        self.changes: list[ResourceChange] = []
        self.versions: list[int | None] = []
        self.failure: Exception | None = None

    async def __call__(self, conn: asyncpg.Connection, change: ResourceChange) -> None:
        self.changes.append(change)
        self.versions.append(
            await conn.fetchval(
                "SELECT version FROM scim_resources WHERE id = $1", change.resource_id
            )
        )
        if self.failure is not None:
            raise self.failure


@pytest.fixture
def provider() -> ScimProvider:
    return load_default_provider()


@pytest.fixture
def user_type(provider: ScimProvider) -> ResourceType:
    return next(rt for rt in provider.resource_types if rt.id == "User")


@pytest.fixture
def user_model(provider: ScimProvider, user_type: ResourceType) -> Any:
    return provider.model_for(user_type)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def run() -> Iterator[Callable[[Any], Any]]:
    """Run coroutines on a loop of their own, as the contract does."""
    with asyncio.Runner() as runner:
        yield runner.run


@pytest.fixture
def storage(
    provider: ScimProvider, scim_database: str, recorder: ChangeHook
) -> PostgresScimStorage:
    return PostgresScimStorage(provider, connector(scim_database), on_change=recorder)


def user(user_model: Any, user_name: str, **attributes: Any) -> Resource[Any]:
    model: type[Resource[Any]] = user_model
    return model.model_validate({"userName": user_name, **attributes})


async def table(dsn: str, name: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(dsn, server_settings={"search_path": SCHEMA})
    try:
        return [dict(row) for row in await conn.fetch(f"SELECT * FROM {name}")]
    finally:
        await conn.close()


def search(user_model: Any, **parameters: Any) -> SearchRequest[Any]:
    return parametrize(SearchRequest, user_model)(**parameters)


def test_the_hook_sees_every_write_with_before_and_after(
    storage: PostgresScimStorage,
    recorder: Recorder,
    run: Callable[[Any], Any],
    user_type: ResourceType,
    user_model: Any,
) -> None:
    created = run(storage.create(user_type, user(user_model, "bjensen", **{ENTERPRISE: {}})))
    created.display_name = "Barbara"
    replaced = run(storage.update(user_type, created))
    run(storage.delete(user_type, created.id))

    first, second, third = recorder.changes
    assert (first.kind, first.resource_type, first.resource_id) == ("created", "User", created.id)
    assert first.before is None
    assert first.after is not None
    assert first.after["userName"] == "bjensen"
    assert first.after["meta"]["version"] == created.meta.version
    assert second.kind == "replaced"
    assert second.before == first.after
    assert second.after is not None
    assert second.after["displayName"] == "Barbara"
    assert second.after["meta"]["version"] == replaced.meta.version
    assert (third.kind, third.before, third.after) == ("deleted", second.after, None)
    # The hook runs in the transaction of the write, which it sees.
    assert recorder.versions == [1, 2, None]


def test_a_hook_that_raises_rolls_the_write_back(
    storage: PostgresScimStorage,
    recorder: Recorder,
    run: Callable[[Any], Any],
    user_type: ResourceType,
    user_model: Any,
    scim_database: str,
) -> None:
    created = run(storage.create(user_type, user(user_model, "bjensen")))
    refusal = UniquenessException(detail="bjensen is taken upstream")
    recorder.failure = refusal

    with pytest.raises(UniquenessException) as raised:
        run(storage.create(user_type, user(user_model, "jsmith")))
    created.display_name = "Barbara"
    with pytest.raises(UniquenessException):
        run(storage.update(user_type, created))
    with pytest.raises(UniquenessException):
        run(storage.delete(user_type, created.id))

    assert raised.value is refusal
    stored = run(storage.get(user_type, created.id))
    assert (stored.display_name, stored.meta.version) == (None, created.meta.version)
    rows = run(table(scim_database, "scim_resources"))
    assert [row["id"] for row in rows] == [created.id]
    values = run(table(scim_database, "scim_unique_values"))
    assert [row["value"] for row in values] == ["bjensen"]


def test_a_hook_that_raises_in_an_operation_rolls_the_operation_back(
    storage: PostgresScimStorage,
    recorder: Recorder,
    run: Callable[[Any], Any],
    user_type: ResourceType,
    user_model: Any,
) -> None:
    async def operation() -> None:
        async with storage.operation():
            await storage.create(user_type, user(user_model, "bjensen"))
            recorder.failure = RuntimeError("refused")
            await storage.create(user_type, user(user_model, "jsmith"))

    with pytest.raises(RuntimeError, match="refused"):
        run(operation())

    page = run(storage.search([user_type], search(user_model)))
    assert page.total == 0


def test_an_operation_commits_its_calls_made_on_one_connection(
    provider: ScimProvider,
    run: Callable[[Any], Any],
    user_type: ResourceType,
    user_model: Any,
    scim_database: str,
) -> None:
    opened: list[asyncpg.Connection] = []
    connect = connector(scim_database)

    @asynccontextmanager
    async def counted() -> AsyncIterator[asyncpg.Connection]:
        async with connect() as conn:
            opened.append(conn)
            yield conn

    storage = PostgresScimStorage(provider, counted)

    async def operation() -> str:
        async with storage.operation():
            created = await storage.create(user_type, user(user_model, "bjensen"))
            assert created.id is not None
            await storage.get(user_type, created.id)
            await storage.search([user_type], search(user_model, filter='userName eq "bjensen"'))
            return created.id

    created_id = run(operation())

    assert len(opened) == 1
    assert run(storage.get(user_type, created_id)).user_name == "bjensen"


def test_a_password_is_never_stored(
    storage: PostgresScimStorage,
    recorder: Recorder,
    run: Callable[[Any], Any],
    user_type: ResourceType,
    user_model: Any,
    scim_database: str,
) -> None:
    created = run(storage.create(user_type, user(user_model, "bjensen", password="t1meMa$heen")))
    created.password = "an0ther"
    run(storage.update(user_type, created))

    (row,) = run(table(scim_database, "scim_resources"))
    assert "password" not in row["data"]
    assert "t1meMa$heen" not in row["data"]
    assert "an0ther" not in row["data"]
    assert run(storage.get(user_type, created.id)).password is None
    assert all(
        "password" not in (change.after or {}) and "password" not in (change.before or {})
        for change in recorder.changes
    )


def test_user_name_eq_matches_whatever_the_case(
    storage: PostgresScimStorage,
    run: Callable[[Any], Any],
    user_type: ResourceType,
    user_model: Any,
    scim_database: str,
) -> None:
    bjensen = run(storage.create(user_type, user(user_model, "BJensen", externalId="E-1")))
    run(storage.create(user_type, user(user_model, "jsmith", externalId="e-1")))

    page = run(storage.search([user_type], search(user_model, filter='userName eq "bjensen"')))

    assert [r.id for r in page.resources] == [bjensen.id]
    assert page.total == 1
    indexed = run(table(scim_database, "scim_equality_values"))
    assert {(row["urn"].rsplit(":", 1)[1], row["value"]) for row in indexed} == {
        ("userName", "bjensen"),
        ("externalId", "E-1"),
        ("userName", "jsmith"),
        ("externalId", "e-1"),
    }
    # externalId is caseExact: the index keeps its case, and so does the lookup.
    exact = run(storage.search([user_type], search(user_model, filter='externalId eq "E-1"')))
    assert [r.id for r in exact.resources] == [bjensen.id]


def test_the_equality_index_follows_updates_and_deletes(
    storage: PostgresScimStorage,
    run: Callable[[Any], Any],
    user_type: ResourceType,
    user_model: Any,
) -> None:
    created = run(storage.create(user_type, user(user_model, "bjensen")))
    created.user_name = "babs"
    run(storage.update(user_type, created))

    def found(user_name: str) -> list[str]:
        request = search(user_model, filter=f'userName eq "{user_name}"')
        return [r.id for r in run(storage.search([user_type], request)).resources]

    assert found("bjensen") == []
    assert found("BABS") == [created.id]
    run(storage.delete(user_type, created.id))
    assert found("babs") == []


SEED = """
INSERT INTO scim_resources (resource_type, id, data, version, created, last_modified)
SELECT 'User', 'u' || i, jsonb_build_object('schemas', jsonb_build_array($1::text),
       'userName', 'user' || i), 1, now(), now()
FROM generate_series(1, 5000) AS i;
INSERT INTO scim_equality_values (resource_type, id, urn, value)
SELECT 'User', 'u' || i, $1 || ':userName', 'user' || i FROM generate_series(1, 5000) AS i;
ANALYZE;
"""


async def seed(dsn: str) -> None:
    """Store 5000 users the way the storage stores them, so the planner sees a real table."""
    conn = await asyncpg.connect(dsn, server_settings={"search_path": SCHEMA})
    try:
        script = SEED.replace("$1", "'urn:ietf:params:scim:schemas:core:2.0:User'")
        await conn.execute(script)
    finally:
        await conn.close()


async def plan(dsn: str, query: str, args: tuple[Any, ...]) -> str:
    conn = await asyncpg.connect(dsn, server_settings={"search_path": SCHEMA})
    try:
        rows = await conn.fetch(f"EXPLAIN {query}", *args)
        return "\n".join(row[0] for row in rows)
    finally:
        await conn.close()


def test_user_name_eq_reads_the_equality_index(
    provider: ScimProvider,
    run: Callable[[Any], Any],
    user_type: ResourceType,
    user_model: Any,
    scim_database: str,
) -> None:
    run(seed(scim_database))
    queries: list[asyncpg.connection.LoggedQuery] = []
    connect = connector(scim_database)

    @asynccontextmanager
    async def logged() -> AsyncIterator[asyncpg.Connection]:
        async with connect() as conn:
            conn.add_query_logger(queries.append)
            yield conn

    storage = PostgresScimStorage(provider, logged)
    page = run(storage.search([user_type], search(user_model, filter='userName eq "USER42"')))

    assert [r.user_name for r in page.resources] == ["user42"]
    (select,) = [q for q in queries if q.query.startswith("SELECT")]
    query_plan = run(plan(scim_database, select.query, select.args))
    assert "scim_equality_values_lookup" in query_plan
    assert "Seq Scan" not in query_plan


def test_user_name_is_unique_whatever_its_case(
    storage: PostgresScimStorage,
    run: Callable[[Any], Any],
    user_type: ResourceType,
    user_model: Any,
    scim_database: str,
) -> None:
    run(storage.create(user_type, user(user_model, "bjensen")))
    other = run(storage.create(user_type, user(user_model, "jsmith")))

    with pytest.raises(UniquenessException) as raised:
        run(storage.create(user_type, user(user_model, "BJENSEN")))
    other.user_name = "BJensen"
    with pytest.raises(UniquenessException):
        run(storage.update(user_type, other))

    assert raised.value.status == 409
    assert run(storage.get(user_type, other.id)).user_name == "jsmith"
    assert len(run(table(scim_database, "scim_resources"))) == 2


def test_values_too_long_for_a_btree_are_indexed_by_digest(
    storage: PostgresScimStorage,
    run: Callable[[Any], Any],
    user_type: ResourceType,
    user_model: Any,
    scim_database: str,
) -> None:
    long_name = "x" * 5000
    created = run(storage.create(user_type, user(user_model, long_name)))

    page = run(storage.search([user_type], search(user_model, filter=f'userName eq "{long_name}"')))

    assert [r.id for r in page.resources] == [created.id]
    indexed = {row["value"] for row in run(table(scim_database, "scim_unique_values"))}
    assert indexed == {"sha256:" + hashlib.sha256(long_name.encode()).hexdigest()}
    with pytest.raises(UniquenessException):
        run(storage.create(user_type, user(user_model, long_name.upper())))


@pytest.mark.parametrize(
    "attributes",
    [
        {"displayName": "Bar\x00bara"},
        {"nickName": "\x00"},
        {"name": {"givenName": "Ba\x00"}},
        {ENTERPRISE: {"department": "Sales\x00"}},
    ],
)
def test_a_nul_in_any_value_is_an_invalid_value_and_nothing_is_written(
    storage: PostgresScimStorage,
    recorder: Recorder,
    run: Callable[[Any], Any],
    user_type: ResourceType,
    user_model: Any,
    scim_database: str,
    attributes: dict[str, Any],
) -> None:
    # PostgreSQL's jsonb holds no U+0000: a 400 (invalidValue), never an unexpected error.
    with pytest.raises(InvalidValueException) as refused:
        run(storage.create(user_type, user(user_model, "bjensen", **attributes)))
    assert "\x00" not in str(refused.value.detail)
    created = run(storage.create(user_type, user(user_model, "bjensen")))
    with pytest.raises(InvalidValueException):
        run(storage.update(user_type, user(user_model, "bjensen", id=created.id, **attributes)))

    assert [row["id"] for row in run(table(scim_database, "scim_resources"))] == [created.id]
    assert [c.kind for c in recorder.changes] == ["created"]


def test_an_equality_filter_on_a_nul_matches_nothing(
    storage: PostgresScimStorage,
    run: Callable[[Any], Any],
    user_type: ResourceType,
    user_model: Any,
) -> None:
    run(storage.create(user_type, user(user_model, "bjensen", externalId="e1")))

    for attribute in ("userName", "externalId", "displayName"):
        found = run(
            storage.search([user_type], search(user_model, filter=f'{attribute} eq "b\\u0000"'))
        )
        assert found.total == 0, attribute
    nul_id = run(storage.search([user_type], search(user_model, filter='id eq "b\\u0000"')))
    assert nul_id.total == 0
