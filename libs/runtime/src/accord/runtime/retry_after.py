"""The Retry-After header of an answer, as seconds to wait (RFC 9110 section 10.2.3).

Shared by every outbound HTTP client that honours it (the provisioner's webhook connector,
a workflow's custom extension), so that seconds and HTTP dates are read one way.
"""

from __future__ import annotations

import email.utils


def retry_after_seconds(value: str, now: float) -> float | None:
    """Seconds to wait given as seconds or as an HTTP date; None when absent or unreadable.

    `now` is the caller's clock (unix seconds); a date in the past means "now" (0.0).
    """
    value = value.strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)
