"""Verifying the chain as it grows: from the last verified record towards the head, a bounded
stretch per round. The auditor runs one round every ACCORD_AUDIT_VERIFY_INTERVAL_S, so a
record changed after it was appended shows within minutes, not when someone next runs
`accord audit verify` (which walks the whole chain, and holds the checkpoints against it).

Pure: the I/O edge (accord.auditor.chain_watch) reads, in one snapshot, the head, the stored
hash of the last verified record and the rows after it; a RoundCheck decides with
domain.chain.Verification, the same walk as `accord audit verify`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from accord.auditor.domain.chain import GENESIS, Break, Verification


@dataclass(frozen=True)
class Position:
    """The last verified record: its id and hash. Before the first chained record it is
    (chained_from - 1, GENESIS): nothing verified yet."""

    record_id: int
    hash: str


def before_chain(chained_from: int) -> Position:
    """Where a walk of the whole chain starts."""
    return Position(chained_from - 1, GENESIS)


@dataclass(frozen=True)
class Outcome:
    """What one round found."""

    position: Position
    """The last record verified good: the next round starts after it (after a break too,
    so a broken chain fails again each round until it is explained)."""
    checked: int
    """Records verified this round."""
    first_break: Break | None
    behind: bool
    """The round stopped at its bound before the head: more to verify at once."""

    @property
    def ok(self) -> bool:
        return self.first_break is None


class RoundCheck:
    """One round from `start`: feed it the rows start < record_id <= `until`, in order."""

    def __init__(
        self,
        start: Position,
        *,
        chained_from: int,
        head_id: int,
        head_hash: str,
        stored_hash: str | None,
        limit: int,
    ) -> None:
        """`stored_hash` is the log's hash of record `start.record_id` now (None if the
        record is gone); it must still be the verified one. At most `limit` records."""
        if limit < 1:
            raise ValueError("a round verifies at least one record")
        self.start = start
        self.head_id, self.head_hash = head_id, head_hash
        self.walk = Verification()
        self.walk.start_after(start.record_id, start.hash)
        self.until = min(head_id, start.record_id + limit)
        if start.record_id >= chained_from and stored_hash != start.hash:
            problem = "is gone" if stored_hash is None else "no longer has the hash verified"
            self._broken(Break(start.record_id, f"the last verified record {problem}"))
        elif head_id < start.record_id:
            self._broken(
                Break(
                    head_id + 1,
                    f"the chain ends at record {head_id}, record {start.record_id} was verified",
                )
            )

    @property
    def broken(self) -> bool:
        """Whether a break was found (feeding more changes nothing)."""
        return self.walk.first_break is not None

    def feed(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Rows (FIELDS, payload text, prev_hash, hash) after the last fed, in order."""
        self.walk.feed(rows)

    def end(self) -> Outcome:
        """The round's outcome, once every row up to `until` was fed (or a break found)."""
        walk = self.walk
        if walk.first_break is None:
            if self.until == self.head_id:
                walk.against_head(self.head_id, self.head_hash)
            elif walk.last_id != self.until:
                walk.first_break = Break(
                    walk.last_id + 1, f"record(s) {walk.last_id + 1}..{self.until} missing"
                )
        return Outcome(
            position=Position(walk.last_id, walk.last_hash),
            checked=walk.checked,
            first_break=walk.first_break,
            behind=walk.first_break is None and self.until < self.head_id,
        )

    def _broken(self, found: Break) -> None:
        self.walk.first_break = found
        self.until = self.start.record_id
