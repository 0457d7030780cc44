"""Authentication requirements: what the factor policy asks of a sign-in, and what it has.

Pure. The factor policy answers one Cedar action per question about a sign-in (see
``authn.cedar``): ``authenticate`` (may the identity sign in at all) and one
``require_*`` action per requirement; a requirement is imposed when its action is
permitted. :func:`evaluate` turns those decisions, the RFC 8176 ``amr`` values the sign-in
has presented so far and the kinds of factor the identity has enrolled into what an
identity provider acts on: sign the identity in, ask for a step-up, or send it to enrol.

A requirement whose decision came with evaluation errors and no permit is imposed anyway:
a policy that could not be evaluated must not let a sign-in through with fewer factors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from accord.authz.domain.model import Decision

RequirementName = Literal["mfa", "phishing_resistant"]

AUTHENTICATE = "authenticate"
"""The action that decides whether the identity may sign in at all."""
EVALUATION_ERROR = "evaluation error"
"""The reason of a requirement imposed because its policies could not be evaluated."""


@dataclass(frozen=True, slots=True)
class Requirement:
    """One kind of requirement: its Cedar action, the ``amr`` values that meet it and the
    enrolled factor kinds that can produce one of them."""

    name: RequirementName
    action: str
    amr: frozenset[str]
    factors: frozenset[str]


#: Every requirement, in the order answers list them. RFC 8176: `otp` one-time password
#: (TOTP), `hwk`/`swk` proof of possession of a hardware/software-secured key (WebAuthn
#: reports one of them), `mfa` the provider's own "several factors were used".
REQUIREMENTS: tuple[Requirement, ...] = (
    Requirement(
        "mfa",
        "require_mfa",
        amr=frozenset({"otp", "hwk", "swk", "mfa"}),
        factors=frozenset({"totp", "webauthn"}),
    ),
    Requirement(
        "phishing_resistant",
        "require_phishing_resistant",
        amr=frozenset({"hwk", "swk"}),
        factors=frozenset({"webauthn"}),
    ),
)

#: The Cedar actions to decide for one sign-in, in this order.
ACTIONS: tuple[str, ...] = (AUTHENTICATE, *(r.action for r in REQUIREMENTS))


@dataclass(frozen=True, slots=True)
class FactorOutcome:
    """What a sign-in must present, what it has, and what follows."""

    allowed: bool
    """The identity may sign in (``authenticate`` permitted), once nothing is missing."""
    required: tuple[RequirementName, ...]
    """The requirements imposed."""
    acceptable: Mapping[RequirementName, tuple[str, ...]]
    """For each requirement imposed: the ``amr`` values that meet it."""
    satisfied: tuple[RequirementName, ...]
    """The requirements imposed that the presented ``amr`` values meet."""
    missing: tuple[RequirementName, ...]
    """The requirements imposed that they do not meet yet."""
    step_up: bool
    """Allowed, and something is missing: ask for another factor."""
    enrolment_needed: bool
    """A missing requirement no factor the identity has enrolled can meet."""
    enrol: Mapping[RequirementName, tuple[str, ...]]
    """For each such requirement: the factor kinds that would meet it once enrolled."""
    reasons: Mapping[str, tuple[str, ...]]
    """The @ids of the deciding policies: for ``authenticate`` and each requirement imposed."""
    errors: tuple[str, ...]
    """Evaluation errors of any of the decisions."""


def evaluate(
    decisions: Mapping[str, Decision], presented: Iterable[str], enrolled: Iterable[str]
) -> FactorOutcome:
    """The outcome of a sign-in from its decisions (one per action of :data:`ACTIONS`),
    the ``amr`` values presented and the factor kinds the identity has enrolled.

    :raises KeyError: if an action of :data:`ACTIONS` has no decision.
    """
    amr = {value.lower() for value in presented}
    kinds = set(enrolled)
    authenticate = decisions[AUTHENTICATE]
    imposed = [r for r in REQUIREMENTS if _imposed(decisions[r.action])]
    satisfied = [r for r in imposed if r.amr & amr]
    missing = [r for r in imposed if not r.amr & amr]
    unenrolled = [r for r in missing if not r.factors & kinds]
    reasons = {AUTHENTICATE: authenticate.reasons}
    for r in imposed:
        decision = decisions[r.action]
        reasons[r.name] = decision.reasons if decision.permitted else (EVALUATION_ERROR,)
    errors = tuple(dict.fromkeys(e for action in ACTIONS for e in decisions[action].errors))
    allowed = authenticate.permitted
    return FactorOutcome(
        allowed=allowed,
        required=tuple(r.name for r in imposed),
        acceptable=MappingProxyType({r.name: tuple(sorted(r.amr)) for r in imposed}),
        satisfied=tuple(r.name for r in satisfied),
        missing=tuple(r.name for r in missing),
        step_up=allowed and bool(missing),
        enrolment_needed=bool(unenrolled),
        enrol=MappingProxyType({r.name: tuple(sorted(r.factors)) for r in unenrolled}),
        reasons=MappingProxyType(reasons),
        errors=errors,
    )


def _imposed(decision: Decision) -> bool:
    """A requirement is imposed when permitted, or when it could not be evaluated."""
    return decision.permitted or bool(decision.errors)
