"""Refuse, before any route sees it, input that no Accord store can hold or echo safely.

PostgreSQL's text and jsonb cannot hold U+0000, so a NUL anywhere in a request (its path,
its query, a string of its JSON body) could only fail deep inside a handler, as a 500. A
control character in the path is no id of anything; some error paths also repeat the URL in a
header (a SCIM Location), where it would break the response itself. Both are refused here
with a 400 in the error format of the path (problem+json, or a SCIM error under a SCIM
mount: `invalidPath`, `invalidValue`).
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from accord.runtime.problems import refusal

#: C0 controls and DEL: none is part of a route or an id.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: What a JSON body's media type looks like: application/json, application/scim+json, ...
_JSON_MEDIA = re.compile(rb"^application/([a-z0-9.+-]*\+)?json\s*(;|$)")


class InputGuardMiddleware:
    """400 for a control character in the path, or a NUL in the query or a JSON body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _CONTROL.search(scope.get("path", "")):
            detail = "the path holds a control character"
            await refusal(scope, 400, detail, scim_type="invalidPath")(scope, receive, send)
            return
        # Percent-encoded, as sent: a NUL arrives as %00 (a raw one never passes the parser).
        if b"%00" in scope.get("query_string", b""):
            detail = "the query holds a NUL character, which cannot be stored or searched"
            await refusal(scope, 400, detail, scim_type="invalidValue")(scope, receive, send)
            return
        if not _json_body_expected(scope):
            await self.app(scope, receive, send)
            return
        body, complete = await _read(receive)
        if not complete:
            return  # the client left before sending its whole body: nobody to answer
        if _holds_nul(body):
            detail = "a value in the body holds a NUL character, which cannot be stored"
            await refusal(scope, 400, detail, scim_type="invalidValue")(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)


def _json_body_expected(scope: Scope) -> bool:
    """Whether the request carries a body the API will read as JSON."""
    headers = dict(scope.get("headers", []))
    if headers.get(b"content-length", b"0") == b"0" and b"transfer-encoding" not in headers:
        return False
    media = headers.get(b"content-type")
    # FastAPI reads a body without a media type as JSON, and so does scim2-server.
    return media is None or _JSON_MEDIA.match(media.lower()) is not None


async def _read(receive: Receive) -> tuple[bytes, bool]:
    """The whole body (the body limit, outside, bounds it), and whether it all came."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), True


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the body read already, then whatever the client sends next."""
    pending = True

    async def replayed() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def _holds_nul(body: bytes) -> bool:
    """Whether a string or a name of a JSON body holds U+0000.

    JSON can only write a NUL as the escape \\u0000 (or, in UTF-16 or UTF-32, with NUL bytes):
    a body with neither is not parsed here at all. A body that is not JSON is left to the
    API, which refuses it in its own words.
    """
    if b"\\u0000" not in body and b"\x00" not in body:
        return False
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return False
    pending: list[Any] = [document]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return True
        elif isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return False
