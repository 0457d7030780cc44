"""Which workflows a change starts, and which of their tasks would run: the matcher.

Pure: the caller passes the loaded `WorkflowSet`, the change (an identity event, a timer
that fires, an operator's request, the clock) and the time; the answer is a list of
`PlannedRun`s with their tasks, plus the workflows that matched the trigger but were
skipped and why (`Skipped`). The engine starts the runs; `accord workflows plan` and
`accord workflows test` print and compare the same answer, so what an administrator
tests is what the engine does.

The rules:

- Only enabled workflows start on events, timers and schedules (a disabled one is loaded
  and checked, and does nothing).
- An event starts a workflow whose `EventTrigger` names its type and, when the trigger
  lists `changed:` attributes, only if the update changed one of them.
- The scope (a CEL condition over `identity`, `previous`, `changed`, `now`) must hold. A
  scope that cannot be evaluated (an attribute the identity does not have, a type that
  does not fit) is a skip with the reason, never an exception: one odd identity must not
  stop the others' workflows, and the report says what to fix.
- A timer fires its workflow only if the workflow, its version and the date it was
  planned for are still the same, and the scope still holds when it fires: a contractor
  who became an employee since gets no "contract end" run (reported).
- A task's `when` is evaluated now when it reads only the identity; one that reads
  `vars.*` (outputs of earlier tasks) is decided at run time (`would_run` None).
- Schedules: a cron workflow is due when one of its times (in the workflow's zone)
  falls after its last run and at or before now. Cron times come from `croniter`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter

from accord.orchestrator.workflows.definitions import (
    DateTrigger,
    EventTrigger,
    ScheduleTrigger,
    Workflow,
)
from accord.orchestrator.workflows.expressions import (
    ExpressionError,
    compile_condition,
    identity_context,
)
from accord.orchestrator.workflows.loader import LoadedWorkflow, WorkflowSet
from accord.orchestrator.workflows.timers import Timer, TimeTrigger, date_attribute

__all__ = [
    "IdentityChange",
    "Matches",
    "PlannedRun",
    "PlannedTask",
    "Skipped",
    "UnknownWorkflow",
    "describe_trigger",
    "runs_for_event",
    "runs_for_timer",
    "runs_on_demand",
    "schedule_due",
    "time_triggers",
]

_VARS = re.compile(r"\bvars\b")


class UnknownWorkflow(LookupError):
    """An on-demand request names no loaded workflow, or a disabled one."""


@dataclass(frozen=True)
class IdentityChange:
    """An identity event as the matcher needs it.

    `before` is the profile before the change (None for a creation), `after` the profile
    after it (None for a deletion); `changed` names what an update changed, as
    `domain.identity.changed_attributes` does (`department`, `attributes.site`).
    """

    event_type: str
    identity_id: str
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    changed: frozenset[str]
    event_id: str
    at: datetime


@dataclass(frozen=True)
class PlannedTask:
    """One task of a planned run: would it run (None: decided at run time), and why."""

    task_id: str
    kind: str
    would_run: bool | None
    reason: str


@dataclass(frozen=True)
class PlannedRun:
    """A workflow run a change starts, for one identity."""

    workflow_id: str
    version: str
    identity_id: str
    trigger: str
    tasks: list[PlannedTask]

    @property
    def running_tasks(self) -> list[str]:
        """The ids of the tasks that would run (not those decided at run time)."""
        return [task.task_id for task in self.tasks if task.would_run is True]


@dataclass(frozen=True)
class Skipped:
    """A workflow whose trigger matched but that does not run for this identity, and why."""

    workflow_id: str
    identity_id: str
    reason: str


@dataclass
class Matches:
    """What a change starts (`runs`) and what matched its trigger but was skipped."""

    runs: list[PlannedRun] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def workflow_ids(self) -> list[str]:
        """The ids of the workflows that run, in order."""
        return [run.workflow_id for run in self.runs]


def describe_trigger(workflow: Workflow) -> str:
    """A workflow's trigger in a few words: `user.updated (changed: department)`."""
    trigger = workflow.trigger
    if isinstance(trigger, EventTrigger):
        changed = f" (changed: {', '.join(trigger.changed)})" if trigger.changed else ""
        return f"{trigger.event}{changed}"
    if isinstance(trigger, DateTrigger):
        offset = f" {trigger.offset}" if trigger.offset.days or trigger.offset.seconds else ""
        return f"at {trigger.at}{offset} ({workflow.time_zone})"
    if isinstance(trigger, ScheduleTrigger):
        return f"schedule {trigger.schedule} ({workflow.time_zone})"
    return "on demand"


def runs_for_event(workflows: WorkflowSet, change: IdentityChange, now: datetime) -> Matches:
    """The runs an identity event starts (rules in the module docstring)."""
    identity = change.after if change.after is not None else change.before
    matches = Matches()
    if identity is None:
        return matches
    profile = _with_id(identity, change.identity_id)
    previous = None if change.before is None else _with_id(change.before, change.identity_id)
    for loaded in workflows.enabled():
        trigger = loaded.definition.trigger
        if not isinstance(trigger, EventTrigger) or trigger.event != change.event_type:
            continue
        if trigger.changed and not set(trigger.changed) & change.changed:
            continue
        context = identity_context(
            profile, previous=previous, changed=sorted(change.changed), now=now
        )
        _match(matches, loaded, change.identity_id, context)
    return matches


