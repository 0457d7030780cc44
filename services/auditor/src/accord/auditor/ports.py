"""Ports of the auditor: what its batch handler needs of the world."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from accord.auditor.domain.chaining import ChainState, SourceKey, Stored, now_utc


class AuditLog(Protocol):
    """The hash-chained audit log, in the handler's transaction.

    Appending reads once (`chain_state`), decides (domain.chaining.chain) and writes once
    (`append`); the state read stays valid until the transaction ends (the head is locked).
    """

    async def chain_state(self, keys: Sequence[SourceKey]) -> ChainState:
        """The chain head, and which of these events the log holds already."""
        ...

    async def append(self, records: Sequence[Stored]) -> None:
        """Store records chained after the head `chain_state` gave; the head moves to the
        last of them. Nothing happens for no records."""
        ...


@dataclass(frozen=True)
class RecordingPorts:
    """What recording a batch works with."""

    log: AuditLog
    source: str
    """CloudEvents source of the audit.recorded events."""
    redact: frozenset[str] = frozenset()
    """Payload fields recorded as a marker instead of their value."""
    clock: Callable[[], datetime] = now_utc
    """When a record is recorded (its recorded_at)."""
    chained: Callable[[int], None] = lambda count: None
    """Told how many records a batch appended, once the log has them (a metric)."""
