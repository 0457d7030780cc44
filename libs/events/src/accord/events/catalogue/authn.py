"""Authentication events: sign-ins reported by identity providers, MFA factors, lockouts,
session revocation and security signals received over the Shared Signals Framework."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from accord.events import topics
from accord.events.catalogue.base import EventData, Identifier, Integer, ShortText, Timestamp

#: The factors Accord enrols and verifies.
Factor = Literal["totp", "webauthn"]
#: What Accord does about a security signal it received.
SignalAction = Literal["lock", "revoke_sessions", "none"]


class AuthnEvent(EventData):
    """Common shape of authentication events: about one identity."""

    subject_field: ClassVar[str] = "user_id"

    user_id: Identifier
    """The identity (user_id) that signed in or tried to."""


class SignIn(AuthnEvent):
    """Common shape of the sign-in events identity providers publish."""

    idp: Identifier
    """The identity provider or gateway that saw the sign-in (okta, entra, keycloak, ...)."""
    application: Identifier | None = None
    """The application signed in to, when the provider knows it."""
    ip: ShortText | None = None
    """The client's address as the provider saw it."""
    methods: tuple[ShortText, ...] = Field(default=(), max_length=16)
    """Authentication methods used, as RFC 8176 `amr` values (pwd, otp, hwk, swk, mfa, ...)."""
    session_id: ShortText | None = None
    """The provider's session id, when a session was (or would have been) created."""


class AuthnSucceeded(SignIn):
    """An identity provider let an identity in. Resets its failure count."""

    event_type: ClassVar[str] = topics.AUTHN_SUCCEEDED


class AuthnFailed(SignIn):
    """An identity provider refused a sign-in. Enough of them in a window lock the identity."""

    event_type: ClassVar[str] = topics.AUTHN_FAILED

    reason: ShortText
    """Why it failed (bad password, bad OTP, unknown device, ...)."""


class MfaEnrolmentRequested(AuthnEvent):
    """The joiner saga asks the identity to enrol a second factor."""

    event_type: ClassVar[str] = topics.MFA_ENROLMENT_REQUESTED

    factors: tuple[Factor, ...] = Field(min_length=1, max_length=4)
    """Factors the identity may enrol (one is enough)."""
    saga_id: Identifier | None = None
    """The saga that asked."""


class MfaEnrolled(AuthnEvent):
    """An identity proved possession of a new factor; it is stored encrypted."""

    event_type: ClassVar[str] = topics.MFA_ENROLLED

    credential_id: Identifier
    """Accord's id of the credential."""
    factor: Factor
    """Which kind."""
    label: ShortText | None = None
    """A name the identity gave it (phone, YubiKey, ...)."""


class MfaRemoved(AuthnEvent):
    """A factor was removed (by its owner, or reset through an approved request)."""

    event_type: ClassVar[str] = topics.MFA_REMOVED

    credential_id: Identifier
    """Accord's id of the credential."""
    factor: Factor
    """Which kind."""
    reason: ShortText
    """removed by its owner, reset (with the request id), leaver, ..."""


class IdentityLocked(AuthnEvent):
    """Risk locked an identity out: accounts disabled, sessions revoked, until an unlock."""

    event_type: ClassVar[str] = topics.IDENTITY_LOCKED

    lockout_id: Identifier
    """This lockout."""
    reason: ShortText
    """failed sign-ins, a security signal from an identity provider, ..."""
    failures: Integer = Field(default=0, ge=0)
    """Failed sign-ins counted in the window, when failures locked it."""


class IdentityUnlocked(AuthnEvent):
    """A lockout ended through an approved request: accounts are enabled again."""

    event_type: ClassVar[str] = topics.IDENTITY_UNLOCKED

    lockout_id: Identifier
    """The lockout that ended."""
    request_id: Identifier
    """The approved access request that unlocked it."""


class SessionRevoked(AuthnEvent):
    """Every Shared Signals receiver was told to end the identity's sessions (CAEP)."""

    event_type: ClassVar[str] = topics.SESSION_REVOKED

    reason: ShortText
    """leaver, lockout, security signal, ..."""
    streams: Integer = Field(ge=0)
    """Shared Signals streams the revocation was queued to."""


class SessionRevokeRequested(AuthnEvent):
    """A workflow run asks authn to end the identity's sessions; authn then announces them."""

    # Whatever the identity's status (revoke_sessions may run for an active identity); authn
    # revokes as for a leaver and announces `session.revoked`.

    event_type: ClassVar[str] = topics.SESSION_REVOKE_REQUESTED

    request_id: Identifier
    """This request: the asking run's idempotency key (run:task:attempt), the same on a
    redelivery, so authn revokes once per request."""
    reason: ShortText
    """Why, in short (leaver, suspected compromise, the workflow's own words)."""
    run_id: Identifier | None = None
    """The workflow run that asked, if a run did."""


class AccessPassIssued(AuthnEvent):
    """A help desk issued the identity a Temporary Access Pass (never its code in here)."""

    event_type: ClassVar[str] = topics.ACCESS_PASS_ISSUED

    pass_id: Identifier
    """This pass."""
    issued_by: ShortText
    """Who issued it: the caller's subject (an OIDC `sub` or an API token's subject)."""
    starts_at: Timestamp
    """From when it is valid (the hire date, or when it was issued)."""
    expires_at: Timestamp
    """Until when it is valid."""
    one_time: bool
    """Whether its first use spends it."""


class AccessPassRedeemed(AuthnEvent):
    """An identity's Temporary Access Pass was redeemed for an enrolment grant (not in here)."""

    event_type: ClassVar[str] = topics.ACCESS_PASS_REDEEMED

    pass_id: Identifier
    """The pass."""
    redeemed_by: ShortText
    """Who redeemed it: the identity itself or an identity provider."""


class SecuritySignalReceived(AuthnEvent):
    """A Security Event Token from an identity provider passed every check."""

    event_type: ClassVar[str] = topics.SECURITY_SIGNAL_RECEIVED

    issuer: ShortText
    """The SET's `iss`."""
    jti: ShortText
    """The SET's unique id."""
    event: ShortText
    """The CAEP or RISC event type URI."""
    action: SignalAction
    """What Accord does about it."""
