"""Per-key token buckets: a steady rate with a burst allowance."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """In-process limiter; each replica limits on its own (a shared one needs Redis-like state)."""

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        *,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (math.isfinite(rate_per_s) and rate_per_s > 0) or burst < 1 or max_keys < 1:
            raise ValueError("rate must be a positive number; burst and max_keys at least 1")
        self.rate = rate_per_s
        self.burst = burst
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._max_keys = max_keys
        self._clock = clock

    def acquire(self, key: str) -> float:
        """Take one token for key: 0.0 if allowed, else seconds until one is available."""
        now = self._clock()
        bucket = self._buckets.pop(key, None) or _Bucket(float(self.burst), now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        self._buckets[key] = bucket
        if len(self._buckets) > self._max_keys:
            # Forget the least recently seen callers; memory stays bounded under key floods.
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate


def retry_after_header(wait_s: float) -> dict[str, str]:
    """A Retry-After header in whole seconds, at least 1."""
    return {"Retry-After": str(max(1, math.ceil(wait_s)))}
