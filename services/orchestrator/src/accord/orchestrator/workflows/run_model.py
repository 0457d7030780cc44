"""The data of a workflow run: what the run state machine reads and writes, what the stores keep.

Frozen dataclasses and nothing else: `runs.py` (the pure state machine) turns one `Run` into
the next, the stores (`ports.RunStore` and friends) keep them, and neither knows about the
other's concerns. Keeping the shapes in their own module lets both be written and tested
apart.

A run is stored as one row with its tasks inside it (the tasks only ever change with their
run: read once, write once), guarded by `revision` for optimistic concurrency: a writer
that read revision N saves N + 1, or learns that someone else got there first.

Times are aware datetimes (UTC in the stores). `trigger`, `vars`, `outputs` and
`waiting_for` are JSON-shaped mappings: they go to jsonb as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal


class RunStatus(StrEnum):
    """Where a run stands. One identity has at most one run `running` or `waiting`; the
    others wait their turn `queued`."""

    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_RUN

    @property
    def active(self) -> bool:
        """Holds the identity's one active slot."""
        return self in ACTIVE_RUN


#: A run in one of these never changes again.
TERMINAL_RUN: frozenset[RunStatus] = frozenset(
    {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED}
)
#: The statuses that hold an identity's one active slot.
ACTIVE_RUN: frozenset[RunStatus] = frozenset({RunStatus.RUNNING, RunStatus.WAITING})


class TaskStatus(StrEnum):
    """Where a task of a run stands."""

    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_TASK


#: A task in one of these never moves back.
TERMINAL_TASK: frozenset[TaskStatus] = frozenset(
    {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.SKIPPED, TaskStatus.CANCELLED}
)

#: Why a run waits on a wake-up.
WakeupPurpose = Literal["retry", "wait", "approval_timeout", "callback_timeout", "access_timeout"]
WAKEUP_PURPOSES: frozenset[str] = frozenset(
    {"retry", "wait", "approval_timeout", "callback_timeout", "access_timeout"}
)


@dataclass(frozen=True)
class TaskRun:
    """One task of a run, at its `position` (0-based, the definition's order).

    `waiting_for` says what a waiting task waits on, e.g. ``{"kind": "approval", "until":
    "2027-03-01T08:00:00+00:00"}`` (kinds: provisioning, approval, callback, timer, retry);
    `outputs` are what the task answered (merged into the run's `vars[task_id]`).
    """

    task_id: str
    position: int
    kind: str
    status: TaskStatus
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    waiting_for: Mapping[str, Any] | None = None
    outputs: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class Run:
    """A run of one workflow version for one identity.

    `trigger` says what started it (``{"kind": "event", "event": "user.created",
    "event_id": ...}``, ``{"kind": "timer", "timer_id": ...}``, ``{"kind": "on_demand",
    "by": ...}``); `vars` holds the tasks' outputs by task id; `revision` counts the saves
    (optimistic concurrency: `RunStore.save` refuses a stale one); `cancel_reason` says why
    a cancelled run stopped.
    """

    run_id: str
    workflow_id: str
    version: str
    identity_id: str
    category: str
    trigger: Mapping[str, Any]
    status: RunStatus
    created_at: datetime
    updated_at: datetime
    vars: Mapping[str, Any] = field(default_factory=dict)
    tasks: tuple[TaskRun, ...] = ()
    revision: int = 0
    cancel_reason: str | None = None

    def task(self, task_id: str) -> TaskRun | None:
        """The task with this id, or None."""
        for task in self.tasks:
            if task.task_id == task_id:
                return task
        return None


@dataclass(frozen=True)
class Wakeup:
    """A moment at which a waiting task of a run must be looked at again: a retry's backoff
    ended, a wait ended, an approval or a callback timed out. Unique by (run, task,
    purpose): scheduling it again moves it."""

    run_id: str
    task_id: str
    purpose: WakeupPurpose
    fire_at: datetime