def time_triggers(workflows: WorkflowSet) -> list[TimeTrigger]:
    """The time triggers of the enabled workflows, for `timers.plan_timers` (the zone is
    the workflow's; `zone_for` prefers the identity's own when planning)."""
    return [
        TimeTrigger(
            loaded.id,
            loaded.version,
            loaded.definition.trigger.at,
            loaded.definition.trigger.offset,
            loaded.definition.time_zone,
        )
        for loaded in workflows.enabled()
        if isinstance(loaded.definition.trigger, DateTrigger)
    ]


def runs_for_timer(
    workflows: WorkflowSet, timer: Timer, identity: Mapping[str, Any], now: datetime
) -> Matches:
    """The run a firing timer starts for `identity` (its profile as it is now), if its
    workflow, version and date are unchanged and the scope still holds; else a skip."""
    key = timer.key
    matches = Matches()

    def skip(reason: str) -> Matches:
        matches.skipped.append(Skipped(key.workflow_id, key.identity_id, reason))
        return matches

    loaded = workflows.workflows.get(key.workflow_id)
    if loaded is None or not loaded.definition.enabled:
        return skip("the workflow is no longer loaded and enabled")
    if loaded.version != key.version:
        return skip(f"version {key.version} was replaced by {loaded.version}")
    trigger = loaded.definition.trigger
    value = date_attribute(identity, key.attribute)
    if not isinstance(trigger, DateTrigger) or trigger.at != key.attribute:
        return skip("the workflow no longer has this time trigger")
    if value is None or str(value).strip() != key.date_value:
        return skip(f"{key.attribute} is now {value!r}, not {key.date_value!r}")
    context = identity_context(_with_id(identity, key.identity_id), now=now)
    _match(matches, loaded, key.identity_id, context)
    return matches


def runs_on_demand(
    workflows: WorkflowSet,
    workflow_id: str,
    identities: Mapping[str, Mapping[str, Any]],
    now: datetime,
) -> Matches:
    """The runs an operator's request starts: the workflow (whatever its trigger, so a
    skipped timer can be run by hand) for each identity (id -> profile) in its scope.

    :raises UnknownWorkflow: no such workflow, or a disabled one.
    """
    loaded = workflows.workflows.get(workflow_id)
    if loaded is None:
        known = ", ".join(workflows.workflows) or "none"
        raise UnknownWorkflow(f"no workflow {workflow_id!r} (loaded: {known})")
    if not loaded.definition.enabled:
        raise UnknownWorkflow(f"workflow {workflow_id!r} is disabled")
    if loaded.definition.account_saga is not None:
        raise UnknownWorkflow(
            f"workflow {workflow_id!r} runs the {loaded.definition.account_saga} saga on its"
            " event and cannot be run on demand (see `accord sagas` to retry a saga)"
        )
    matches = Matches()
    for identity_id, profile in identities.items():
        context = identity_context(_with_id(profile, identity_id), now=now)
        _match(matches, loaded, identity_id, context)
    return matches


def schedule_due(
    workflows: WorkflowSet, last_run: Mapping[str, datetime], now: datetime
) -> list[str]:
    """The enabled cron workflows due now: one of their times (in the workflow's zone)
    is after their last run and at or before `now`.

    A workflow absent from `last_run` has not run yet and is not due: its schedule counts
    from when the caller first records it (a weekly report is not sent the minute it is
    deployed); the caller records `now` as its last run.
    """
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    due: list[str] = []
    for loaded in workflows.enabled():
        trigger = loaded.definition.trigger
        if not isinstance(trigger, ScheduleTrigger) or loaded.id not in last_run:
            continue
        zone = ZoneInfo(loaded.definition.time_zone)
        since = last_run[loaded.id].astimezone(zone)
        following: datetime = croniter(trigger.schedule, since).get_next(datetime)
        if following <= now:
            due.append(loaded.id)
    return due


# --- one workflow for one identity ---------------------------------------------------------


def _match(
    matches: Matches, loaded: LoadedWorkflow, identity_id: str, context: Mapping[str, Any]
) -> None:
    """Add the run if the scope holds, else a skip saying why."""
    workflow = loaded.definition
    if workflow.scope is not None:
        reason = _scope_refusal(workflow.scope, context)
        if reason is not None:
            matches.skipped.append(Skipped(loaded.id, identity_id, reason))
            return
    tasks = [_plan_task(task, context) for task in workflow.tasks]
    matches.runs.append(
        PlannedRun(loaded.id, loaded.version, identity_id, describe_trigger(workflow), tasks)
    )


def _scope_refusal(scope: str, context: Mapping[str, Any]) -> str | None:
    try:
        value = compile_condition(scope).evaluate(context)
    except ExpressionError as error:
        return f"scope could not be evaluated: {error}"
    if value is True:
        return None
    if value is False:
        return "out of scope"
    return f"scope could not be evaluated: a condition must be a bool, this one gave {value!r}"


def _plan_task(task: Any, context: Mapping[str, Any]) -> PlannedTask:
    when: str | None = task.when
    if when is None:
        return PlannedTask(task.id, task.task, True, "no condition")
    if _VARS.search(when):
        return PlannedTask(task.id, task.task, None, "when reads vars.*: decided at run time")
    try:
        value = compile_condition(when).evaluate(context)
    except ExpressionError as error:
        return PlannedTask(task.id, task.task, False, f"when could not be evaluated: {error}")
    if not isinstance(value, bool):
        return PlannedTask(task.id, task.task, False, f"when gave {value!r}, not a bool")
    return PlannedTask(task.id, task.task, value, "when holds" if value else "when is false")


def _with_id(profile: Mapping[str, Any], identity_id: str) -> dict[str, Any]:
    """The profile with its `user_id`, which scopes may read and events carry apart."""
    return {**profile, "user_id": profile.get("user_id", identity_id)}
