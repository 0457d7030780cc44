"""The workflow engine with the sagas: identity events, saga ends and provisioning results
reach it in the transaction of the event (the engine is on when ACCORD_WORKFLOWS_DIR is set).

Each identity handler keeps doing what it does (registry, sagas); `with_workflows` wraps it
so that, in the same transaction and under the identity's lock, the engine sees the
identity before and after the event and starts what the event triggers. An event the
registry did not apply (stale, duplicate, parked until its identity exists) changes no
registry version and triggers nothing. A run's account tasks are sagas (type
``workflow_task``): the end of one, read back from the orchestrator's own saga.completed /
saga.failed, goes to the engine, which answers the task that waits for it. A provisioning
result whose saga_id is a workflow run's (asked before account tasks were sagas) goes to
the engine, any other to its saga (`handlers/results.py`). authz's answers on
an access request go to the engine, which takes those of a request_entitlement task's
request (`workflows/access_requests.py`); a grant also starts its access saga, as any grant.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial, wraps
from typing import TypeVar

from accord.events import (
    AccessApprovalDecided,
    AccessDecided,
    AccessGranted,
    AccessRevoked,
    AccountProvisioned,
    AccountProvisionFailed,
    Envelope,
    EventData,
    SagaCompleted,
    SagaFailed,
)
from accord.events.catalogue import ApprovalDecided
from accord.orchestrator.domain.account_saga import SagaState
from accord.orchestrator.handlers import engine as sagas
from accord.orchestrator.handlers.access import on_access_changed
from accord.orchestrator.handlers.results import on_account_result
from accord.orchestrator.ports import OrchestratorPorts
from accord.orchestrator.workflows.engine import Engine, EngineStores
from accord.orchestrator.workflows.ports import TaskSaga

D = TypeVar("D", bound=EventData)

#: An identity handler of the orchestrator, on its ports.
IdentityHandler = Callable[[Envelope, D, OrchestratorPorts], Awaitable[list[Envelope]]]
#: The same handler with the workflow engine after it.
WorkflowHandler = Callable[[Envelope, D, "WorkflowPorts"], Awaitable[list[Envelope]]]


@dataclass(frozen=True)
class WorkflowPorts:
    """A handler's ports and the engine's stores, all on the event's transaction."""

    orchestrator: OrchestratorPorts
    stores: EngineStores
    engine: Engine


@dataclass(frozen=True)
class SagaTasks:
    """`TaskSagas` on the saga machinery (`handlers.engine.begin`), on the handlers' ports of
    the same transaction: a task saga starts, or queues, exactly as an account saga does."""

    ports: OrchestratorPorts

    async def start(
        self, saga: TaskSaga, cause: Envelope | None, correlation_id: str
    ) -> list[Envelope]:
        origin = sagas.Origin(self.ports.source, cause, correlation_id)
        return await sagas.begin(
            self.ports,
            origin,
            saga.saga_id,
            saga.identity_id,
            "workflow_task",
            memberships=saga.memberships,
            intent=saga.intent,
        )

    async def state(self, saga_id: str) -> SagaState | None:
        return await self.ports.sagas.load(saga_id)


def with_workflows(handle: IdentityHandler[D]) -> WorkflowHandler[D]:
    """`handle`, then the workflow engine on the identity as the event left it."""

    @wraps(handle)
    async def handle_with_workflows(
        event: Envelope, data: D, ports: WorkflowPorts
    ) -> list[Envelope]:
        registry = ports.orchestrator.registry
        user_id = event.subject
        await registry.lock(user_id)  # taken again by the handler: the same transaction's
        version_before = await registry.version(user_id)
        before = await registry.identity(user_id)
        emitted = await handle(event, data, ports.orchestrator)
        version_after = await registry.version(user_id)
        if version_after is None or version_after == version_before:
            return emitted  # not applied: stale, a duplicate, or parked
        after = await registry.identity(user_id)
        return emitted + await ports.engine.on_identity_event(ports.stores, event, before, after)

    return handle_with_workflows


async def on_account_result_with_workflows(
    event: Envelope, data: AccountProvisioned | AccountProvisionFailed, ports: WorkflowPorts
) -> list[Envelope]:
    """A provisioning result: to its workflow run, or to its saga."""
    to_run = partial(ports.engine.on_provision_result, ports.stores)
    return await on_account_result(event, data, ports.orchestrator, workflow_run=to_run)


async def on_task_saga_ended(
    event: Envelope, data: SagaCompleted | SagaFailed, ports: WorkflowPorts
) -> list[Envelope]:
    """A saga ended: a workflow task saga's end answers the task that waits for it (the
    orchestrator reads its own saga events back; every other saga's end is dropped)."""
    return await ports.engine.on_task_saga_ended(ports.stores, event, data)


async def on_approval_decided(
    event: Envelope, data: ApprovalDecided, ports: WorkflowPorts
) -> list[Envelope]:
    """authz decided a workflow task's approval: to its run."""
    return await ports.engine.on_approval_decided(ports.stores, event, data)


async def approval_without_engine(
    event: Envelope, data: ApprovalDecided, ports: OrchestratorPorts
) -> list[Envelope]:
    """With the engine off no run asked for an approval: nothing to do."""
    return []


async def on_access_changed_with_workflows(
    event: Envelope, data: AccessGranted | AccessRevoked, ports: WorkflowPorts
) -> list[Envelope]:
    """A grant or a revocation: its access saga (the group memberships), then a grant to
    the workflow task that asked for it, if one did."""
    emitted = await on_access_changed(event, data, ports.orchestrator)
    if isinstance(data, AccessGranted):
        emitted += await ports.engine.on_access_decision(ports.stores, event, data)
    return emitted


async def on_access_decided(
    event: Envelope, data: AccessDecided | AccessApprovalDecided, ports: WorkflowPorts
) -> list[Envelope]:
    """authz's decision, or a stage of its approval chain, on an access request: to the
    workflow task that made it, if one did (a refusal fails the task)."""
    return await ports.engine.on_access_decision(ports.stores, event, data)


async def access_decided_without_engine(
    event: Envelope, data: AccessDecided | AccessApprovalDecided, ports: OrchestratorPorts
) -> list[Envelope]:
    """With the engine off no task waits for an access decision: nothing to do."""
    return []
