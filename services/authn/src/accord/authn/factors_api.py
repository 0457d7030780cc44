"""HTTP API of MFA factors: enrol and confirm TOTP, register WebAuthn credentials, list and
remove factors, and verify a code or an assertion for an identity provider.

A TOTP secret is answered once, at enrolment; no route ever shows it again. Statuses:
a wrong confirmation code is 400, a pending enrolment past its TTL is 410 (enrol again),
a registration response that does not verify is 400 (its challenge is used up all the
same), one that answers no waiting ceremony is 404. A verification always answers 200 with
`verified` true or false, and records authn.succeeded or authn.failed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Generic, Literal, TypeVar

import asyncpg
from fastapi import APIRouter, Body, Depends, FastAPI, Header, HTTPException, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from accord.authn import factors
from accord.authn.access_pass_api import ENROLMENT_GRANT_HEADER, grant_holds
from accord.authn.adapters import credentials
from accord.authn.adapters.access_passes import PostgresAccessPasses
from accord.authn.factors import FactorConfig, FactorError, Factors
from accord.authn.settings import AuthnSettings
from accord.events.catalogue.base import Identifier
from accord.runtime.app_deps import Mounted
from accord.runtime.outbox import enqueue
from accord.runtime.params import Id
from accord.runtime.problems import documented
from accord.runtime.security.api import authenticated, may_see, own_or
from accord.runtime.security.roles import Caller, Permission
from accord.runtime.service import Runtime

#: A name a person gives a factor: printable, short.
Label = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")
]
Code = Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$")]
_B64URL = r"^[A-Za-z0-9_-]+={0,2}$"
#: A credential id: at most 1023 bytes (WebAuthn), base64url.
CredentialIdText = Annotated[str, StringConstraints(min_length=1, max_length=1400, pattern=_B64URL)]
#: Client data, authenticator data, signatures, attestation objects: base64url, bounded.
Blob = Annotated[str, StringConstraints(min_length=1, max_length=16384, pattern=_B64URL)]
Transport = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[a-z-]+$")]

#: Browsers add members to these over time: unknown members are ignored, not refused, and
#: only the known ones are passed on.
_BROWSER_JSON = ConfigDict(extra="ignore", frozen=True)
_BODY = ConfigDict(extra="forbid", frozen=True)


#: The `response` member of a credential: an attestation or an assertion.
R = TypeVar("R", bound=BaseModel)


class _Credential(BaseModel, Generic[R]):
    """A PublicKeyCredential as JSON: what a registration and an assertion both send."""

    model_config = _BROWSER_JSON
    id: CredentialIdText
    rawId: CredentialIdText
    type: Literal["public-key"]
    response: R
    authenticatorAttachment: Literal["platform", "cross-platform"] | None = None


class AttestationResponse(BaseModel):
    """The `response` member of a registration credential (AuthenticatorAttestationResponseJSON)."""

    model_config = _BROWSER_JSON
    clientDataJSON: Blob
    attestationObject: Blob
    transports: list[Transport] | None = Field(default=None, max_length=8)


class RegistrationCredential(_Credential[AttestationResponse]):
    """What `navigator.credentials.create()` gave, as JSON (RegistrationResponseJSON)."""


class AssertionResponse(BaseModel):
    """The `response` member of an assertion (AuthenticatorAssertionResponseJSON)."""

    model_config = _BROWSER_JSON
    clientDataJSON: Blob
    authenticatorData: Blob
    signature: Blob
    userHandle: CredentialIdText | None = None


class AuthenticationCredential(_Credential[AssertionResponse]):
    """What `navigator.credentials.get()` gave, as JSON (AuthenticationResponseJSON)."""


class TotpEnrolment(BaseModel):
    """A new TOTP factor."""

    model_config = _BODY
    label: Label | None = None


class TotpConfirmation(BaseModel):
    """The first code the authenticator app shows."""

    model_config = _BODY
    code: Code


class WebAuthnRegistration(BaseModel):
    """The browser's answer to the registration options."""

    model_config = _BODY
    credential: RegistrationCredential
    label: Label | None = None


class TotpVerification(BaseModel):
    """A TOTP code to verify for an identity."""

    model_config = _BODY
    user_id: Identifier
    totp_code: Code


class WebAuthnVerification(BaseModel):
    """A WebAuthn assertion to verify for an identity."""

    model_config = _BODY
    user_id: Identifier
    webauthn: AuthenticationCredential


class AuthenticationOptionsRequest(BaseModel):
    """Whose credentials the assertion may come from."""

    model_config = _BODY
    user_id: Identifier


_STATUS: list[tuple[type[FactorError], int]] = [
    (factors.NotFound, 404),
    (factors.Conflict, 409),
    (factors.WrongCode, 400),
    (factors.EnrolmentExpired, 410),
    (factors.KeyUnavailable, 503),
]


def _http(error: FactorError) -> HTTPException:
    status = next((s for kind, s in _STATUS if isinstance(error, kind)), 400)
    return HTTPException(status, str(error))


def _own_or(caller: Caller, permission: Permission, user_id: str) -> None:
    if not may_see(caller, permission, user_id):
        raise HTTPException(403, f"acting on someone else's factors needs {permission.value}")


