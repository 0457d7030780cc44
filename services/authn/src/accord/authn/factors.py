"""MFA factors: enrol, confirm, register, verify and remove TOTP and WebAuthn credentials.

Between the HTTP API and the tables: each function works inside the caller's transaction
and returns the events to enqueue in it. Secrets are opened only to check a code, and
never logged.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from accord.authn.adapters import credentials as store
from accord.authn.adapters import identities, lockouts
from accord.authn.domain import totp
from accord.authn.domain import webauthn_ceremonies as ceremonies
from accord.authn.domain.sealing import Keyring, KeyringError, UnsealError
from accord.authn.settings import AuthnSettings
from accord.events import Envelope, new_event
from accord.events.catalogue.authn import (
    AuthnFailed,
    AuthnSucceeded,
    Factor,
    MfaEnrolled,
    MfaRemoved,
)

log = logging.getLogger(__name__)
IDP = "accord"
#: An identity holds at most this many active factors.
MAX_FACTORS = 20


class FactorError(Exception):
    """A factor operation refused; the message is safe to show."""


class NotFound(FactorError):
    """No such credential of this identity, or no ceremony waiting for this response."""


class Conflict(FactorError):
    """Not now: confirmed or registered already, an inactive identity, too many factors."""


class WrongCode(FactorError):
    """The confirmation code does not match the new secret."""


class EnrolmentExpired(FactorError):
    """The pending TOTP enrolment was not confirmed in time: enrol again."""


class KeyUnavailable(FactorError):
    """The key that sealed a stored secret is not configured (an operator's error)."""


@dataclass(frozen=True)
class FactorConfig:
    """What factors need from the settings."""

    keyring: Keyring
    totp_issuer: str
    relying_party: ceremonies.RelyingParty
    challenge_ttl: timedelta

    @classmethod
    def from_settings(cls, settings: AuthnSettings) -> FactorConfig:
        """Parse the keyring and the relying party; KeyringError names what is wrong."""
        if settings.credential_keys is None:
            raise KeyringError("ACCORD_AUTHN_CREDENTIAL_KEYS is required (id:base64key,...)")
        origins = tuple(o.strip() for o in settings.webauthn_origins.split(",") if o.strip())
        return cls(
            keyring=Keyring.parse(settings.credential_keys.get_secret_value()),
            totp_issuer=settings.totp_issuer,
            relying_party=ceremonies.RelyingParty(
                settings.webauthn_rp_id, settings.webauthn_rp_name, origins
            ),
            challenge_ttl=timedelta(seconds=settings.challenge_ttl_s),
        )


@dataclass(frozen=True)
class TotpEnrolment:
    """A pending TOTP credential; the secret is shown this once."""

    credential_id: str
    secret: totp.TotpSecret
    provisioning_uri: str
    expires_at: datetime


@dataclass(frozen=True)
class Registration:
    """A WebAuthn registration: the new credential, or why it was refused. Commit either
    way: the challenge is used up."""

    credential_id: str | None
    refused: str | None = None
    events: list[Envelope] = field(default_factory=list)


@dataclass(frozen=True)
class Verification:
    """A verification's answer, with the authn.succeeded or authn.failed event."""

    verified: bool
    factor: Factor
    credential_id: str | None
    reason: str | None
    events: list[Envelope]


async def _refusal(conn: asyncpg.Connection, user_id: str) -> str | None:
    """Why no factor of the identity may verify now (inactive, gone, locked), if so."""
    if (status := await identities.status_of(conn, user_id)) not in (None, "active"):
        return f"the identity is {status}"
    if await lockouts.open_lockout(conn, user_id) is not None:
        return "the identity is locked"
    return None


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return f"mfa-{uuid.uuid4().hex}"


class Factors:
    """The factor operations, configured once; `source` names the events' producer and
    `clock` is for tests."""

    def __init__(
        self, config: FactorConfig, *, source: str, clock: Callable[[], datetime] = _utcnow
    ) -> None:
        self.config = config
        self.source = source
        self.clock = clock

    @property
    def _timeout_ms(self) -> int:
        return int(self.config.challenge_ttl.total_seconds() * 1000)

    async def _may_enrol(self, conn: asyncpg.Connection, user_id: str) -> str:
        status = await identities.status_of(conn, user_id)
        if status not in (None, "active"):
            raise Conflict(f"the identity is {status}: it cannot enrol factors")
        if await store.count_active(conn, user_id) >= MAX_FACTORS:
            raise Conflict(f"the identity has {MAX_FACTORS} factors: remove one first")
        return await identities.user_name_of(conn, user_id) or user_id

    async def enrol_totp(
        self, conn: asyncpg.Connection, user_id: str, label: str | None
    ) -> TotpEnrolment:
        """A new pending TOTP credential, until a code confirms it within the TTL."""
        user_name = await self._may_enrol(conn, user_id)
        now = self.clock()
        await store.delete_expired_pending(conn, now)
        credential_id, secret = _new_id(), totp.new_secret()
        sealed = self.config.keyring.seal(
            secret.value.encode(), user_id=user_id, credential_id=credential_id
        )
        expires_at = now + self.config.challenge_ttl
        await store.insert_pending_totp(
            conn,
            credential_id=credential_id,
            user_id=user_id,
            label=label,
            sealed=sealed,
            expires_at=expires_at,
        )
        uri = totp.provisioning_uri(secret, user_name=user_name, issuer=self.config.totp_issuer)
        return TotpEnrolment(credential_id, secret, uri, expires_at)

    async def confirm_totp(
        self, conn: asyncpg.Connection, user_id: str, credential_id: str, code: str
    ) -> list[Envelope]:
        """Activate a pending TOTP credential whose first code matches: mfa.enrolled."""
        found = await store.get_for_update(conn, user_id, credential_id)
        if found is None or found.factor != "totp":
            raise NotFound("the identity has no such TOTP credential")
        if found.status == "active":
            raise Conflict("the credential is confirmed already")
        now = self.clock()
        if found.expires_at is not None and found.expires_at <= now:
            raise EnrolmentExpired("the enrolment expired: enrol again")
        secret = self._open(found)
        try:
            step = totp.verify(secret, code, now=now.timestamp(), last_step=None)
        except totp.CodeRejected as rejected:
            raise WrongCode(rejected.reason) from None
        await store.confirm_totp(conn, credential_id, step=step)
        log.info("factor enrolled", extra={"user_id": user_id, "credential_id": credential_id})
        data = MfaEnrolled(
            user_id=user_id, credential_id=credential_id, factor="totp", label=found.label
        )
        return [new_event(data, source=self.source)]

    async def registration_options(self, conn: asyncpg.Connection, user_id: str) -> dict[str, Any]:
        """Options for `navigator.credentials.create()`; the challenge waits for the TTL."""
        user_name = await self._may_enrol(conn, user_id)
        exclude = await store.webauthn_ids(conn, user_id)
        options = ceremonies.registration_options(
            self.config.relying_party,
            user_id=user_id,
            user_name=user_name,
            exclude=exclude,
            timeout_ms=self._timeout_ms,
        )
        await self._save_challenge(conn, user_id, "registration", options.challenge)
        return options.options

    async def register_webauthn(
        self,
        conn: asyncpg.Connection,
        user_id: str,
        response: Mapping[str, Any],
        label: str | None,
    ) -> Registration:
        """Verify the browser's registration response and store the credential."""
        challenge = ceremonies.challenge_of(response)
        if challenge is None or not await store.take_challenge(
            conn, user_id=user_id, purpose="registration", challenge=challenge, now=self.clock()
        ):
            raise NotFound("no registration of this identity waits for this response")
        try:
            new = ceremonies.verify_registration(
                self.config.relying_party, response, challenge=challenge
            )
        except ceremonies.CeremonyFailed as failed:
            return Registration(None, refused=failed.reason)
        credential_id = _new_id()
        try:
            await store.insert_webauthn(
                conn,
                credential_id=credential_id,
                user_id=user_id,
                label=label,
                webauthn_id=new.credential_id,
                public_key=new.public_key,
                sign_count=new.sign_count,
            )
        except store.DuplicateCredential as duplicate:
            raise Conflict(str(duplicate)) from None
        log.info("factor enrolled", extra={"user_id": user_id, "credential_id": credential_id})
        data = MfaEnrolled(
            user_id=user_id, credential_id=credential_id, factor="webauthn", label=label
        )
        return Registration(credential_id, events=[new_event(data, source=self.source)])

    async def authentication_options(
        self, conn: asyncpg.Connection, user_id: str
    ) -> dict[str, Any] | None:
        """Options for `navigator.credentials.get()`; None if the identity has no credential."""
        allow = await store.webauthn_ids(conn, user_id)
        if not allow:
            return None
        options = ceremonies.authentication_options(
            self.config.relying_party, allow=allow, timeout_ms=self._timeout_ms
        )
        await self._save_challenge(conn, user_id, "authentication", options.challenge)
        return options.options

    async def verify_totp(self, conn: asyncpg.Connection, user_id: str, code: str) -> Verification:
        """Check a code against the identity's active TOTP credentials (no replays)."""
        done = _Outcomes(user_id, "totp", self.source)
        if refused := await _refusal(conn, user_id):
            return done.failed(refused, ("otp",))
        found = await store.active_for_update(conn, user_id, "totp")
        if not found:
            return done.failed("no active TOTP factor", ("otp",))
        now, reasons = self.clock().timestamp(), set[str]()
        for credential in found:
            try:
                step = totp.verify(
                    self._open(credential), code, now=now, last_step=credential.last_totp_step
                )
            except totp.CodeRejected as rejected:
                reasons.add(rejected.reason)
                continue
            await store.record_totp_use(conn, credential.id, step)
            return done.succeeded(credential.id, ("otp",))
        reason = "code already used" if "code already used" in reasons else "wrong code"
        return done.failed(reason, ("otp",))

    async def verify_webauthn(
        self, conn: asyncpg.Connection, user_id: str, response: Mapping[str, Any]
    ) -> Verification:
        """Check an assertion: a challenge handed to this identity, one of its credentials,
        a valid signature and a growing sign count."""
        done = _Outcomes(user_id, "webauthn", self.source)
        challenge = ceremonies.challenge_of(response)
        taken = challenge is not None and await store.take_challenge(
            conn, user_id=user_id, purpose="authentication", challenge=challenge, now=self.clock()
        )
        if refused := await _refusal(conn, user_id):
            return done.failed(refused, ("hwk",))
        if not taken or challenge is None:
            return done.failed("unknown, used or expired challenge", ("hwk",))
        raw_id = ceremonies.credential_id_of(response)
        found = await store.webauthn_for_update(conn, user_id, raw_id) if raw_id else None
        if found is None or found.public_key is None:
            return done.failed("not a registered credential of this identity", ("hwk",))
        try:
            assertion = ceremonies.verify_assertion(
                self.config.relying_party,
                response,
                challenge=challenge,
                public_key=found.public_key,
                sign_count=found.sign_count,
                expected_user_handle=ceremonies.user_handle(user_id),
            )
        except ceremonies.CeremonyFailed as failed:
            return done.failed(failed.reason, ("hwk",), found.id)
        await store.record_webauthn_use(conn, found.id, assertion.sign_count)
        return done.succeeded(found.id, ("swk",) if assertion.multi_device else ("hwk",))

    async def remove(
        self, conn: asyncpg.Connection, user_id: str, credential_id: str, reason: str
    ) -> list[Envelope]:
        """Remove one credential: mfa.removed if it was active (a pending one was never
        enrolled). NotFound if the identity has no such credential."""
        removed = await store.delete(conn, user_id, credential_id)
        if removed is None:
            raise NotFound("the identity has no such credential")
        return removed_events(user_id, [removed], reason, source=self.source)

    def _open(self, credential: store.StoredCredential) -> totp.TotpSecret:
        if credential.sealed is None:
            raise KeyUnavailable(f"credential {credential.id} holds no secret")
        try:
            plain = self.config.keyring.open(
                credential.sealed, user_id=credential.user_id, credential_id=credential.id
            )
        except UnsealError as error:
            log.error(
                "factor secret does not open",
                extra={"credential_id": credential.id, "key_id": credential.sealed.key_id},
            )
            raise KeyUnavailable(f"the secret of credential {credential.id}: {error}") from None
        return totp.TotpSecret(plain.decode("ascii"))

    async def _save_challenge(
        self, conn: asyncpg.Connection, user_id: str, purpose: store.Purpose, challenge: bytes
    ) -> None:
        now = self.clock()
        await store.save_challenge(
            conn,
            challenge_id=uuid.uuid4().hex,
            user_id=user_id,
            purpose=purpose,
            challenge=challenge,
            expires_at=now + self.config.challenge_ttl,
            now=now,
        )


@dataclass(frozen=True)
class _Outcomes:
    """Answers of one verification, each with its authn.failed or authn.succeeded."""

    user_id: str
    factor: Factor
    source: str

    def failed(
        self, reason: str, methods: tuple[str, ...], credential_id: str | None = None
    ) -> Verification:
        data = AuthnFailed(user_id=self.user_id, idp=IDP, methods=methods, reason=reason)
        event = new_event(data, source=self.source)
        return Verification(False, self.factor, credential_id, reason, [event])

    def succeeded(self, credential_id: str, methods: tuple[str, ...]) -> Verification:
        data = AuthnSucceeded(user_id=self.user_id, idp=IDP, methods=methods)
        event = new_event(data, source=self.source)
        return Verification(True, self.factor, credential_id, None, [event])


def removed_events(
    user_id: str,
    removed: list[dict[str, Any]],
    reason: str,
    *,
    source: str,
    causation: Envelope | None = None,
) -> list[Envelope]:
    return [
        new_event(
            MfaRemoved(user_id=user_id, credential_id=r["id"], factor=r["factor"], reason=reason),
            source=source,
            causation=causation,
        )
        for r in removed
        if r["status"] == "active"
    ]


async def remove_all_factors(
    conn: asyncpg.Connection,
    user_id: str,
    reason: str,
    *,
    source: str,
    causation: Envelope | None = None,
) -> list[Envelope]:
    """Remove every factor of an identity (leaver, approved reset): one mfa.removed per
    active factor, caused by `causation` when given."""
    removed = await store.delete_all(conn, user_id)
    if removed:
        log.info("factors removed", extra={"user_id": user_id, "count": len(removed)})
    return removed_events(user_id, removed, reason, source=source, causation=causation)


@dataclass(frozen=True)
class PostgresFactors:
    """The Factors port (accord.authn.ports) inside the caller's transaction."""

    conn: asyncpg.Connection
    source: str

    async def remove_all(self, user_id: str, reason: str) -> list[Envelope]:
        return await remove_all_factors(self.conn, user_id, reason, source=self.source)
