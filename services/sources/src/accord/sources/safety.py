"""The accidental-deletion guard: a run that takes away too much waits for an operator.

A truncated export (the HR job died half-way) looks exactly like half the company leaving.
Before anything is published, the run's deactivations and deletions are compared with the
identities the source had active before the run; past a threshold the run is held with the
counts and the reason, and nothing is published until an operator approves it (or rejects
it). Deactivations and deletions are limited each by its own threshold, and together by the
larger of the two, so 4 % deactivated plus 4 % deleted under 5 % limits still stops: both
take access away.

With no active identity before the run (a first run) any deactivation or deletion counts as
100 %: there is nothing a percentage could be of, and a first run should not remove anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from accord.sources.config import Safety
from accord.sources.diff import ChangeKind, DiffResult, SourceState


@dataclass(frozen=True)
class SafetyVerdict:
    """Whether a run may publish, with the figures an operator decides on."""

    held: bool
    deactivations: int
    deletions: int
    base: int
    """Active identities of the source before the run."""
    reason: str | None = None


def _percent(count: int, base: int) -> float:
    if count == 0:
        return 0.0
    return 100.0 if base == 0 else 100.0 * count / base


def judge_run(previous: SourceState, result: DiffResult, safety: Safety) -> SafetyVerdict:
    """Hold the run when it deactivates or deletes more than the source's limits allow."""
    deactivations = result.count(ChangeKind.DEACTIVATED)
    deletions = result.count(ChangeKind.DELETED)
    base = previous.active_count()
    reasons = []
    checks = (
        ("deactivations", deactivations, safety.max_deactivations_percent),
        ("deletions", deletions, safety.max_deletions_percent),
        (
            "deactivations and deletions",
            deactivations + deletions,
            max(safety.max_deactivations_percent, safety.max_deletions_percent),
        ),
    )
    for label, count, limit in checks:
        share = _percent(count, base)
        if share > limit:
            reasons.append(
                f"{count} {label} are {share:.1f} % of {base} active (limit {limit:g} %)"
            )
    reason = "; ".join(reasons) if reasons else None
    return SafetyVerdict(bool(reasons), deactivations, deletions, base, reason)
