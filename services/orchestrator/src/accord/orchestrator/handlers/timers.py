"""Due timers: a saga's own retry, a round that timed out, a leaver's accounts deleted
after the retention period."""

from __future__ import annotations

from accord.events import Envelope
from accord.orchestrator.domain import account_saga as saga
from accord.orchestrator.domain import workflow
from accord.orchestrator.handlers.engine import Origin, advance, begin
from accord.orchestrator.ports import OrchestratorPorts, Timer


async def on_timer(timer: Timer, ports: OrchestratorPorts) -> list[Envelope]:
    """Carry out a due timer."""
    if timer.kind == "saga_retry":
        assert timer.saga_id is not None
        return await advance(ports, timer.saga_id, saga.RetryRequested())
    if timer.kind == "saga_timeout":
        assert timer.saga_id is not None
        timed_out = saga.TimedOut(
            round=int(timer.payload["round"]),
            status=timer.payload["status"],
            after_s=ports.settings.step_timeout.total_seconds(),
        )
        return await advance(ports, timer.saga_id, timed_out)
    await ports.registry.lock(timer.subject_id)
    entry = await ports.registry.identity(timer.subject_id)
    if entry is None or entry.status != "deleted":
        return []  # came back within the retention period: keep the accounts
    saga_id = workflow.saga_id_of(timer.timer_id)
    origin = Origin(ports.source, None, timer.correlation_id)
    return await begin(
        ports, origin, saga_id, timer.subject_id, "leaver", operation="delete", identity=entry
    )
