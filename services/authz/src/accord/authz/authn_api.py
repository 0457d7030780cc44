"""The factor API: identity providers and gateways ask "which factors must this sign-in have?".

`POST /v1/authn/evaluate` decides the factor policy (authn.cedar) for one identity, one
application and the sign-in's context, in one engine call for its three actions
(`authenticate`, `require_mfa`, `require_phishing_resistant`), and answers with
:class:`accord.authz.domain.factors.FactorOutcome` as JSON.

The identity is looked up in authz's projection (attributes, groups, lockout, enrolled
factors); an identity authz does not know is decided as a User with no attributes, which
the shipped policies refuse (`inactive-users-get-nothing`): an unknown identity may not
sign in, and the answer does not tell unknown from inactive. The application's attributes
come from the catalogue only (an application it does not list has none), never from the
caller, so a gateway cannot make a privileged application look ordinary.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
)

from accord.authz.adapters.directory import PostgresDirectory
from accord.authz.decision_api import emit_decision
from accord.authz.domain import factors
from accord.authz.domain.factors import FactorOutcome, RequirementName
from accord.authz.domain.model import AccessQuery, Decision, Entity, EntityRef
from accord.authz.domain.policy_set import EntityError, LoadedPolicies, decide_batch
from accord.authz.ports import Rules
from accord.events import AuthzDecided
from accord.events.catalogue.base import Identifier
from accord.runtime.app_deps import Mounted
from accord.runtime.security.api import require
from accord.runtime.security.roles import Permission
from accord.runtime.service import Runtime

log = logging.getLogger(__name__)

MAX_PRESENTED = 16

#: An RFC 8176 `amr` value (pwd, otp, hwk, swk, mfa, ...; the registry is open-ended).
Amr = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
Clock = Callable[[], datetime]


def _json_integer(value: object) -> object:
    """A JSON Schema integer: a number with no fraction (1.0 is one), never a bool or a string."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be an integer")
    return value


#: An hour of the day, UTC.
Hour = Annotated[int, Field(ge=0, le=23), BeforeValidator(_json_integer)]


class SignInContext(BaseModel):
    """Where and how the identity is signing in, as the provider sees it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    network: Identifier | None = None
    """Where the sign-in comes from: corporate, internet, ... (absent: not corporate)."""
    device_managed: StrictBool | None = None
    """Whether the device is managed by the organisation."""
    risk: Literal["low", "medium", "high"] | None = None
    """The provider's risk assessment of the sign-in."""
    hour: Hour | None = None
    """The hour of the sign-in, 0-23, UTC (absent: now)."""
    presented: list[Amr] = Field(default_factory=list, max_length=MAX_PRESENTED)
    """RFC 8176 `amr` values the sign-in has presented so far."""

    def cedar(self, now: datetime) -> dict[str, Any]:
        """The Cedar context (the schema's AuthnContext)."""
        context: dict[str, Any] = {
            "presented": sorted({value.lower() for value in self.presented}),
            "hour": self.hour if self.hour is not None else now.astimezone(UTC).hour,
        }
        if self.network is not None:
            context["network"] = self.network
        if self.device_managed is not None:
            context["device_managed"] = self.device_managed
        if self.risk is not None:
            context["risk"] = self.risk
        return context


class Evaluation(BaseModel):
    """Which factors must this identity present to sign in to this application, now?"""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user_id: Identifier
    """The identity signing in."""
    application: Identifier
    """The application it signs in to (its catalogue id)."""
    context: SignInContext = Field(default_factory=SignInContext)


class FactorAnswer(BaseModel):
    """What the sign-in must present, what it has, and what to do next."""

    user_id: str
    application: str
    allowed: bool
    """The identity may sign in here, once nothing is `missing`."""
    required: list[RequirementName]
    """The requirements imposed: `mfa` (a second factor), `phishing_resistant` (WebAuthn)."""
    acceptable: dict[RequirementName, list[str]]
    """For each requirement imposed: the `amr` values that meet it."""
    satisfied: list[RequirementName]
    """Requirements the presented `amr` values meet."""
    missing: list[RequirementName]
    """Requirements they do not meet yet."""
    step_up: bool
    """Allowed and something is missing: ask for another factor."""
    enrolment_needed: bool
    """Something missing can only be met after enrolling a new factor."""
    enrol: dict[RequirementName, list[str]]
    """For each such requirement: the factor kinds (totp, webauthn) that would meet it."""
    reasons: dict[str, list[str]]
    """The @ids of the deciding policies, for `authenticate` and each requirement imposed."""
    errors: list[str]
    """Policy evaluation errors (a requirement that could not be evaluated is imposed)."""
    decision_id: str
    """This decision (the authz.decided event of the `authenticate` decision, when logged)."""


