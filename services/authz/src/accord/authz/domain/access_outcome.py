"""What asking for access gets: a permit, a deny, or a permit that needs approvals first.

Cedar answers permit or deny. Accord's annotations add the third answer: a permit whose
permitting policies all carry `@approval` needs those approvals before it is access, and a
denial that only routed separation-of-duties policies (`@sod` with `@approval`) cause goes
to their approvers when the rest of the set would permit. The access-request path and the
decision API both answer through :func:`outcome`, so an application never takes "may ask,
with approval" for access.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from accord.authz.domain import approvals
from accord.authz.domain.model import AccessQuery, Decision, Entity
from accord.authz.domain.policy_set import EntityGraph, LoadedPolicies, decide

Effect = Literal["permit", "deny", "approval_required"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """A decision with what Accord's annotations make of it."""

    effect: Effect
    """permit (access now), deny, or approval_required (the chain's approvals first)."""
    reasons: tuple[str, ...]
    """The deciding policies' @ids (a routed request: the SoD policies', then the
    permitting ones')."""
    errors: tuple[str, ...]
    """Evaluation errors (a policy that errors is skipped)."""
    chain: tuple[str, ...] = ()
    """The approval stages, in order (approval_required only)."""


def outcome(
    policies: LoadedPolicies,
    query: AccessQuery,
    entities: Sequence[Entity] | EntityGraph,
    decision: Decision | None = None,
) -> Outcome:
    """The outcome of one query; `decision` when Cedar's answer is known already (a batch)."""
    decision = decision or decide(policies, query, entities)
    if decision.effect == "permit":
        chain = approvals.chain_for(decision.reasons, policies.annotations)
        effect: Effect = "approval_required" if chain else "permit"
        return Outcome(effect, decision.reasons, decision.errors, chain)
    routed = policies.routed
    if not decision.reasons or not set(decision.reasons) <= routed:
        return Outcome("deny", decision.reasons, decision.errors)
    assert policies.without_routed is not None  # a set with routed policies has one
    otherwise = decide(policies.without_routed, query, entities)
    if otherwise.effect != "permit":
        return Outcome("deny", decision.reasons, decision.errors)
    chain = approvals.routed_chain(decision.reasons, otherwise.reasons, policies.annotations)
    return Outcome(
        "approval_required",
        (*decision.reasons, *otherwise.reasons),
        (*decision.errors, *otherwise.errors),
        chain,
    )
