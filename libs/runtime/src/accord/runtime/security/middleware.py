"""ASGI middleware for every service: body size limit and security headers."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from accord.runtime.problems import refusal

CSP = b"content-security-policy"
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (CSP, b"default-src 'none'; frame-ancestors 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


class _TooLarge(HTTPException):
    """Raised from receive(): FastAPI passes HTTP exceptions through its body parsing."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"the request body is larger than {max_bytes} bytes")


class BodyLimitMiddleware:
    """413 for a request body over the limit, declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = refusal(scope, 413, f"the request body is larger than {self.max_bytes} bytes")
        await response(scope, receive, send)


_CSP_OVERRIDES = "csp_overrides"


def override_csp(app: Starlette, prefix: str, policy: str) -> None:
    """Serve the paths under prefix (a page and its assets) with their own CSP.

    Kept on the app's state, so a service's routes can ask for it after the middleware was
    added. Every other path keeps the strict default, which allows nothing at all.
    """
    if not prefix.startswith("/") or prefix.endswith("/"):
        raise ValueError(f"a CSP prefix is a path without a trailing slash, not {prefix!r}")
    overrides: dict[str, bytes] = getattr(app.state, _CSP_OVERRIDES, {})
    overrides[prefix] = policy.encode()
    setattr(app.state, _CSP_OVERRIDES, overrides)


def _csp_override(scope: Scope) -> bytes | None:
    """The longest prefix's policy that covers the path (whole segments only), if any."""
    state = getattr(scope.get("app"), "state", None)
    overrides: dict[str, bytes] = getattr(state, _CSP_OVERRIDES, None) or {}
    path: str = scope.get("path", "")
    covering = [p for p in overrides if path == p or path.startswith(p + "/")]
    return overrides[max(covering, key=len)] if covering else None


class SecurityHeadersMiddleware:
    """Headers that keep browsers from sniffing, framing or caching API answers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = _csp_override(scope)
        defaults = [
            (n, policy if n == CSP and policy is not None else v) for n, v in SECURITY_HEADERS
        ]

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (n, v) for n, v in defaults if n not in present
                ]
            await send(message)

        await self.app(scope, receive, with_headers)
