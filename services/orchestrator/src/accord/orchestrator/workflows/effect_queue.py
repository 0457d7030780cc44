"""The queue of workflow effects done by I/O (mail, extension calls, access passes): the port.

An effect that is not a Kafka command (`EffectRunner.envelopes` answered None) cannot be
done inside the run's transaction: a slow SMTP server or extension must not hold a database
connection, and a rollback cannot unsend a mail. So the run's transaction only *enqueues*
the command (durably, with the run's other changes), and the effect loop
(`workflows/loops.py`) claims it, performs it outside any transaction and records the
result in a new one.

Claiming leases rather than removes: `claim_due` pushes the effect's `due_at` to the end
of a lease and returns it; `done` removes it when its result is recorded. An orchestrator
that dies while performing leaves the effect to be claimed again once the lease ends, so it
is performed again with the same idempotency key (``run:task:attempt``): acceptable, since
every effect is idempotent by its key (a mail's Message-ID, an extension's
Idempotency-Key). `done` answers False when the effect is gone (the run was cancelled, or
another claimer recorded it first): the result is then dropped.

The command is kept as JSON (`encode_command` / `decode_command`): the run state machine's
`Effect` dataclasses hold texts, booleans, tuples of texts and durations only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from accord.orchestrator.workflows import runs

__all__ = [
    "EffectQueue",
    "FakeEffectQueue",
    "QueuedEffect",
    "decode_command",
    "encode_command",
]

_EFFECT_TYPES: Mapping[str, type[runs.Effect]] = {
    cls.__name__: cls
    for cls in (
        runs.Provision,
        runs.ChangeGroup,
        runs.RequestEntitlement,
        runs.RevokeEntitlements,
        runs.AskApproval,
        runs.RequireMfa,
        runs.IssueAccessPass,
        runs.RevokeSessions,
        runs.SendMail,
        runs.CallExtension,
    )
}
_SECONDS = "$seconds"


def encode_command(command: runs.Effect) -> dict[str, Any]:
    """An effect command as JSON-shaped data (`decode_command` gives it back equal)."""
    name = type(command).__name__
    if name not in _EFFECT_TYPES:
        raise TypeError(f"not an effect command: {name}")
    encoded: dict[str, Any] = {"type": name}
    for item in dataclasses.fields(command):
        value = getattr(command, item.name)
        if isinstance(value, timedelta):
            value = {_SECONDS: value.total_seconds()}
        elif isinstance(value, tuple):
            value = list(value)
        encoded[item.name] = value
    return encoded


def decode_command(data: Mapping[str, Any]) -> runs.Effect:
    """The effect command `encode_command` encoded."""
    cls = _EFFECT_TYPES[data["type"]]
    values: dict[str, Any] = {}
    for item in dataclasses.fields(cls):
        if item.name not in data:
            continue
        value = data[item.name]
        if isinstance(value, Mapping) and _SECONDS in value:
            value = timedelta(seconds=value[_SECONDS])
        elif isinstance(value, list):
            value = tuple(value)
        values[item.name] = value
    return cls(**values)


@dataclass(frozen=True)
class QueuedEffect:
    """An I/O effect waiting to be performed for a run of an identity."""

    command: runs.Effect
    identity_id: str
    due_at: datetime

    @property
    def effect_id(self) -> str:
        """The command's idempotency key: one effect per run, task and attempt."""
        return self.command.idempotency_key


class EffectQueue(Protocol):
    """I/O effects to perform, bound to the caller's transaction."""

    async def enqueue(self, command: runs.Effect, identity_id: str, due_at: datetime) -> None:
        """Queue an effect; one that is queued already (same key) stays as it is."""
        ...

    async def claim_due(self, now: datetime, lease: timedelta, limit: int) -> list[QueuedEffect]:
        """Up to `limit` effects due at `now`, earliest first, each leased until `now +
        lease` (claimable again after, if not `done` by then), skipping those another
        transaction holds."""
        ...

    async def done(self, effect_id: str) -> bool:
        """Remove an effect whose result is being recorded; False if it is gone."""
        ...

    async def cancel(self, run_id: str, task_id: str | None = None) -> None:
        """Forget a run's queued effects (only this task's, when given)."""
        ...


@dataclass
class FakeEffectQueue:
    """`EffectQueue` in memory (no transactions: a claim is final at once)."""

    queued: dict[str, QueuedEffect] = field(default_factory=dict)

    async def enqueue(self, command: runs.Effect, identity_id: str, due_at: datetime) -> None:
        self.queued.setdefault(command.idempotency_key, QueuedEffect(command, identity_id, due_at))

    async def claim_due(self, now: datetime, lease: timedelta, limit: int) -> list[QueuedEffect]:
        ready = sorted(
            (q for q in self.queued.values() if q.due_at <= now),
            key=lambda q: (q.due_at, q.effect_id),
        )[:limit]
        for item in ready:
            self.queued[item.effect_id] = dataclasses.replace(item, due_at=now + lease)
        return ready

    async def done(self, effect_id: str) -> bool:
        return self.queued.pop(effect_id, None) is not None

    async def cancel(self, run_id: str, task_id: str | None = None) -> None:
        for key in [
            key
            for key, item in self.queued.items()
            if item.command.run_id == run_id
            and (task_id is None or item.command.task_id == task_id)
        ]:
            del self.queued[key]
