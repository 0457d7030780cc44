"""The SCIM Users and Groups of the orchestrator, kept in PostgreSQL for scim2-server.

scim2-server's ``ASGIApplication(storage, provider)`` serves the SCIM protocol under /scim/v2
and calls :class:`PostgresScimStorage` to read and write the resources. The tables are those
of the migrations ``0004_scim_resources.sql`` and ``0021_scim_search.sql``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import operator
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import asyncpg
from scim2_models import (
    AttributeBinding,
    InvalidValueException,
    Meta,
    NotFoundException,
    Path,
    PreconditionFailedException,
    Resource,
    ResourceType,
    ResponseParameters,
    ScimFilter,
    ScimProvider,
    SearchRequest,
    Uniqueness,
    UniquenessException,
)
from scim2_models.path import CompareOperator, Comparison
from scim2_server.storage import AsyncScimStorage, SearchPage
from scim2_server.utils import parametrize

from accord.orchestrator.adapters.scim_folding import Unfoldable, fold
from accord.orchestrator.adapters.scim_sql import Parameters, Untranslatable, order_by, where

EQUALITY_INDEXED = ("userName", "externalId", "displayName")
"""The attributes kept in the equality index, where a resource type declares them as single
valued strings: SCIM clients such as Okta and Entra ID filter on them with ``eq`` constantly."""

Connect = Callable[[], AbstractAsyncContextManager[asyncpg.Connection]]
"""Open a connection whose search_path is the orchestrator's schema, such as ``pool.acquire``."""

ChangeKind = Literal["created", "replaced", "deleted"]


@dataclass(frozen=True)
class ResourceChange:
    """A write of a SCIM resource, as the change hook sees it."""

    kind: ChangeKind
    resource_type: str
    """The name of the resource type, such as "User" or "Group"."""
    resource_id: str
    before: dict[str, Any] | None
    """The stored resource as SCIM JSON (by alias, extensions under their URN), None on create."""
    after: dict[str, Any] | None
    """The stored resource after the write, as SCIM JSON, None on delete."""


class ChangeHook(Protocol):
    """Called in the transaction of a write, right after it: raising rolls the write back."""

    async def __call__(self, conn: asyncpg.Connection, change: ResourceChange) -> None: ...


