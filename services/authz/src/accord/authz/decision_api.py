"""The decision API: applications and gateways ask "may this principal do this?".

`POST /v1/authorize` answers one question, `POST /v1/authorize/batch` up to 100 about the
same or different principals. The policies see the entities an access request sees: a
`User` principal as authz's projection has it (its attributes, groups, nested groups and
live entitlements), an `Entitlement` or `Application` resource as the catalogue describes
it; the caller adds the entities only it knows (the document, the ticket) in `entities`,
and never replaces Accord's. A permit that needs approvals first is `approval_required`,
with the stages and their approvers, where an access request would wait for them (and a
deny where one of them has nobody to decide it). Decisions are emitted as authz.decided
events for the audit log, all of them or a sample (ACCORD_DECISION_LOG_RATE).
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import APIRouter, Depends, FastAPI
from pydantic import BaseModel, ConfigDict, Field

from accord.authz import metrics
from accord.authz.adapters.postgres import postgres_stores
from accord.authz.catalogue import Catalogue
from accord.authz.domain.access_outcome import Outcome, outcome
from accord.authz.domain.approvals import unapprovable
from accord.authz.domain.model import AccessQuery, Entity, EntityRef
from accord.authz.domain.policy_set import (
    EntityError,
    LoadedPolicies,
    decide_batch,
    load_entities,
)
from accord.authz.handlers import access as flow
from accord.authz.ports import Rules, Stores
from accord.events import AuthzDecided, new_event, to_kafka
from accord.events.catalogue.base import CedarType, ShortText
from accord.runtime.app_deps import Mounted
from accord.runtime.security.api import require
from accord.runtime.security.roles import Permission
from accord.runtime.service import Runtime

log = logging.getLogger(__name__)

# The same types as the authz.decided event, so every question that is answered can be logged.
TypeName = CedarType
EntityId = ShortText
MAX_BATCH = 100
LOG_SEND_TIMEOUT_S = 0.2


class Ref(BaseModel):
    """A Cedar entity uid."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: TypeName
    id: EntityId

    def ref(self) -> EntityRef:
        """As the domain's EntityRef."""
        return EntityRef(self.type, self.id)


class EntityIn(BaseModel):
    """An entity the caller knows about (a resource, its container)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: TypeName
    id: EntityId
    attrs: dict[str, Any] = Field(default_factory=dict, max_length=64)
    parents: list[Ref] = Field(default_factory=list, max_length=64)


class Question(BaseModel):
    """May `principal` do `action` on `resource` in this context?"""

    model_config = ConfigDict(extra="forbid", frozen=True)

    principal: Ref
    action: ShortText
    resource: Ref
    context: dict[str, Any] = Field(default_factory=dict, max_length=64)
    entities: list[EntityIn] = Field(default_factory=list, max_length=200)


class Batch(BaseModel):
    """Several questions, answered in order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests: list[Question] = Field(min_length=1, max_length=MAX_BATCH)


class StageAnswer(BaseModel):
    """One approval stage a request for this access would wait for."""

    stage: int
    name: str
    """manager, application_owner, group:<id> or user:<id>."""
    approvers: list[str]


class Answer(BaseModel):
    """The decision, the policies that made it, and evaluation errors if any."""

    decision: Literal["permit", "deny", "approval_required"]
    """permit: access now; approval_required: not access, only after `approvals`."""
    reasons: list[str]
    errors: list[str]
    approvals: list[StageAnswer] = Field(default_factory=list)
    """The chain's stages, in order (approval_required only)."""


class Answers(BaseModel):
    """The answers to a batch, in the order of its questions."""

    results: list[Answer]


@dataclass(frozen=True)
class DecisionDeps:
    """What the decision API works with, set by `configure` on the app it is mounted on."""

    runtime: Runtime
    rules: Rules
    log_rate: float


_deps = Mounted[DecisionDeps]("authz_decision_api")


def configure(app: FastAPI, runtime: Runtime, rules: Rules, *, log_rate: float) -> None:
    """Mount the decision API."""
    _deps.mount(app, DecisionDeps(runtime, rules, log_rate), router)


