"""HTTP API of Temporary Access Passes: a help desk (mfa:manage) issues, reads and revokes an
identity's pass; the identity, or an identity provider on its behalf (authn:verify), redeems
it for a short-lived enrolment grant with which the identity enrols its first factor
(`Accord-Enrolment-Grant` on the factor routes, factors_api).

The code is answered once, by the issuing call (Cache-Control: no-store); no route, event or
log shows it again. A redemption that fails answers 401 the same way whatever the reason
(no such identity, no pass, wrong code, expired, not yet valid, spent, locked), so nothing
tells a guesser whether an identity or a pass exists; each identity (as named in the
request) is rate limited, and wrong codes lock its pass after a few.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, HTTPException, Response
from pydantic import BaseModel, ConfigDict, StringConstraints, model_validator

from accord.authn.adapters.access_passes import PostgresAccessPasses
from accord.authn.domain import access_pass as tap
from accord.authn.domain.access_pass import AccessPass, AccessPassPolicy, Pepper
from accord.authn.domain.sealing import Keyring, KeyringError
from accord.authn.ports import AccessPasses
from accord.authn.settings import AuthnSettings
from accord.events import new_event
from accord.events.catalogue.authn import AccessPassIssued, AccessPassRedeemed
from accord.events.catalogue.base import Identifier
from accord.runtime.app_deps import Mounted
from accord.runtime.params import Id
from accord.runtime.problems import documented
from accord.runtime.security.api import own_or, require
from accord.runtime.security.rate_limit import RateLimiter, retry_after_header
from accord.runtime.security.roles import Caller, Permission
from accord.runtime.service import Runtime

log = logging.getLogger(__name__)

#: What a code may look like on the wire (normalised and checked by the domain).
CodeText = Annotated[str, StringConstraints(min_length=1, max_length=32)]
#: A user name as SCIM and HR systems give them: printable, bounded.
UserName = Annotated[
    str, StringConstraints(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")
]
#: The keyring purpose of the code HMAC keys: changing it voids every pass.
PEPPER_PURPOSE = "access-pass-code"
#: Redemptions per identity (as named in the request, known or not): a burst of 10, then one
#: every 6 seconds. The pass itself locks after a few wrong codes (AccessPassPolicy); this
#: bounds the work and the noise of probing identities that have none.
REDEEM_RATE_PER_S = 1 / 6
REDEEM_BURST = 10
_REFUSED = "the access pass was not accepted"
_BODY = ConfigDict(extra="forbid", frozen=True)


class IssueRequest(BaseModel):
    """A new pass: how long it lasts (ISO 8601 duration or seconds), whether one use spends
    it, and when it starts (now if absent or past)."""

    model_config = _BODY
    lifetime: timedelta = timedelta(hours=1)
    one_time: bool = True
    starts_at: datetime | None = None

    @model_validator(mode="after")
    def _aware(self) -> IssueRequest:
        if self.starts_at is not None and self.starts_at.tzinfo is None:
            raise ValueError("starts_at needs a UTC offset")
        return self


class RedeemById(BaseModel):
    """A code for the identity of this user_id."""

    model_config = _BODY
    user_id: Identifier
    code: CodeText


class RedeemByName(BaseModel):
    """A code for the identity of this user name (what a new hire types at a sign-in page)."""

    model_config = _BODY
    user_name: UserName
    code: CodeText


#: One or the other: the schema says so (oneOf), so a client cannot send both or neither.
RedeemRequest = Annotated[RedeemById | RedeemByName, Body()]


@dataclass(frozen=True)
class AccessPassDeps:
    """What the routes work with: a transaction over the store, the code keys, the policy,
    the per-identity redemption limiter, the clock, and the source of the events."""

    transaction: Callable[[], AbstractAsyncContextManager[AccessPasses]]
    pepper: Pepper
    policy: AccessPassPolicy
    limiter: RateLimiter
    clock: Callable[[], datetime]
    source: str


_deps = Mounted[AccessPassDeps]("authn_access_passes")


def pepper_of(keyring: Keyring) -> Pepper:
    """The code HMAC keys, from the credential keyring (its first key hashes new codes)."""
    return Pepper(keyring.subkeys(PEPPER_PURPOSE), keyring.primary_id)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def mount(app: FastAPI, deps: AccessPassDeps) -> None:
    """Mount the routes over these dependencies (the unit tests mount fakes)."""
    _deps.mount(app, deps, router)


def configure(app: FastAPI, runtime: Runtime, settings: AuthnSettings) -> None:
    """Mount the routes over PostgreSQL; KeyringError if the credential keys are unusable."""
    if settings.credential_keys is None:
        raise KeyringError("ACCORD_AUTHN_CREDENTIAL_KEYS is required (id:base64key,...)")
    keyring = Keyring.parse(settings.credential_keys.get_secret_value())

    @asynccontextmanager
    async def transaction() -> AsyncIterator[AccessPasses]:
        async with runtime.pool.acquire() as conn, conn.transaction():
            yield PostgresAccessPasses(conn, runtime.schema)

    mount(
        app,
        AccessPassDeps(
            transaction=transaction,
            pepper=pepper_of(keyring),
            policy=AccessPassPolicy(),
            limiter=RateLimiter(REDEEM_RATE_PER_S, REDEEM_BURST),
            clock=_utcnow,
            source=runtime.source,
        ),
    )


def _metadata(found: AccessPass, now: datetime) -> dict[str, Any]:
    """What anyone may see of a pass: never its code nor its hash."""
    return {
        "pass_id": found.pass_id,
        "user_id": found.user_id,
        "state": found.state(now).value,
        "one_time": found.one_time,
        "starts_at": found.starts_at,
        "expires_at": found.expires_at,
        "created_at": found.created_at,
        "created_by": found.created_by,
        "used_at": found.used_at,
        "failed_attempts": found.failed_attempts,
        "locked_at": found.locked_at,
    }


router = APIRouter(prefix="/v1", tags=["access-passes"])
_manager = require(Permission.MFA_MANAGE)
# The identity itself, or an identity provider on its behalf (as POST /v1/authn/verify).
_redeemer = own_or(Permission.AUTHN_VERIFY)
_NO_STORE = {"Cache-Control": "no-store"}


@router.post(
    "/users/{user_id}/access-passes",
    status_code=201,
    summary="Issue a Temporary Access Pass (replaces any): its code is shown this once",
    responses={400: documented("Lifetime or start out of bounds (or malformed request)")},
)
async def issue_pass(
    user_id: Id,
    response: Response,
    body: IssueRequest | None = None,
    caller: Caller = Depends(_manager),
    deps: AccessPassDeps = Depends(_deps),
) -> Any:
    asked = body or IssueRequest()
    now = deps.clock()
    try:
        issued, code = tap.issue(
            pass_id=f"tap-{uuid.uuid4().hex}",
            user_id=user_id,
            lifetime=asked.lifetime,
            one_time=asked.one_time,
            starts_at=asked.starts_at,
            now=now,
            created_by=caller.subject,
            pepper=deps.pepper,
            policy=deps.policy,
        )
    except tap.PassError as error:
        raise HTTPException(400, str(error)) from None
    async with deps.transaction() as store:
        replaced = await store.put(issued)
        announced = AccessPassIssued(
            user_id=user_id,
            pass_id=issued.pass_id,
            issued_by=caller.subject[:256],
            starts_at=issued.starts_at,
            expires_at=issued.expires_at,
            one_time=issued.one_time,
        )
        await store.announce([new_event(announced, source=deps.source)])
    log.info(
        "access pass issued",
        extra={
            "user_id": user_id,
            "pass_id": issued.pass_id,
            "replaced": replaced.pass_id if replaced else None,
        },
    )
    response.headers.update(_NO_STORE)
    return {**_metadata(issued, now), "code": code}


@router.get(
    "/users/{user_id}/access-passes",
    summary="The identity's Temporary Access Pass (never its code)",
    responses={404: documented("The identity has no pass")},
)
async def show_pass(
    user_id: Id, caller: Caller = Depends(_manager), deps: AccessPassDeps = Depends(_deps)
) -> Any:
    async with deps.transaction() as store:
        found = await store.of_user(user_id)
    if found is None:
        raise HTTPException(404, "the identity has no access pass")
    return _metadata(found, deps.clock())


@router.delete(
    "/users/{user_id}/access-passes",
    status_code=204,
    response_class=Response,
    summary="Revoke the identity's Temporary Access Pass and the grants it gave",
    responses={404: documented("The identity has no pass")},
)
async def revoke_pass(
    user_id: Id, caller: Caller = Depends(_manager), deps: AccessPassDeps = Depends(_deps)
) -> Response:
    async with deps.transaction() as store:
        revoked = await store.revoke(user_id)
    if revoked is None:
        raise HTTPException(404, "the identity has no access pass")
    log.info("access pass revoked", extra={"user_id": user_id, "pass_id": revoked.pass_id})
    return Response(status_code=204)


def _refused() -> HTTPException:
    return HTTPException(401, _REFUSED, headers={"WWW-Authenticate": 'AccessPass realm="accord"'})


@router.post(
    "/access-passes/redeem",
    summary="Redeem a Temporary Access Pass for a short-lived first-factor enrolment grant",
    responses={401: documented("Not accepted (whatever the reason), or no credentials")},
)
async def redeem_pass(
    body: RedeemRequest,
    response: Response,
    caller: Caller = Depends(_redeemer),
    deps: AccessPassDeps = Depends(_deps),
) -> Any:
    named = body.user_id if isinstance(body, RedeemById) else f"name:{body.user_name}"
    wait = deps.limiter.acquire(named)
    if wait > 0:
        raise HTTPException(429, "too many attempts", headers=retry_after_header(wait))
    now = deps.clock()
    async with deps.transaction() as store:
        if isinstance(body, RedeemById):
            user_id: str | None = body.user_id
        else:
            user_id = await store.user_named(body.user_name)
        # Oneself, unless an identity provider redeems on the identity's behalf.
        mine = user_id is not None and (
            caller.may(Permission.AUTHN_VERIFY) or caller.subject == user_id
        )
        found = await store.of_user(user_id, for_update=True) if mine and user_id else None
        if found is None:
            # As much work as a real check: the answer's time says nothing either.
            tap.redeem(_DUMMY, body.code, now=now, pepper=_DUMMY_PEPPER, policy=deps.policy)
            raise _refused()
        attempt = tap.redeem(found, body.code, now=now, pepper=deps.pepper, policy=deps.policy)
        if attempt.updated != found:
            await store.record(attempt.updated)
        grant: tuple[str, datetime] | None = None
        if attempt.accepted:
            value, digest = tap.new_grant()
            expires_at = min(now + deps.policy.grant_ttl, found.expires_at)
            await store.add_grant(digest, found.user_id, found.pass_id, expires_at)
            redeemed = AccessPassRedeemed(
                user_id=found.user_id, pass_id=found.pass_id, redeemed_by=caller.subject[:256]
            )
            await store.announce([new_event(redeemed, source=deps.source)])
            grant = (value, expires_at)
    # Committed first: a wrong code counts although the answer is a refusal.
    if grant is None:
        log.info(
            "access pass refused",
            extra={
                "user_id": found.user_id,
                "pass_id": found.pass_id,
                "reason": "wrong code" if attempt.wrong_code else str(attempt.refused),
                "locked": attempt.updated.locked_at is not None,
            },
        )
        raise _refused()
    log.info("access pass redeemed", extra={"user_id": found.user_id, "pass_id": found.pass_id})
    response.headers.update(_NO_STORE)
    return {
        "user_id": found.user_id,
        "pass_id": found.pass_id,
        "enrolment_grant": grant[0],
        "expires_at": grant[1],
        "header": ENROLMENT_GRANT_HEADER,
    }


#: The header that carries an enrolment grant to the factor routes.
ENROLMENT_GRANT_HEADER = "Accord-Enrolment-Grant"
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_DUMMY_PEPPER = Pepper({"dummy": b"\0" * 32}, "dummy")
_DUMMY = AccessPass(
    pass_id="tap-none",  # noqa: S106 (an id, not a password)
    user_id="none",
    key_id="dummy",
    code_hash=b"\0" * 32,
    starts_at=_EPOCH,
    expires_at=_EPOCH + timedelta(hours=1),
    one_time=True,
    created_by="none",
    created_at=_EPOCH,
)


async def grant_holds(store: AccessPasses, user_id: str, grant: str | None, now: datetime) -> bool:
    """Whether `grant` lets someone enrol the identity's first factor now: it is the
    identity's, not expired, and the identity holds no active factor yet."""
    if not grant or not grant.startswith("eg_") or len(grant) > 64:
        return False
    if not await store.grant_holds(tap.grant_hash(grant), user_id, now):
        return False
    return not await store.has_active_factor(user_id)
