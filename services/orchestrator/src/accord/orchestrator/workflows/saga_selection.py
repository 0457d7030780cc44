"""The account sagas the workflow set in force starts (`domain.workflow.SagaSelection`).

The shipped workflows (``shipped/``) run each account saga on its event for everyone; a
team's folder may replace one with a scoped or narrowed copy, or disable it (the leaver
stays: `shipped.saga_errors`). A handler asks :meth:`WorkflowSagaSelection.starts` before it
starts a saga; the answer is what `matching.runs_for_event` says for those workflows, so a
scope or a `changed:` filter means the same on a saga as on any workflow, and
`accord workflows test` / `plan` show the sagas among the runs.

The shipped set has neither scopes nor filters: the answer then needs no identity view and
costs a dictionary walk (the joiner path stays as cheap as before).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from accord.orchestrator.domain import account_saga as saga
from accord.orchestrator.domain.identity import changed_attributes
from accord.orchestrator.domain.workflow import Identity
from accord.orchestrator.workflows.definitions import EventTrigger
from accord.orchestrator.workflows.engine import identity_view
from accord.orchestrator.workflows.loader import LoadedWorkflow, WorkflowSet
from accord.orchestrator.workflows.matching import IdentityChange, runs_for_event
from accord.orchestrator.workflows.shipped import sagas_on

__all__ = ["WorkflowSagaSelection"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkflowSagaSelection:
    """The sagas the set in force (`workflows()`, read at each question) starts."""

    workflows: Callable[[], WorkflowSet]
    clock: Callable[[], datetime]

    def _running(self, saga_type: saga.SagaType, event_type: str) -> list[LoadedWorkflow]:
        return [
            loaded
            for loaded in sagas_on(self.workflows(), event_type)
            if loaded.definition.account_saga == saga_type
        ]

    def needs_identity(self, saga_type: saga.SagaType, event_type: str) -> bool:
        return any(_conditional(loaded) for loaded in self._running(saga_type, event_type))

    def starts(
        self,
        saga_type: saga.SagaType,
        event_type: str,
        identity: Identity | None,
        previous: Identity | None = None,
    ) -> bool:
        running = self._running(saga_type, event_type)
        if any(not _conditional(loaded) for loaded in running):
            return True
        if not running or identity is None:
            return False
        now = self.clock()
        before = identity_view(previous) if previous is not None else None
        change = IdentityChange(
            event_type=event_type,
            identity_id=identity.user_id,
            before=before,
            after=identity_view(identity),
            changed=changed_attributes(previous.profile if previous else None, identity.profile),
            event_id="",
            at=now,
        )
        matches = runs_for_event(
            WorkflowSet({loaded.id: loaded for loaded in running}), change, now
        )
        for skipped in matches.skipped:
            log.info(
                "saga not started: its workflow does not apply",
                extra={"workflow_id": skipped.workflow_id, "reason": skipped.reason},
            )
        return bool(matches.runs)


def _conditional(loaded: LoadedWorkflow) -> bool:
    """Whether the workflow's answer depends on the identity (a scope or a filter)."""
    trigger = loaded.definition.trigger
    filtered = isinstance(trigger, EventTrigger) and bool(trigger.changed)
    return loaded.definition.scope is not None or filtered
