"""Webhook connector: signed JSON calls to any HTTP endpoint that speaks this small protocol.

The receiver protocol
=====================

Every call is ``POST <url>`` with a JSON object as its body. A call about one identity's
account names the identity::

    {"operation": "find" | "get" | "create" | "update" | "disable" | "enable" | "delete"
                  | "add_member" | "remove_member",
     "user_id": "<the identity's id in Accord>",
     "user_name": "<login name>",
     "profile": {...},                      # create and update only: the whole Profile,
                                            # absent attributes as null
     "group": "<group name>"}               # add_member and remove_member only

A call about the target as a whole has neither ``user_id`` nor ``user_name``::

    {"operation": "list", "cursor": null | "<next_cursor>", "limit": <int, at least 1>}
    {"operation": "list_members", "group": "<group name>"}
    {"operation": "health"}

and every call carries these headers:

``Content-Type: application/json``
``X-Accord-Timestamp: <unix seconds>``
    When the request was signed.
``X-Accord-Signature: v1=<hex>``
    HMAC-SHA256, keyed with the shared secret, of ``"<timestamp>.<raw body>"`` (the
    timestamp header's value, a full stop, then the body bytes exactly as received).
    Receivers must check it before acting, in constant time, and refuse a timestamp
    too far from their clock (five minutes by default) so that a captured request cannot
    be replayed later: :func:`verify_signature` does both (the scheme is the runtime's,
    accord.runtime.signing, shared with the orchestrator's custom extensions; the names
    stay importable from this module). The header may list several
    comma-separated ``v1=`` values (e.g. while a secret is rotated); one match suffices.
``Idempotency-Key: <hex>``
    SHA-256 of ``"<operation>\\n<user_id>\\n<raw body>"`` (an empty ``user_id`` for a call
    without one); equal for the retries of one call. The operations are idempotent by
    design, so the key only helps a receiver spot retries. A receiver that answers a
    repeated key from a cache instead of acting must forget keys after minutes, not days:
    disable, enable, disable again legitimately repeats a key.

A receiver keeps the link between an account and the ``user_id`` it belongs to. It
looks an account up by that link first, then by ``user_name``; an account found by name
that is linked to another identity must never be used (answer 409), while an unlinked
one is adopted by create and update: linked to the user_id and given the profile, exactly
as an update would. Only ``get`` answers with whichever account
it finds, whoever it is linked to. A group holds accounts; ``add_member`` creates a group
it does not find, and a group outlives its last member.

Answers:

``200`` (any 2xx) with ``{"account_id": "...", "created": true | false}``
    for create and update: ``created`` tells whether the call made the account (create
    returns the account linked to the user_id, unchanged, when there is one, and adopts an
    unlinked one; update creates the account when there is none).
``200`` (any 2xx) with ``{"account_id": "..."}``
    for find, disable, enable, delete, add_member and remove_member (disabling a disabled
    account, enabling an enabled one, adding a member again or removing a non-member, even
    from a group that does not exist, is success).
``200`` (any 2xx) with an account, ``{"account_id": "...", "owner": "<user_id>" | null,
"active": true | false, "profile": {...}}``
    for get. ``owner`` is the identity the account is linked to (null: none). ``profile``
    holds what the account stores, in Profile terms: ``user_name`` (a non-empty string)
    and the other string attributes of the Profile, null or absent when the account has
    none; other keys are ignored.
``200`` (any 2xx) with ``{"accounts": [<account, as for get>, ...], "next_cursor": "..." | null}``
    for list: at most ``limit`` accounts, linked or not. The next page is asked for with
    ``cursor`` set to ``next_cursor``; null ends the listing. Every account appears once
    across the pages.
``200`` (any 2xx) with ``{"members": ["<account_id>", ...]}``
    for list_members: every member's account id; an empty list when there is no such group.
``200`` (any 2xx), any body
    for health: the receiver is up and checked the signature.
``404``
    find, get, disable, enable, delete, add_member, remove_member: there is no such
    account (delete: already gone).
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

import hashlib
import json
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr, ValidationError

from accord.events import Profile
from accord.provisioner.adapters.http_pool import async_transport, env_proxy_mounts
from accord.provisioner.domain.profiles import TEXT_FIELDS
from accord.provisioner.ports import AccountRef, TargetAccount, TargetRejected, TargetUnavailable
from accord.runtime.retry_after import retry_after_seconds

# The signing scheme is shared with every signed call (accord.runtime.signing); these names
# stay importable from here for the receivers and tests that use them.
from accord.runtime.signing import (
    DEFAULT_TOLERANCE_S,
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    SIGNATURE_SCHEME,
    TIMESTAMP_HEADER,
    sign,
    verify_signature,
)

__all__ = [
    "DEFAULT_TOLERANCE_S",
    "IDEMPOTENCY_HEADER",
    "SIGNATURE_HEADER",
    "SIGNATURE_SCHEME",
    "TIMESTAMP_HEADER",
    "WebhookConnector",
    "WebhookSettings",
    "idempotency_key",
    "sign",
    "verify_signature",
]

T = TypeVar("T")
Operation = Literal[
    "find",
    "get",
    "create",
    "update",
    "disable",
    "enable",
    "delete",
    "add_member",
    "remove_member",
    "list",
    "list_members",
    "health",
]
#: What the receiver stores and gives back: every text field of the profile.
MANAGED_FIELDS = TEXT_FIELDS


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


class WebhookConnector:
    """Provisions accounts by signed POSTs to a receiver (see the module docstring)."""

    managed_fields = MANAGED_FIELDS

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
            transport=async_transport(),
            mounts=env_proxy_mounts(),
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    async def ensure_account(self, user_id: str, profile: Profile) -> AccountRef:
        """``create``: the receiver makes the account unless it has one (adopting an unlinked
        one: linking it and writing the profile)."""
        return await self._write("create", user_id, profile)

    async def update_account(self, user_id: str, profile: Profile) -> AccountRef:
        """``update``: the receiver brings the account to the profile, creating it if lost."""
        return await self._write("update", user_id, profile)

    async def disable_account(self, user_id: str, user_name: str) -> str | None:
        """``disable``; idempotent."""
        return await self._for_account(_account_id, "disable", user_id, user_name)

    async def enable_account(self, user_id: str, user_name: str) -> str | None:
        """``enable``; idempotent."""
        return await self._for_account(_account_id, "enable", user_id, user_name)

    async def delete_account(self, user_id: str, user_name: str) -> str | None:
        """``delete``; an account already gone is success (None)."""
        return await self._for_account(_account_id, "delete", user_id, user_name)

    async def find_account(self, user_id: str, user_name: str) -> str | None:
        """``find``: the account linked to user_id, else the unlinked one named user_name."""
        return await self._for_account(_account_id, "find", user_id, user_name)

    def as_stored(self, profile: Profile) -> Profile:
        """The profile itself: the receiver stores it whole and derives nothing."""
        return profile

    async def get_account(self, user_id: str, user_name: str) -> TargetAccount | None:
        """``get``: the account linked to user_id, else the one named user_name, whoever's."""
        return await self._for_account(_account, "get", user_id, user_name)

    async def list_accounts(self, *, page_size: int = 200) -> AsyncIterator[TargetAccount]:
        """``list``, a page at a time, following ``next_cursor`` until it is null."""
        what = f"{self.name}: list"
        cursor: str | None = None
        while True:
            call = {"operation": "list", "cursor": cursor, "limit": page_size}
            accounts, next_cursor = await self._post(what, call, _page)
            for account in accounts:
                yield account
            if next_cursor is None:
                return
            if next_cursor == cursor:
                raise TargetRejected(f"{what}: next_cursor {cursor!r} repeats the last one")
            cursor = next_cursor

    async def add_member(self, user_id: str, user_name: str, group: str) -> str | None:
        """``add_member``: the receiver creates the group if it has none; idempotent."""
        return await self._for_account(_account_id, "add_member", user_id, user_name, group=group)

    async def remove_member(self, user_id: str, user_name: str, group: str) -> str | None:
        """``remove_member``; idempotent, a missing group included."""
        return await self._for_account(
            _account_id, "remove_member", user_id, user_name, group=group
        )

    async def list_members(self, group: str) -> list[str]:
        """``list_members``: the members' account ids."""
        call = {"operation": "list_members", "group": group}
        return await self._post(f"{self.name}: list_members {group!r}", call, _members)

    async def health(self) -> None:
        """``health``: any 2xx answer to a signed call."""
        await self._send(f"{self.name}: health", {"operation": "health"})

    async def close(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.aclose()

    async def _write(
        self, operation: Literal["create", "update"], user_id: str, profile: Profile
    ) -> AccountRef:
        what = f"{self.name}: {operation} {profile.user_name!r}"
        call = {
            "operation": operation,
            "user_id": user_id,
            "user_name": profile.user_name,
            "profile": profile.model_dump(mode="json"),
        }
        return await self._post(what, call, _account_ref)

    async def _for_account(
        self,
        parse: Callable[[str, dict[str, Any]], T],
        operation: Operation,
        user_id: str,
        user_name: str,
        **fields: str,
    ) -> T | None:
        """A call about an identity's account: its answer, None when it has none (404)."""
        what = f"{self.name}: {operation} {user_name!r}"
        call = {"operation": operation, "user_id": user_id, "user_name": user_name, **fields}
        response = await self._send(what, call, missing_ok=True)
        return None if response.status_code == 404 else parse(what, _json_object(what, response))

    async def _post(
        self, what: str, call: dict[str, Any], parse: Callable[[str, dict[str, Any]], T]
    ) -> T:
        """A call whose every answer but a 2xx is a failure; its answer, parsed."""
        return parse(what, _json_object(what, await self._send(what, call)))

    async def _send(
        self, what: str, call: dict[str, Any], *, missing_ok: bool = False
    ) -> httpx.Response:
        """Sign and POST the call: a 2xx answer (or a 404 if missing_ok); others raise."""
        operation, user_id = call["operation"], call.get("user_id", "")
        body = json.dumps(call, separators=(",", ":"), sort_keys=True).encode("utf-8")
        timestamp = str(int(self._clock()))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self._secret.get_secret_value().encode(), timestamp, body),
            IDEMPOTENCY_HEADER: idempotency_key(operation, user_id, body),
        }
        try:
            response = await self._client.post(self._url, content=body, headers=headers)
        except httpx.TimeoutException:
            raise TargetUnavailable(f"{what} timed out") from None
        except httpx.TransportError as error:
            raise TargetUnavailable(f"{what} failed: {type(error).__name__}") from None
        status = response.status_code
        if 200 <= status < 300 or (status == 404 and missing_ok):
            return response
        detail = _detail(response)
        suffix = f": {detail}" if detail else ""
        if status == 409:
            raise TargetRejected(f"{what}: belongs to another identity (409){suffix}")
        message = f"{what} -> {status}{suffix}"
        if status == 429 or status >= 500:
            raise TargetUnavailable(message, retry_after=_retry_after(response, self._clock()))
        raise TargetRejected(message)


