"""One run of a source as a record: its counts, its problems and the event that reports it.

Pure: the runner (accord.sources.runner) reads, diffs and writes; this module says what a
run's row and its `source.run_completed` hold, so the CLI, the service and the tests agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from accord.events.catalogue import SourceRunCompleted
from accord.events.envelope import Envelope, new_event
from accord.sources.diff import ChangeKind, DiffResult
from accord.sources.events import source_uri
from accord.sources.problems import RowProblem

RunStatus = Literal["published", "held", "approved", "rejected", "failed"]
Trigger = Literal["command", "schedule", "watch", "approval"]

#: Problems kept with a run (all are counted): enough to fix an export, not a second copy.
MAX_PROBLEMS_KEPT = 1_000
COUNTED = ("created", "updated", "linked", "deactivated", "reactivated", "deleted")


def counts_of(result: DiffResult) -> dict[str, int]:
    """What a run publishes, by kind (a link counts as an update and as a link)."""
    counts = {kind.value: result.count(kind) for kind in ChangeKind}
    counts["linked"] = sum(1 for change in result.changes if change.linked)
    return {name: counts[name] for name in COUNTED}


def problem_rows(problems: Sequence[RowProblem]) -> list[dict[str, object]]:
    """The first MAX_PROBLEMS_KEPT problems as the run keeps them."""
    return [
        {"line": p.line, "key": p.key, "kind": p.kind.value, "reason": p.reason}
        for p in problems[:MAX_PROBLEMS_KEPT]
    ]


@dataclass(frozen=True)
class RunRecord:
    """A run as its row in `runs` keeps it."""

    run_id: str
    source: str
    status: RunStatus
    trigger: Trigger
    started_at: datetime
    rows_read: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    problem_count: int = 0
    problems: list[dict[str, object]] = field(default_factory=list)
    reason: str | None = None

    def completed(self, *, outcome: RunStatus | None = None, trigger: Trigger | None = None,
                  reason: str | None = None) -> Envelope:  # fmt: skip
        """The run's `source.run_completed` (an operator's decision gives its own outcome,
        trigger and reason)."""
        data = SourceRunCompleted(
            run_id=self.run_id,
            source=self.source,
            outcome=outcome or self.status,
            trigger=trigger or self.trigger,
            rows_read=self.rows_read,
            problems=self.problem_count,
            reason=_short(reason or self.reason),
            **{name: self.counts.get(name, 0) for name in COUNTED},
        )
        return new_event(data, source=source_uri(self.source), correlation_id=self.run_id)


def _short(text: str | None) -> str | None:
    """A reason as the event carries it (at most 256 characters)."""
    if text is None:
        return None
    return text if len(text) <= 256 else text[:255] + "…"
