"""SQL table connector (asyncpg): accounts are rows of a table in someone else's PostgreSQL.

Each account is one row. The target's own primary key (`id_column`) is the account id, as
text; Accord's user_id goes into `link_column`, so a row is recognised after a rename and a
row made for someone else is never taken. Profile fields go into the columns `columns` maps
them to; `active_column` (boolean) is the account's enabled flag. Group membership, when
wanted, is a table of (group name, account id) rows: a group exists through its rows.

Table and column names are checked against a plain-identifier pattern and always quoted (so
they are case-sensitive, as written); values only ever travel as bind parameters. The table
should have a unique constraint on the user name column (and ideally on the link column):
concurrent creates rely on `INSERT ... ON CONFLICT DO NOTHING` to make one row.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from pydantic import SecretStr

from accord.events import Profile
from accord.provisioner.domain.profiles import read_profile
from accord.provisioner.ports import AccountRef, TargetAccount, TargetRejected, TargetUnavailable

#: Profile fields a column can be mapped from.
PROFILE_FIELDS = (
    "user_name",
    "display_name",
    "email",
    "title",
    "department",
    "given_name",
    "family_name",
    "employee_number",
)

_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")
_COLUMN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_IDENTIFIER = 63  # PostgreSQL silently truncates longer names (NAMEDATALEN - 1)

#: SQLSTATEs worth retrying besides connection errors (class 08): serialization failure,
#: deadlock, statement completion unknown, lock not available, object in use.
_TRANSIENT_STATES = frozenset({"40001", "40P01", "40003", "55P03", "55006"})
#: SQLSTATE classes worth retrying: connection exception, insufficient resources (too many
#: connections, disk full, out of memory), operator intervention (shutdown, cannot connect
#: now, statement cancelled), system error.
_TRANSIENT_CLASSES = frozenset({"08", "53", "57", "58"})

#: What a database call can fail with; OSError covers TimeoutError (acquire, connect and
#: command timeouts) and refused connections.
_DATABASE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)

#: How often a create looks again after losing a race (an adoption or an insert conflict).
_CREATE_ATTEMPTS = 3


@dataclass(frozen=True)
class SqlSettings:
    """Where the table is and how profile fields map onto its columns."""

    dsn: SecretStr
    table: str
    """The table, optionally schema-qualified (`app.users`)."""
    columns: dict[str, str] = field(default_factory=dict)
    """Profile field (see PROFILE_FIELDS) -> column name."""
    id_column: str = "id"
    """The target's own primary key; its value, as text, is the account id."""
    link_column: str = "accord_id"
    """Holds Accord's user_id (NULL for a row Accord did not make or adopt)."""
    user_name_column: str = "user_name"
    active_column: str = "active"
    """A boolean column: false for a disabled account."""
    timeout_s: float = 10.0
    pool_size: int = 5
    membership_table: str | None = None
    """Group membership rows (optionally schema-qualified); None: the target has no groups."""
    group_column: str = "group_name"
    """The membership table's group name column."""
    member_column: str = "account_id"
    """The membership table's member column: the id column's value (same type; ideally a
    foreign key to it, ON DELETE CASCADE)."""

    def __post_init__(self) -> None:
        _check_name("table", self.table, _TABLE_NAME)
        if self.membership_table is not None:
            _check_name("membership_table", self.membership_table, _TABLE_NAME)
        for setting in (
            "id_column",
            "link_column",
            "user_name_column",
            "active_column",
            "group_column",
            "member_column",
        ):
            _check_name(setting, getattr(self, setting), _COLUMN_NAME)
        if self.group_column == self.member_column:
            raise ValueError(f"group_column and member_column are both {self.group_column!r}")
        for profile_field, column in self.columns.items():
            if profile_field not in PROFILE_FIELDS:
                raise ValueError(
                    f"columns: unknown profile field {profile_field!r}; "
                    f"use one of {', '.join(PROFILE_FIELDS)}"
                )
            _check_name(f"columns[{profile_field!r}]", column, _COLUMN_NAME)
        mapped_user_name = self.columns.get("user_name", self.user_name_column)
        if mapped_user_name != self.user_name_column:
            raise ValueError(
                f"columns['user_name'] is {mapped_user_name!r} but user_name_column is "
                f"{self.user_name_column!r}: they must agree"
            )
        written = [self.link_column, self.user_name_column, self.active_column]
        written += [c for f, c in self.columns.items() if f != "user_name"]
        if len(set(written)) != len(written):
            raise ValueError(f"the link, user name, active and mapped columns overlap: {written}")
        if self.id_column in written and self.id_column != self.user_name_column:
            raise ValueError(f"id_column {self.id_column!r} must not be written to")
        if not self.timeout_s > 0:
            raise ValueError("timeout_s must be positive")
        if self.pool_size < 1:
            raise ValueError("pool_size must be at least 1")


