"""Slower polling while a consumer's topics are quiet.

A broker that answers a waiting fetch only as its wait runs out (Tansu) spends CPU on every
poll, and most of the time there is nothing to fetch. aiokafka reads the wait from its
fetcher for every fetch request it builds, so the pacer changes it there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class IdlePolling:
    """The fetch wait once the topics have been quiet for `after_s`; the first record after
    a quiet spell waits up to `idle_wait_ms`."""

    idle_wait_ms: int
    after_s: float


class Pacer:
    """Switches a consumer to the idle fetch wait after a quiet spell, back at the first
    record (or while records are still being handled).

    A consumer that gathers records before a fetch returns (fetch_min_bytes above 1) stops
    gathering while idle: with the long idle wait, the first record after a quiet spell
    would otherwise wait it out.
    """

    def __init__(self, consumer: Any, polling: IdlePolling | None) -> None:
        self._consumer = consumer
        self._polling = polling
        self._busy_wait_ms: int | None = None
        self._busy_min_bytes = 1
        self._quiet_since: float | None = None

    @property
    def fetch_wait_ms(self) -> int | None:
        """The wait of the consumer's next fetch (None before it started)."""
        return getattr(self._fetcher(), "_fetch_max_wait_ms", None)

    @property
    def fetch_min_bytes(self) -> int | None:
        """What the consumer's next fetch gathers before it returns (None before it started)."""
        return getattr(self._fetcher(), "_fetch_min_bytes", None)

    def pace(self, *, busy: bool) -> None:
        """Called after each poll: `busy` when it fetched records or work is in flight."""
        fetcher = self._fetcher()
        if self._polling is None or fetcher is None:
            return
        if self._busy_wait_ms is None:
            self._busy_wait_ms = fetcher._fetch_max_wait_ms
            self._busy_min_bytes = fetcher._fetch_min_bytes
        if self._polling.idle_wait_ms <= self._busy_wait_ms:
            return
        now = time.monotonic()
        if busy:
            self._quiet_since = None
            fetcher._fetch_max_wait_ms = self._busy_wait_ms
            fetcher._fetch_min_bytes = self._busy_min_bytes
        elif self._quiet_since is None:
            self._quiet_since = now
        elif now - self._quiet_since >= self._polling.after_s:
            fetcher._fetch_max_wait_ms = self._polling.idle_wait_ms
            fetcher._fetch_min_bytes = 1

    def _fetcher(self) -> Any:
        return getattr(self._consumer, "_fetcher", None)
