"""The simulation's `Planner` bound to the matcher: what the engine would start, exactly.

`simulate.replay` asks a `Planner` which runs a change or a timer starts; this adapter
answers with `matching.py`'s functions over one loaded `WorkflowSet`, so a simulation and
the engine cannot disagree about triggers, `changed:` filters, scopes or task conditions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from accord.orchestrator.workflows import matching
from accord.orchestrator.workflows.loader import WorkflowSet
from accord.orchestrator.workflows.simulate import Change, PlannedRunLike
from accord.orchestrator.workflows.timers import Timer, TimeTrigger


class MatchingPlanner:
    """A `simulate.Planner` for one workflow set, answered by the matcher."""

    def __init__(self, workflows: WorkflowSet) -> None:
        self.workflows = workflows
        self._tasks = {
            (loaded.id, task.id): task for loaded in workflows for task in loaded.definition.tasks
        }
        self._triggers = matching.time_triggers(workflows)

    def runs_for(self, change: Change) -> Sequence[PlannedRunLike]:
        identity_change = matching.IdentityChange(
            event_type=change.event_type,
            identity_id=change.identity_id,
            before=change.before,
            after=change.after,
            changed=change.changed,
            event_id=change.event_id,
            at=change.at,
        )
        return matching.runs_for_event(self.workflows, identity_change, change.at).runs

    def time_triggers(self) -> Sequence[TimeTrigger]:
        return self._triggers

    def runs_for_timer(
        self, timer: Timer, identity: Mapping[str, Any], now: datetime
    ) -> Sequence[PlannedRunLike]:
        return matching.runs_for_timer(self.workflows, timer, identity, now).runs

    def task(self, workflow_id: str, task_id: str) -> Any | None:
        return self._tasks.get((workflow_id, task_id))


def matching_planner(workflows: WorkflowSet) -> MatchingPlanner:
    """The planner `add_simulate` takes: a workflow set bound to the matcher."""
    return MatchingPlanner(workflows)
