"""Reconciliation: what a target holds against what each identity should have there.

Pure. The desired side is the provisioner's ledger (the orchestrator's last command per
identity and target); the actual side is the target's accounts, read back through the
connector. Attributes are compared as the target stores them (`Connector.as_stored`), on
the fields the connector manages, so a derived value is never reported as drift.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from accord.events.catalogue import Profile
from accord.provisioner.ports import TargetAccount

DesiredState = Literal["active", "disabled", "absent"]
OrphanReason = Literal["unlinked", "unknown_owner", "not_entitled"]


@dataclass(frozen=True)
class Desired:
    """What the ledger says one identity should have in the target."""

    user_id: str
    profile: Profile
    state: DesiredState


@dataclass(frozen=True)
class Difference:
    """One field that differs; `active` stands for the account's status."""

    field: str
    expected: str | None
    actual: str | None


@dataclass(frozen=True)
class InSync:
    """The account is as it should be."""

    account: TargetAccount


@dataclass(frozen=True)
class Drifted:
    """The account exists but differs from what its identity should have."""

    account: TargetAccount
    desired: Desired
    differences: tuple[Difference, ...]


@dataclass(frozen=True)
class Missing:
    """The identity should have an account and the target has none."""

    desired: Desired


@dataclass(frozen=True)
class Orphan:
    """An account nobody should have in the target."""

    account: TargetAccount
    reason: OrphanReason


Finding = InSync | Drifted | Missing | Orphan


@dataclass
class Tally:
    """Counts of a run, as it goes."""

    accounts: int = 0
    in_sync: int = 0
    drifted: int = 0
    missing: int = 0
    orphans: int = 0
    repairs: int = 0
    repair_failures: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, finding: Finding) -> None:
        """Count one finding."""
        if isinstance(finding, Missing):
            self.missing += 1
            return
        self.accounts += 1
        if isinstance(finding, InSync):
            self.in_sync += 1
        elif isinstance(finding, Drifted):
            self.drifted += 1
        else:
            self.orphans += 1


def compare(
    account: TargetAccount,
    desired: Desired | None,
    *,
    managed_fields: frozenset[str],
    as_stored: Callable[[Profile], Profile],
) -> Finding:
    """Judge one account of the target against its identity's desired state (if any)."""
    if account.owner is None:
        return Orphan(account, "unlinked")
    if desired is None:
        return Orphan(account, "unknown_owner")
    if desired.state == "absent":
        return Orphan(account, "not_entitled")
    differences = attribute_differences(as_stored(desired.profile), account.profile, managed_fields)
    expected_active = desired.state == "active"
    if account.active != expected_active:
        differences += (Difference("active", _text(expected_active), _text(account.active)),)
    if differences:
        return Drifted(account, desired, differences)
    return InSync(account)


def attribute_differences(
    expected: Profile, actual: Profile, managed_fields: Iterable[str]
) -> tuple[Difference, ...]:
    """The managed fields whose values differ, in field order."""
    found = []
    for name in sorted(managed_fields):
        want, have = getattr(expected, name), getattr(actual, name)
        if want != have:
            found.append(Difference(name, _text(want), _text(have)))
    return tuple(found)


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)[:256]
