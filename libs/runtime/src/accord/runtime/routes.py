"""What a service routes events to: handlers in a transaction, effects outside one, and the
contexts they get. The consumer loop (accord.runtime.consumer) runs them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import asyncpg
from aiokafka.structs import ConsumerRecord

from accord.events import Envelope


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
    """Connection inside the open transaction (inbox row already written)."""


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
BatchItem = tuple[ConsumerRecord[bytes, bytes], Envelope | None]
#: Takes one partition's records in one transaction; there is no inbox, so it must be
#: idempotent itself (a redelivered batch is handled again).
BatchHandler = Callable[[Sequence[BatchItem], HandlerContext], Awaitable[Sequence[Envelope]]]
RawHandler = Callable[[ConsumerRecord[bytes, bytes], HandlerContext], Awaitable[Sequence[Envelope]]]
Work = Callable[[HandlerContext], Awaitable[Sequence[Envelope]]]
EffectWork = Callable[[EffectContext], Awaitable[Sequence[Envelope] | GaveUp]]