router = APIRouter(prefix="/v1", tags=["decisions"])
_guard = [Depends(require(Permission.AUTHORIZE))]


@router.post("/authorize", summary="One decision", dependencies=_guard)
async def authorize(question: Question, deps: DecisionDeps = Depends(_deps)) -> Answer:
    (result,) = await answer_all(deps, [question])
    return result


@router.post("/authorize/batch", summary="Up to 100 decisions", dependencies=_guard)
async def authorize_batch(batch: Batch, deps: DecisionDeps = Depends(_deps)) -> Answers:
    return Answers(results=await answer_all(deps, batch.requests))


async def answer_all(deps: DecisionDeps, questions: Sequence[Question]) -> list[Answer]:
    """Answer the questions with the rules in force; a sample of the answers is logged."""
    runtime = deps.runtime
    policies, catalogue = deps.rules()
    async with runtime.pool.acquire() as conn:
        answers = await answer_on(postgres_stores(conn), policies, catalogue, questions)
    for q, o in zip(questions, answers, strict=True):
        if deps.log_rate and random.random() < deps.log_rate:  # noqa: S311 - sampling, not crypto
            await _log(runtime, q, o, deps.log_rate)
    return answers


async def answer_on(
    stores: Stores, policies: LoadedPolicies, catalogue: Catalogue, questions: Sequence[Question]
) -> list[Answer]:
    """The answers, reading the directory through `stores` (one connection's, or fakes);
    each one counted in accord_authz_decisions_total, the evaluation timed."""
    known: dict[EntityRef, list[Entity]] = {}
    for q in questions:
        ref = q.principal.ref()
        if ref.type == "User" and ref not in known:
            known[ref] = await stores.directory.principal_entities(ref.id)
    with metrics.evaluation(metrics.API, len(questions)):
        found = _decide_all(policies, questions, known, catalogue)
    answers = [
        await _answer(stores, q, o, catalogue) for q, o in zip(questions, found, strict=True)
    ]
    for answer in answers:
        metrics.decided(metrics.API, answer.decision)
    return answers


async def _answer(
    stores: Stores, question: Question, found: Outcome, catalogue: Catalogue
) -> Answer:
    """The answer to a question: a chain's stages resolved to their approvers, as an access
    request for oneself would have them (a stage nobody else can decide denies)."""
    effect, reasons = found.effect, list(found.reasons)
    stages: list[StageAnswer] = []
    if found.chain:
        resolved = await flow.resolve_stages(
            stores,
            found.chain,
            requester_id=question.principal.id,
            principal_id=question.principal.id,
            application=_application_of(question.resource),
            catalogue=catalogue,
        )
        blocked = unapprovable(resolved)
        if blocked:
            effect, reasons = "deny", [*reasons, blocked]
        else:
            stages = [
                StageAnswer(stage=s.number, name=s.name, approvers=list(s.approvers))
                for s in resolved
            ]
    return Answer(decision=effect, reasons=reasons, errors=list(found.errors), approvals=stages)


def _application_of(resource: Ref) -> str:
    """The catalogue application a resource belongs to ("" for none): its owners and
    escalation approvers decide the application_owner stage."""
    if resource.type == "Application":
        return resource.id
    if resource.type == "Entitlement":
        return resource.id.split("/", 1)[0]
    return ""


def _decide_all(
    policies: LoadedPolicies,
    questions: Sequence[Question],
    principals: dict[EntityRef, list[Entity]],
    catalogue: Catalogue,
) -> list[Outcome]:
    """Decide every question; questions about one principal share one entity set (parsed
    once, one batch call) unless the caller's entities for them disagree."""
    groups: dict[EntityRef, list[int]] = {}
    for index, question in enumerate(questions):
        groups.setdefault(question.principal.ref(), []).append(index)
    outcomes: dict[int, Outcome] = {}
    for ref, indexes in groups.items():
        asked = [questions[i] for i in indexes]
        known = _accord_entities(principals.get(ref, []), asked, catalogue)
        merged = _entities(known, [e for q in asked for e in q.entities])
        if len(asked) > 1 and merged is not None:
            queries = [_query(q) for q in asked]
            try:
                graph = load_entities(policies, merged)
                batch = decide_batch(policies, queries, graph)
            except EntityError:
                batch = None
            if batch is not None:
                for index, query, decision in zip(indexes, queries, batch, strict=True):
                    outcomes[index] = outcome(policies, query, graph, decision)
                continue
        for index, question in zip(indexes, asked, strict=True):
            outcomes[index] = _decide(policies, question, known)
    return [outcomes[i] for i in range(len(questions))]


