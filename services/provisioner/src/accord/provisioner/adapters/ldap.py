"""LDAP connector (ldap3) for OpenLDAP, 389-DS and Active Directory-like directories.

Accounts are inetOrgPerson entries `uid=<user name>,<people DN>`; the account id is the DN.
Every value that goes into a DN or a filter is escaped (RFC 4514 / RFC 4515). ldap3 is
synchronous: each call runs in a worker thread on a connection of its own, with timeouts.
Disabling sets a configurable attribute to a configurable value (OpenLDAP has no account
flag; e.g. `employeeType: disabled`, or `pwdAccountLockedTime` with the ppolicy overlay).

Groups are groupOfNames entries `cn=<group>,<groups DN>` whose `member` values are account
DNs. A groupOfNames must have a member, so a group whose last member leaves keeps a
placeholder DN (`empty_member_dn`, never listed). The connector keeps the member values
right itself: deleting an entry takes it out of every group under groups_dn first, renaming
it renames it there, so it needs no referential integrity overlay (a stock slapd has none)
and leaves one (OpenLDAP's refint) nothing to do, whatever its `refint_nothing`. Entries
deleted by others are that overlay's business: give it the same placeholder.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import ldap3
from ldap3.core.exceptions import LDAPException, LDAPSocketOpenError
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn
from pydantic import SecretStr

from accord.events import Profile
from accord.provisioner.domain.ldap_mapping import (
    MANAGED_FIELDS,
    OBJECT_CLASSES,
    READ_ATTRIBUTES,
    attribute_values,
    entry_attributes,
    entry_profile,
    link_value,
    linked_user_id,
    stored_profile,
)
from accord.provisioner.ports import AccountRef, TargetAccount, TargetRejected, TargetUnavailable

T = TypeVar("T")
#: Bound connections kept idle between calls, per target.
MAX_IDLE = 8

#: LDAP result codes worth retrying: busy, unavailable, unwillingToPerform, timeLimitExceeded,
#: adminLimitExceeded, other (server trouble).
_TRANSIENT = frozenset({3, 11, 51, 52, 53, 80})
_NO_SUCH_ATTRIBUTE = 16
_VALUE_EXISTS = 20
_NO_SUCH_OBJECT = 32
_OBJECT_CLASS_VIOLATION = 65
_ALREADY_EXISTS = 68
_PAGED_RESULTS = "1.2.840.113556.1.4.319"  # RFC 2696 simple paged results control
_ACCOUNTS = "(&(objectClass=inetOrgPerson)(uid=*))"


@dataclass(frozen=True)
class LdapSettings:
    """Where and how to reach the directory."""

    url: str
    bind_dn: str
    password: SecretStr
    people_dn: str
    link_attribute: str = "description"
    disable_attribute: str = "employeeType"
    disabled_value: str = "disabled"
    timeout_s: float = 10.0
    groups_dn: str | None = None
    """Where the groupOfNames entries are; None: membership calls are refused."""
    empty_member_dn: str = "cn=empty-membership"
    """The member a group keeps once its last real member left; never listed. Any DN will do
    (it need not exist); one that matches refint_nothing keeps refint's placeholder unlisted too."""


@dataclass(frozen=True)
class _Found:
    dn: str
    user_id: str | None
    attributes: dict[str, list[str]]


