"""A directory subtree as a source, read with simple paged results (RFC 2696).

The reader binds once (as `bind_dn` with the password from the environment, or anonymously)
on a read-only connection and searches `base_dn` page by page on that connection (the server
keeps the search's place per connection): at most `page_size` entries are in memory at once.
ldap3, the library the provisioner's LDAP connector uses, is synchronous, so every call runs
in a worker thread, with the configured timeout.

Each entry becomes a row: `dn`, then every configured attribute by its configured name
(matched without case, as LDAP does). An absent attribute is "" (not set, like an empty
cell). A multi-valued attribute gives its first value in the server's order (OpenLDAP and
Active Directory keep the order values were stored in, so it is stable from run to run);
profile fields hold one value each. A value that is not UTF-8 text (a binary attribute) makes
the entry a row problem. A base DN that does not exist fails the run instead of reading
nobody: an empty result would look like everyone left.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Mapping
from functools import partial
from typing import Any, Literal

import ldap3
from ldap3.core.exceptions import LDAPCommunicationError, LDAPException

from accord.sources.config import LdapOptions
from accord.sources.csv_reader import SourceRow
from accord.sources.problems import ProblemKind, RowProblem
from accord.sources.readers.base import SourceRejected, SourceUnavailable, scrub, secret

_PAGED_RESULTS = "1.2.840.113556.1.4.319"  # RFC 2696 simple paged results control
_SCOPES: dict[str, Literal["BASE", "LEVEL", "SUBTREE"]] = {
    "base": ldap3.BASE,
    "one": ldap3.LEVEL,
    "sub": ldap3.SUBTREE,
}
#: Result codes worth retrying: busy, unavailable, unwillingToPerform, timeLimitExceeded,
#: adminLimitExceeded, other (server trouble). The provisioner's connector retries the same.
_TRANSIENT = frozenset({3, 11, 51, 52, 53, 80})
_NO_SUCH_OBJECT = 32

Entry = tuple[str, dict[str, list[bytes]]]


class LdapReader:
    """A bound connection and the search to page through."""

    def __init__(
        self, source: str, options: LdapOptions, connection: ldap3.Connection, password: str
    ) -> None:
        self._source = source
        self._options = options
        self._connection = connection
        self._password = password
        self._names = {name.casefold(): name for name in options.attributes}
        self.columns: tuple[str, ...] = ("dn", *options.attributes)
        self.problems: list[RowProblem] = []
        self.pages = 0
        """Pages read so far (for the run's report)."""

    async def rows(self) -> AsyncIterator[SourceRow]:
        """The entries in the server's order, numbered from 1, one page at a time."""
        position = 0
        cookie: bytes | None = None
        while True:
            entries, cookie = await asyncio.to_thread(partial(self._page, cookie))
            self.pages += 1
            for dn, attributes in entries:
                position += 1
                row = self._row(position, dn, attributes)
                if row is not None:
                    yield row
            if not cookie:
                return

    def _page(self, cookie: bytes | None) -> tuple[list[Entry], bytes | None]:
        """One page of entries (blocking), and the cookie of the next (None after the last)."""
        options, conn = self._options, self._connection
        try:
            found = conn.search(
                options.base_dn,
                options.filter,
                search_scope=_SCOPES[options.scope],
                attributes=list(options.attributes),
                paged_size=options.page_size,
                paged_cookie=cookie,
                time_limit=math.ceil(options.timeout_s),
            )
        except LDAPException as error:
            raise _exception(self._source, "search", error, self._password) from None
        if not found and conn.result["result"] != 0:
            raise _failure(self._source, f"search under {options.base_dn}", conn, self._password)
        entries = [
            (entry["dn"], entry["raw_attributes"])
            for entry in conn.response or ()
            if entry.get("type") == "searchResEntry"  # referrals are not followed
        ]
        control = (conn.result.get("controls") or {}).get(_PAGED_RESULTS) or {}
        next_cookie = (control.get("value") or {}).get("cookie")
        return entries, bytes(next_cookie) if next_cookie else None

    def _row(self, position: int, dn: str, attributes: dict[str, list[bytes]]) -> SourceRow | None:
        values = dict.fromkeys(self.columns, "")
        values["dn"] = dn
        for name, raw in attributes.items():
            column = self._names.get(name.casefold())
            if column is None or not raw:
                continue
            try:
                values[column] = raw[0].decode("utf-8")
            except UnicodeDecodeError:
                reason = f"{dn}: {column} is not UTF-8 text (a binary attribute?)"
                self.problems.append(RowProblem(ProblemKind.UNREADABLE, position, reason))
                return None
        return SourceRow(position, values)


def _failure(source: str, doing: str, conn: ldap3.Connection, password: str) -> Exception:
    """The server's refusal as an error: transient codes may be retried, others are the
    configuration's fault (a missing base DN too: reading nobody would delete everyone)."""
    result: dict[str, Any] = conn.result or {}
    code = int(result.get("result", 80))
    message = f"source {source!r}: {doing} -> {result.get('description', code)}"
    if result.get("message"):
        message += f": {str(result['message'])[:200]}"
    message = scrub(message, password)
    if code in _TRANSIENT:
        return SourceUnavailable(message)
    return SourceRejected(message)


def _exception(source: str, doing: str, error: LDAPException, password: str) -> Exception:
    message = scrub(f"source {source!r}: {doing}: {type(error).__name__}: {error}", password)
    if isinstance(error, LDAPCommunicationError):
        return SourceUnavailable(message)
    return SourceRejected(message)


def _bind(source: str, options: LdapOptions, password: str) -> ldap3.Connection:
    """A bound read-only connection (blocking)."""
    server = ldap3.Server(options.url, connect_timeout=options.timeout_s, get_info=ldap3.NONE)
    conn = ldap3.Connection(
        server,
        user=options.bind_dn,
        password=password or None,
        read_only=True,
        auto_referrals=False,
        receive_timeout=math.ceil(options.timeout_s),  # ldap3 packs it as an int
        raise_exceptions=False,
    )
    try:
        if conn.bind():
            return conn
        who = options.bind_dn or "anonymous"
        failure = _failure(source, f"bind to {options.url} as {who}", conn, password)
    except LDAPException as error:
        failure = _exception(source, f"connecting to {options.url}", error, password)
    _close(conn)
    raise failure


def _close(conn: ldap3.Connection) -> None:
    with contextlib.suppress(LDAPException, OSError):
        conn.unbind()
    if conn.socket is not None:  # ldap3 keeps the socket of a connect that failed
        with contextlib.suppress(OSError):
            conn.socket.close()


@contextlib.asynccontextmanager
async def open_ldap(
    source: str, options: LdapOptions, environ: Mapping[str, str]
) -> AsyncIterator[LdapReader]:
    """Bind with the password from the environment; unbound when the block ends."""
    password = ""
    if options.password_env is not None:
        password = secret(environ, options.password_env, source, "the bind password")
    conn = await asyncio.to_thread(_bind, source, options, password)
    try:
        yield LdapReader(source, options, conn, password)
    finally:
        await asyncio.to_thread(_close, conn)
