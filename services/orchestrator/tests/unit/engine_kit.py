"""The workflow engine's in-memory surroundings for the unit tests: a workflow set from YAML
texts, the engine's stores as fakes, and a unit of work over them that keeps what it emits.
One copy, so that a new store or a change of the unit of work is made once for every test
module that drives the engine."""

from __future__ import annotations

import contextlib
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from accord.events import Envelope
from accord.orchestrator.fakes import FakeWorld
from accord.orchestrator.handlers.workflows import SagaTasks
from accord.orchestrator.workflows.effect_queue import FakeEffectQueue
from accord.orchestrator.workflows.engine import EngineStores
from accord.orchestrator.workflows.fakes import FakeRuns, FakeTimers, FakeVersions, FakeWakeups
from accord.orchestrator.workflows.loader import Checks, WorkflowSet, load_files
from accord.orchestrator.workflows.schedules import ScheduleStore


def workflow_set(*texts: str) -> WorkflowSet:
    """The workflows of these YAML texts, loaded as from a folder (expressions unchecked)."""
    files = {f"w{index}.yaml": textwrap.dedent(text) for index, text in enumerate(texts)}
    return load_files(files, Checks(expression=lambda text: None))


def fake_stores(world: FakeWorld, schedules: ScheduleStore | None = None) -> EngineStores:
    """The engine's stores, empty and in memory, on the world's registry; the task sagas
    start on the world's (in-memory) saga machine."""
    return EngineStores(
        registry=world.registry,
        runs=FakeRuns(),
        wakeups=FakeWakeups(),
        timers=FakeTimers(),
        effects=FakeEffectQueue(),
        versions=FakeVersions(),
        sagas=SagaTasks(world.ports),
        schedules=schedules,
    )


@dataclass
class FakeUnit:
    """One transaction over the fake stores: what it emits is appended to `emitted`."""

    stores: EngineStores
    emitted: list[Envelope]

    async def emit(self, events: Sequence[Envelope]) -> None:
        self.emitted.extend(events)

    def savepoint(self) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()
