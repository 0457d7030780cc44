"""Authn's event handlers, one module per concern: the identity projection, sign-ins,
approved unlocks and resets, enrolment, the security signals the receiver took and the
session revocations workflows ask for;
`lockout` holds the lockout and revocation flows they (and the API) act through."""

from accord.authn.handlers.access import on_access_decided, on_access_granted
from accord.authn.handlers.enrolment import on_enrolment_requested, on_mfa_enrolled
from accord.authn.handlers.identity import IDENTITY_EVENTS, on_identity_event
from accord.authn.handlers.received import on_security_signal
from accord.authn.handlers.sessions import on_session_revoke_requested
from accord.authn.handlers.sign_ins import on_authn_failed, on_authn_succeeded

__all__ = [
    "IDENTITY_EVENTS",
    "on_access_decided",
    "on_access_granted",
    "on_authn_failed",
    "on_authn_succeeded",
    "on_enrolment_requested",
    "on_identity_event",
    "on_mfa_enrolled",
    "on_security_signal",
    "on_session_revoke_requested",
]
