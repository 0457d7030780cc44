"""A part that starts and stops, usable as `async with part:`."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Startable:
    """Base of the embedded parts: subclasses implement start() and stop()."""

    async def start(self) -> None:
        """Start the part and wait until it is usable."""
        raise NotImplementedError

    async def stop(self) -> None:
        """Stop the part; idempotent."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