#: How recently an identity must have verified a factor it holds to add another by itself.
PROOF_WINDOW = timedelta(minutes=5)


#: An enrolment grant from a redeemed Temporary Access Pass (access_pass_api), if any.
Grant = Annotated[str | None, Header(alias=ENROLMENT_GRANT_HEADER, max_length=64)]


async def _may_enrol(
    conn: asyncpg.Connection, caller: Caller, user_id: str, grant: str | None, *, schema: str
) -> bool:
    """Whether the caller enrols by an enrolment grant (True), or as the owner or with
    mfa:manage (False); 403 otherwise. A grant (a redeemed Temporary Access Pass) lets whoever
    holds it, such as the identity provider the new hire signed in to with the pass, enrol
    the identity's first factor, and only while it has none."""
    if caller.may(_MANAGE) or (caller.may(Permission.SELF_SERVICE) and caller.subject == user_id):
        return False
    if await grant_holds(PostgresAccessPasses(conn, schema), user_id, grant, datetime.now(UTC)):
        return True
    raise HTTPException(403, f"acting on someone else's factors needs {_MANAGE.value}")


async def _may_add_factor(
    conn: asyncpg.Connection, caller: Caller, user_id: str, grant: str | None, *, schema: str
) -> None:
    """The owner adds a second factor only after proving one it has (POST /v1/authn/verify
    within PROOF_WINDOW); mfa:manage (a help desk) needs no proof, a first factor neither,
    and a valid enrolment grant lets its holder enrol the identity's first factor."""
    if caller.may(Permission.MFA_MANAGE):
        return
    if await _may_enrol(conn, caller, user_id, grant, schema=schema):
        return
    if await credentials.needs_proof(conn, user_id, datetime.now(UTC) - PROOF_WINDOW):
        raise HTTPException(
            403,
            "adding a factor needs a proof of one you hold: verify it (POST /v1/authn/verify)"
            " within 5 minutes first",
        )


@dataclass(frozen=True)
class FactorsDeps:
    """What the MFA routes work with, set by `configure` on the app they are mounted on."""

    runtime: Runtime
    logic: Factors


_deps = Mounted[FactorsDeps]("authn_factors")


def configure(app: FastAPI, runtime: Runtime, settings: AuthnSettings) -> None:
    """Mount the MFA routes; KeyringError if the credential keys are missing or unusable."""
    logic = Factors(FactorConfig.from_settings(settings), source=runtime.source)
    _deps.mount(app, FactorsDeps(runtime, logic), router)


@asynccontextmanager
async def _transaction(deps: FactorsDeps) -> AsyncIterator[asyncpg.Connection]:
    """A connection in a transaction; a FactorError raised in it is answered with its status."""
    try:
        async with deps.runtime.pool.acquire() as conn, conn.transaction():
            yield conn
    except FactorError as error:
        raise _http(error) from None


router = APIRouter(prefix="/v1", tags=["mfa"])
_MANAGE = Permission.MFA_MANAGE
# One's own factors, or anyone's with mfa:manage; a system's credential has none: 403.
_caller = own_or(_MANAGE)
# Enrolment: as _caller, or whoever holds an enrolment grant (checked by _may_enrol).
_enroller = authenticated()
# A sign-in: the identity itself, or an identity provider on its behalf (authn:verify).
_verifier = own_or(Permission.AUTHN_VERIFY)
#: What a route that adds a factor may answer besides its own (_may_add_factor).
_ADDING: dict[int | str, dict[str, Any]] = {
    403: documented("Someone else's identity, or no fresh proof of a factor it holds"),
    409: documented("The identity is inactive or has too many factors"),
}


@router.get("/mfa/{user_id}", summary="An identity's factors (never their secrets)")
async def list_factors(
    user_id: Id, caller: Caller = Depends(_caller), deps: FactorsDeps = Depends(_deps)
) -> Any:
    _own_or(caller, _MANAGE, user_id)
    async with deps.runtime.pool.acquire() as conn:
        items = await credentials.list_for_user(conn, user_id)
    return {"user_id": user_id, "items": items}


@router.post(
    "/mfa/{user_id}/totp",
    status_code=201,
    summary="Enrol a TOTP factor: the secret is shown this once; confirm it with a code",
    responses=_ADDING,
)
async def enrol_totp(
    user_id: Id,
    body: Annotated[TotpEnrolment | None, Body()] = None,
    grant: Grant = None,
    caller: Caller = Depends(_enroller),
    deps: FactorsDeps = Depends(_deps),
) -> Any:
    async with _transaction(deps) as conn:
        await _may_add_factor(conn, caller, user_id, grant, schema=deps.runtime.schema)
        new = await deps.logic.enrol_totp(conn, user_id, body.label if body else None)
    return {
        "credential_id": new.credential_id,
        "factor": "totp",
        "secret": new.secret.value,
        "provisioning_uri": new.provisioning_uri,
        "status": "pending",
        "expires_at": new.expires_at,
    }


