"""Workflow run and task events from the orchestrator's workflow engine (issue 22).

What a lifecycle workflow did for an identity, so the audit log, its dashboard and anyone
else can follow a run: it started, each task completed, failed, was skipped or waits (for an
approval, a callback, a timer, a retry, provisioning or an access decision), and the run
completed, failed or was cancelled.

Keyed by the identity (`identity_id` is the subject) so a run's events stay in order with
the identity's other events, like the saga events. They are not identity events: they carry
no per-subject sequence, since they report what the engine did, in the order it did it,
rather than changes of the identity that consumers apply in the source's order.

They say what happened, never the data it happened with: a completed task lists the
*names* of its outputs, not their values (an extension's answer may hold personal data),
and the texts are short summaries the engine writes (a trigger, a reason).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, StringConstraints

from accord.events import topics
from accord.events.catalogue.base import EventData, Identifier, ShortText, Timestamp

#: A workflow's category, as its definition says.
WorkflowCategory = Literal["joiner", "mover", "leaver", "custom"]
#: What a waiting task waits on.
WaitingFor = Literal["approval", "callback", "timer", "retry", "provisioning", "access_decision"]
#: A task kind of the library as a definition's `task:` spells it (create_accounts,
#: send_email, call_extension, ...). A pattern rather than a list: a new kind in the engine
#: is no new schema version.
TaskKind = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")
]
#: The name of a task output (what later tasks read as vars.<task id>.<name>).
OutputName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
]
#: At most as many outputs as a task may answer.
MAX_OUTPUTS = 64


class WorkflowEvent(EventData):
    """Common shape of workflow events: one run of one workflow version for one identity."""

    subject_field: ClassVar[str] = "identity_id"

    run_id: Identifier
    """The run."""
    workflow_id: Identifier
    """The workflow it runs (its definition's id: pre-hire, leaver, ...)."""
    version: Identifier
    """The workflow's content version the run started with (and keeps)."""
    identity_id: Identifier
    """The identity (user_id) the run works for."""
    category: WorkflowCategory
    """The workflow's category."""


class WorkflowRunStarted(WorkflowEvent):
    """A workflow run began for an identity."""

    event_type: ClassVar[str] = topics.WORKFLOW_RUN_STARTED

    trigger: ShortText
    """What started it, in short (user.updated: department; hire_date -P7D; on demand)."""


class WorkflowRunCompleted(WorkflowEvent):
    """A workflow run reached its end: every task completed or was skipped."""

    event_type: ClassVar[str] = topics.WORKFLOW_RUN_COMPLETED


class WorkflowRunFailed(WorkflowEvent):
    """A workflow run gave up: a task failed and its failure stops the run."""

    event_type: ClassVar[str] = topics.WORKFLOW_RUN_FAILED

    reason: ShortText
    """Why, in short (which task failed and how)."""


class WorkflowRunCancelled(WorkflowEvent):
    """A workflow run stopped before its end (its trigger no longer holds, or a cancel)."""

    # A rescinded hire, a leaver while a joiner waits, an operator: what had not run will not.

    event_type: ClassVar[str] = topics.WORKFLOW_RUN_CANCELLED

    reason: ShortText
    """Why, in short."""


class WorkflowTaskEvent(WorkflowEvent):
    """Common shape of a run's task events."""

    task_id: Identifier
    """The task, by its id in the workflow."""
    kind: TaskKind
    """Which task of the library it is (create_accounts, approval, send_email, ...)."""


class WorkflowTaskCompleted(WorkflowTaskEvent):
    """A task of a run did its work."""

    event_type: ClassVar[str] = topics.WORKFLOW_TASK_COMPLETED

    output_keys: tuple[OutputName, ...] = Field(default=(), max_length=MAX_OUTPUTS)
    """The names of the outputs it answered, never their values (they may hold personal
    data); later tasks read them as vars.<task id>.<name>."""


class WorkflowTaskFailed(WorkflowTaskEvent):
    """A task of a run failed for good, after its retries."""

    # Whether the run goes on depends on the task's continue_on_error: a workflow.run_failed
    # follows when it does not.

    event_type: ClassVar[str] = topics.WORKFLOW_TASK_FAILED

    reason: ShortText
    """Why, in short."""


class WorkflowTaskSkipped(WorkflowTaskEvent):
    """A task of a run did not run (its `when` condition did not hold, say)."""

    event_type: ClassVar[str] = topics.WORKFLOW_TASK_SKIPPED

    reason: ShortText
    """Why, in short."""


class WorkflowTaskWaiting(WorkflowTaskEvent):
    """A task of a run waits for something (`waiting_for` says what) until `until` at most."""

    event_type: ClassVar[str] = topics.WORKFLOW_TASK_WAITING

    waiting_for: WaitingFor
    """What it waits on."""
    until: Timestamp | None = None
    """When the wait ends at the latest (a timeout, a timer, the next retry); none when it
    waits as long as it takes."""
