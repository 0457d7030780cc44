"""Webhook connector: signed JSON calls to any HTTP endpoint that speaks this small protocol.

The receiver protocol
=====================

Every call is ``POST <url>`` with a JSON object as its body::

    {"operation": "find" | "create" | "update" | "disable" | "enable" | "delete",
     "user_id": "<the identity's id in Accord>",
     "user_name": "<login name>",
     "profile": {...}}                      # create and update only: the whole Profile,
                                            # absent attributes as null

and these headers:

``Content-Type: application/json``
``X-Accord-Timestamp: <unix seconds>``
    When the request was signed.
``X-Accord-Signature: v1=<hex>``
    HMAC-SHA256, keyed with the shared secret, of ``"<timestamp>.<raw body>"`` (the
    timestamp header's value, a full stop, then the body bytes exactly as received).
    Receivers must check it before acting, in constant time, and refuse a timestamp
    too far from their clock (five minutes by default) so that a captured request cannot
    be replayed later: :func:`verify_signature` does both. The header may list several
    comma-separated ``v1=`` values (e.g. while a secret is rotated); one match suffices.
``Idempotency-Key: <hex>``
    SHA-256 of ``"<operation>\\n<user_id>\\n<raw body>"``; equal for the retries of one
    call. The operations are idempotent by design, so the key only helps a receiver
    spot retries. A receiver that answers a repeated key from a cache instead of acting
    must forget keys after minutes, not days: disable, enable, disable again legitimately
    repeats a key.

A receiver keeps the link between an account and the ``user_id`` it belongs to. It
looks an account up by that link first, then by ``user_name``; an account found by name
that is linked to another identity must never be used (answer 409), while an unlinked
one is adopted (linked) by create and update.

Answers:

``200`` (any 2xx) with ``{"account_id": "...", "created": true | false}``
    for create and update: ``created`` tells whether the call made the account (create
    returns the existing account, unchanged, when there is one; update creates the
    account when there is none).
``200`` (any 2xx) with ``{"account_id": "..."}``
    for find, disable, enable and delete (disabling a disabled account, or enabling an
    enabled one, is success).
``404``
    find, disable, enable, delete: there is no such account (delete: already gone).
``409``
    the account of that user name belongs to another identity; a body
    ``{"detail": "..."}`` is optional.
``401``
    the signature or the timestamp is wrong.
``429``, ``5xx``
    try again later; a ``Retry-After`` header (seconds or HTTP date) is honoured.

Any other 4xx is a permanent refusal (:class:`TargetRejected`); 429, 5xx, timeouts and
connection failures are transient (:class:`TargetUnavailable`). The secret never leaves
this process: it is not sent, logged, or put in exceptions or reprs.
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from accord.events import Profile
from accord.provisioner.ports import AccountRef, TargetRejected, TargetUnavailable

Operation = Literal["find", "create", "update", "disable", "enable", "delete"]

TIMESTAMP_HEADER = "X-Accord-Timestamp"
SIGNATURE_HEADER = "X-Accord-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SIGNATURE_SCHEME = "v1"
DEFAULT_TOLERANCE_S = 300.0


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The signature header value of a request: ``v1=<hex HMAC-SHA256("<ts>.<body>")>``."""
    digest = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return f"{SIGNATURE_SCHEME}={digest.hexdigest()}"


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
    if not secret or not timestamp.isascii() or not timestamp.isdigit():
        return False
    if not math.isfinite(now) or abs(now - int(timestamp)) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body).encode("ascii")
    matched = False
    for candidate in signature.split(","):
        # Every candidate is compared, so the time taken does not tell which one matched.
        matched |= hmac.compare_digest(expected, candidate.strip().encode("utf-8", "replace"))
    return matched


def idempotency_key(operation: str, user_id: str, body: bytes) -> str:
    """The Idempotency-Key header value: hex SHA-256 of ``"<operation>\\n<user_id>\\n<body>"``."""
    material = operation.encode("utf-8") + b"\n" + user_id.encode("utf-8") + b"\n" + body
    return hashlib.sha256(material).hexdigest()


