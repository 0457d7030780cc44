"""Temporary Access Passes (TAP): a time-limited code with which a new hire signs in once
(or a few times) to enrol a first strong factor, as Entra ID's joiner task issues them.

Pure: no I/O, no clock of its own; the caller passes `now`.

Choices, and why:
- The code is 12 characters of a 31-character alphabet without look-alikes (no 0/O, 1/I/L),
  shown in groups of four (`ABCD-EFGH-JKMN`): 59 bits from `secrets`, read aloud over the
  phone or typed from a letter without mistakes. Input is normalised (case, spaces, dashes).
- Only an HMAC-SHA256 of the code is stored, keyed with a key derived from the credential
  keyring (never in the database) and bound to the pass and its owner. A slow KDF (scrypt,
  Argon2) protects low-entropy secrets such as passwords against offline guessing; a pass
  has 59 random bits, lives at most 30 days, and is locked after `max_attempts` wrong codes,
  so online guessing is hopeless and an offline attack needs the key besides a dump. A slow
  KDF would only add latency and CPU to a public, rate-limited endpoint.
- Codes are compared in constant time (`hmac.compare_digest` on the digests).
- Lifetime 1 hour .. 30 days (Entra's bounds); the start may lie ahead (the hire date), by
  at most `max_lead`. One-time passes are used up by their first success; reusable ones
  work until they expire. `max_attempts` wrong codes lock the pass for good (issue a new one).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

#: Characters of a code: digits and capitals that no font confuses with another.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 12
GROUP = 4
_CONTEXT = b"accord/authn/access-pass/v1"


class PassError(ValueError):
    """A pass cannot be issued as asked; the message is safe to show."""


@dataclass(frozen=True)
class AccessPassPolicy:
    """Bounds of issuing and redeeming passes."""

    min_lifetime: timedelta = timedelta(hours=1)
    max_lifetime: timedelta = timedelta(days=30)
    max_lead: timedelta = timedelta(days=90)
    """How far ahead a pass may start (a hire date months away gets its pass later)."""
    max_attempts: int = 5
    """Wrong codes that lock a pass."""
    grant_ttl: timedelta = timedelta(minutes=15)
    """How long a redeemed pass's enrolment grant lasts."""


class PassState(StrEnum):
    """Where a pass stands at some time."""

    PENDING = "pending"
    """Not valid yet (its start lies ahead)."""
    ACTIVE = "active"
    EXPIRED = "expired"
    USED = "used"
    """A one-time pass that was redeemed."""
    LOCKED = "locked"
    """Too many wrong codes."""


class Pepper:
    """The HMAC keys codes are hashed with, by id; the first hashes new passes, all verify
    (rotation). Derived from the credential keyring, so nothing new to configure."""

    def __init__(self, keys: dict[str, bytes], primary_id: str) -> None:
        if primary_id not in keys:
            raise ValueError("the primary key must be one of the keys")
        self._keys = dict(keys)
        self.primary_id = primary_id

    def digest(self, key_id: str, *parts: str) -> bytes | None:
        """HMAC-SHA256 of the length-prefixed parts; None when the key is unknown."""
        key = self._keys.get(key_id)
        if key is None:
            return None
        encoded = [_CONTEXT, *(p.encode() for p in parts)]
        message = b"".join(len(p).to_bytes(4, "big") + p for p in encoded)
        return hmac.new(key, message, hashlib.sha256).digest()

    def __repr__(self) -> str:
        return f"Pepper(primary_id={self.primary_id!r}, keys={len(self._keys)})"


@dataclass(frozen=True)
class AccessPass:
    """A stored pass: never its code, only the code's HMAC."""

    pass_id: str
    user_id: str
    key_id: str
    code_hash: bytes
    starts_at: datetime
    expires_at: datetime
    one_time: bool
    created_by: str
    created_at: datetime
    failed_attempts: int = 0
    used_at: datetime | None = None
    locked_at: datetime | None = None

    def state(self, now: datetime) -> PassState:
        """Where the pass stands at `now` (locked and used win over time)."""
        if self.locked_at is not None:
            return PassState.LOCKED
        if self.one_time and self.used_at is not None:
            return PassState.USED
        if now >= self.expires_at:
            return PassState.EXPIRED
        if now < self.starts_at:
            return PassState.PENDING
        return PassState.ACTIVE

    def __repr__(self) -> str:
        return f"AccessPass(pass_id={self.pass_id!r}, user_id={self.user_id!r}, hash=<hidden>)"


