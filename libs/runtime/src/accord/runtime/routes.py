"""What a service routes events to: handlers in a transaction, effects outside one, and the
contexts they get. The consumer loop (accord.runtime.consumer) runs them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast, overload

import asyncpg

from accord.events import Envelope, EventData
from accord.runtime.errors import PermanentError
from accord.runtime.records import Record


@dataclass(kw_only=True)
class EffectContext:
    """What an effect handler knows: where its events come from and go to."""

    source: str
    """CloudEvents source of events this service emits."""
    topic: str
    """Topic the event came from."""


@dataclass(kw_only=True)
class HandlerContext(EffectContext):
    """What a handler may touch: the transaction its effects must join."""

    conn: asyncpg.Connection
    """Connection inside the open transaction (inbox row already written). On the
    in-memory storage of unit tests (accord.runtime.memory) it is no database: whatever the
    test gave MemoryStorage, by default NO_DATABASE, which raises on any use."""


Handler = Callable[[Envelope, HandlerContext], Awaitable[Sequence[Envelope]]]


@dataclass(frozen=True)
class Effect:
    """A handler whose work is a slow call to another system (a connector), not our database.

    It runs outside any transaction, so a slow target holds no database connection; the
    inbox row and the events it returns commit together afterwards. A redelivery after a
    crash between the call and that commit runs it again: the call must be idempotent (the
    connectors look up before they create).
    """

    handler: Callable[[Envelope, EffectContext], Awaitable[Sequence[Envelope] | GaveUp]]
    record: Handler | None = None
    """Work on our own database that joins the commit transaction after the effect (e.g. a
    projection of the command); its events are emitted too. Runs once per event."""
    work_key: Callable[[Envelope], str] | None = None
    """What work an event asks for (e.g. one account in one target): handling an event
    resolves the dead letters of earlier events of the same work, which replaying could no
    longer help (accord.runtime.dlq_resolution)."""


@dataclass(frozen=True)
class GaveUp:
    """An effect's answer when its retry budget ran out.

    Its events (e.g. "provisioning failed") commit as usual, and the record also goes to
    `<topic>.dlq` with the reason, so an operator can replay it once the cause is fixed.
    """

    events: Sequence[Envelope]
    reason: str
    error_type: str = "retries-exhausted"


Route = Handler | Effect
#: One record of a batch: the decoded event, or None for a dead letter (read raw).
BatchItem = tuple[Record, Envelope | None]
#: Takes one partition's records in one transaction; there is no inbox, so it must be
#: idempotent itself (a redelivered batch is handled again).
BatchHandler = Callable[[Sequence[BatchItem], HandlerContext], Awaitable[Sequence[Envelope]]]
RawHandler = Callable[[Record, HandlerContext], Awaitable[Sequence[Envelope]]]
Work = Callable[[HandlerContext], Awaitable[Sequence[Envelope]]]
EffectWork = Callable[[EffectContext], Awaitable[Sequence[Envelope] | GaveUp]]


D = TypeVar("D", bound=EventData)
C = TypeVar("C", bound=EffectContext)
P = TypeVar("P")
R = TypeVar("R")


@dataclass(frozen=True)
class Typed(Generic[D, C, P, R]):
    """A route that knows its payload model: it checks the event's data is one of `models`
    and calls `handle(event, data, ports)`, the ports built from the context (so they join
    the handler's transaction). The handler gets the typed payload, never an Envelope whose
    data it has to assert, and unit tests call it directly with in-memory ports.

    Made by `on()`; a Typed is a Handler (or an Effect's handler), so the runtime needs no
    other change to run it.
    """

    models: tuple[type[D], ...]
    handle: Callable[[Envelope, D, P], Awaitable[R]]
    ports: Callable[[C], P]

    @property
    def types(self) -> tuple[str, ...]:
        """The event types this route takes (its routing keys)."""
        return tuple(model.event_type for model in self.models)

    async def __call__(self, envelope: Envelope, ctx: C) -> R:
        data = envelope.data
        if not isinstance(data, self.models):
            expected = " or ".join(model.__name__ for model in self.models)
            raise PermanentError(f"{envelope.type} carries {type(data).__name__}, not {expected}")
        return await self.handle(envelope, data, self.ports(ctx))


@overload
def on(
    models: type[D], handle: Callable[[Envelope, D, P], Awaitable[R]], ports: Callable[[C], P]
) -> Typed[D, C, P, R]: ...


@overload
def on(
    models: tuple[type[EventData], ...],
    handle: Callable[[Envelope, D, P], Awaitable[R]],
    ports: Callable[[C], P],
) -> Typed[D, C, P, R]: ...


def on(
    models: type[D] | tuple[type[EventData], ...],
    handle: Callable[[Envelope, D, P], Awaitable[R]],
    ports: Callable[[C], P],
) -> Typed[D, C, P, R]:
    """A typed route: `handle(event, data, ports(ctx))` for events of these models.

    With several models, the handler's data parameter names their union; the route checks
    the data is one of them before it calls the handler.
    """
    chosen = models if isinstance(models, tuple) else (models,)
    return Typed(cast(tuple[type[D], ...], chosen), handle, ports)


def table(routes: Iterable[Typed[Any, C, Any, R]]) -> Mapping[str, Typed[Any, C, Any, R]]:
    """Typed routes keyed by the event types they take; a type routed twice is an error."""
    result: dict[str, Typed[Any, C, Any, R]] = {}
    for route in routes:
        for event_type in route.types:
            if event_type in result:
                raise ValueError(f"event type {event_type} routed twice")
            result[event_type] = route
    return result