class LdapConnector:
    """Provisions inetOrgPerson entries; looks up (by link, then uid) before it creates."""

    managed_fields = MANAGED_FIELDS

    def __init__(self, name: str, settings: LdapSettings) -> None:
        self.name = name
        self.settings = settings
        # No schema or server info on bind: ldap3 reads the whole schema otherwise (~28 ms of
        # a 29 ms bind against slapd), and the connector needs neither.
        self._server = ldap3.Server(
            settings.url, connect_timeout=settings.timeout_s, get_info=ldap3.NONE
        )
        # Bound connections kept between calls (a bind is a round trip and a password check
        # on every call otherwise); each is used by one worker thread at a time.
        self._idle: list[ldap3.Connection] = []
        self._idle_lock = threading.Lock()

    async def ensure_account(self, user_id: str, profile: Profile) -> AccountRef:
        """Add the entry unless the identity already has one."""
        return await self._run(lambda conn: self._ensure(conn, user_id, profile))

    async def update_account(self, user_id: str, profile: Profile) -> AccountRef:
        """Replace every mapped attribute (renaming the entry if the user name changed)."""
        return await self._run(lambda conn: self._update(conn, user_id, profile))

    async def disable_account(self, user_id: str, user_name: str) -> str | None:
        """Set the disable attribute; idempotent."""
        return await self._run(lambda conn: self._set_disabled(conn, user_id, user_name, True))

    async def enable_account(self, user_id: str, user_name: str) -> str | None:
        """Remove the disable attribute's value; idempotent."""
        return await self._run(lambda conn: self._set_disabled(conn, user_id, user_name, False))

    async def delete_account(self, user_id: str, user_name: str) -> str | None:
        """Delete the entry; an entry already gone is success."""
        return await self._run(lambda conn: self._delete(conn, user_id, user_name))

    async def find_account(self, user_id: str, user_name: str) -> str | None:
        """The DN of the identity's entry, if it has one."""
        found = await self._run(lambda conn: self._find(conn, user_id, user_name))
        return found.dn if found else None

    def as_stored(self, profile: Profile) -> Profile:
        """sn falls back to the user name, the display name (cn) to the full or user name."""
        return stored_profile(profile)

    async def get_account(self, user_id: str, user_name: str) -> TargetAccount | None:
        """The entry linked to the identity, else the one with its uid (whoever owns it)."""
        found = await self._run(lambda conn: self._lookup(conn, user_id, user_name))
        return self._account(found) if found else None

    async def list_accounts(self, *, page_size: int = 200) -> AsyncIterator[TargetAccount]:
        """Every inetOrgPerson with a uid under people_dn: one paged search (RFC 2696).

        The server keeps the search's place per connection, so every page is read on the
        same connection (one worker thread at a time).
        """
        conn = await asyncio.to_thread(self._connect)
        try:
            cookie: bytes | None = None
            while True:
                page = partial(self._page, page_size=page_size, cookie=cookie)
                entries, cookie = await asyncio.to_thread(self._guarded, page, conn)
                for found in entries:
                    yield self._account(found)
                if not cookie:
                    return
        finally:
            await asyncio.to_thread(conn.unbind)

    async def add_member(self, user_id: str, user_name: str, group: str) -> str | None:
        """Add the entry's DN to the group's members, creating the group if needed."""
        group_dn = self._group_dn(group)
        return await self._run(
            lambda conn: self._add_member(conn, user_id, user_name, group, group_dn)
        )

    async def remove_member(self, user_id: str, user_name: str, group: str) -> str | None:
        """Remove the entry's DN from the group's members (the placeholder stands in last)."""
        group_dn = self._group_dn(group)
        return await self._run(lambda conn: self._remove_member(conn, user_id, user_name, group_dn))

    async def list_members(self, group: str) -> list[str]:
        """The group's member DNs, without the placeholder."""
        group_dn = self._group_dn(group)
        return await self._run(lambda conn: self._members(conn, group_dn))

    async def health(self) -> None:
        """Bind, then read the people container's entry."""
        await self._run(self._probe)

    async def close(self) -> None:
        """Unbind the idle connections."""
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            await asyncio.to_thread(_unbind, conn)

    # --- blocking work, in a worker thread ------------------------------------------------

    async def _run(self, work: Callable[[ldap3.Connection], T]) -> T:
        return await asyncio.to_thread(self._with_connection, work)

    def _with_connection(self, work: Callable[[ldap3.Connection], T]) -> T:
        """Run work on an idle bound connection, or a new one; a pooled connection that has
        gone stale (the server restarted or dropped it) is replaced once, on a fresh one.
        The work is idempotent (look up before add, modify to a state), so running it
        again is safe."""
        pooled = self._take()
        if pooled is not None:
            try:
                return self._keep_after(work, pooled)
            except TargetUnavailable:
                pass  # stale: a fresh connection decides
        return self._keep_after(work, self._connect())

    def _keep_after(self, work: Callable[[ldap3.Connection], T], conn: ldap3.Connection) -> T:
        try:
            result = self._guarded(work, conn)
        except BaseException:
            _unbind(conn)
            raise
        if conn.closed:
            return result
        with self._idle_lock:
            if len(self._idle) < MAX_IDLE:
                self._idle.append(conn)
                return result
        _unbind(conn)
        return result

    def _take(self) -> ldap3.Connection | None:
        with self._idle_lock:
            return self._idle.pop() if self._idle else None

    def _connect(self) -> ldap3.Connection:
        """A bound connection (bind refused: TargetRejected; no answer: TargetUnavailable)."""
        settings = self.settings
        conn = ldap3.Connection(
            self._server,
            user=settings.bind_dn,
            password=settings.password.get_secret_value(),
            receive_timeout=math.ceil(settings.timeout_s),  # ldap3 packs it as an int
            raise_exceptions=False,
        )
        try:
            if conn.bind():
                return conn
            failure = self._failure(conn, "bind as", settings.bind_dn)
        except LDAPSocketOpenError:
            failure = TargetUnavailable(f"{self.name}: cannot connect to {settings.url}")
        except LDAPException as error:
            failure = TargetUnavailable(f"{self.name}: {type(error).__name__}")
        conn.unbind()
        if conn.socket is not None:  # ldap3 keeps the socket of a connect that failed
            conn.socket.close()
        raise failure

    def _guarded(self, work: Callable[[ldap3.Connection], T], conn: ldap3.Connection) -> T:
        try:
            return work(conn)
        except LDAPException as error:
            raise TargetUnavailable(f"{self.name}: {type(error).__name__}") from None

    def _ensure(self, conn: ldap3.Connection, user_id: str, profile: Profile) -> AccountRef:
        found = self._find(conn, user_id, profile.user_name)
        if found is None:
            dn = self._dn(profile.user_name)
            attributes = {
                k: v
                for k, v in entry_attributes(
                    user_id, profile, link_attribute=self.settings.link_attribute
                ).items()
                if v
            }
            if not profile.active:
                attributes[self.settings.disable_attribute] = [self.settings.disabled_value]
            if conn.add(dn, list(OBJECT_CLASSES), attributes):  # type: ignore[no-untyped-call]  # stubs lack types
                # The id is the DN as the directory spells it (escapes differ), as lookups see it.
                added = self._find(conn, user_id, profile.user_name)
                return AccountRef(added.dn if added else dn, already_existed=False)
            failure = self._failure(conn, "add", dn)
            if conn.result["result"] != _ALREADY_EXISTS:
                raise failure
            # Added concurrently (or by a retry whose answer was lost): adopt it if ours.
            found = self._find(conn, user_id, profile.user_name)
            if found is None:
                raise failure
        if found.user_id is None:
            # Made outside Accord: adopting it links it and gives it the identity's attributes,
            # so later lookups find it by the link and reconciliation sees no drift. (A modify
            # cannot be made conditional on the entry being unlinked still without the
            # assertion control, which not every directory has; two identities of one user
            # name adopting at once is a conflict of the source data.)
            self._write(conn, found.dn, user_id, profile)
        return AccountRef(found.dn, already_existed=True)

    def _update(self, conn: ldap3.Connection, user_id: str, profile: Profile) -> AccountRef:
        found = self._find(conn, user_id, profile.user_name)
        if found is None:
            return self._ensure(conn, user_id, profile)
        dn = found.dn
        wanted = self._dn(profile.user_name)
        if dn.lower() != wanted.lower():
            if not conn.modify_dn(dn, wanted.split(",", 1)[0]):
                raise self._failure(conn, "rename", dn)
            self._rename_member(conn, dn, wanted)
            dn = wanted
        self._write(conn, dn, user_id, profile)
        return AccountRef(dn, already_existed=True)

    def _write(self, conn: ldap3.Connection, dn: str, user_id: str, profile: Profile) -> None:
        """Replace every mapped attribute, the link and the disable flag of the entry."""
        attributes = entry_attributes(user_id, profile, link_attribute=self.settings.link_attribute)
        # The RDN attribute: a rename changes it, and an entry found by its uid has it already.
        del attributes["uid"]
        flag = [self.settings.disabled_value] if not profile.active else []
        attributes[self.settings.disable_attribute] = flag
        changes = {name: [(ldap3.MODIFY_REPLACE, values)] for name, values in attributes.items()}
        if not conn.modify(dn, changes):  # type: ignore[no-untyped-call]  # stubs lack types
            raise self._failure(conn, "modify", dn)

    def _set_disabled(
        self, conn: ldap3.Connection, user_id: str, user_name: str, disabled: bool
    ) -> str | None:
        found = self._find(conn, user_id, user_name)
        if found is None:
            return None
        value = [self.settings.disabled_value] if disabled else []
        change = {self.settings.disable_attribute: [(ldap3.MODIFY_REPLACE, value)]}
        if not conn.modify(found.dn, change):  # type: ignore[no-untyped-call]  # stubs lack types
            raise self._failure(conn, "modify", found.dn)
        return found.dn

    def _delete(self, conn: ldap3.Connection, user_id: str, user_name: str) -> str | None:
        found = self._find(conn, user_id, user_name)
        if found is None:
            return None
        # Out of its groups before it goes: a retry after a failure in between finds it again.
        for group_dn in self._groups_of(conn, found.dn):
            self._take_out(conn, group_dn, found.dn)
        if not conn.delete(found.dn) and conn.result["result"] != _NO_SUCH_OBJECT:  # type: ignore[no-untyped-call]  # stubs lack types
            raise self._failure(conn, "delete", found.dn)
        return found.dn

    def _find(self, conn: ldap3.Connection, user_id: str, user_name: str) -> _Found | None:
        """The identity's entry: linked to it, else named like it (and not someone else's)."""
        found = self._lookup(conn, user_id, user_name)
        if found is not None and found.user_id not in (None, user_id):
            raise TargetRejected(f"{self.name}: uid {user_name!r} belongs to another identity")
        return found  # an unlinked entry of that name is ours to adopt

    def _lookup(self, conn: ldap3.Connection, user_id: str, user_name: str) -> _Found | None:
        """The entry linked to the identity, else the first named like it, whoever owns it."""
        link = self.settings.link_attribute
        query = (
            f"(&(objectClass=inetOrgPerson)(|({link}={escape_filter_chars(link_value(user_id))})"
            f"(uid={escape_filter_chars(user_name)})))"
        )
        entries = self._search(conn, self.settings.people_dn, query, self._attributes())
        linked = (entry for entry in entries if entry.user_id == user_id)
        return next(linked, entries[0] if entries else None)

    def _page(
        self, conn: ldap3.Connection, *, page_size: int, cookie: bytes | None
    ) -> tuple[list[_Found], bytes | None]:
        """One page of accounts, and the cookie of the next one (None after the last)."""
        entries = self._search(
            conn,
            self.settings.people_dn,
            _ACCOUNTS,
            self._attributes(),
            paged_size=page_size,
            paged_cookie=cookie,
        )
        control = (conn.result.get("controls") or {}).get(_PAGED_RESULTS) or {}
        next_cookie = (control.get("value") or {}).get("cookie")
        return entries, bytes(next_cookie) if next_cookie else None

    def _add_member(
        self, conn: ldap3.Connection, user_id: str, user_name: str, group: str, group_dn: str
    ) -> str | None:
        found = self._find(conn, user_id, user_name)
        if found is None:
            return None
        addition = (ldap3.MODIFY_ADD, found.dn)
        outcome = self._change_members(conn, group_dn, [addition], _VALUE_EXISTS, _NO_SUCH_OBJECT)
        if outcome == _NO_SUCH_OBJECT:
            entry = {"cn": [group], "member": [found.dn]}
            if conn.add(group_dn, ["top", "groupOfNames"], entry):  # type: ignore[no-untyped-call]  # stubs lack types
                return found.dn
            if conn.result["result"] != _ALREADY_EXISTS:
                raise self._failure(conn, "add", group_dn)
            self._change_members(conn, group_dn, [addition], _VALUE_EXISTS)  # made meanwhile
        removal = (ldap3.MODIFY_DELETE, self.settings.empty_member_dn)
        self._change_members(conn, group_dn, [removal], _NO_SUCH_ATTRIBUTE)
        return found.dn

    def _remove_member(
        self, conn: ldap3.Connection, user_id: str, user_name: str, group_dn: str
    ) -> str | None:
        found = self._find(conn, user_id, user_name)
        if found is None:
            return None
        self._take_out(conn, group_dn, found.dn)
        return found.dn

    def _take_out(self, conn: ldap3.Connection, group_dn: str, member_dn: str) -> None:
        """Remove a member from a group; idempotent (a missing group or member is success)."""
        removal = (ldap3.MODIFY_DELETE, member_dn)
        outcome = self._change_members(
            conn, group_dn, [removal], _NO_SUCH_ATTRIBUTE, _NO_SUCH_OBJECT, _OBJECT_CLASS_VIOLATION
        )
        if outcome == _OBJECT_CLASS_VIOLATION:  # the last member: the placeholder takes its place
            placeholder = (ldap3.MODIFY_ADD, self.settings.empty_member_dn)
            self._change_members(conn, group_dn, [placeholder, removal])

    def _rename_member(self, conn: ldap3.Connection, old_dn: str, new_dn: str) -> None:
        """A renamed entry's groups name it by its new DN. Two changes, each idempotent, so a
        refint overlay renaming the same values meanwhile leaves the same result."""
        for group_dn in self._groups_of(conn, old_dn):
            addition = (ldap3.MODIFY_ADD, new_dn)
            self._change_members(conn, group_dn, [addition], _VALUE_EXISTS, _NO_SUCH_OBJECT)
            removal = (ldap3.MODIFY_DELETE, old_dn)
            self._change_members(conn, group_dn, [removal], _NO_SUCH_ATTRIBUTE, _NO_SUCH_OBJECT)

    def _groups_of(self, conn: ldap3.Connection, member_dn: str) -> list[str]:
        """The DNs of the groups under groups_dn with this member (none without groups_dn)."""
        if self.settings.groups_dn is None:
            return []
        query = f"(&(objectClass=groupOfNames)(member={escape_filter_chars(member_dn)}))"
        return [group.dn for group in self._search(conn, self.settings.groups_dn, query, ["cn"])]

    def _members(self, conn: ldap3.Connection, group_dn: str) -> list[str]:
        groups = self._search(
            conn, group_dn, "(objectClass=groupOfNames)", ["member"], scope=ldap3.BASE
        )
        placeholder = self.settings.empty_member_dn.lower()
        return [
            member
            for group in groups
            for member in attribute_values(group.attributes, "member")
            if member.lower() != placeholder
        ]

    def _change_members(
        self, conn: ldap3.Connection, group_dn: str, changes: list[tuple[str, str]], *ok: int
    ) -> int:
        """Apply the member changes at once: 0, or the result code among `ok`; others raise."""
        members = [(operation, [dn]) for operation, dn in changes]
        if conn.modify(group_dn, {"member": members}):  # type: ignore[no-untyped-call]  # stubs lack types
            return 0
        code = int(conn.result["result"])
        if code in ok:
            return code
        raise self._failure(conn, "modify", group_dn)

    def _probe(self, conn: ldap3.Connection) -> None:
        people_dn = self.settings.people_dn
        if not conn.search(
            people_dn,
            "(objectClass=*)",
            search_scope=ldap3.BASE,
            attributes=[ldap3.NO_ATTRIBUTES],
            time_limit=int(self.settings.timeout_s),
        ):
            raise self._failure(conn, "search", people_dn)

    def _search(
        self,
        conn: ldap3.Connection,
        base: str,
        query: str,
        attributes: list[str],
        *,
        scope: Any = ldap3.SUBTREE,
        **paging: Any,
    ) -> list[_Found]:
        """The entries found (none when the base does not exist), with their attributes."""
        if not conn.search(
            base,
            query,
            search_scope=scope,
            attributes=attributes,
            time_limit=int(self.settings.timeout_s),
            **paging,
        ):
            if conn.result["result"] in (0, _NO_SUCH_OBJECT):
                return []
            raise self._failure(conn, "search", base)
        found = []
        for entry in conn.entries:
            values = {k: [str(v) for v in vs] for k, vs in entry.entry_attributes_as_dict.items()}
            link = attribute_values(values, self.settings.link_attribute)
            found.append(_Found(entry.entry_dn, linked_user_id(link), values))
        return found

    def _attributes(self) -> list[str]:
        settings = self.settings
        return [*READ_ATTRIBUTES, settings.link_attribute, settings.disable_attribute]

    def _account(self, found: _Found) -> TargetAccount:
        settings = self.settings
        flags = attribute_values(found.attributes, settings.disable_attribute)
        try:
            profile = entry_profile(found.attributes)
        except ValueError:
            raise TargetRejected(f"{self.name}: {found.dn} does not read as a profile") from None
        return TargetAccount(found.dn, found.user_id, settings.disabled_value not in flags, profile)

    def _dn(self, user_name: str) -> str:
        return f"uid={escape_rdn(user_name)},{self.settings.people_dn}"

    def _group_dn(self, group: str) -> str:
        if self.settings.groups_dn is None:
            raise TargetRejected(f"{self.name}: no groups_dn is configured, so no groups")
        return f"cn={escape_rdn(group)},{self.settings.groups_dn}"

    def _failure(self, conn: ldap3.Connection, operation: str, dn: str) -> Exception:
        result = conn.result or {}
        code = int(result.get("result", 80))
        message = f"{self.name}: {operation} {dn} -> {result.get('description', code)}"
        if result.get("message"):
            message += f": {str(result['message'])[:200]}"
        if code in _TRANSIENT:
            return TargetUnavailable(message)
        return TargetRejected(message)


def _unbind(conn: ldap3.Connection) -> None:
    """Close a connection, whatever state it is in."""
    with contextlib.suppress(LDAPException, OSError):
        conn.unbind()
