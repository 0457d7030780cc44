"""Which step each target needs when an identity moves, comes back or leaves."""

from __future__ import annotations

from collections.abc import Iterable

from accord.orchestrator.domain.account_saga import Operation


def mover_steps(
    desired: Iterable[str], held: Iterable[str], *, active: bool
) -> dict[str, Operation]:
    """A changed identity: update kept accounts, create added ones, delete removed ones.

    An inactive identity gets no new accounts; its kept accounts still receive the new
    attributes (they stay disabled: the profile says active false).
    """
    wanted, have = set(desired), set(held)
    steps: dict[str, Operation] = {t: "update" for t in wanted & have}
    steps.update({t: "delete" for t in have - wanted})
    if active:
        steps.update({t: "create" for t in wanted - have})
    return steps


def every_account(held: Iterable[str], operation: Operation) -> dict[str, Operation]:
    """The same operation on every account the identity holds (leaver, reactivation)."""
    return {target: operation for target in held}
