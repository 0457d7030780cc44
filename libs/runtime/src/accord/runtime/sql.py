"""A WHERE clause from optional filters: values always travel as bind parameters."""

from __future__ import annotations

from typing import Any


class Conditions:
    """Collects `column = $n` style conditions; only code-written SQL is ever interpolated."""

    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.args: list[Any] = []

    def add(self, template: str, value: Any) -> None:
        """Add a condition unless value is None; `{0}` in template is its placeholder."""
        if value is None:
            return
        self.args.append(value)
        self.clauses.append(template.format(f"${len(self.args)}"))

    def placeholder(self, value: Any) -> str:
        """Bind a value that is always needed (a LIMIT, say) and return its placeholder."""
        self.args.append(value)
        return f"${len(self.args)}"

    @property
    def where(self) -> str:
        """The conditions joined with AND (`true` when there are none)."""
        return " AND ".join(self.clauses) or "true"
