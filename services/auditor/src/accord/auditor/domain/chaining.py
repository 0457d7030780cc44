"""Appending to the chain: which entries of a batch are new, and their places and hashes.

Pure: the log store reads the chain head and which of the batch's events it holds already
(one read), `chain` decides the records, and the store writes them (one write).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from accord.auditor.domain.chain import GENESIS, canonical, record_hash
from accord.auditor.domain.normalise import AuditEntry

#: An event as the log knows it: (source topic, source event id); the log holds each once.
SourceKey = tuple[str, str]


def key_of(entry: AuditEntry) -> SourceKey:
    """The key the log keeps an entry under."""
    return (entry.source_topic, entry.source_event_id)


@dataclass(frozen=True)
class ChainState:
    """What appending needs of the log: its head and which of the batch's events it holds."""

    record_id: int
    """The last chained record's id (0 in an empty log)."""
    hash: str
    """The last chained record's hash (GENESIS in an empty log)."""
    recorded: frozenset[SourceKey] = frozenset()
    """Those of the asked keys the log holds already."""


EMPTY = ChainState(0, GENESIS)


@dataclass(frozen=True)
class Stored:
    """An entry as the log holds it: its place in the chain and its hash."""

    entry: AuditEntry
    record_id: int
    hash: str
    fields: dict[str, Any]
    """The hashed fields (FIELDS), in column order."""
    payload: str
    """The payload as stored and hashed (storable_json)."""
    prev_hash: str
    """The hash of the record before it."""


def now_utc() -> datetime:
    """The recording clock."""
    return datetime.now(UTC)


def fresh(state: ChainState, entries: Iterable[AuditEntry]) -> list[AuditEntry]:
    """The entries whose key is neither in the log nor earlier in the batch, in order."""
    seen = set(state.recorded)
    kept = []
    for entry in entries:
        key = key_of(entry)
        if key not in seen:
            seen.add(key)
            kept.append(entry)
    return kept


def chain(
    state: ChainState, entries: Sequence[AuditEntry], clock: Callable[[], datetime] = now_utc
) -> list[Stored]:
    """The records to append after the head: the new entries, chained in order."""
    previous, record_id = state.hash, state.record_id
    stored = []
    for entry in fresh(state, entries):
        record_id += 1
        fields = fields_of(entry, record_id, clock())
        payload = storable_json(entry.payload)
        digest = record_hash(previous, fields, payload)
        stored.append(Stored(entry, record_id, digest, fields, payload, previous))
        previous = digest
    return stored


def fields_of(entry: AuditEntry, record_id: int, recorded_at: datetime) -> dict[str, Any]:
    """The hashed fields of a record, in column order (FIELDS)."""
    return {
        "record_id": record_id,
        "recorded_at": recorded_at,
        "source_event_id": entry.source_event_id,
        "source_topic": entry.source_topic,
        "event_type": entry.event_type,
        "occurred_at": entry.occurred_at,
        "actor": entry.actor,
        "subject": entry.subject,
        "target": entry.target,
        "outcome": entry.outcome,
        "correlation_id": entry.correlation_id,
        "trace_id": entry.trace_id,
    }


def storable_json(payload: dict[str, Any]) -> str:
    """The payload's canonical JSON, as stored and hashed; NUL (which a dead letter may hold
    and PostgreSQL text functions refuse) becomes U+FFFD."""
    return canonical(payload).replace("\\u0000", "\\ufffd")
