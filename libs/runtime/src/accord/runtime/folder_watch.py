"""Watching a folder of definitions (policies, workflows) that reloads without a restart.

A holder keeps the last good set in force and knows how to tell whether its files changed
(`reload_if_changed`); this base gives it the loop that asks every few seconds, off the
event loop (reading and parsing files blocks), and the background hook a service
definition runs. A bug in one check is logged and the watching goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar, Protocol

log = logging.getLogger(__name__)

#: How often a folder is looked at by default.
DEFAULT_WATCH_INTERVAL_S = 5.0


class HasStopping(Protocol):
    """What a background hook receives: the runtime, with its stopping event."""

    @property
    def stopping(self) -> asyncio.Event: ...


class FolderWatching:
    """The watch loop of a holder; subclasses define `reload_if_changed` and `watched`."""

    watched: ClassVar[str] = "folder"
    """What the folder holds, for the log (`policy folder`, `workflow folder`)."""

    def reload_if_changed(self) -> object:
        """Reload if the files changed since last looked at (blocking)."""
        raise NotImplementedError

    async def watch(
        self, stopping: asyncio.Event, every_s: float = DEFAULT_WATCH_INTERVAL_S
    ) -> None:
        """Each ``every_s`` seconds reload if the files changed; return once ``stopping`` is set."""
        while not stopping.is_set():
            try:
                await asyncio.wait_for(stopping.wait(), timeout=every_s)
            except TimeoutError:
                await self._check_in_thread()

    async def _check_in_thread(self) -> None:
        try:
            await asyncio.to_thread(self.reload_if_changed)
        except Exception:  # a bug here must not stop the watching
            log.exception("%s check failed", self.watched)

    def watcher(
        self, every_s: float = DEFAULT_WATCH_INTERVAL_S
    ) -> Callable[[HasStopping], Coroutine[Any, Any, None]]:
        """A background hook for a service definition: ``watch`` until the runtime stops."""

        async def watch_folder(runtime: HasStopping) -> None:
            await self.watch(runtime.stopping, every_s)

        return watch_folder