def new_code() -> str:
    """A fresh code, grouped for reading: 12 characters of ALPHABET from `secrets`."""
    raw = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
    return "-".join(raw[i : i + GROUP] for i in range(0, CODE_LENGTH, GROUP))


def normalise(code: str) -> str | None:
    """The code as hashed: capitals without separators; None if it cannot be a code."""
    cleaned = "".join(code.split()).replace("-", "").upper()
    if len(cleaned) != CODE_LENGTH or any(c not in ALPHABET for c in cleaned):
        return None
    return cleaned


def _hash(pepper: Pepper, key_id: str, user_id: str, pass_id: str, code: str) -> bytes | None:
    return pepper.digest(key_id, user_id, pass_id, code)


def issue(
    *,
    pass_id: str,
    user_id: str,
    lifetime: timedelta,
    one_time: bool,
    starts_at: datetime | None,
    now: datetime,
    created_by: str,
    pepper: Pepper,
    policy: AccessPassPolicy,
) -> tuple[AccessPass, str]:
    """A new pass and its code (shown once, never stored); PassError if out of bounds."""
    if not policy.min_lifetime <= lifetime <= policy.max_lifetime:
        raise PassError(
            f"the lifetime must be between {policy.min_lifetime} and {policy.max_lifetime}"
        )
    start = now if starts_at is None or starts_at < now else starts_at
    if start - now > policy.max_lead:
        raise PassError(f"the pass may start at most {policy.max_lead.days} days ahead")
    code = new_code()
    digest = _hash(pepper, pepper.primary_id, user_id, pass_id, normalise(code) or "")
    assert digest is not None
    issued = AccessPass(
        pass_id=pass_id,
        user_id=user_id,
        key_id=pepper.primary_id,
        code_hash=digest,
        starts_at=start,
        expires_at=start + lifetime,
        one_time=one_time,
        created_by=created_by,
        created_at=now,
    )
    return issued, code


@dataclass(frozen=True)
class Attempt:
    """What one code did to a pass: accepted or not, why not, and the pass to store."""

    accepted: bool
    refused: PassState | None
    """Why a right code was refused (not valid yet, expired, used, locked), if so."""
    wrong_code: bool
    updated: AccessPass


def redeem(
    stored: AccessPass, code: str, *, now: datetime, pepper: Pepper, policy: AccessPassPolicy
) -> Attempt:
    """Check a code against a pass. A wrong code counts toward the lock whatever the pass's
    state (a locked or expired pass stays so); a right one is accepted only while active."""
    state = stored.state(now)
    normal = normalise(code)
    expected = stored.code_hash
    given = _hash(pepper, stored.key_id, stored.user_id, stored.pass_id, normal or "")
    right = normal is not None and given is not None and hmac.compare_digest(given, expected)
    if not right:
        if state in (PassState.LOCKED, PassState.EXPIRED, PassState.USED):
            return Attempt(False, None, True, stored)
        failed = stored.failed_attempts + 1
        locked = now if failed >= policy.max_attempts else None
        return Attempt(False, None, True, replace(stored, failed_attempts=failed, locked_at=locked))
    if state is not PassState.ACTIVE:
        return Attempt(False, state, False, stored)
    return Attempt(True, None, False, replace(stored, used_at=stored.used_at or now))


def new_grant() -> tuple[str, bytes]:
    """An enrolment grant: the bearer value (256 random bits) and its SHA-256 to store (no
    key needed: nothing guesses 256 bits)."""
    value = "eg_" + secrets.token_urlsafe(32)
    return value, grant_hash(value)


def grant_hash(value: str) -> bytes:
    """What is stored of an enrolment grant."""
    return hashlib.sha256(value.encode()).digest()
