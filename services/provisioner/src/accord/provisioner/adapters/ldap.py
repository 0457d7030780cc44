"""LDAP connector (ldap3) for OpenLDAP, 389-DS and Active Directory-like directories.

Accounts are inetOrgPerson entries `uid=<user name>,<people DN>`; the account id is the DN.
Every value that goes into a DN or a filter is escaped (RFC 4514 / RFC 4515). ldap3 is
synchronous: each call runs in a worker thread on a connection of its own, with timeouts.
Disabling sets a configurable attribute to a configurable value (OpenLDAP has no account
flag; e.g. `employeeType: disabled`, or `pwdAccountLockedTime` with the ppolicy overlay).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import ldap3
from ldap3.core.exceptions import LDAPBindError, LDAPException, LDAPSocketOpenError
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn
from pydantic import SecretStr

from accord.events import Profile
from accord.provisioner.domain.ldap_mapping import (
    OBJECT_CLASSES,
    entry_attributes,
    link_value,
    linked_user_id,
)
from accord.provisioner.ports import AccountRef, TargetRejected, TargetUnavailable

T = TypeVar("T")

#: LDAP result codes worth retrying: busy, unavailable, unwillingToPerform, timeLimitExceeded,
#: adminLimitExceeded, other (server trouble).
_TRANSIENT = frozenset({3, 11, 51, 52, 53, 80})
_NO_SUCH_OBJECT = 32
_ALREADY_EXISTS = 68


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


@dataclass(frozen=True)
class _Found:
    dn: str
    user_id: str | None
    attributes: dict[str, Any]


class LdapConnector:
    """Provisions inetOrgPerson entries; looks up (by link, then uid) before it creates."""

    def __init__(self, name: str, settings: LdapSettings) -> None:
        self.name = name
        self.settings = settings
        # No schema or server info on bind: ldap3 reads the whole schema otherwise (~28 ms of
        # a 29 ms bind against slapd), and the connector needs neither.
        self._server = ldap3.Server(
            settings.url, connect_timeout=settings.timeout_s, get_info=ldap3.NONE
        )

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

    async def close(self) -> None:
        """Nothing pooled: every call closes its own connection."""

    # --- blocking work, in a worker thread ------------------------------------------------

    async def _run(self, work: Callable[[ldap3.Connection], T]) -> T:
        return await asyncio.to_thread(self._with_connection, work)

    def _with_connection(self, work: Callable[[ldap3.Connection], T]) -> T:
        settings = self.settings
        try:
            conn = ldap3.Connection(
                self._server,
                user=settings.bind_dn,
                password=settings.password.get_secret_value(),
                auto_bind=True,
                receive_timeout=math.ceil(settings.timeout_s),  # ldap3 packs it as an int
                raise_exceptions=False,
            )
        except LDAPBindError:
            raise TargetRejected(f"{self.name}: bind as {settings.bind_dn} refused") from None
        except LDAPSocketOpenError:
            raise TargetUnavailable(f"{self.name}: cannot connect to {settings.url}") from None
        except LDAPException as error:
            raise TargetUnavailable(f"{self.name}: {type(error).__name__}") from None
        try:
            return work(conn)
        except LDAPException as error:
            raise TargetUnavailable(f"{self.name}: {type(error).__name__}") from None
        finally:
            conn.unbind()

    def _ensure(self, conn: ldap3.Connection, user_id: str, profile: Profile) -> AccountRef:
        found = self._find(conn, user_id, profile.user_name)
        if found is not None:
            return AccountRef(found.dn, already_existed=True)
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
        if conn.result["result"] == _ALREADY_EXISTS:
            # Added concurrently (or by a retry whose answer was lost): adopt it if ours.
            found = self._find(conn, user_id, profile.user_name)
            if found is not None:
                return AccountRef(found.dn, already_existed=True)
        raise self._failure(conn, "add", dn)

    def _update(self, conn: ldap3.Connection, user_id: str, profile: Profile) -> AccountRef:
        found = self._find(conn, user_id, profile.user_name)
        if found is None:
            return self._ensure(conn, user_id, profile)
        dn = found.dn
        wanted = self._dn(profile.user_name)
        if dn.lower() != wanted.lower():
            if not conn.modify_dn(dn, wanted.split(",", 1)[0]):
                raise self._failure(conn, "rename", dn)
            dn = wanted
        attributes = entry_attributes(user_id, profile, link_attribute=self.settings.link_attribute)
        del attributes["uid"]  # the RDN attribute follows the rename
        flag = [self.settings.disabled_value] if not profile.active else []
        attributes[self.settings.disable_attribute] = flag
        changes = {name: [(ldap3.MODIFY_REPLACE, values)] for name, values in attributes.items()}
        if not conn.modify(dn, changes):  # type: ignore[no-untyped-call]  # stubs lack types
            raise self._failure(conn, "modify", dn)
        return AccountRef(dn, already_existed=True)

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
        if not conn.delete(found.dn) and conn.result["result"] != _NO_SUCH_OBJECT:  # type: ignore[no-untyped-call]  # stubs lack types
            raise self._failure(conn, "delete", found.dn)
        return found.dn

    def _find(self, conn: ldap3.Connection, user_id: str, user_name: str) -> _Found | None:
        """The identity's entry: linked to it, else named like it (and not someone else's)."""
        link = self.settings.link_attribute
        query = (
            f"(&(objectClass=inetOrgPerson)(|({link}={escape_filter_chars(link_value(user_id))})"
            f"(uid={escape_filter_chars(user_name)})))"
        )
        if not conn.search(
            self.settings.people_dn,
            query,
            search_scope=ldap3.SUBTREE,
            attributes=["uid", link, self.settings.disable_attribute],
            time_limit=int(self.settings.timeout_s),
        ):
            if conn.result["result"] in (0, _NO_SUCH_OBJECT):
                return None
            raise self._failure(conn, "search", self.settings.people_dn)
        entries = [
            _Found(e.entry_dn, linked_user_id([str(v) for v in e[link].values]), {})
            for e in conn.entries
        ]
        for entry in entries:
            if entry.user_id == user_id:
                return entry
        for entry in entries:
            if entry.user_id is not None:
                raise TargetRejected(f"{self.name}: uid {user_name!r} belongs to another identity")
            return entry  # an unlinked entry of that name: ours to adopt
        return None

    def _dn(self, user_name: str) -> str:
        return f"uid={escape_rdn(user_name)},{self.settings.people_dn}"

    def _failure(self, conn: ldap3.Connection, operation: str, dn: str) -> Exception:
        result = conn.result or {}
        code = int(result.get("result", 80))
        message = f"{self.name}: {operation} {dn} -> {result.get('description', code)}"
        if result.get("message"):
            message += f": {str(result['message'])[:200]}"
        if code in _TRANSIENT:
            return TargetUnavailable(message)
        return TargetRejected(message)