def _accord_entities(
    principal: list[Entity], questions: Sequence[Question], catalogue: Catalogue
) -> list[Entity]:
    """What Accord knows: the principal's entities and the catalogue's of each resource."""
    found = {e.ref: e for e in principal}
    for question in questions:
        for entity in catalogue.entities_of(question.resource.ref()):
            found.setdefault(entity.ref, entity)
    return list(found.values())


def _entities(known: list[Entity], given: Sequence[EntityIn]) -> list[Entity] | None:
    """Accord's entities and the caller's; None when the caller gives one entity twice,
    differently. The caller's never replace what Accord knows (its principals, the
    catalogue's entitlements and applications)."""
    mine = {e.ref for e in known}
    extra: dict[EntityRef, Entity] = {}
    for e in given:
        entity = Entity(EntityRef(e.type, e.id), dict(e.attrs), tuple(p.ref() for p in e.parents))
        if entity.ref in mine:
            continue
        seen = extra.get(entity.ref)
        if seen is not None and (seen.attrs, seen.parents) != (entity.attrs, entity.parents):
            return None
        extra[entity.ref] = entity
    return [*known, *extra.values()]


def _query(question: Question) -> AccessQuery:
    return AccessQuery(
        principal=question.principal.ref(),
        action=question.action,
        resource=question.resource.ref(),
        context=question.context,
    )


def _decide(policies: LoadedPolicies, question: Question, known: list[Entity]) -> Outcome:
    entities = _entities(known, question.entities)
    if entities is None:
        return Outcome("deny", ("invalid entities",), ("an entity is given twice, differently",))
    try:
        return outcome(policies, _query(question), entities)
    except EntityError as error:
        return Outcome("deny", ("invalid entities",), (str(error),))


def decided_event(question: Question, answer: Answer, rate: float) -> AuthzDecided:
    """The authz.decided event of one answered question (approval_required is no access:
    logged as a deny whose last reason says which approvals it needs)."""
    reasons = list(answer.reasons)
    if answer.decision == "approval_required":
        reasons.append("approval_required: " + ", ".join(s.name for s in answer.approvals))
    return AuthzDecided(
        decision_id=f"dec-{uuid.uuid4().hex}",
        principal_type=question.principal.type,
        principal_id=question.principal.id,
        action=question.action,
        resource_type=question.resource.type,
        resource_id=question.resource.id,
        decision="permit" if answer.decision == "permit" else "deny",
        reasons=tuple(r[:256] for r in reasons[:64]),
        sample_rate=rate,
    )


async def _log(runtime: Runtime, question: Question, answer: Answer, rate: float) -> None:
    """Emit the decision for the audit log."""
    await emit_decision(runtime, decided_event(question, answer, rate))


async def emit_decision(runtime: Runtime, event: AuthzDecided) -> None:
    """Send an authz.decided straight to the broker (no outbox: a decision changes no state);
    a broker hiccup costs a log line, never the answer."""
    record = to_kafka(new_event(event, source=runtime.source))
    try:
        # Normally a buffer append; bounded, so a broker outage never holds a decision up.
        await asyncio.wait_for(
            runtime.producer.send(
                record.topic, value=record.value, key=record.key, headers=list(record.headers)
            ),
            timeout=LOG_SEND_TIMEOUT_S,
        )
    except Exception as error:
        log.warning("decision not logged", extra={"error": type(error).__name__})
