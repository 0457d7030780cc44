"""The workflows Accord ships (``shipped/``): today's account sagas as workflow files.

The joiner, mover, reactivation and leaver flows are workflows like any other: a file each,
whose one task is ``account_saga``. The set in force is the shipped files overlaid with
the folder's (``ACCORD_WORKFLOWS_DIR``): a file of the folder with a shipped id replaces
that workflow (scoped, narrowed to some ``changed:`` attributes, ``enabled: false``, or
followed by tasks that run once the saga completed), and its other files add workflows.
Without a folder the shipped set alone is in force.

Rules a set must keep (:func:`saga_errors`), because users rely on them:
- at most one enabled workflow runs each account saga on each event (two would start
  the same saga twice);
- the leaver saga runs, enabled and unscoped, on ``user.deactivated`` and on
  ``user.deleted``: a leaver always loses its accounts, whatever a team changed.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from accord.events import topics
from accord.orchestrator.workflows.definitions import SAGA_EVENTS, EventTrigger
from accord.orchestrator.workflows.loader import (
    Checks,
    LoadedWorkflow,
    WorkflowError,
    WorkflowErrors,
    WorkflowSet,
    load_folder,
)

__all__ = ["SHIPPED_DIR", "saga_errors", "shipped", "with_shipped"]

SHIPPED_DIR = Path(__file__).parent / "shipped"
#: Where a leaver must always run its saga.
_LEAVER_EVENTS = (topics.USER_DEACTIVATED, topics.USER_DELETED)


@cache
def shipped() -> WorkflowSet:
    """The shipped workflows (loaded once: they name no target, entitlement or template)."""
    return load_folder(SHIPPED_DIR, Checks(expression=lambda text: None))


def with_shipped(own: WorkflowSet) -> WorkflowSet:
    """The shipped workflows overlaid with ``own`` (same id: ``own``'s wins); the digest
    stays ``own``'s, which is what a folder watch compares.

    :raises WorkflowErrors: if the result breaks a rule of :func:`saga_errors`.
    """
    merged = {**shipped().workflows, **own.workflows}
    combined = WorkflowSet(dict(sorted(merged.items())), own.digest)
    errors = saga_errors(combined)
    if errors:
        raise WorkflowErrors(errors)
    return combined


def sagas_on(workflows: WorkflowSet, event_type: str) -> list[LoadedWorkflow]:
    """The enabled workflows that run an account saga on ``event_type``."""
    return [
        loaded
        for loaded in workflows.enabled()
        if loaded.definition.account_saga is not None
        and isinstance(loaded.definition.trigger, EventTrigger)
        and loaded.definition.trigger.event == event_type
    ]


def saga_errors(workflows: WorkflowSet) -> list[WorkflowError]:
    """What breaks the set's saga rules (module docstring), one error per problem."""
    errors: list[WorkflowError] = []
    for saga, events in SAGA_EVENTS.items():
        for event_type in events:
            running = [
                w for w in sagas_on(workflows, event_type) if w.definition.account_saga == saga
            ]
            for extra in running[1:]:
                errors.append(
                    WorkflowError(
                        extra.source,
                        0,
                        f"workflow {extra.id!r} runs the {saga} saga on {event_type}, as "
                        f"{running[0].id!r} ({running[0].source}) does: one workflow per saga "
                        "and event (scope one, or disable it)",
                    )
                )
            if saga == "leaver" and event_type in _LEAVER_EVENTS:
                errors += _leaver_errors(workflows, running, event_type)
    return errors


def _leaver_errors(
    workflows: WorkflowSet, running: list[LoadedWorkflow], event_type: str
) -> list[WorkflowError]:
    if not running:
        replaced = [w for w in workflows if w.definition.account_saga == "leaver"]
        where = replaced[0].source if replaced else "(the folder)"
        return [
            WorkflowError(
                where,
                0,
                f"no enabled workflow runs the leaver saga on {event_type}: a leaver must "
                "always lose its accounts (keep the shipped one, or replace it with one that "
                "runs `account_saga: leaver` on that event)",
            )
        ]
    leaver = running[0]
    trigger = leaver.definition.trigger
    if leaver.definition.scope is not None or (
        isinstance(trigger, EventTrigger) and trigger.changed
    ):
        return [
            WorkflowError(
                leaver.source,
                0,
                f"workflow {leaver.id!r} scopes the leaver saga on {event_type}: a leaver must "
                "always lose its accounts, whoever they are (remove the scope)",
            )
        ]
    return []
