"""In-memory stand-ins for the provisioner's ports, for tests of its handlers.

FakeLedger keeps the ledger's rules in dictionaries; the ledger's contract test runs the
same cases over it and over the PostgreSQL adapter, so it cannot drift from the real one.
ScriptedConnector answers from a script, to play a target that refuses, fails or recovers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from accord.events import Profile, ProvisionRequested
from accord.events.catalogue.provisioning import MEMBERSHIP_OPERATIONS
from accord.provisioner.domain.commands import state_after
from accord.provisioner.domain.reconcile import Desired
from accord.provisioner.ports import AccountRef, TargetAccount


@dataclass(frozen=True)
class Recorded:
    """One entry of the fake ledger: what was asked, when, by which command."""

    commanded_at: datetime
    command_id: str
    desired: Desired | None = None
    """The account's entry; None for a membership."""
    member: bool | None = None
    """A membership's entry; None for an account."""


class FakeLedger:
    """The Ledger port in memory: the newest command per account (or membership) wins."""

    def __init__(self) -> None:
        self.accounts: dict[tuple[str, ...], Recorded] = {}
        """(target, user_id) -> the account's entry."""
        self.memberships: dict[tuple[str, ...], Recorded] = {}
        """(target, user_id, group) -> the membership's entry."""

    async def latest_command_at(self, command: ProvisionRequested) -> datetime | None:
        found = self._entries(command).get(self._key(command))
        return found.commanded_at if found else None

    async def record_command(
        self, command: ProvisionRequested, *, commanded_at: datetime, command_id: str
    ) -> None:
        entries, key = self._entries(command), self._key(command)
        found = entries.get(key)
        if found is not None and found.commanded_at > commanded_at:
            return
        if command.operation in MEMBERSHIP_OPERATIONS:
            member = command.operation == "add_member"
            entries[key] = Recorded(commanded_at, command_id, member=member)
            return
        # Stored as JSON and read back, as the database does.
        profile = Profile.model_validate_json(command.profile.model_dump_json())
        desired = Desired(command.user_id, profile, state_after(command))
        entries[key] = Recorded(commanded_at, command_id, desired=desired)

    async def desired_of(self, target: str, user_ids: Sequence[str]) -> dict[str, Desired]:
        wanted = set(user_ids)
        return {
            user_id: entry.desired
            for (entry_target, user_id), entry in self.accounts.items()
            if entry_target == target and user_id in wanted and entry.desired is not None
        }

    async def present_desired(self, target: str, *, batch: int = 500) -> AsyncIterator[Desired]:
        present = [
            entry.desired
            for (entry_target, _), entry in sorted(self.accounts.items())
            if entry_target == target
            and entry.desired is not None
            and entry.desired.state != "absent"
        ]
        for desired in present:
            yield desired

    def _entries(self, command: ProvisionRequested) -> dict[tuple[str, ...], Recorded]:
        if command.operation in MEMBERSHIP_OPERATIONS:
            return self.memberships
        return self.accounts

    @staticmethod
    def _key(command: ProvisionRequested) -> tuple[str, ...]:
        if command.operation in MEMBERSHIP_OPERATIONS:
            return (command.target, command.user_id, command.group or "")
        return (command.target, command.user_id)


class ScriptedConnector:
    """A Connector that answers from a script: an AccountRef or an exception per call.

    The last outcome repeats for ever. disable/enable/delete and the membership calls
    answer the account id of an outcome that `already_existed`, and None (no account) for
    one that did not. It records what it was asked; the reads reconciliation does are not
    scripted and fail the test.
    """

    managed_fields = frozenset({"user_name"})

    def __init__(self, name: str, *outcomes: AccountRef | Exception) -> None:
        self.name = name
        self._outcomes = list(outcomes)
        self.calls: list[tuple[str, Profile]] = []
        """ensure_account calls: (user_id, profile)."""
        self.update_calls: list[tuple[str, Profile]] = []
        self.leaver_calls: list[tuple[str, str, str]] = []
        """(operation, user_id, user name or group) of every other write."""
        self.closed = False

    async def ensure_account(self, user_id: str, profile: Profile) -> AccountRef:
        self.calls.append((user_id, profile))
        return self._next()

    async def update_account(self, user_id: str, profile: Profile) -> AccountRef:
        self.update_calls.append((user_id, profile))
        return self._next()

    def _next(self) -> AccountRef:
        outcome = self._outcomes.pop(0) if len(self._outcomes) > 1 else self._outcomes[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def disable_account(self, user_id: str, user_name: str) -> str | None:
        return self._leaver(("disable", user_id, user_name))

    async def enable_account(self, user_id: str, user_name: str) -> str | None:
        return self._leaver(("enable", user_id, user_name))

    async def delete_account(self, user_id: str, user_name: str) -> str | None:
        return self._leaver(("delete", user_id, user_name))

    def _leaver(self, call: tuple[str, str, str]) -> str | None:
        self.leaver_calls.append(call)
        outcome = self._next()
        return outcome.account_id if outcome.already_existed else None

    async def find_account(self, user_id: str, user_name: str) -> str | None:
        raise AssertionError("the handler never looks accounts up itself")

    def as_stored(self, profile: Profile) -> Profile:
        return profile

    async def get_account(self, user_id: str, user_name: str) -> TargetAccount | None:
        raise AssertionError("the handler never reads accounts")

    async def list_accounts(self, *, page_size: int = 200) -> AsyncIterator[TargetAccount]:
        raise AssertionError("the handler never lists accounts")
        yield  # pragma: no cover - makes this an async generator

    async def add_member(self, user_id: str, user_name: str, group: str) -> str | None:
        return self._leaver(("add_member", user_id, group))

    async def remove_member(self, user_id: str, user_name: str, group: str) -> str | None:
        return self._leaver(("remove_member", user_id, group))

    async def list_members(self, group: str) -> list[str]:
        raise AssertionError("the handler never lists members")

    async def health(self) -> None:
        self._next()

    async def close(self) -> None:
        self.closed = True