def quote_name(name: str) -> str:
    """A checked, possibly schema-qualified name as a quoted SQL identifier."""
    _check_name("name", name, _TABLE_NAME)
    return ".".join(f'"{part}"' for part in name.split("."))


def column_values(profile: Profile) -> dict[str, str | None]:
    """Every mappable profile field's value; a display name is derived when absent."""
    full_name = " ".join(p for p in (profile.given_name, profile.family_name) if p)
    return {
        "user_name": profile.user_name,
        "display_name": profile.display_name or full_name or None,
        "email": profile.email,
        "title": profile.title,
        "department": profile.department,
        "given_name": profile.given_name,
        "family_name": profile.family_name,
        "employee_number": profile.employee_number,
    }


def row_profile(values: dict[str, Any], *, active: bool) -> Profile:
    """The profile a row holds (see read_profile: odd values read as None)."""
    return read_profile({**values, "active": active})


def failure(target: str, operation: str, error: BaseException) -> Exception:
    """The port's error for a database failure: TargetUnavailable (retry) or TargetRejected.

    The message names the target and the failure, never the DSN or its password.
    """
    if isinstance(error, asyncpg.PostgresError):
        state = str(getattr(error, "sqlstate", "") or "")
        detail = str(getattr(error, "message", "") or type(error).__name__)[:200]
        message = f"{target}: {operation} -> {state} {detail}".rstrip()
        if (
            isinstance(error, asyncpg.PostgresConnectionError)
            or state in _TRANSIENT_STATES
            or state[:2] in _TRANSIENT_CLASSES
        ):
            return TargetUnavailable(message)
        if state.startswith("28"):
            return TargetRejected(f"{target}: login refused -> {state} {detail}")
        return TargetRejected(message)
    if isinstance(error, asyncpg.exceptions.ClientConfigurationError):
        return TargetRejected(f"{target}: invalid connection settings")
    if isinstance(error, asyncpg.InterfaceError) and isinstance(error, ValueError):
        # asyncpg's client-side DataError: a value the column's type cannot take.
        return TargetRejected(f"{target}: {operation} -> {type(error).__name__}")
    if isinstance(error, TimeoutError):
        return TargetUnavailable(f"{target}: {operation} timed out")
    # OSError (refused, reset, unreachable) and any other client-side trouble: retry.
    return TargetUnavailable(f"{target}: {operation} failed: {type(error).__name__}")


@dataclass(frozen=True)
class _MembershipSql:
    """The statements of the membership table: $1 is the group, $2 the member's key."""

    add: str
    remove: str
    members: str


@dataclass(frozen=True)
class _Row:
    key: Any
    """The id column's value as the database returns it (used in WHERE clauses)."""
    account_id: str
    owner: str | None