@dataclass(frozen=True)
class FactorDeps:
    """What the factor API works with, set by `configure` on the app it is mounted on."""

    runtime: Runtime
    rules: Rules
    log_rate: float
    clock: Clock


_deps = Mounted[FactorDeps]("authz_authn_api")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def configure(
    app: FastAPI,
    runtime: Runtime,
    rules: Rules,
    *,
    log_rate: float = 0.0,
    clock: Clock | None = None,
) -> None:
    """Mount the factor API; `log_rate` of the answers are logged as authz.decided."""
    _deps.mount(app, FactorDeps(runtime, rules, log_rate, clock or _utc_now), router)


router = APIRouter(prefix="/v1", tags=["authentication"])


@router.post(
    "/authn/evaluate",
    summary="The factors a sign-in needs, and whether it may happen at all",
    dependencies=[Depends(require(Permission.AUTHN_EVALUATE))],
    responses={
        400: {"description": "Malformed request (e.g. hour outside 0-23, unknown risk)"},
        403: {"description": "The caller lacks authn:evaluate"},
    },
)
async def evaluate(body: Evaluation, deps: FactorDeps = Depends(_deps)) -> FactorAnswer:
    """Decide the factor policy for the identity, the application and the context.

    An identity authz does not know is decided with no attributes: the shipped policies
    answer `allowed: false` (as for an inactive one), never 404. An application the
    catalogue does not list has no attributes (it is not privileged).
    """
    policies, catalogue = deps.rules()
    async with deps.runtime.pool.acquire() as conn:
        principal = await PostgresDirectory(conn).principal_entities(body.user_id)
    enrolled = principal[0].attrs.get("factors", set())
    entities = [*principal, catalogue.application_entity(body.application)]
    context = body.context.cedar(deps.clock())
    decisions = decide_sign_in(policies, body.user_id, body.application, context, entities)
    outcome = factors.evaluate(decisions, context["presented"], enrolled)
    decision_id = f"dec-{uuid.uuid4().hex}"
    if outcome.errors:
        log.warning("factor policy evaluation errors", extra={"errors": list(outcome.errors)})
    if deps.log_rate and random.random() < deps.log_rate:  # noqa: S311 - sampling, not crypto
        authenticate = decisions[factors.AUTHENTICATE]
        await _log(deps.runtime, body, authenticate, decision_id, deps.log_rate)
    return answer(body, outcome, decision_id)


def decide_sign_in(
    policies: LoadedPolicies,
    user_id: str,
    application: str,
    context: dict[str, Any],
    entities: Sequence[Entity],
) -> dict[str, Decision]:
    """Each action of the factor policy decided in one engine call; entities Cedar refuses
    deny them all, with the error (so every requirement is imposed and none is allowed)."""
    principal = EntityRef("User", user_id)
    resource = EntityRef("Application", application)
    queries = [AccessQuery(principal, action, resource, context) for action in factors.ACTIONS]
    try:
        decided = decide_batch(policies, queries, entities)
    except EntityError as error:
        decided = [Decision("deny", ("invalid entities",), (str(error),)) for _ in queries]
    return dict(zip(factors.ACTIONS, decided, strict=True))


def answer(body: Evaluation, outcome: FactorOutcome, decision_id: str) -> FactorAnswer:
    """The API's answer for an outcome."""
    return FactorAnswer(
        user_id=body.user_id,
        application=body.application,
        allowed=outcome.allowed,
        required=list(outcome.required),
        acceptable={name: list(amr) for name, amr in outcome.acceptable.items()},
        satisfied=list(outcome.satisfied),
        missing=list(outcome.missing),
        step_up=outcome.step_up,
        enrolment_needed=outcome.enrolment_needed,
        enrol={name: list(kinds) for name, kinds in outcome.enrol.items()},
        reasons={name: list(ids) for name, ids in outcome.reasons.items()},
        errors=list(outcome.errors),
        decision_id=decision_id,
    )


async def _log(
    runtime: Runtime, body: Evaluation, decision: Decision, decision_id: str, rate: float
) -> None:
    """Emit the `authenticate` decision for the audit log."""
    event = AuthzDecided(
        decision_id=decision_id,
        principal_type="User",
        principal_id=body.user_id,
        action=factors.AUTHENTICATE,
        resource_type="Application",
        resource_id=body.application,
        decision=decision.effect,
        reasons=tuple(r[:256] for r in decision.reasons),
        sample_rate=rate,
    )
    await emit_decision(runtime, event)