class PostgresScimStorage(AsyncScimStorage):
    """SCIM resources in PostgreSQL: one jsonb row per resource, with indexes of some values.

    The values of the attributes whose uniqueness is server or global are kept in
    scim_unique_values, whose UNIQUE constraint refuses a taken value. The values of
    :data:`EQUALITY_INDEXED` are kept in scim_equality_values, so a search filtering on one of
    them with ``eq`` reads only the resources holding the value. Every value is kept in the
    form comparisons use under the policy of the provider.

    The resources never hold a password: the attribute is writeOnly, and Accord is no
    credential store, so it is dropped before every write.

    :param provider: The description of the service: its resource types and their models.
    :param connect: Open a connection, as ``pool.acquire``. It must open it on the running
        event loop.
    :param on_change: Called in the transaction of every write, right after it.
    """

    supports_cursors = False

    def __init__(
        self, provider: ScimProvider, connect: Connect, on_change: ChangeHook | None = None
    ) -> None:
        self._provider = provider
        self._connect = connect
        self._on_change = on_change
        # The connection of the current operation. Each storage has its own, and a context
        # variable follows the tasks and the blocks of one operation.
        self._current: ContextVar[asyncpg.Connection | None] = ContextVar(
            "scim_storage_connection", default=None
        )

    def operation(self) -> AbstractAsyncContextManager[None]:
        """Enclose one SCIM operation in a transaction, committed unless it raises.

        The storage calls of the operation use its connection. An operation within an
        operation is a savepoint.
        """
        return self._operation()

    async def get(
        self,
        resource_type: ResourceType,
        resource_id: str,
        *,
        response_parameters: ResponseParameters[Any] | None = None,
    ) -> Resource[Any]:
        """Return a resource, whole, whatever the response parameters."""
        async with self._reading() as conn:
            row = await conn.fetchrow(
                "SELECT * FROM scim_resources WHERE resource_type = $1 AND id = $2",
                _name(resource_type),
                resource_id,
            )
        if row is None:
            raise _not_found(resource_type, resource_id)
        return self._resource(resource_type, row)

    async def search(
        self,
        resource_types: list[ResourceType],
        search_request: SearchRequest[Any],
        *,
        position: Any = None,
    ) -> SearchPage:
        """Return a page of the matching resources, paged by index (no cursors: no position).

        PostgreSQL filters, sorts and pages (:meth:`_sql_page`) whenever it can do so exactly;
        otherwise the matching resources are read and paged here, in Python.
        """
        by_name = {_name(resource_type): resource_type for resource_type in resource_types}
        async with self._reading() as conn:
            page = await self._sql_page(conn, by_name, search_request)
            if page is not None:
                return page
            rows = await self._candidates(conn, by_name, search_request.filter)
        resources = [self._resource(by_name[row["resource_type"]], row) for row in rows]
        with self._provider:
            return _page(search_request, _matching(resources, search_request.filter))

    async def create(self, resource_type: ResourceType, resource: Resource[Any]) -> Resource[Any]:
        """Store a new resource under a new id, and return it."""
        data = self._data(resource)
        resource_id = uuid.uuid4().hex
        async with self._transaction() as conn:
            row = await conn.fetchrow(
                "INSERT INTO scim_resources"
                " (resource_type, id, data, version, created, last_modified, folded)"
                " VALUES ($1, $2, $3, 1, statement_timestamp(), statement_timestamp(), $4)"
                " RETURNING *",
                _name(resource_type),
                resource_id,
                data,
                self._folded(resource_type, resource_id, data),
            )
            created = self._resource(resource_type, row)
            await self._index(conn, resource_type, created)
            await self._changed(conn, "created", resource_type, None, created)
        return created

    async def update(
        self,
        resource_type: ResourceType,
        resource: Resource[Any],
        *,
        expected_version: str | None = None,
    ) -> Resource[Any]:
        """Replace a stored resource, and return it with its new version."""
        data = self._data(resource)
        folded = self._folded(resource_type, resource.id, data)
        async with self._transaction() as conn:
            before = await self._locked(conn, resource_type, resource.id, expected_version)
            row = await conn.fetchrow(
                "UPDATE scim_resources"
                " SET data = $3, version = version + 1, last_modified = statement_timestamp(),"
                " folded = $4"
                " WHERE resource_type = $1 AND id = $2 RETURNING *",
                _name(resource_type),
                resource.id,
                data,
                folded,
            )
            after = self._resource(resource_type, row)
            await conn.execute(
                "WITH unique_values AS ("
                " DELETE FROM scim_unique_values WHERE resource_type = $1 AND id = $2)"
                " DELETE FROM scim_equality_values WHERE resource_type = $1 AND id = $2",
                _name(resource_type),
                resource.id,
            )
            await self._index(conn, resource_type, after)
            await self._changed(conn, "replaced", resource_type, before, after)
        return after

    async def delete(
        self,
        resource_type: ResourceType,
        resource_id: str,
        *,
        expected_version: str | None = None,
    ) -> None:
        """Delete a stored resource, and its indexed values."""
        async with self._transaction() as conn:
            before = await self._locked(conn, resource_type, resource_id, expected_version)
            await conn.execute(
                "DELETE FROM scim_resources WHERE resource_type = $1 AND id = $2",
                _name(resource_type),
                resource_id,
            )
            await self._changed(conn, "deleted", resource_type, before, None)

    @asynccontextmanager
    async def _operation(self) -> AsyncIterator[None]:
        async with self._transaction() as conn:
            token = self._current.set(conn)
            try:
                yield
            finally:
                self._current.reset(token)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """Yield the connection of the operation in a savepoint, or a new one in a transaction.

        A failed write is thus undone, even when the operation goes on.

        :raises InvalidValueException: When PostgreSQL refuses a value (asyncpg.DataError).
        """
        try:
            current = self._current.get()
            if current is not None:
                async with current.transaction():
                    yield current
                return
            async with self._connect() as conn, conn.transaction():
                yield conn
        except asyncpg.DataError:
            # PostgreSQL refused a value (a NUL, which neither text nor jsonb can hold): the
            # client's to fix, a 400 and not a 500. The value stays out of the answer.
            raise InvalidValueException(
                detail="a value cannot be stored or searched as given (a NUL character?)"
            ) from None

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[asyncpg.Connection]:
        """Yield the connection of the operation, or a new one in a transaction."""
        current = self._current.get()
        if current is not None:
            yield current
            return
        async with self._transaction() as conn:
            yield conn

    async def _candidates(
        self,
        conn: asyncpg.Connection,
        types: dict[str, ResourceType],
        scim_filter: ScimFilter[Any] | None,
    ) -> list[asyncpg.Record]:
        """Return the rows a search filters: the equality index hits, or every row of the types.

        Any filter but ``eq`` on an indexed attribute of a single resource type reads every
        resource of the searched types, and filters them in Python: this scan is O(N) per
        page, so it serves only the searches :meth:`_sql_page` cannot run exactly.
        """
        lookup = self._equality_lookup(types, scim_filter)
        if lookup is None:
            rows: list[asyncpg.Record] = await conn.fetch(
                "SELECT * FROM scim_resources WHERE resource_type = ANY($1::text[])"
                " ORDER BY created, id",
                list(types),
            )
            return rows
        name, urn, value = lookup
        if value is None:
            return []
        rows = await conn.fetch(
            "SELECT r.* FROM scim_equality_values e JOIN scim_resources r USING (resource_type, id)"
            " WHERE e.resource_type = $1 AND e.urn = $2 AND e.value = $3"
            " ORDER BY r.created, r.id",
            name,
            urn,
            value,
        )
        return rows

    async def _sql_page(
        self,
        conn: asyncpg.Connection,
        types: dict[str, ResourceType],
        search_request: SearchRequest[Any],
    ) -> SearchPage | None:
        """Return the page as PostgreSQL filters, sorts and counts it, or None if it cannot.

        It cannot when the search covers several resource types, when the filter or the sort
        is :class:`~accord.orchestrator.adapters.scim_sql.Untranslatable`, or when some
        resource of the type has no folded form (written before migration 0021, which this
        then folds, or holding a value SQL cannot compare). An ``eq`` on an indexed attribute
        is left to the equality index. The page and totalResults come from one statement,
        so from one snapshot.
        """
        if len(types) != 1 or self._equality_lookup(types, search_request.filter) is not None:
            return None
        ((name, resource_type),) = types.items()
        model = self._model(resource_type)
        parameters = Parameters(first=4)
        try:
            with self._provider:
                node = search_request.filter.ast if search_request.filter else None
                condition = "TRUE" if node is None else where(node, model, parameters)
                order = order_by(search_request, model)
        except Untranslatable:
            return None
        # Every value is a parameter: the SQL holds only URNs, which folded_attributes checks.
        rows = await conn.fetch(
            "SELECT t.total, t.unfolded,"  # noqa: S608
            " p.resource_type, p.id, p.data, p.version, p.created, p.last_modified"
            " FROM (SELECT"
            f"  (SELECT count(*) FROM scim_resources WHERE resource_type = $1 AND {condition})"
            "   AS total,"
            "  EXISTS (SELECT FROM scim_resources WHERE resource_type = $1 AND folded IS NULL)"
            "   AS unfolded) AS t"
            # The page's ids first, from the indexes alone when they suffice (a listing skips
            # startIndex entries of the (resource_type, created, id) index, not of the table).
            " LEFT JOIN LATERAL (SELECT r.*, k.n FROM unnest(ARRAY("
            "  SELECT id FROM scim_resources"
            f"  WHERE resource_type = $1 AND {condition} ORDER BY {order} OFFSET $2 LIMIT $3"
            " )) WITH ORDINALITY AS k (id, n)"
            " JOIN scim_resources AS r ON r.resource_type = $1 AND r.id = k.id) AS p"
            " ON NOT t.unfolded ORDER BY p.n",
            name,
            search_request.start_index_0 or 0,
            search_request.count,
            *parameters.values,
        )
        if rows[0]["unfolded"]:
            await self._fold_unfolded(conn, resource_type)
            return None
        resources = [self._resource(resource_type, row) for row in rows if row["id"] is not None]
        return SearchPage(total=rows[0]["total"], resources=resources)

    async def _fold_unfolded(self, conn: asyncpg.Connection, resource_type: ResourceType) -> None:
        """Store the folded form of the resources of a type that have none, where they can.

        The resources written before migration 0021 have none: the first searches fold them.
        A write since the read keeps its own (the version must not have moved).
        """
        rows = await conn.fetch(
            "SELECT id, data, version FROM scim_resources"
            " WHERE resource_type = $1 AND folded IS NULL",
            _name(resource_type),
        )
        folds = [
            (_name(resource_type), row["id"], row["version"], folded)
            for row in rows
            if (folded := self._folded(resource_type, row["id"], row["data"])) is not None
        ]
        await conn.executemany(
            "UPDATE scim_resources SET folded = $4"
            " WHERE resource_type = $1 AND id = $2 AND version = $3 AND folded IS NULL",
            folds,
        )

    def _folded(
        self, resource_type: ResourceType, resource_id: str | None, data: str
    ) -> str | None:
        """Return the folded form of a resource as JSON, or None if SQL cannot compare it."""
        with self._provider:
            resource = self._model(resource_type).model_validate(
                {**json.loads(data), "id": resource_id}
            )
            try:
                return json.dumps(fold(resource))
            except Unfoldable:
                return None

    def _equality_lookup(
        self, types: dict[str, ResourceType], scim_filter: ScimFilter[Any] | None
    ) -> tuple[str, str, str | None] | None:
        """Return the resource type, URN and value to look up in the equality index, if any.

        A filter is such a lookup when it compares an indexed attribute of a single resource
        type to a string with ``eq``. The value is None when the policy cannot compare the
        string, which then equals no value.
        """
        comparison = _string_equality(scim_filter)
        if comparison is None or len(types) != 1:
            return None
        ((name, resource_type),) = types.items()
        urn, string = comparison
        indexed = {b.urn: b for b in _equality_bindings(self._model(resource_type))}
        if urn not in indexed:
            return None
        with self._provider:
            return name, urn, _comparable_value(indexed[urn], string)

    async def _locked(
        self,
        conn: asyncpg.Connection,
        resource_type: ResourceType,
        resource_id: str | None,
        expected_version: str | None,
    ) -> Resource[Any]:
        """Lock a stored resource until the end of the transaction, and return it.

        :raises NotFoundException: When it does not exist.
        :raises PreconditionFailedException: When its version is not the expected one.
        """
        row = await conn.fetchrow(
            "SELECT * FROM scim_resources WHERE resource_type = $1 AND id = $2 FOR UPDATE",
            _name(resource_type),
            resource_id,
        )
        if row is None:
            raise _not_found(resource_type, resource_id)
        if expected_version is not None and _etag(row["version"]) != expected_version:
            raise PreconditionFailedException()
        return self._resource(resource_type, row)

    async def _index(
        self, conn: asyncpg.Connection, resource_type: ResourceType, resource: Resource[Any]
    ) -> None:
        """Keep the unique and the equality-indexed values of a stored resource.

        :raises UniquenessException: When another resource holds one of its unique values.
        """
        model = type(resource)
        with self._provider:
            unique = _comparable_values(resource, _unique_bindings(model))
            equal = _comparable_values(resource, _equality_bindings(model))
        try:
            await conn.execute(
                "WITH equal AS ("
                " INSERT INTO scim_equality_values (resource_type, id, urn, value)"
                " SELECT $1, $2, urn, value FROM unnest($5::text[], $6::text[]) AS v (urn, value))"
                " INSERT INTO scim_unique_values (resource_type, id, urn, value)"
                " SELECT $1, $2, urn, value FROM unnest($3::text[], $4::text[]) AS v (urn, value)",
                _name(resource_type),
                resource.id,
                list(unique),
                list(unique.values()),
                list(equal),
                list(equal.values()),
            )
        except asyncpg.UniqueViolationError:
            raise UniquenessException() from None

    async def _changed(
        self,
        conn: asyncpg.Connection,
        kind: ChangeKind,
        resource_type: ResourceType,
        before: Resource[Any] | None,
        after: Resource[Any] | None,
    ) -> None:
        """Tell the change hook about a write."""
        if self._on_change is None:
            return
        written = after or before
        assert written is not None
        assert written.id is not None
        with self._provider:
            change = ResourceChange(
                kind, _name(resource_type), written.id, _json(before), _json(after)
            )
        await self._on_change(conn, change)

    def _data(self, resource: Resource[Any]) -> str:
        """Return what the data column holds of a resource: its JSON without id, meta, password."""
        with self._provider:
            # password is writeOnly, and Accord is not a credential store: it is never stored.
            data = resource.model_dump(exclude={"id", "meta", "password"})
        return json.dumps(data)

    def _resource(self, resource_type: ResourceType, row: asyncpg.Record) -> Resource[Any]:
        """Return the resource a row holds, as a new object of the model of its type."""
        with self._provider:
            resource = self._model(resource_type).model_validate(
                {**json.loads(row["data"]), "id": row["id"]}
            )
        resource.meta = Meta(
            resource_type=row["resource_type"],
            created=row["created"],
            last_modified=row["last_modified"],
            version=_etag(row["version"]),
        )
        return resource

    def _model(self, resource_type: ResourceType) -> type[Resource[Any]]:
        """Return the model of a resource type, extensions included."""
        model = self._provider.model_for(resource_type)
        if model is None or not issubclass(model, Resource):
            raise LookupError(f"The provider describes no resource type {resource_type.name}")
        return model


