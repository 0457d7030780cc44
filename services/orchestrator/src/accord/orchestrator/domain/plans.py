"""Which step each target needs when an identity moves, comes back or leaves, or when an
access grant gives (or takes away) group memberships."""

from __future__ import annotations

from collections.abc import Iterable

from accord.orchestrator.domain.account_saga import Operation, Step


def mover_steps(
    desired: Iterable[str],
    held: Iterable[str],
    *,
    active: bool,
    in_doubt: Iterable[str] = (),
) -> dict[str, Operation]:
    """A changed identity: update kept accounts, create added ones, delete removed ones.

    An inactive identity gets no new accounts; its kept accounts still receive the new
    attributes (they stay disabled: the profile says active false). An account whose creation
    is in doubt (asked for, never confirmed) is created again if still wanted (creation finds
    an existing account first) and deleted if not.
    """
    wanted, have = set(desired), set(held)
    steps: dict[str, Operation] = {t: "update" for t in wanted & have}
    steps.update({t: "delete" for t in have - wanted})
    if active:
        steps.update({t: "create" for t in wanted - have})
        steps.update({t: "delete" for t in set(in_doubt) - have - wanted})
    return steps


def comeback_steps(
    desired: Iterable[str], held: Iterable[str], *, in_doubt: Iterable[str] = ()
) -> dict[str, Operation]:
    """An identity back (reactivated, unlocked): enable the accounts its birthright still
    wants, create the ones it never got (a joiner superseded while it was away, say), and
    delete the ones it no longer should have."""
    wanted, have = set(desired), set(held)
    steps: dict[str, Operation] = {t: "enable" for t in wanted & have}
    steps.update({t: "create" for t in wanted - have})
    steps.update({t: "delete" for t in (have | set(in_doubt)) - wanted})
    return steps


def every_account(held: Iterable[str], operation: Operation) -> dict[str, Operation]:
    """The same operation on every account the identity holds (leaver, reactivation)."""
    return {target: operation for target in held}


def memberships(groups: Iterable[tuple[str, str]], operation: Operation) -> tuple[Step, ...]:
    """One add_member (a grant) or remove_member (a revocation) step per (target, group)."""
    return tuple(Step(target, operation, group=group) for target, group in groups)