class SqlConnector:
    """Provisions rows of one table; looks up (by link, then user name) before it creates."""

    def __init__(self, name: str, settings: SqlSettings) -> None:
        self.name = name
        self.settings = settings
        self._pool: Any = None
        self._pool_lock = asyncio.Lock()
        s = settings
        table = quote_name(s.table)
        key, link = quote_name(s.id_column), quote_name(s.link_column)
        user_name, active = quote_name(s.user_name_column), quote_name(s.active_column)
        self._fields = [f for f in PROFILE_FIELDS if f in s.columns and f != "user_name"]
        self.managed_fields = frozenset({"user_name", *self._fields})
        mapped = [quote_name(s.columns[f]) for f in self._fields]
        # Names are checked and quoted above; every value is a $n parameter. A row is read
        # under fixed aliases: its key, account id, owner, active flag and profile fields.
        read = ", ".join(
            [
                f"{key} AS _key, {key}::text AS _id, {link}::text AS _owner",
                f"{active} AS _active, {user_name}::text AS user_name",
                *(f"{column}::text AS {f}" for f, column in zip(self._fields, mapped, strict=True)),
            ]
        )
        self._find_sql = (
            f"SELECT {read} FROM {table}"  # noqa: S608 - quoted names
            f" WHERE {link} = $1 OR {user_name} = $2 LIMIT 16"
        )
        # Keyset pagination on the id column (a key: never NULL), never OFFSET.
        self._first_page_sql = f"SELECT {read} FROM {table} ORDER BY {key} LIMIT $1"  # noqa: S608 - quoted names
        self._next_page_sql = (
            f"SELECT {read} FROM {table}"  # noqa: S608 - quoted names
            f" WHERE {key} > $1 ORDER BY {key} LIMIT $2"
        )
        self._membership = _membership_sql(s)
        insert_columns = [link, user_name, active, *mapped]
        placeholders = ", ".join(f"${i}" for i in range(1, len(insert_columns) + 1))
        self._insert_sql = (
            f"INSERT INTO {table} ({', '.join(insert_columns)})"  # noqa: S608 - quoted names
            f" VALUES ({placeholders}) ON CONFLICT DO NOTHING RETURNING {key}::text"
        )
        assignments = [f"{link} = $2", f"{user_name} = $3", f"{active} = $4"]
        assignments += [f"{column} = ${i}" for i, column in enumerate(mapped, start=5)]
        # Only a row that is still unlinked or ours: another identity may have adopted it.
        ours = f"{key} = $1 AND ({link} IS NULL OR {link} = $2)"
        self._update_sql = (
            f"UPDATE {table} SET {', '.join(assignments)}"  # noqa: S608 - quoted names
            f" WHERE {ours} RETURNING {key}::text"
        )
        # Adoption links an unlinked row and gives it the identity's attributes at once, unless
        # another identity adopted it meanwhile.
        self._adopt_sql = (
            f"UPDATE {table} SET {', '.join(assignments)}"  # noqa: S608 - quoted names
            f" WHERE {key} = $1 AND {link} IS NULL RETURNING {key}::text"
        )
        self._set_active_sql = (
            f"UPDATE {table} SET {active} = $3"  # noqa: S608 - quoted names
            f" WHERE {ours} RETURNING {key}::text"
        )
        self._delete_sql = f"DELETE FROM {table} WHERE {ours} RETURNING {key}::text"  # noqa: S608 - quoted names

    async def ensure_account(self, user_id: str, profile: Profile) -> AccountRef:
        """Insert the row unless the identity has one (adopting an unlinked row of its name)."""
        async with self._connection("create") as conn:
            return await self._ensure(conn, user_id, profile)

    async def update_account(self, user_id: str, profile: Profile) -> AccountRef:
        """Write every mapped column, the user name and the active flag; create a lost row."""
        async with self._connection("update") as conn:
            found = await self._find(conn, user_id, profile.user_name)
            if found is not None:
                updated = await conn.fetchval(
                    self._update_sql, found.key, *self._row(user_id, profile)
                )
                if updated is not None:
                    return AccountRef(updated, already_existed=True)
            # The target lost the row (or it went between the lookup and the update).
            return await self._ensure(conn, user_id, profile)

    async def disable_account(self, user_id: str, user_name: str) -> str | None:
        """Set the active column to false; idempotent."""
        return await self._set_active(user_id, user_name, active=False)

    async def enable_account(self, user_id: str, user_name: str) -> str | None:
        """Set the active column to true; idempotent."""
        return await self._set_active(user_id, user_name, active=True)

    async def delete_account(self, user_id: str, user_name: str) -> str | None:
        """Delete the row; a row already gone is success (None)."""
        async with self._connection("delete") as conn:
            found = await self._find(conn, user_id, user_name)
            if found is None:
                return None
            deleted: str | None = await conn.fetchval(self._delete_sql, found.key, user_id)
            return deleted

    async def find_account(self, user_id: str, user_name: str) -> str | None:
        """The id of the identity's row, if it has one."""
        async with self._connection("lookup") as conn:
            found = await self._find(conn, user_id, user_name)
            return found.account_id if found else None

    def as_stored(self, profile: Profile) -> Profile:
        """The profile as the row reads back: a mapped display name is derived when absent."""
        values = column_values(profile)
        return profile.model_copy(update={f: values[f] for f in self._fields})

    async def get_account(self, user_id: str, user_name: str) -> TargetAccount | None:
        """The row linked to the identity, else the one of that user name, whoever owns it."""
        async with self._connection("lookup") as conn:
            records = await conn.fetch(self._find_sql, user_id, user_name)
        linked = [r for r in records if r["_owner"] == user_id]
        return self._account((linked or records)[0]) if records else None

    async def list_accounts(self, *, page_size: int = 200) -> AsyncIterator[TargetAccount]:
        """Every row in id order, a page at a time (keyset: `WHERE id > last id`)."""
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        after: Any = None
        while True:
            # A connection per page: a slow consumer does not hold one from the pool.
            async with self._connection("list") as conn:
                if after is None:
                    records = await conn.fetch(self._first_page_sql, page_size)
                else:
                    records = await conn.fetch(self._next_page_sql, after, page_size)
            for record in records:
                yield self._account(record)
            if len(records) < page_size:
                return
            after = records[-1]["_key"]

    async def add_member(self, user_id: str, user_name: str, group: str) -> str | None:
        """Insert the (group, account) row unless it is there; the group needs no creating."""
        statement = self._membership_of(group).add
        return await self._change_membership(statement, user_id, user_name, group)

    async def remove_member(self, user_id: str, user_name: str, group: str) -> str | None:
        """Delete the (group, account) row; a row already gone is success."""
        statement = self._membership_of(group).remove
        return await self._change_membership(statement, user_id, user_name, group)

    async def list_members(self, group: str) -> list[str]:
        """The account ids in the group's rows (empty for a group without rows)."""
        statement = self._membership_of(group).members
        async with self._connection("list members") as conn:
            records = await conn.fetch(statement, group)
        return [r[0] for r in records]

    async def health(self) -> None:
        """`SELECT 1` on a pooled connection: the database answers and takes the login."""
        async with self._connection("health check") as conn:
            await conn.fetchval("SELECT 1", timeout=self.settings.timeout_s)

    async def close(self) -> None:
        """Close the pool (if one was ever opened)."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), timeout=self.settings.timeout_s)
        except TimeoutError:
            pool.terminate()

    # --- internals ---------------------------------------------------------------------------

    async def _ensure(self, conn: Any, user_id: str, profile: Profile) -> AccountRef:
        for _ in range(_CREATE_ATTEMPTS):
            found = await self._find(conn, user_id, profile.user_name)
            if found is not None:
                if found.owner == user_id:
                    return AccountRef(found.account_id, already_existed=True)
                # An unlinked row of that name: adopt it, unless someone else just did.
                adopted = await conn.fetchval(
                    self._adopt_sql, found.key, *self._row(user_id, profile)
                )
                if adopted is not None:
                    return AccountRef(adopted, already_existed=True)
                continue
            created = await conn.fetchval(self._insert_sql, *self._row(user_id, profile))
            if created is not None:
                return AccountRef(created, already_existed=False)
            # A unique conflict: made concurrently (look again), or another column clashes.
        raise TargetRejected(
            f"{self.name}: cannot create {profile.user_name!r} in {self.settings.table}: "
            "it conflicts with an existing row"
        )

    async def _set_active(self, user_id: str, user_name: str, *, active: bool) -> str | None:
        async with self._connection("enable" if active else "disable") as conn:
            found = await self._find(conn, user_id, user_name)
            if found is None:
                return None
            changed: str | None = await conn.fetchval(
                self._set_active_sql, found.key, user_id, active
            )
            return changed

    async def _find(self, conn: Any, user_id: str, user_name: str) -> _Row | None:
        """The identity's row: linked to it, else named like it (and not someone else's)."""
        records = await conn.fetch(self._find_sql, user_id, user_name)
        rows = [_Row(r["_key"], r["_id"], r["_owner"] or None) for r in records]
        for row in rows:
            if row.owner == user_id:
                return row
        if any(row.owner is not None for row in rows):
            # Adopting it would hand one person's account to another identity.
            raise TargetRejected(
                f"{self.name}: user name {user_name!r} belongs to another identity"
            )
        return rows[0] if rows else None  # an unlinked row of that name: ours to adopt

    def _account(self, record: Any) -> TargetAccount:
        """A row read back as the port's account (a NULL active flag is not a disabled one)."""
        active = record["_active"] is not False
        values = {f: record[f] for f in ("user_name", *self._fields)}
        try:
            profile = row_profile(values, active=active)
        except ValueError as error:
            raise TargetRejected(f"{self.name}: row {record['_id']}: {error}") from None
        return TargetAccount(record["_id"], record["_owner"] or None, active, profile)

    def _membership_of(self, group: str) -> _MembershipSql:
        """The membership statements; a target without a membership table has no groups."""
        if self._membership is None:
            raise TargetRejected(
                f"{self.name}: cannot manage group {group!r}: no membership table is configured"
            )
        return self._membership

    async def _change_membership(
        self, statement: str, user_id: str, user_name: str, group: str
    ) -> str | None:
        """Run an add or remove statement for the identity's row; None when it has none."""
        async with self._connection("membership change") as conn:
            found = await self._find(conn, user_id, user_name)
            if found is None:
                return None
            await conn.execute(statement, group, found.key)
            return found.account_id

    def _row(self, user_id: str, profile: Profile) -> list[object]:
        """The link, user name, active and mapped columns' values, in the order the insert
        and the updates list those columns."""
        values = column_values(profile)
        return [user_id, profile.user_name, profile.active, *(values[f] for f in self._fields)]

    @asynccontextmanager
    async def _connection(self, operation: str) -> AsyncIterator[Any]:
        """A pooled connection; database failures come out as the port's errors."""
        where = f"{operation} in {self.settings.table}"
        try:
            pool = await self._get_pool()
            conn = await pool.acquire(timeout=self.settings.timeout_s)
        except _DATABASE_ERRORS as error:
            raise failure(self.name, where, error) from None
        except ValueError:
            # A DSN asyncpg cannot parse; its message may quote the DSN.
            raise TargetRejected(f"{self.name}: invalid connection settings") from None
        try:
            yield conn
        except _DATABASE_ERRORS as error:
            raise failure(self.name, where, error) from None
        finally:
            # A connection that cannot be reset is terminated by the pool, which then re-raises:
            # the caller has its answer (or its error) already.
            with contextlib.suppress(*_DATABASE_ERRORS):
                await pool.release(conn, timeout=self.settings.timeout_s)

    async def _get_pool(self) -> Any:
        if self._pool is None:
            async with self._pool_lock:
                if self._pool is None:
                    s = self.settings
                    self._pool = await asyncpg.create_pool(
                        s.dsn.get_secret_value(),
                        min_size=0,
                        max_size=s.pool_size,
                        timeout=s.timeout_s,
                        command_timeout=s.timeout_s,
                        server_settings={"application_name": "accord-provisioner"},
                    )
        return self._pool


