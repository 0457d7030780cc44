"""Errors of the event contract."""

from __future__ import annotations

from pydantic import ValidationError


class InvalidEvent(ValueError):
    """An event that breaks the contract; permanent, so it belongs in a dead-letter topic."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnknownEventType(InvalidEvent):
    """An event type that is not in the catalogue."""


def describe_validation_error(error: ValidationError, *, limit: int = 5) -> str:
    """One readable line naming each offending field; never the value, which may be secret."""
    parts = []
    for item in error.errors()[:limit]:
        # Escaped, so a hostile key cannot break the one-line message.
        where = ".".join(str(p).encode("unicode_escape").decode() for p in item["loc"]) or "(root)"
        parts.append(f"{where}: {item['msg']}")
    more = error.error_count() - limit
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)