def _name(resource_type: ResourceType) -> str:
    """Return the name of a resource type, which meta.resourceType holds."""
    return str(resource_type.name)


def _etag(version: int) -> str:
    """Return meta.version for a version counter."""
    return f'W/"{version}"'


def _not_found(resource_type: ResourceType, resource_id: str | None) -> NotFoundException:
    """Return the 404 of a resource that does not exist."""
    return NotFoundException(detail=f"no such {resource_type.name}")


def _json(resource: Resource[Any] | None) -> dict[str, Any] | None:
    """Return a resource as SCIM JSON, every attribute included."""
    return None if resource is None else resource.model_dump()


@functools.cache
def _unique_bindings(model: type[Resource[Any]]) -> tuple[AttributeBinding, ...]:
    """Return the attributes of a model whose uniqueness is server or global."""
    paths = parametrize(Path, model).iter_paths(
        include_subattributes=False, uniqueness=[Uniqueness.server, Uniqueness.global_]
    )
    return tuple(binding for path in paths if (binding := path.resolve()) is not None)


@functools.cache
def _equality_bindings(model: type[Resource[Any]]) -> tuple[AttributeBinding, ...]:
    """Return the attributes of :data:`EQUALITY_INDEXED` a model declares as single strings."""
    bindings = (parametrize(Path, model)(name).resolve() for name in EQUALITY_INDEXED)
    return tuple(
        binding
        for binding in bindings
        if binding is not None and not binding.is_multivalued and binding.target_type is str
    )