@dataclass(frozen=True)
class WebhookSettings:
    """Where the receiver is and the secret the requests are signed with."""

    url: str
    secret: SecretStr
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("webhook url must be an absolute http(s) URL")
        if not self.secret.get_secret_value():
            raise ValueError("webhook secret must not be empty")
        if not (math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise ValueError("webhook timeout_s must be a positive number of seconds")


@dataclass(frozen=True)
class _Answer:
    account_id: str | None
    created: bool


class WebhookConnector:
    """Provisions accounts by signed POSTs to a receiver (see the module docstring)."""

    def __init__(
        self,
        name: str,
        settings: WebhookSettings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self._url = settings.url
        self._secret = settings.secret
        self._clock = clock
        self._client = httpx.AsyncClient(
            timeout=settings.timeout_s,
            headers={"Accept": "application/json", "User-Agent": "accord-provisioner"},
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    async def ensure_account(self, user_id: str, profile: Profile) -> AccountRef:
        """``create``: the receiver makes the account unless it has one (then adopts it)."""
        answer = await self._call("create", user_id, profile.user_name, profile)
        return _account_ref(self.name, "create", answer)

    async def update_account(self, user_id: str, profile: Profile) -> AccountRef:
        """``update``: the receiver brings the account to the profile, creating it if lost."""
        answer = await self._call("update", user_id, profile.user_name, profile)
        return _account_ref(self.name, "update", answer)

    async def disable_account(self, user_id: str, user_name: str) -> str | None:
        """``disable``; idempotent."""
        return (await self._call("disable", user_id, user_name)).account_id

    async def enable_account(self, user_id: str, user_name: str) -> str | None:
        """``enable``; idempotent."""
        return (await self._call("enable", user_id, user_name)).account_id

    async def delete_account(self, user_id: str, user_name: str) -> str | None:
        """``delete``; an account already gone is success (None)."""
        return (await self._call("delete", user_id, user_name)).account_id

    async def find_account(self, user_id: str, user_name: str) -> str | None:
        """``find``: the account linked to user_id, else the unlinked one named user_name."""
        return (await self._call("find", user_id, user_name)).account_id

    async def close(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.aclose()

    async def _call(
        self, operation: Operation, user_id: str, user_name: str, profile: Profile | None = None
    ) -> _Answer:
        payload: dict[str, Any] = {
            "operation": operation,
            "user_id": user_id,
            "user_name": user_name,
        }
        if profile is not None:
            payload["profile"] = profile.model_dump(mode="json")
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8")
        timestamp = str(int(self._clock()))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self._secret.get_secret_value().encode(), timestamp, body),
            IDEMPOTENCY_HEADER: idempotency_key(operation, user_id, body),
        }
        what = f"{self.name}: {operation} {user_name!r}"
        try:
            response = await self._client.post(self._url, content=body, headers=headers)
        except httpx.TimeoutException:
            raise TargetUnavailable(f"{what} timed out") from None
        except httpx.TransportError as error:
            raise TargetUnavailable(f"{what} failed: {type(error).__name__}") from None
        return self._answer(what, operation, response)

    def _answer(self, what: str, operation: Operation, response: httpx.Response) -> _Answer:
        status = response.status_code
        if 200 <= status < 300:
            return _parse(what, operation, response)
        if status == 404 and operation not in ("create", "update"):
            return _Answer(None, created=False)
        detail = _detail(response)
        suffix = f": {detail}" if detail else ""
        if status == 409:
            raise TargetRejected(f"{what}: belongs to another identity (409){suffix}")
        message = f"{what} -> {status}{suffix}"
        if status == 429 or status >= 500:
            raise TargetUnavailable(message, retry_after=_retry_after(response, self._clock()))
        raise TargetRejected(message)


def _account_ref(name: str, operation: str, answer: _Answer) -> AccountRef:
    if answer.account_id is None:  # create and update never answer 'no such account'
        raise TargetRejected(f"{name}: {operation} answered without an account_id")
    return AccountRef(answer.account_id, already_existed=not answer.created)


def _parse(what: str, operation: Operation, response: httpx.Response) -> _Answer:
    try:
        body = response.json()
    except ValueError:
        raise TargetRejected(f"{what}: the answer is not JSON") from None
    if not isinstance(body, dict):
        raise TargetRejected(f"{what}: the answer is not a JSON object")
    account_id = body.get("account_id")
    if not isinstance(account_id, str) or not account_id:
        raise TargetRejected(f"{what}: the answer has no account_id")
    created = body.get("created", False)
    if operation in ("create", "update") and not isinstance(body.get("created"), bool):
        raise TargetRejected(f"{what}: the answer has no boolean 'created'")
    return _Answer(account_id, created=bool(created))


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("error") or "")[:200]
    return ""


def _retry_after(response: httpx.Response, now: float) -> float | None:
    """Retry-After in seconds, given as seconds or as an HTTP date (RFC 9110 section 10.2.3)."""
    value = response.headers.get("Retry-After", "").strip()
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
