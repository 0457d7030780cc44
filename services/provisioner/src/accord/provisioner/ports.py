"""Ports of the provisioner: what a connector to a target system must do, and the ledger of
the commands it carried out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from accord.events.catalogue import Profile, ProvisionRequested

if TYPE_CHECKING:
    # The domain reads TargetAccount from here: only the type checker follows this back.
    from accord.provisioner.domain.reconcile import Desired


@dataclass(frozen=True)
class AccountRef:
    """An account in a target."""

    account_id: str
    already_existed: bool


@dataclass(frozen=True)
class TargetAccount:
    """An account as the target holds it, read back in the identity's terms.

    `profile` carries what the target stores of the fields the connector manages
    (`Connector.managed_fields`); other fields are left at their defaults. Reconciliation
    compares those fields with what the identity should have.
    """

    account_id: str
    owner: str | None
    """The user_id the account is linked to (SCIM externalId, LDAP link attribute, ...);
    None for an account nobody has claimed."""
    active: bool
    profile: Profile


class TargetRejected(Exception):
    """The target refused the request for good (4xx other than 429): do not retry."""


class TargetUnavailable(Exception):
    """The target is down, slow or throttling: retry later."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Connector(Protocol):
    """One target system."""

    name: str
    managed_fields: frozenset[str]
    """Profile fields the connector writes and reads back (user_name always among them)."""

    async def ensure_account(self, user_id: str, profile: Profile) -> AccountRef:
        """Create the account unless it already exists; never makes a duplicate."""
        ...

    async def update_account(self, user_id: str, profile: Profile) -> AccountRef:
        """Bring the account's attributes to the profile; create it if the target has none.

        An update for an account the target lost is repaired, not failed: `already_existed`
        tells whether the account was updated (True) or created (False).
        """
        ...

    async def disable_account(self, user_id: str, user_name: str) -> str | None:
        """Disable the account; its id, or None if there is none (nothing to disable)."""
        ...

    async def enable_account(self, user_id: str, user_name: str) -> str | None:
        """Enable (reactivate) the account; its id, or None if there is none."""
        ...

    async def delete_account(self, user_id: str, user_name: str) -> str | None:
        """Delete the account; its id, or None if there was none (already gone)."""
        ...

    async def find_account(self, user_id: str, user_name: str) -> str | None:
        """The account id of an identity in the target, if it has one."""
        ...

    def as_stored(self, profile: Profile) -> Profile:
        """The profile as this target stores it and reads it back: derived values filled in.

        Pure. E.g. a SCIM target derives displayName from the names when there is none; an
        LDAP entry's sn falls back to the user name. get_account(...).profile equals
        as_stored(profile) on `managed_fields` right after the profile was written.
        """
        ...

    async def get_account(self, user_id: str, user_name: str) -> TargetAccount | None:
        """The account of an identity (by its link, then by user name), whoever owns it."""
        ...

    def list_accounts(self, *, page_size: int = 200) -> AsyncIterator[TargetAccount]:
        """Every account in the target (linked or not), a page of `page_size` at a time."""
        ...

    async def add_member(self, user_id: str, user_name: str, group: str) -> str | None:
        """Put the account in the group, creating the group if the target has none.

        Idempotent. The account id, or None when the identity has no account.
        """
        ...

    async def remove_member(self, user_id: str, user_name: str, group: str) -> str | None:
        """Take the account out of the group; idempotent (a missing group is success).

        The account id, or None when the identity has no account.
        """
        ...

    async def list_members(self, group: str) -> list[str]:
        """Account ids of the group's members; empty when the group does not exist."""
        ...

    async def health(self) -> None:
        """Check that the target answers and accepts our credentials.

        Raises TargetUnavailable (down, slow) or TargetRejected (credentials refused).
        """
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class Ledger(Protocol):
    """The last command per account (or membership) and target: what each identity should
    have there. The newest command wins; a replayed older one never undoes it."""

    async def latest_command_at(self, command: ProvisionRequested) -> datetime | None:
        """When the recorded command for this command's account (or membership) was issued."""
        ...

    async def record_command(
        self, command: ProvisionRequested, *, commanded_at: datetime, command_id: str
    ) -> None:
        """Remember what the command asks for, unless a newer command is recorded already."""
        ...

    async def desired_of(self, target: str, user_ids: Sequence[str]) -> dict[str, Desired]:
        """The ledger's entries for these identities in the target."""
        ...

    def present_desired(self, target: str, *, batch: int = 500) -> AsyncIterator[Desired]:
        """Every identity that should have an account in the target, in user_id order."""
        ...
