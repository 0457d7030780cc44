"""Which step each target needs when an identity moves, comes back or leaves, when an
access grant gives (or takes away) group memberships, or when a workflow task acts on
accounts."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from accord.orchestrator.domain.account_saga import (
    MEMBERSHIP_OPERATIONS,
    IdentityNow,
    Operation,
    Step,
    TaskIntent,
    allows,
)


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


def task_steps(
    intent: TaskIntent,
    *,
    birthright: Iterable[str],
    held: Iterable[str],
    in_doubt: Iterable[str] = (),
    identity: IdentityNow,
    memberships: Iterable[Step] = (),
) -> tuple[Step, ...]:
    """A workflow task's steps, from the identity and its accounts as they are when its
    saga begins.

    - create: the named targets, else the birthright's; ``create`` finds an existing
      account first, so creating where one exists is harmless;
    - update, enable, disable, delete: where the identity holds an account (disable and
      delete also where a creation is still in doubt: a leaver's rule), all of them or the
      named ones among them;
    - add_member, remove_member: the memberships the task named.

    A step the identity as it is now does not allow is left out (`allows`, without the
    birthright judge: a team may name a target outside it): no account is created for a
    deleted identity, none enabled for an inactive or locked one.
    """
    operation = intent.operation
    steps: list[Step]
    if operation in MEMBERSHIP_OPERATIONS:
        steps = [Step(s.target, s.operation, group=s.group) for s in memberships]
    elif operation == "create":
        named = birthright if intent.targets is None else intent.targets
        steps = [Step(target, "create") for target in named]
    else:
        accounts = set(held)
        if operation in ("disable", "delete"):
            accounts |= set(in_doubt)
        named = accounts if intent.targets is None else accounts & set(intent.targets)
        steps = [Step(target, operation) for target in sorted(named)]
    judge = replace(identity, wanted=None)
    return tuple(step for step in steps if allows(judge, step))