def _comparable_values(
    resource: Resource[Any], bindings: Iterable[AttributeBinding]
) -> dict[str, str]:
    """Return the values a resource holds for attributes, by URN, in the form comparisons use.

    A missing value, or one the policy cannot compare, is left out: it equals no value.
    """
    values = {
        binding.urn: _comparable_value(
            binding, parametrize(Path, type(resource))(binding.urn).get(resource, strict=False)
        )
        for binding in bindings
    }
    return {urn: value for urn, value in values.items() if value is not None}


_LONGEST_INDEXED = 512


def _comparable_value(binding: AttributeBinding, value: Any) -> str | None:
    """Return a value of an attribute in the form comparisons use, as text.

    Strings go through the comparison key of the current policy (userName is folded to lower
    case, externalId is not). Other values are held by their representation, as scim2-server's
    in-memory storage holds them. A text holding NUL is None: PostgreSQL stores none, so it
    equals no stored value (a filter may ask for one: ``userName eq "a\\u0000"``).
    """
    try:
        comparable = binding.comparable(value)
    except ValueError:
        return None
    if comparable is None:
        return None
    text = comparable if isinstance(comparable, str) else repr(comparable)
    if "\x00" in text:
        return None
    # A btree entry holds about 2.7 kB: a longer value is indexed by its digest instead.
    if len(text) > _LONGEST_INDEXED:
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    return text


