"""What a run reports about single rows: bad rows never block the good ones, so each one is
named (line, key, reason) instead of failing the run."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ProblemKind(StrEnum):
    """Why a row was skipped, held or changed on the way."""

    UNREADABLE = "unreadable"
    """The file's row could not be read: wrong column count, undecodable bytes, CSV syntax."""
    UNMAPPABLE = "unmappable"
    """A mapping failed on the row, or its values are no valid profile."""
    DUPLICATE_KEY = "duplicate_key"
    """The key appeared earlier in the same export: the first row was taken."""
    AMBIGUOUS = "ambiguous"
    """The row matches several identities (or one another key already owns): held, not guessed."""
    USER_NAME_TAKEN = "user_name_taken"
    """The wanted user name belongs to someone else: a numbered one was given (not an error)."""


@dataclass(frozen=True, slots=True)
class RowProblem:
    """One row's problem, as an operator reads it in the run's report."""

    kind: ProblemKind
    line: int
    """1-based position of the row: its line in a CSV export (the first line of a quoted
    multi-line row), its row number in a query's result, its entry number in a search."""
    reason: str
    key: str | None = None
    """The row's key, when it could be read."""

    def __str__(self) -> str:
        key = f" (key {self.key})" if self.key is not None else ""
        return f"line {self.line}{key}: {self.kind}: {self.reason}"
