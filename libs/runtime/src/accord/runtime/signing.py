"""Signed HTTP requests between Accord and the systems it calls, both ways.

One scheme for every signed call: the provisioner's webhook connector, a workflow's custom
extension and the callback that extension sends back. Kept here, in the runtime every
service depends on, so that a receiver and a sender can never drift apart.

``X-Accord-Timestamp: <unix seconds>``
    When the request was signed.
``X-Accord-Signature: v1=<hex>``
    HMAC-SHA256, keyed with the shared secret, of ``"<timestamp>.<raw body>"`` (the
    timestamp header's value, a full stop, then the body bytes exactly as sent). A receiver
    checks it before acting, in constant time, and refuses a timestamp too far from its
    clock (five minutes by default) so that a captured request cannot be replayed later:
    :func:`verify_signature` does both. The header may list several comma-separated ``v1=``
    values (e.g. while a secret is rotated); one match suffices.
"""

from __future__ import annotations

import hashlib
import hmac
import math

TIMESTAMP_HEADER = "X-Accord-Timestamp"
SIGNATURE_HEADER = "X-Accord-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SIGNATURE_SCHEME = "v1"
#: How far a signed timestamp may be from the receiver's clock, either way.
DEFAULT_TOLERANCE_S = 300.0


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The signature header value of a request: ``v1=<hex HMAC-SHA256("<ts>.<body>")>``."""
    digest = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return f"{SIGNATURE_SCHEME}={digest.hexdigest()}"


def signed_headers(secret: bytes, body: bytes, *, now: float) -> dict[str, str]:
    """The timestamp and signature headers of a request sending `body` at `now`."""
    timestamp = str(int(now))
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(secret, timestamp, body)}


def is_fresh(timestamp: str, *, now: float, tolerance_s: float = DEFAULT_TOLERANCE_S) -> bool:
    """Whether the timestamp header's value is unix seconds within `tolerance_s` of `now`."""
    if not timestamp.isascii() or not timestamp.isdigit():
        return False
    return math.isfinite(now) and abs(now - int(timestamp)) <= tolerance_s


def verify_signature(
    secret: bytes,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    now: float,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> bool:
    """Whether `signature` signs `timestamp` and `body` with `secret`, and the timestamp is fresh.

    `timestamp` and `signature` are the raw header values, `body` the raw request body and
    `now` the receiver's clock (unix seconds). A timestamp more than `tolerance_s` away from
    `now`, in either direction, is refused. The signatures are compared in constant time.
    """
    if not secret or not is_fresh(timestamp, now=now, tolerance_s=tolerance_s):
        return False
    expected = sign(secret, timestamp, body).encode("ascii")
    matched = False
    for candidate in signature.split(","):
        # Every candidate is compared, so the time taken does not tell which one matched.
        matched |= hmac.compare_digest(expected, candidate.strip().encode("utf-8", "replace"))
    return matched