def _string_equality(scim_filter: ScimFilter[Any] | None) -> tuple[str, str] | None:
    """Return the URN and the string of a filter comparing a single-valued string with eq."""
    if scim_filter is None or scim_filter.model is None:
        return None
    node = scim_filter.ast
    if (
        not isinstance(node, Comparison)
        or node.op != CompareOperator.eq
        or not isinstance(node.value, str)
    ):
        return None
    binding = scim_filter.resolve_comparison(node.attr_path, strict=False)
    if binding is None or binding.is_multivalued or binding.target_type is not str:
        return None
    return binding.urn, node.value


def _matching(
    resources: list[Resource[Any]], scim_filter: ScimFilter[Any] | None
) -> list[Resource[Any]]:
    """Return the resources a filter matches, binding it to their models if it is not bound."""
    if scim_filter is None:
        return resources
    if not scim_filter.models and resources:
        models = functools.reduce(operator.or_, dict.fromkeys(type(r) for r in resources))
        scim_filter = parametrize(ScimFilter, models)(str(scim_filter))
    return [resource for resource in resources if scim_filter.match(resource)]


def _page(search_request: SearchRequest[Any], resources: list[Resource[Any]]) -> SearchPage:
    """Sort the matching resources, and return the page from startIndex that holds count."""
    ordered = search_request.sort(resources)
    page = ordered[search_request.start_index_0 : search_request.stop_index_0]
    return SearchPage(total=len(ordered), resources=page)
