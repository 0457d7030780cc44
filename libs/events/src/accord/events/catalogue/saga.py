"""Saga lifecycle events from the orchestrator."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from accord.events import topics
from accord.events.catalogue.base import EventData, Identifier, Integer, ShortText

SagaType = Literal[
    "joiner",
    "mover",
    "reactivation",
    "leaver",
    "access_grant",
    "access_revoke",
    "lockout",
    "unlock",
    "workflow_task",
]


class SagaEvent(EventData):
    """Common shape of saga events; keyed by the identity so they follow its other events."""

    subject_field: ClassVar[str] = "subject_id"

    saga_id: Identifier
    """The saga instance."""
    saga_type: SagaType
    """Which workflow: an account saga, or (``workflow_task``) the account work of one task
    of a lifecycle workflow run."""
    subject_id: Identifier
    """The identity (user_id) the saga works for."""


class SagaStarted(SagaEvent):
    """A workflow began."""

    event_type: ClassVar[str] = topics.SAGA_STARTED

    targets: tuple[Identifier, ...] = ()
    """The target systems it will touch."""


class SagaCompleted(SagaEvent):
    """A workflow reached its goal."""

    event_type: ClassVar[str] = topics.SAGA_COMPLETED

    duration_ms: Integer = Field(ge=0)
    """Time from start to completion."""
    targets: tuple[Identifier, ...] = ()
    """Targets whose step reached its goal (a workflow task's answer names them)."""


class SagaFailed(SagaEvent):
    """A workflow gave up (after compensation, where it has any)."""

    event_type: ClassVar[str] = topics.SAGA_FAILED

    reason: ShortText
    """Why."""
    failed_targets: tuple[Identifier, ...] = ()
    """Targets whose step failed."""
    retryable: bool = False
    """Every failed step failed for a transient reason (down, throttled, no answer in
    time): the same request may succeed later (a workflow task's retry policy reads it)."""
    retrying: bool = False
    """The saga retries by itself (a leaver always, the others after transient failures):
    this round failed, the saga has not ended."""
