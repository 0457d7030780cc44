"""The ``call_extension`` task: a signed request to a team's own service, and its answer.

A custom extension is an HTTP endpoint a team runs (hand a mailbox over, open a ticket,
order a laptop). The task POSTs the identity's data to it, signed with the task's secret
(accord.runtime.signing: ``X-Accord-Timestamp`` and ``X-Accord-Signature``, the scheme of the
provisioner's webhooks), and either takes the answer's outputs at once or waits for the
extension to call back (callback_api.py) until a deadline, after which the task's
``on_timeout`` policy decides (:func:`on_timeout`).

The request
===========

``POST <url>`` with ``Content-Type: application/json``, the signature headers and
``Idempotency-Key: <run_id>:<task_id>`` (equal for every attempt of one task of one run, so
an extension can recognise a call repeated after a crash or a transient failure)::

    {"run_id": "...", "task_id": "...",
     "identity": {...},                           # the identity's data the task sends
     "callback": {"url": "...", "token": "..."}   # or null when the task does not wait
    }

A waiting task's extension answers the callback URL (see callback_api.py) with the same
signature scheme and secret, and the token in ``X-Accord-Callback-Token``.

The answer
==========

- 2xx: an empty body, or a JSON object whose members become the task's outputs (variables
  for later tasks): at most 64 of them, each named like an identifier and holding a string,
  a number or a boolean (:func:`parse_outputs`). Anything else is a permanent error.
- 4xx (but 429), 3xx (redirects are not followed): :class:`ExtensionRejected`, permanent.
- 429, 5xx, a timeout, a connection failure: :class:`ExtensionUnavailable`, transient, with
  the ``Retry-After`` the answer gave.

The secret is read from the environment variable the definition names (``secret_env``) at
each call, so that a rotated secret is used without a restart; it is never sent, logged, or
put in an exception or a repr.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, TypeAlias
from urllib.parse import quote, urlsplit

import httpx

from accord.runtime.retry_after import retry_after_seconds
from accord.runtime.signing import IDEMPOTENCY_HEADER, signed_headers
from accord.runtime.url_guard import ForbiddenAddress, Resolver, check_url, system_resolver

#: What an extension's answer or callback may hand to later tasks.
OutputValue: TypeAlias = str | int | float | bool
Outputs: TypeAlias = dict[str, OutputValue]

#: Header carrying a waiting call's callback token back (see callback_api.py).
CALLBACK_TOKEN_HEADER = "X-Accord-Callback-Token"  # noqa: S105 (a header name, not a secret)
MAX_OUTPUTS = 64
MAX_OUTPUT_TEXT = 4096
#: The most an answer or a callback body may hold.
MAX_BODY_BYTES = 64 * 1024
#: Output names are variables of later tasks' expressions: identifiers, not free text.
_OUTPUT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
#: An environment variable's name, as POSIX shells spell them.
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_OPT_IN = "set allow_link_local: true on the task if this is really intended"


class ExtensionError(Exception):
    """A call to a custom extension failed; `reason` says why, without the secret."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ExtensionRejected(ExtensionError):
    """Permanent: trying again would fail the same way (a 4xx, a bad answer, a bad URL)."""


