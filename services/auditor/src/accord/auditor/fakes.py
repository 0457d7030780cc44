"""In-memory fakes of the auditor's ports, for unit tests (kept honest by the contract tests
in tests/integration, which run the same cases on PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from accord.auditor.domain.chain import GENESIS
from accord.auditor.domain.chaining import ChainState, SourceKey, Stored, key_of
from accord.auditor.ports import AuditLog


@dataclass(frozen=True)
class FakeRecord:
    """A consumed record (accord.runtime.records.Record) as a test makes it."""

    topic: str
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()
    key: bytes | None = None
    partition: int = 0
    offset: int = 0
    timestamp: int = -1


@dataclass
class FakeAuditLog:
    """The AuditLog port on a list: the records in chain order and the head."""

    records: list[Stored] = field(default_factory=list)
    head_id: int = 0
    head_hash: str = GENESIS

    async def chain_state(self, keys: Sequence[SourceKey]) -> ChainState:
        """The head, and which of these events the list holds."""
        held = {key_of(r.entry) for r in self.records}
        return ChainState(self.head_id, self.head_hash, frozenset(k for k in keys if k in held))

    async def append(self, records: Sequence[Stored]) -> None:
        """Keep the records; the head moves to the last."""
        if not records:
            return
        self.records.extend(records)
        self.head_id, self.head_hash = records[-1].record_id, records[-1].hash

    def rows(self) -> list[dict[str, Any]]:
        """The records as audit_log holds them (FIELDS, payload text, prev_hash, hash), for
        domain.chain.Verification."""
        return [
            {**r.fields, "payload": r.payload, "prev_hash": r.prev_hash, "hash": r.hash}
            for r in self.records
        ]


_IS_AN_AUDIT_LOG: Callable[[], AuditLog] = FakeAuditLog
