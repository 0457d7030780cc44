"""A consumed record as the runtime and its handlers see it, whatever transport read it.

aiokafka's ConsumerRecord has these attributes, and so has the in-memory transport's record;
handlers and the runtime's types name this Protocol, so no service imports aiokafka to read
a dead letter or a batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Record(Protocol):
    """One record of a topic partition."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...

    @property
    def timestamp(self) -> int:
        """Milliseconds since the epoch (the producer's or the broker's clock)."""
        ...

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...

    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...