def _membership_sql(s: SqlSettings) -> _MembershipSql | None:
    """The membership table's statements, if the settings name one."""
    if s.membership_table is None:
        return None
    table = quote_name(s.membership_table)
    group, member = quote_name(s.group_column), quote_name(s.member_column)
    row = f"{group} = $1 AND {member} = $2"
    return _MembershipSql(
        # NOT EXISTS keeps it idempotent without a unique constraint; ON CONFLICT with one.
        add=(
            f"INSERT INTO {table} ({group}, {member}) SELECT $1, $2"  # noqa: S608 - quoted names
            f" WHERE NOT EXISTS (SELECT 1 FROM {table} WHERE {row}) ON CONFLICT DO NOTHING"
        ),
        remove=f"DELETE FROM {table} WHERE {row}",  # noqa: S608 - quoted names
        members=(
            f"SELECT DISTINCT {member}::text FROM {table}"  # noqa: S608 - quoted names
            f" WHERE {group} = $1 ORDER BY 1"
        ),
    )


def _check_name(setting: str, name: str, pattern: re.Pattern[str]) -> None:
    if not isinstance(name, str) or not pattern.fullmatch(name):
        raise ValueError(f"{setting}: {name!r} is not a plain SQL name ({pattern.pattern})")
    if any(len(part) > _MAX_IDENTIFIER for part in name.split(".")):
        raise ValueError(f"{setting}: {name!r} is longer than {_MAX_IDENTIFIER} characters")
