"""Accord API tokens: random, stored hashed, scoped, expiring, revocable.

A token reads `acc_<id>_<secret>`: the id finds the row, the secret is compared with the
stored SHA-256 in constant time. 32 random bytes need no slow hash: they cannot be guessed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from accord.runtime import db
from accord.runtime.security.roles import Caller, Permission, Role

SCHEMA = "accord_auth"
MIGRATIONS = "accord.runtime.security.migrations"
_FORMAT = re.compile(r"acc_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")


class InvalidToken(Exception):
    """Unknown, malformed, expired or revoked; the reason is safe to log."""


@dataclass(frozen=True)
class TokenInfo:
    """A token's row, without its secret."""

    token_id: str
    subject: str
    roles: tuple[str, ...]
    scopes: tuple[str, ...] | None
    description: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class IssuedToken:
    """A new token: `token` is shown once and never stored."""

    token: str
    info: TokenInfo


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _info(row: asyncpg.Record) -> TokenInfo:
    return TokenInfo(
        token_id=row["token_id"],
        subject=row["subject"],
        roles=tuple(row["roles"]),
        scopes=tuple(row["scopes"]) if row["scopes"] is not None else None,
        description=row["description"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
    )


async def migrate(dsn: str) -> None:
    """Create the token table if needed."""
    await db.migrate(dsn, SCHEMA, [MIGRATIONS], runtime_tables=False)


class TokenStore:
    """API tokens in PostgreSQL (schema accord_auth)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def issue(
        self,
        subject: str,
        roles: set[Role],
        *,
        scopes: set[Permission] | None = None,
        lifetime: timedelta = timedelta(days=90),
        description: str = "",
    ) -> IssuedToken:
        """Create a token; the returned text is the only copy of its secret."""
        if not subject or len(subject) > 256:
            raise ValueError("subject must be 1 to 256 characters")
        if not roles:
            raise ValueError("a token needs at least one role")
        if lifetime <= timedelta(0) or lifetime > timedelta(days=3660):
            raise ValueError("lifetime must be positive and at most ten years")
        token_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        row = await self._pool.fetchrow(
            f"INSERT INTO {SCHEMA}.api_tokens"  # noqa: S608 - constant schema name
            " (token_id, secret_hash, subject, roles, scopes, description, expires_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *",
            token_id,
            _hash(secret),
            subject,
            sorted(r.value for r in roles),
            sorted(s.value for s in scopes) if scopes is not None else None,
            description,
            datetime.now(UTC) + lifetime,
        )
        assert row is not None
        return IssuedToken(f"acc_{token_id}_{secret}", _info(row))

    async def verify(self, token: str) -> Caller:
        """The caller a token stands for, or InvalidToken."""
        match = _FORMAT.fullmatch(token)
        if match is None:
            raise InvalidToken("malformed API token")
        token_id, secret = match.groups()
        row = await self._pool.fetchrow(
            f"SELECT * FROM {SCHEMA}.api_tokens WHERE token_id = $1",  # noqa: S608
            token_id,
        )
        # Compare even for unknown ids, so timing does not tell which ids exist.
        expected = row["secret_hash"] if row is not None else _hash("")
        if not hmac.compare_digest(expected, _hash(secret)) or row is None:
            raise InvalidToken("unknown API token")
        if row["revoked_at"] is not None:
            raise InvalidToken("revoked API token")
        if row["expires_at"] <= datetime.now(UTC):
            raise InvalidToken("expired API token")
        known = {p.value for p in Permission}
        scopes = (
            frozenset(Permission(s) for s in row["scopes"] if s in known)
            if row["scopes"] is not None
            else None
        )
        return Caller(
            subject=row["subject"],
            roles=frozenset(Role(r) for r in row["roles"] if r in {x.value for x in Role}),
            kind="api-token",
            credential_id=token_id,
            scopes=scopes,
        )

    async def revoke(self, token_id: str) -> bool:
        """Revoke a token at once; False if there is no such live token."""
        result = await self._pool.execute(
            f"UPDATE {SCHEMA}.api_tokens SET revoked_at = now()"  # noqa: S608
            " WHERE token_id = $1 AND revoked_at IS NULL",
            token_id,
        )
        return bool(result == "UPDATE 1")

    async def list(self, *, include_inactive: bool = False) -> list[TokenInfo]:
        """Tokens, newest first; by default only those still usable."""
        condition = "" if include_inactive else " WHERE revoked_at IS NULL AND expires_at > now()"
        rows = await self._pool.fetch(
            f"SELECT * FROM {SCHEMA}.api_tokens{condition} ORDER BY created_at DESC"  # noqa: S608
        )
        return [_info(r) for r in rows]
