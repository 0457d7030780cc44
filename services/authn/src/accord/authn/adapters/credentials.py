"""MFA credentials and WebAuthn challenges in PostgreSQL (tables of 0002_factors.sql).

Listings never select the secret material; only the verification lookups, which lock the
rows they return (FOR UPDATE) so two verifications of one factor are taken in turn.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg

from accord.authn.domain.sealing import Sealed
from accord.events.catalogue.authn import Factor

Purpose = Literal["registration", "authentication"]
#: At most this many challenges wait per identity and purpose; older ones are dropped.
MAX_CHALLENGES = 5


class DuplicateCredential(Exception):
    """The WebAuthn credential id is registered already (to this or another identity)."""


@dataclass(frozen=True)
class StoredCredential:
    """A credential as verification needs it."""

    id: str
    user_id: str
    factor: Factor
    label: str | None
    status: Literal["pending", "active"]
    sealed: Sealed | None
    webauthn_id: bytes | None
    public_key: bytes | None
    sign_count: int
    last_totp_step: int | None
    expires_at: datetime | None

    def __repr__(self) -> str:
        # Never the secret, not even sealed.
        return f"StoredCredential(id={self.id!r}, factor={self.factor!r}, status={self.status!r})"


def _stored(row: asyncpg.Record) -> StoredCredential:
    sealed = None
    if row["sealed_secret"] is not None:
        sealed = Sealed(row["key_id"], bytes(row["sealed_secret"]))
    return StoredCredential(
        id=row["id"],
        user_id=row["user_id"],
        factor=row["factor"],
        label=row["label"],
        status=row["status"],
        sealed=sealed,
        webauthn_id=row["webauthn_id"],
        public_key=row["public_key"],
        sign_count=row["sign_count"],
        last_totp_step=row["last_totp_step"],
        expires_at=row["expires_at"],
    )


async def insert_pending_totp(
    conn: asyncpg.Connection,
    *,
    credential_id: str,
    user_id: str,
    label: str | None,
    sealed: Sealed,
    expires_at: datetime,
) -> None:
    """A TOTP enrolment waiting for its first code."""
    await conn.execute(
        """
        INSERT INTO mfa_credentials
            (id, user_id, factor, label, status, sealed_secret, key_id, expires_at)
        VALUES ($1, $2, 'totp', $3, 'pending', $4, $5, $6)
        """,
        credential_id,
        user_id,
        label,
        sealed.blob,
        sealed.key_id,
        expires_at,
    )


async def insert_webauthn(
    conn: asyncpg.Connection,
    *,
    credential_id: str,
    user_id: str,
    label: str | None,
    webauthn_id: bytes,
    public_key: bytes,
    sign_count: int,
) -> None:
    """A verified WebAuthn credential, active at once; DuplicateCredential if known."""
    inserted = await conn.fetchval(
        """
        INSERT INTO mfa_credentials (id, user_id, factor, label, status, webauthn_id,
                                     public_key, sign_count, confirmed_at)
        VALUES ($1, $2, 'webauthn', $3, 'active', $4, $5, $6, now())
        ON CONFLICT (webauthn_id) DO NOTHING
        RETURNING 1
        """,
        credential_id,
        user_id,
        label,
        webauthn_id,
        public_key,
        sign_count,
    )
    if inserted is None:
        raise DuplicateCredential("this authenticator's credential is registered already")


async def confirm_totp(conn: asyncpg.Connection, credential_id: str, *, step: int) -> bool:
    """Activate a pending TOTP credential; its confirming step counts as used."""
    done = await conn.fetchval(
        """
        UPDATE mfa_credentials
        SET status = 'active', confirmed_at = now(), expires_at = NULL, last_totp_step = $2
        WHERE id = $1 AND status = 'pending'
        RETURNING 1
        """,
        credential_id,
        step,
    )
    return done is not None


async def list_for_user(conn: asyncpg.Connection, user_id: str) -> list[dict[str, Any]]:
    """The identity's credentials, oldest first, without secrets."""
    # Never the secret or key material: only what a person needs to tell factors apart.
    rows = await conn.fetch(
        """
        SELECT id, factor, label, status, created_at, confirmed_at, last_used_at, expires_at
        FROM mfa_credentials WHERE user_id = $1 ORDER BY created_at, id
        """,
        user_id,
    )
    return [dict(r) for r in rows]


async def count_active(conn: asyncpg.Connection, user_id: str) -> int:
    """How many active factors the identity has."""
    count: int = await conn.fetchval(
        "SELECT count(*) FROM mfa_credentials WHERE user_id = $1 AND status = 'active'", user_id
    )
    return count


async def needs_proof(conn: asyncpg.Connection, user_id: str, since: datetime) -> bool:
    """Whether the identity holds an active factor but has used none since `since`: adding
    another then needs a fresh proof of one it has (a stolen session alone must not do)."""
    row = await conn.fetchrow(
        "SELECT count(*) AS active, count(*) FILTER (WHERE last_used_at >= $2) AS recent"
        " FROM mfa_credentials WHERE user_id = $1 AND status = 'active'",
        user_id,
        since,
    )
    assert row is not None
    return bool(row["active"] and not row["recent"])