def _json_object(what: str, response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise TargetRejected(f"{what}: the answer is not JSON") from None
    if not isinstance(body, dict):
        raise TargetRejected(f"{what}: the answer is not a JSON object")
    return body


def _account_id(what: str, body: dict[str, Any]) -> str:
    account_id = body.get("account_id")
    if not isinstance(account_id, str) or not account_id:
        raise TargetRejected(f"{what}: the answer has no account_id")
    return account_id


def _account_ref(what: str, body: dict[str, Any]) -> AccountRef:
    account_id = _account_id(what, body)
    created = body.get("created")
    if not isinstance(created, bool):
        raise TargetRejected(f"{what}: the answer has no boolean 'created'")
    return AccountRef(account_id, already_existed=not created)


def _account(what: str, body: object) -> TargetAccount:
    if not isinstance(body, dict):
        raise TargetRejected(f"{what}: an account is not a JSON object")
    account_id = _account_id(what, body)
    owner, active, profile = body.get("owner"), body.get("active"), body.get("profile")
    if owner is not None and (not isinstance(owner, str) or not owner):
        raise TargetRejected(f"{what}: the account's owner is neither null nor a user_id")
    if not isinstance(active, bool):
        raise TargetRejected(f"{what}: the account has no boolean 'active'")
    if not isinstance(profile, dict):
        raise TargetRejected(f"{what}: the account has no profile object")
    try:
        read = Profile.model_validate({field: profile.get(field) for field in MANAGED_FIELDS})
    except ValidationError as error:
        fields = sorted({str(e["loc"][0]) for e in error.errors() if e["loc"]})
        raise TargetRejected(f"{what}: the account's profile is invalid: {fields}") from None
    return TargetAccount(account_id, owner, active, read)


def _page(what: str, body: dict[str, Any]) -> tuple[list[TargetAccount], str | None]:
    accounts, cursor = body.get("accounts"), body.get("next_cursor")
    if not isinstance(accounts, list):
        raise TargetRejected(f"{what}: the answer has no list of accounts")
    if cursor is not None and (not isinstance(cursor, str) or not cursor):
        raise TargetRejected(f"{what}: next_cursor is neither null nor a string")
    return [_account(what, item) for item in accounts], cursor


def _members(what: str, body: dict[str, Any]) -> list[str]:
    members = body.get("members")
    if not isinstance(members, list) or not all(isinstance(m, str) and m for m in members):
        raise TargetRejected(f"{what}: the answer has no list of account ids")
    return members


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
    return retry_after_seconds(response.headers.get("Retry-After", ""), now)
