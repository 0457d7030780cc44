"""Error kinds the runtime acts on: retry, or dead-letter."""

from __future__ import annotations

import asyncio

import asyncpg


class PermanentError(Exception):
    """Retrying cannot help (bad data, refused by a target): dead-letter the event."""


class RetryableError(Exception):
    """A dependency is unavailable or overloaded: retry with backoff, never dead-letter."""


#: Failures of our own infrastructure: the event is fine, so wait and retry, forever.
INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    RetryableError,
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    # The client's own state after the connection broke (asyncpg's protocol and cache
    # errors), e.g. on commit while PostgreSQL restarts.
    asyncpg.InternalClientError,
    # The server ending sessions on shutdown (57P01) or after another backend crashed (57P02).
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
)