@router.post(
    "/mfa/{user_id}/totp/{credential_id}/confirm",
    summary="Confirm a pending TOTP factor with its first code: it becomes active",
    responses={
        400: documented("Wrong code (or malformed request)"),
        404: documented("No such TOTP credential of this identity"),
        409: documented("The credential is confirmed already"),
        410: documented("The enrolment expired: enrol again"),
    },
)
async def confirm_totp(
    user_id: Id,
    credential_id: Id,
    body: TotpConfirmation,
    grant: Grant = None,
    caller: Caller = Depends(_enroller),
    deps: FactorsDeps = Depends(_deps),
) -> Any:
    async with _transaction(deps) as conn:
        await _may_enrol(conn, caller, user_id, grant, schema=deps.runtime.schema)
        events = await deps.logic.confirm_totp(conn, user_id, credential_id, body.code)
        await enqueue(conn, deps.runtime.schema, events)
    return {"credential_id": credential_id, "factor": "totp", "status": "active"}


@router.post(
    "/mfa/{user_id}/webauthn/registration-options",
    summary="Options for navigator.credentials.create(); the challenge waits for the TTL",
    responses=_ADDING,
)
async def registration_options(
    user_id: Id,
    grant: Grant = None,
    caller: Caller = Depends(_enroller),
    deps: FactorsDeps = Depends(_deps),
) -> Any:
    async with _transaction(deps) as conn:
        await _may_add_factor(conn, caller, user_id, grant, schema=deps.runtime.schema)
        return await deps.logic.registration_options(conn, user_id)


@router.post(
    "/mfa/{user_id}/webauthn/registrations",
    status_code=201,
    summary="Register a WebAuthn credential from the browser's answer to the options",
    responses={
        400: documented("The response does not verify (or the request is malformed)"),
        404: documented("No registration of this identity waits for this response"),
        409: documented("The authenticator's credential is registered already"),
    },
)
async def register_webauthn(
    user_id: Id,
    body: WebAuthnRegistration,
    grant: Grant = None,
    caller: Caller = Depends(_enroller),
    deps: FactorsDeps = Depends(_deps),
) -> Any:
    response = body.credential.model_dump(exclude_none=True)
    async with _transaction(deps) as conn:
        await _may_enrol(conn, caller, user_id, grant, schema=deps.runtime.schema)
        done = await deps.logic.register_webauthn(conn, user_id, response, body.label)
        await enqueue(conn, deps.runtime.schema, done.events)
    if done.credential_id is None:
        # Committed first: the challenge is used up even though the answer failed.
        raise HTTPException(400, done.refused or "the registration did not verify")
    return {"credential_id": done.credential_id, "factor": "webauthn", "status": "active"}


@router.delete(
    "/mfa/{user_id}/{credential_id}",
    status_code=204,
    response_class=Response,
    summary="Remove a factor (mfa.removed when it was active)",
    responses={404: documented("No such credential of this identity")},
)
async def remove_factor(
    user_id: Id,
    credential_id: Id,
    caller: Caller = Depends(_caller),
    deps: FactorsDeps = Depends(_deps),
) -> Response:
    _own_or(caller, _MANAGE, user_id)
    owner = caller.subject == user_id
    reason = "removed by its owner" if owner else f"removed by {caller.subject}"[:256]
    async with _transaction(deps) as conn:
        events = await deps.logic.remove(conn, user_id, credential_id, reason)
        await enqueue(conn, deps.runtime.schema, events)
    return Response(status_code=204)


@router.post(
    "/authn/webauthn/authentication-options",
    summary="Options for navigator.credentials.get() over the identity's credentials",
    responses={404: documented("The identity has no WebAuthn credential")},
)
async def authentication_options(
    body: AuthenticationOptionsRequest,
    caller: Caller = Depends(_verifier),
    deps: FactorsDeps = Depends(_deps),
) -> Any:
    _own_or(caller, Permission.AUTHN_VERIFY, body.user_id)
    async with deps.runtime.pool.acquire() as conn, conn.transaction():
        options = await deps.logic.authentication_options(conn, body.user_id)
    if options is None:
        raise HTTPException(404, "the identity has no WebAuthn credential")
    return options


@router.post(
    "/authn/verify",
    summary="Verify an identity's TOTP code or WebAuthn assertion, one (records the outcome)",
)
async def verify(
    body: Annotated[TotpVerification | WebAuthnVerification, Body()],
    caller: Caller = Depends(_verifier),
    deps: FactorsDeps = Depends(_deps),
) -> Any:
    _own_or(caller, Permission.AUTHN_VERIFY, body.user_id)
    async with _transaction(deps) as conn:
        if isinstance(body, WebAuthnVerification):
            assertion = body.webauthn.model_dump(exclude_none=True)
            result = await deps.logic.verify_webauthn(conn, body.user_id, assertion)
        else:
            result = await deps.logic.verify_totp(conn, body.user_id, body.totp_code)
        await enqueue(conn, deps.runtime.schema, result.events)
    answer: dict[str, Any] = {"verified": result.verified, "factor": result.factor}
    if result.credential_id is not None:
        answer["credential_id"] = result.credential_id
    if result.reason is not None:
        answer["reason"] = result.reason
    return answer
