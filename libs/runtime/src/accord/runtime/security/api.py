"""Who is calling: bearer credentials to a Caller, and the endpoint's permission check.

Every endpoint except the health probes and the OpenAPI document depends on `require(...)`,
`own_or(...)` or `authenticated()`. Credentials are Accord API tokens (`acc_...`) or, when an
issuer is configured, OIDC access tokens (JWT).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import NoReturn

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from accord.runtime.security.api_tokens import InvalidToken, TokenStore
from accord.runtime.security.oidc import OidcVerifier, TokenRejected
from accord.runtime.security.rate_limit import RateLimiter, retry_after_header
from accord.runtime.security.roles import Caller, Permission, Role, parse_roles

log = logging.getLogger(__name__)

_bearer = HTTPBearer(auto_error=False, description="Accord API token (acc_...) or OIDC JWT")
_CHALLENGE = 'Bearer realm="accord"'


class ApiSecurity:
    """Authenticates requests and limits how fast each caller may call."""

    def __init__(
        self,
        tokens: TokenStore,
        oidc: OidcVerifier | None,
        *,
        per_caller: RateLimiter,
        failures: RateLimiter,
        per_application: RateLimiter | None = None,
    ) -> None:
        self.tokens = tokens
        self.oidc = oidc
        self._per_caller = per_caller
        self._failures = failures
        # Applications asking for decisions call far more often than people do.
        self._per_application = per_application or per_caller

    async def authenticate(self, request: Request, credentials: str | None) -> Caller:
        """The caller, or 401 (429 when one address keeps failing)."""
        if not credentials:
            self._unauthorized(request, "authentication required", invalid=False)
        try:
            caller = await self._verify(credentials)
        except (InvalidToken, TokenRejected) as error:
            self._unauthorized(request, str(error), invalid=True)
        high_rate = caller.roles & {Role.APPLICATION, Role.IDENTITY_PROVIDER}
        limiter = self._per_application if high_rate else self._per_caller
        wait = limiter.acquire(f"{caller.kind}:{caller.credential_id}")
        if wait > 0:
            raise HTTPException(429, "rate limit exceeded", headers=retry_after_header(wait))
        return caller

    async def _verify(self, credentials: str) -> Caller:
        if credentials.startswith("acc_"):
            return await self.tokens.verify(credentials)
        if self.oidc is None:
            raise InvalidToken("unknown credential type")
        verified = await self.oidc.verify(credentials)
        return Caller(
            subject=verified.subject,
            roles=parse_roles(list(verified.roles)),
            kind="oidc",
            credential_id=str(verified.claims.get("jti") or verified.subject),
        )

    def _unauthorized(self, request: Request, reason: str, *, invalid: bool) -> NoReturn:
        address = request.client.host if request.client else "unknown"
        wait = self._failures.acquire(address)
        if wait > 0:
            raise HTTPException(
                429, "too many failed authentications", headers=retry_after_header(wait)
            )
        log.info("request refused", extra={"reason": reason, "path": request.url.path})
        challenge = _CHALLENGE + (', error="invalid_token"' if invalid else "")
        raise HTTPException(401, reason, headers={"WWW-Authenticate": challenge})


def _security(request: Request) -> ApiSecurity:
    security: ApiSecurity | None = getattr(request.app.state, "security", None)
    if security is None:
        # Not started yet (or misconfigured): refuse rather than serve unauthenticated.
        raise HTTPException(503, "authentication is not available yet")
    return security


def authenticated() -> Callable[..., Awaitable[Caller]]:
    """Dependency: any authenticated caller (endpoints that check ownership themselves)."""

    async def dependency(
        request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
    ) -> Caller:
        token = credentials.credentials if credentials else None
        return await _security(request).authenticate(request, token)

    return dependency


def require(permission: Permission) -> Callable[..., Awaitable[Caller]]:
    """Dependency: an authenticated caller holding the permission, else 403."""
    authenticate = authenticated()

    async def dependency(caller: Caller = Depends(authenticate)) -> Caller:
        if not caller.may(permission):
            raise HTTPException(403, f"this needs the {permission.value} permission")
        return caller

    return dependency


def own_or(permission: Permission) -> Callable[..., Awaitable[Caller]]:
    """Dependency: a caller holding the permission (everyone's objects) or self-service (their
    own), else 403: a system's credential (a SCIM client, an application) has no objects of
    its own, so it is refused outright rather than shown an empty list.

    The endpoint still checks whose object it is (`may_see`, `own_unless_allowed`).
    """
    authenticate = authenticated()

    async def dependency(caller: Caller = Depends(authenticate)) -> Caller:
        if not (caller.may(permission) or caller.may(Permission.SELF_SERVICE)):
            raise HTTPException(
                403,
                f"this needs the {permission.value} or {Permission.SELF_SERVICE.value} permission",
            )
        return caller

    return dependency


def may_see(caller: Caller, permission: Permission, *owners: str) -> bool:
    """Object check: the permission over everyone's objects, or the caller owns this one."""
    return caller.may(permission) or caller.subject in owners


def own_unless_allowed(
    caller: Caller, permission: Permission, wanted: str | None, what: str
) -> str | None:
    """A listing's owner filter: any (or none) with the permission, else the caller's own.

    Asking for someone else's without the permission is a 403 naming it, not an empty page.
    """
    if caller.may(permission):
        return wanted
    if wanted not in (None, caller.subject):
        raise HTTPException(403, f"seeing someone else's {what} needs {permission.value}")
    return caller.subject
