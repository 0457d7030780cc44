"""Ports of the provisioner: what a connector to a target system must do."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from accord.events import Profile


@dataclass(frozen=True)
class AccountRef:
    """An account in a target."""

    account_id: str
    already_existed: bool


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

    async def close(self) -> None:
        """Release connections."""
        ...
