"""Where workflow runs, their wake-ups, the time triggers' timers and the versions runs
started with are kept: the ports.

Four stores, each bound to the caller's transaction (the PostgreSQL adapters in
`adapters/workflow_runs.py` and `adapters/workflow_versions.py` take its connection;
`workflows/fakes.py` keeps them in memory and behaves the same, which
`tests/integration/test_workflow_runs_contract.py` and `test_workflow_versions_contract.py`
check):

- `RunStore`: runs, one active (running or waiting) per identity; the others wait `queued`
  in order. A run is read once and written once, guarded by its revision.
- `WakeupStore`: when a waiting task must be looked at again. `claim_due` removes what it
  returns in the caller's transaction, skipping rows another claimer holds: two
  orchestrators never take the same wake-up, and a claimer that rolls back (or dies before
  committing) leaves it claimable again.
- `TimerStore`: the time triggers' timers by `timer_id`. `claim_due` marks them fired the
  same way; a fired or skipped timer is never scheduled again (its key fired once).
- `VersionStore`: the definition of every workflow version a run started with, kept so a
  run goes on with its own version after a restart that loaded changed files.

And one port that is not a store: `TaskSagas` starts the sagas that do the account tasks'
work, in the same transaction.

Times are aware datetimes; the caller passes `now` (the stores read no clock), so the
callers' tests control time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from accord.events import Envelope
from accord.orchestrator.domain.account_saga import SagaState, Step, TaskIntent
from accord.orchestrator.workflows.definitions import Workflow
from accord.orchestrator.workflows.run_model import Run, RunStatus, Wakeup
from accord.orchestrator.workflows.timers import Timer, TimerState, TimeTrigger


class Conflict(Exception):
    """A save lost: the run changed since it was read (a stale revision), or it would make a
    second active run of its identity. Read the run again and decide again."""


class IdentityBusy(Conflict):
    """The run would become running or waiting while another run of its identity is.

    Raised by the PostgreSQL adapter when the unique index decides a race: the transaction
    is then aborted and must be rolled back (as after a serialization failure)."""


@dataclass(frozen=True)
class RunPage:
    """One page of a listing, newest first; `next` is the cursor of the following page
    (None on the last page). Cursors are opaque texts: pass them back as `after`."""

    runs: tuple[Run, ...]
    next: str | None


class RunStore(Protocol):
    """Workflow runs."""

    async def start(self, run: Run) -> Run:
        """Store a new run: `running` when its identity has no active run and no run queued
        before it, else `queued` (whatever `run.status` says), revision 0. Starting a run
        id that exists already stores nothing and returns the stored run (a replay)."""
        ...

    async def get(self, run_id: str) -> Run | None:
        """The run as stored, or None."""
        ...

    async def save(self, run: Run, expected_revision: int) -> Run:
        """Write `run` over the stored run of revision `expected_revision`; returns it with
        revision `expected_revision + 1`. `Conflict` when the stored revision differs (or
        the run is unknown), `IdentityBusy` when it would be a second active run."""
        ...

    async def active_for(self, identity_id: str) -> Run | None:
        """The identity's running or waiting run, if it has one."""
        ...

    async def next_queued(self, identity_id: str) -> Run | None:
        """The identity's oldest queued run, unless a run of it is active (then None):
        whose turn it is once the active run ended."""
        ...

    async def runs(
        self,
        *,
        identity_id: str | None = None,
        workflow_id: str | None = None,
        status: RunStatus | None = None,
        after: str | None = None,
        limit: int = 50,
    ) -> RunPage:
        """Runs, newest first, narrowed by what is given; `after` is a page's `next`.
        Keyset pagination: a run started meanwhile never shifts a later page."""
        ...


class WakeupStore(Protocol):
    """When waiting tasks must be looked at again."""

    async def schedule(self, wakeups: Iterable[Wakeup]) -> None:
        """Insert, or move (by run, task and purpose) to the new time."""
        ...

    async def cancel(self, run_id: str, task_id: str | None = None) -> None:
        """Forget a run's wake-ups (only this task's, when given)."""
        ...

    async def claim_due(self, now: datetime, limit: int) -> list[Wakeup]:
        """Remove and return up to `limit` wake-ups due at `now`, earliest first, skipping
        those another transaction holds."""
        ...


class TimerStore(Protocol):
    """The time triggers' timers."""

    async def upsert(self, timers: Sequence[Timer]) -> None:
        """Insert, or move (by `timer_id`) to the new time and state; a fired or skipped
        timer stays as it is (its key fired once)."""
        ...

    async def cancel(self, timer_ids: Iterable[str]) -> None:
        """Cancel the scheduled ones among these timers; others stay as they are."""
        ...

    async def cancel_stale(self, workflows: Sequence[TimeTrigger]) -> int:
        """Cancel every identity's scheduled timers that no trigger of `workflows` (the
        whole active set) plans any more (`timers.stale_timers`); how many."""
        ...

    async def for_identity(self, identity_id: str) -> list[Timer]:
        """Every timer of the identity, in any state, by time then id (`plan_timers`'s
        `existing`)."""
        ...

    async def claim_due(self, now: datetime, limit: int) -> list[Timer]:
        """Mark fired and return up to `limit` scheduled timers due at `now`, earliest first,
        skipping those another transaction holds."""
        ...

    async def mark(self, timer_id: str, state: TimerState) -> bool:
        """Set a timer's state (a fire that planning skipped, say); False if unknown."""
        ...


class VersionStore(Protocol):
    """The workflow versions runs started with, by (workflow id, version)."""

    async def record(self, workflow: Workflow, version: str, seen_at: datetime) -> None:
        """Keep the definition of `version` (its content hash); a version kept already stays
        as it was first kept, `seen_at` included."""
        ...

    async def definition(self, workflow_id: str, version: str) -> Workflow | None:
        """The definition kept for the version; None when none was kept, or when it no longer
        reads as that version (`loader.kept_definition`)."""
        ...


@dataclass(frozen=True)
class TaskSaga:
    """The account work of one attempt of a workflow task (create, update, enable, disable,
    delete accounts; add or remove a group membership), as a saga of type
    ``workflow_task``: the one executor of account work, shared with the account sagas."""

    saga_id: str
    identity_id: str
    intent: TaskIntent
    memberships: tuple[Step, ...] = ()
    """add_member / remove_member: the (target, group) steps the task names."""


class TaskSagas(Protocol):
    """Starts task sagas, and reads sagas, on the saga machine (`handlers.workflows.SagaTasks`,
    on the handlers' ports: PostgreSQL in the service, in memory in the unit tests)."""

    async def start(
        self, saga: TaskSaga, cause: Envelope | None, correlation_id: str
    ) -> list[Envelope]:
        """Start the saga in the caller's transaction, or queue it behind the identity's saga
        in flight (planned when it begins); the events that emits (saga.started, the
        provision.requested of its steps, saga.completed at once when it has none). A saga
        id started already starts nothing."""
        ...

    async def state(self, saga_id: str) -> SagaState | None:
        """A saga as it is now (any type: an account_saga task waits for the saga its
        event started), or None when there is none (nothing to do, so none started)."""
        ...