async def get_for_update(
    conn: asyncpg.Connection, user_id: str, credential_id: str
) -> StoredCredential | None:
    """One of the identity's credentials, locked for the transaction."""
    row = await conn.fetchrow(
        "SELECT * FROM mfa_credentials WHERE id = $1 AND user_id = $2 FOR UPDATE",
        credential_id,
        user_id,
    )
    return _stored(row) if row else None


async def active_for_update(
    conn: asyncpg.Connection, user_id: str, factor: Factor
) -> list[StoredCredential]:
    """The identity's active credentials of one factor, locked, oldest first."""
    rows = await conn.fetch(
        """
        SELECT * FROM mfa_credentials
        WHERE user_id = $1 AND factor = $2 AND status = 'active'
        ORDER BY created_at, id FOR UPDATE
        """,
        user_id,
        factor,
    )
    return [_stored(r) for r in rows]


async def webauthn_for_update(
    conn: asyncpg.Connection, user_id: str, webauthn_id: bytes
) -> StoredCredential | None:
    """The identity's active WebAuthn credential of this authenticator id, locked."""
    row = await conn.fetchrow(
        """
        SELECT * FROM mfa_credentials
        WHERE user_id = $1 AND webauthn_id = $2 AND status = 'active' FOR UPDATE
        """,
        user_id,
        webauthn_id,
    )
    return _stored(row) if row else None


async def webauthn_ids(conn: asyncpg.Connection, user_id: str) -> list[bytes]:
    """The authenticator ids of the identity's WebAuthn credentials."""
    rows = await conn.fetch(
        "SELECT webauthn_id FROM mfa_credentials WHERE user_id = $1 AND factor = 'webauthn'"
        " ORDER BY created_at, id",
        user_id,
    )
    return [bytes(r["webauthn_id"]) for r in rows]


async def record_totp_use(conn: asyncpg.Connection, credential_id: str, step: int) -> None:
    """A code of `step` was accepted: that step and older ones are spent."""
    await conn.execute(
        "UPDATE mfa_credentials SET last_totp_step = $2, last_used_at = now() WHERE id = $1",
        credential_id,
        step,
    )


async def record_webauthn_use(
    conn: asyncpg.Connection, credential_id: str, sign_count: int
) -> None:
    """An assertion was accepted: keep the authenticator's new sign count."""
    await conn.execute(
        "UPDATE mfa_credentials SET sign_count = $2, last_used_at = now() WHERE id = $1",
        credential_id,
        sign_count,
    )


async def delete(
    conn: asyncpg.Connection, user_id: str, credential_id: str
) -> dict[str, Any] | None:
    """Remove one credential; its id, factor and status, or None if there was none."""
    row = await conn.fetchrow(
        "DELETE FROM mfa_credentials WHERE id = $1 AND user_id = $2 RETURNING id, factor, status",
        credential_id,
        user_id,
    )
    return dict(row) if row else None


async def delete_all(conn: asyncpg.Connection, user_id: str) -> list[dict[str, Any]]:
    """Remove every credential of the identity; what was removed (id, factor, status)."""
    rows = await conn.fetch(
        "DELETE FROM mfa_credentials WHERE user_id = $1 RETURNING id, factor, status, created_at",
        user_id,
    )
    ordered = sorted(rows, key=lambda r: (r["created_at"], r["id"]))
    return [{"id": r["id"], "factor": r["factor"], "status": r["status"]} for r in ordered]


async def delete_expired_pending(conn: asyncpg.Connection, now: datetime) -> int:
    """Drop every TOTP enrolment that was never confirmed in time."""
    result: str = await conn.execute(
        "DELETE FROM mfa_credentials WHERE status = 'pending' AND expires_at <= $1", now
    )
    return int(result.split()[-1])


async def save_challenge(
    conn: asyncpg.Connection,
    *,
    challenge_id: str,
    user_id: str,
    purpose: Purpose,
    challenge: bytes,
    expires_at: datetime,
    now: datetime,
) -> None:
    """Remember a challenge handed out; drops expired ones and the identity's surplus."""
    await conn.execute("DELETE FROM mfa_challenges WHERE expires_at <= $1", now)
    await conn.execute(
        "INSERT INTO mfa_challenges (id, user_id, purpose, challenge, expires_at)"
        " VALUES ($1, $2, $3, $4, $5)",
        challenge_id,
        user_id,
        purpose,
        challenge,
        expires_at,
    )
    await conn.execute(
        """
        DELETE FROM mfa_challenges WHERE id IN (
            SELECT id FROM mfa_challenges WHERE user_id = $1 AND purpose = $2
            ORDER BY created_at DESC, expires_at DESC OFFSET $3)
        """,
        user_id,
        purpose,
        MAX_CHALLENGES,
    )


async def take_challenge(
    conn: asyncpg.Connection, *, user_id: str, purpose: Purpose, challenge: bytes, now: datetime
) -> bool:
    """Use a challenge up: True if it was handed to this identity for this purpose and has
    not expired. It is deleted either way, so it never serves twice."""
    expires_at: datetime | None = await conn.fetchval(
        "DELETE FROM mfa_challenges WHERE user_id = $1 AND purpose = $2 AND challenge = $3"
        " RETURNING expires_at",
        user_id,
        purpose,
        challenge,
    )
    return expires_at is not None and expires_at > now