class ExtensionUnavailable(ExtensionError):
    """Transient: try again later, not before `retry_after` seconds when the answer said so."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class InvalidOutputs(ValueError):
    """An answer's or a callback's body is not a flat map of outputs."""


@dataclass(frozen=True)
class Callback:
    """Where a waiting call's extension answers, and the token that binds the answer to it.

    The signature covers the timestamp and the body, not the URL: without a token of its
    own, a callback signed for one run could be replayed (within the freshness window) to
    another run's task that shares the secret.
    """

    url: str
    token: str = field(repr=False)


@dataclass(frozen=True)
class ExtensionCall:
    """One call of a ``call_extension`` task of one run: all the client needs to make it."""

    run_id: str
    task_id: str
    url: str
    #: Name of the environment variable holding the task's secret (never the secret).
    secret_env: str
    #: The identity's data the call sends (the attributes the definition chose).
    identity: Mapping[str, Any]
    #: Where and how the extension calls back; None when the task does not wait.
    callback: Callback | None = None
    timeout_s: float = 10.0
    allow_link_local: bool = False

    @property
    def idempotency_key(self) -> str:
        """Equal for every attempt of this task in this run."""
        return f"{self.run_id}:{self.task_id}"

    def body(self) -> bytes:
        """The JSON body sent (compact, sorted: the bytes that are signed)."""
        callback = None
        if self.callback is not None:
            callback = {"url": self.callback.url, "token": self.callback.token}
        document = {
            "run_id": self.run_id,
            "task_id": self.task_id,
            "identity": dict(self.identity),
            "callback": callback,
        }
        return json.dumps(document, separators=(",", ":"), sort_keys=True).encode("utf-8")


def new_callback(base_url: str, run_id: str, task_id: str) -> Callback:
    """A fresh callback for a waiting call: its URL under base_url and a random token."""
    path = f"/v1/workflow-callbacks/{quote(run_id, safe='')}/{quote(task_id, safe='')}"
    return Callback(url=base_url.rstrip("/") + path, token=secrets.token_urlsafe(32))


def read_secret(secret_env: str, environ: Mapping[str, str] = os.environ) -> bytes:
    """The task's secret, read from the environment variable it names.

    A missing or empty variable is a permanent error naming the variable (not its value):
    the deployment must set it.
    """
    if not _ENV_NAME.match(secret_env):
        raise ExtensionRejected(f"secret_env {secret_env!r} is not an environment variable name")
    value = environ.get(secret_env, "")
    if not value:
        raise ExtensionRejected(f"the secret variable {secret_env} is not set")
    return value.encode("utf-8")


def parse_outputs(document: object) -> Outputs:
    """The outputs a JSON document holds: a flat object of string, number or boolean values.

    Raises InvalidOutputs with a reason that names the offending output, never its value.
    """
    if not isinstance(document, dict):
        raise InvalidOutputs("the outputs are not a JSON object")
    if len(document) > MAX_OUTPUTS:
        raise InvalidOutputs(f"{len(document)} outputs, more than {MAX_OUTPUTS}")
    outputs: Outputs = {}
    for name, value in document.items():
        if not isinstance(name, str) or not _OUTPUT_NAME.match(name):
            raise InvalidOutputs("an output's name is not an identifier (letters, digits, _)")
        if isinstance(value, str):
            if len(value) > MAX_OUTPUT_TEXT:
                raise InvalidOutputs(f"output {name} is longer than {MAX_OUTPUT_TEXT} characters")
        elif isinstance(value, float) and not math.isfinite(value):
            raise InvalidOutputs(f"output {name} is not a finite number")
        elif not isinstance(value, bool | int | float):
            raise InvalidOutputs(f"output {name} is not a string, a number or a boolean")
        outputs[name] = value
    return outputs


def decode_outputs(body: bytes) -> Outputs:
    """The outputs of a raw JSON body; an empty body holds none."""
    if not body.strip():
        return {}
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidOutputs("the body is not JSON") from None
    return parse_outputs(document)


class ExtensionClient:
    """Makes ``call_extension`` calls: one connection pool for every extension."""

    def __init__(
        self,
        *,
        environ: Mapping[str, str] = os.environ,
        clock: Callable[[], float] = time.time,
        resolve: Resolver = system_resolver,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._environ = environ
        self._clock = clock
        self._resolve = resolve
        self._client = httpx.AsyncClient(
            headers={"Accept": "application/json", "User-Agent": "accord-orchestrator"},
            follow_redirects=False,
            transport=transport,
        )

    async def call(self, call: ExtensionCall) -> Outputs:
        """POST the call, signed; the outputs of a 2xx answer, else ExtensionRejected or
        ExtensionUnavailable (see the module docstring)."""
        what = f"extension {call.task_id} at {urlsplit(call.url).hostname or '?'}"
        parts = urlsplit(call.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ExtensionRejected(f"{what}: the url is not an absolute http(s) URL")
        if not (math.isfinite(call.timeout_s) and call.timeout_s > 0):
            raise ExtensionRejected(f"{what}: timeout_s is not a positive number of seconds")
        await self._check_address(what, call)
        secret = read_secret(call.secret_env, self._environ)
        body = call.body()
        headers = {
            "Content-Type": "application/json",
            IDEMPOTENCY_HEADER: call.idempotency_key,
            **signed_headers(secret, body, now=self._clock()),
        }
        request = self._client.build_request(
            "POST", call.url, content=body, headers=headers, timeout=call.timeout_s
        )
        try:
            response = await self._client.send(request, stream=True)
            try:
                answer = await _read_limited(response)
            finally:
                await response.aclose()
        except httpx.TimeoutException:
            raise ExtensionUnavailable(f"{what} timed out after {call.timeout_s:g} s") from None
        except httpx.TransportError as error:
            raise ExtensionUnavailable(f"{what} failed: {type(error).__name__}") from None
        return self._outcome(what, response, answer)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def _check_address(self, what: str, call: ExtensionCall) -> None:
        # Resolving a name blocks: off the event loop. Checked at each call, not only when
        # the definition loads, so that a name re-pointed at a metadata address is caught.
        try:
            await asyncio.to_thread(
                check_url,
                call.url,
                allow_link_local=call.allow_link_local,
                resolve=self._resolve,
                opt_in=_OPT_IN,
            )
        except ForbiddenAddress as error:
            raise ExtensionRejected(f"{what}: {error}") from None

    def _outcome(self, what: str, response: httpx.Response, answer: bytes | None) -> Outputs:
        status = response.status_code
        if answer is None:
            raise ExtensionRejected(f"{what}: the answer is larger than {MAX_BODY_BYTES} bytes")
        if 200 <= status < 300:
            try:
                return decode_outputs(answer)
            except InvalidOutputs as error:
                raise ExtensionRejected(f"{what}: bad answer: {error}") from None
        detail = _detail(answer)
        message = f"{what} -> {status}" + (f": {detail}" if detail else "")
        if status == 429 or status >= 500:
            retry_after = retry_after_seconds(
                response.headers.get("Retry-After", ""), self._clock()
            )
            raise ExtensionUnavailable(message, retry_after=retry_after)
        raise ExtensionRejected(message)


async def _read_limited(response: httpx.Response) -> bytes | None:
    """The answer's body, or None when it exceeds MAX_BODY_BYTES (not read any further)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _detail(answer: bytes) -> str:
    """A refusal's reason, if the answer gave one as JSON (``detail`` or ``error``)."""
    try:
        document = json.loads(answer)
    except (ValueError, UnicodeDecodeError):
        return ""
    if isinstance(document, dict):
        return str(document.get("detail") or document.get("error") or "")[:200]
    return ""


# --- timeouts -------------------------------------------------------------------------


class OnTimeout(StrEnum):
    """What a waiting task does when no callback came before its deadline."""

    FAIL = "fail"
    CONTINUE = "continue"


@dataclass(frozen=True)
class TimeoutOutcome:
    """How the engine ends a task whose callback did not come: failed, or done without
    outputs (later tasks see none of its variables)."""

    failed: bool
    reason: str


def callback_deadline(started_at: datetime, timeout: timedelta) -> datetime:
    """When a waiting task stops waiting: `timeout` after the call was made."""
    if started_at.tzinfo is None:
        raise ValueError("started_at must be timezone-aware")
    if timeout <= timedelta(0):
        raise ValueError("a callback timeout must be positive")
    return started_at + timeout


def on_timeout(policy: OnTimeout | str) -> TimeoutOutcome:
    """The task's outcome when its deadline passed without a callback."""
    if OnTimeout(policy) is OnTimeout.FAIL:
        return TimeoutOutcome(failed=True, reason="no callback before the deadline")
    return TimeoutOutcome(failed=False, reason="no callback before the deadline; continued")
