"""Time-based one-time passwords (RFC 6238): secrets, provisioning URIs, code checks.

Pure: the time is a parameter. A check returns the time step the code matched, and refuses
a step that is not newer than the last one used, so a code seen once (or an older one)
cannot be replayed within its tolerance window.
"""

from __future__ import annotations

import base64
import hmac
import re
import secrets
from dataclasses import dataclass

import pyotp

SECRET_BYTES = 20
"""160 bits, the RFC 4226 recommendation and what authenticator apps expect."""
STEP_S = 30
DIGITS = 6
TOLERANCE = 1
"""Steps accepted either side of now: clocks drift and people type slowly."""
_CODE = re.compile(rf"[0-9]{{{DIGITS}}}")


class CodeRejected(Exception):
    """The code does not verify; `reason` says why, never what was typed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class TotpSecret:
    """A TOTP secret, base32 as authenticator apps take it. Never logged."""

    value: str

    def __repr__(self) -> str:
        return "TotpSecret(<hidden>)"

    def __str__(self) -> str:
        return "<hidden>"


def new_secret() -> TotpSecret:
    """A new random secret: 160 bits, base32 without padding (32 characters)."""
    return TotpSecret(base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii"))


def provisioning_uri(secret: TotpSecret, *, user_name: str, issuer: str) -> str:
    """The `otpauth://totp/...` URI an authenticator app scans (as a QR code)."""
    totp = pyotp.TOTP(secret.value, digits=DIGITS, interval=STEP_S)
    return totp.provisioning_uri(name=user_name, issuer_name=issuer)


def time_step(now: float) -> int:
    """The RFC 6238 counter of a Unix time."""
    return int(now // STEP_S)


def code_at(secret: TotpSecret, step: int) -> str:
    """The code of one time step (tests and software authenticators use it)."""
    return pyotp.TOTP(secret.value, digits=DIGITS, interval=STEP_S).generate_otp(step)


def matching_steps(secret: TotpSecret, code: str, *, now: float) -> list[int]:
    """The steps within tolerance of `now` whose code is `code`, oldest first."""
    if not _CODE.fullmatch(code):
        return []
    current = time_step(now)
    candidates = range(max(current - TOLERANCE, 0), current + TOLERANCE + 1)
    # Compare every candidate in constant time; no early exit that would time the match.
    return [s for s in candidates if hmac.compare_digest(code_at(secret, s), code)]


def verify(secret: TotpSecret, code: str, *, now: float, last_step: int | None) -> int:
    """The time step `code` matched, newer than `last_step`; CodeRejected otherwise."""
    if not _CODE.fullmatch(code):
        raise CodeRejected(f"a code is {DIGITS} digits")
    steps = matching_steps(secret, code, now=now)
    if not steps:
        raise CodeRejected("wrong code")
    fresh = [s for s in steps if last_step is None or s > last_step]
    if not fresh:
        raise CodeRejected("code already used")
    return max(fresh)
