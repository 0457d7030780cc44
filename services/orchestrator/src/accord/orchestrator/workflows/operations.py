"""What an operator may do to workflow runs: the port the runs API and CLI act through.

The engine (`workflows/engine.py`) implements `EngineOperations`; the HTTP API
(`runs_api.py`) only reads runs itself (through `ports.RunStore`) and hands every change to
this port, so a cancel, a retry or an on-demand start takes the same path as the engine's
own decisions: the run state machine, the outbox, the wake-ups, one transaction.

The exceptions are the answers an operator can act on; the API maps them to problem
details (404, 409, 422) and the CLI to one error line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from accord.orchestrator.workflows.matching import UnknownWorkflow
from accord.orchestrator.workflows.run_model import Run

__all__ = [
    "EngineOperations",
    "NotRetryable",
    "RunFinished",
    "RunNotFound",
    "UnknownIdentity",
    "UnknownWorkflow",
]


class RunNotFound(LookupError):
    """No run has this id."""


class RunFinished(Exception):
    """The run has ended (completed, failed or cancelled): there is nothing to cancel."""


class NotRetryable(Exception):
    """Only a failed run can be retried (its failed task again)."""


class UnknownIdentity(LookupError):
    """An on-demand request names an identity the registry does not hold."""


class EngineOperations(Protocol):
    """Operator actions on workflow runs, carried out by the engine."""

    async def cancel(self, run_id: str, reason: str) -> Run:
        """Cancel a queued, running or waiting run; the run as saved.

        :raises RunNotFound: no such run.
        :raises RunFinished: the run has ended already.
        """
        ...

    async def retry(self, run_id: str) -> Run:
        """Run a failed run's failed task again; the run as saved.

        :raises RunNotFound: no such run.
        :raises NotRetryable: the run is not failed.
        """
        ...

    async def start_on_demand(
        self, workflow_id: str, identity_ids: Sequence[str], requested_by: str
    ) -> list[str]:
        """Start the workflow for these identities (those in its scope); the run ids.

        :raises UnknownWorkflow: no such workflow, or a disabled one.
        :raises UnknownIdentity: an identity is not in the registry (nothing starts).
        """
        ...
