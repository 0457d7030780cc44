"""The audit log's hash chain: each record's SHA-256 covers its content and its predecessor.

A record's hash is SHA-256 over three lines (UTF-8; the payload text is pure ASCII):

    <previous record's hash, 64 hex digits; GENESIS for the first record>
    <canonical JSON of the record's fields, below>
    <the payload exactly as stored: canonical JSON>

Canonical JSON: keys sorted, no insignificant whitespace, non-ASCII as \\u escapes, times in
UTC as ``YYYY-MM-DDTHH:MM:SS.ffffff+00:00``. The fields are record_id (the record's place in
the chain: 1, 2, 3, ... with no gaps), recorded_at, source_event_id, source_topic,
event_type, occurred_at, actor, subject, target, outcome, correlation_id and trace_id.
Changing, removing or reordering any record breaks its own hash or the next one's link; a
removed tail shows against the chain head and the signed checkpoints.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64

#: The fields a record's hash covers, besides its payload.
FIELDS = (
    "record_id",
    "recorded_at",
    "source_event_id",
    "source_topic",
    "event_type",
    "occurred_at",
    "actor",
    "subject",
    "target",
    "outcome",
    "correlation_id",
    "trace_id",
)


def canonical(value: Any) -> str:
    """Canonical JSON text of a JSON value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def canonical_time(moment: datetime) -> str:
    """A time as the chain writes it: UTC, microseconds."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def record_hash(previous: str, fields: Mapping[str, Any], payload_text: str) -> str:
    """The hash of a record whose fields (FIELDS) and stored payload text are given."""
    content = {
        name: canonical_time(value) if isinstance(value, datetime) else value
        for name, value in ((name, fields[name]) for name in FIELDS)
    }
    text = f"{previous}\n{canonical(content)}\n{payload_text}"
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Break:
    """Where the chain stops matching."""

    record_id: int
    reason: str


@dataclass
class Verification:
    """Walks records in record_id order; the first break is kept and reported."""

    checked: int = 0
    last_id: int = 0
    last_hash: str = GENESIS
    first_break: Break | None = None

    def start_after(self, record_id: int, hash_: str) -> None:
        """Begin after a known-good point (a verified checkpoint) instead of the genesis."""
        self.last_id, self.last_hash = record_id, hash_

    def feed(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Check rows (FIELDS, prev_hash, hash, payload text), in record_id order."""
        for row in rows:
            if self.first_break is not None:
                return
            self._check(row)

    def _check(self, row: Mapping[str, Any]) -> None:
        record_id = int(row["record_id"])
        if record_id != self.last_id + 1:
            missing = f"{self.last_id + 1}" + (
                f"..{record_id - 1}" if record_id - 1 > self.last_id + 1 else ""
            )
            self.first_break = Break(record_id, f"record(s) {missing} missing before it")
            return
        if row["prev_hash"] != self.last_hash:
            self.first_break = Break(record_id, "its link to the previous record does not match")
            return
        expected = record_hash(self.last_hash, row, row["payload"])
        if row["hash"] != expected:
            self.first_break = Break(record_id, "its content does not match its hash")
            return
        self.checked += 1
        self.last_id, self.last_hash = record_id, expected

    def against_head(self, head_id: int, head_hash: str) -> None:
        """The chain must end where the head says (a removed tail shows here)."""
        if self.first_break is not None:
            return
        if head_id != self.last_id or head_hash != self.last_hash:
            self.first_break = Break(
                self.last_id + 1,
                f"the chain ends at record {self.last_id}, the head says {head_id}",
            )
