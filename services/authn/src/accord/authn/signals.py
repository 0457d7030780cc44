"""What authn tells the Shared Signals receivers, as one port the handlers call.

The handlers say *what* happened to an identity (its sessions must end, its account is
disabled or enabled again, a credential changed); the transmitter turns that into CAEP
and RISC Security Event Tokens for every stream that asked for them. Unit tests give the
handlers a recording fake instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal

import asyncpg

Signal = Literal["session-revoked", "account-disabled", "account-enabled", "credential-change"]

#: Queue one signal about an identity to every stream that wants it (inside the caller's
#: transaction); returns how many streams it was queued to.
SendSignal = Callable[[asyncpg.Connection, str, Signal, str], Awaitable[int]]


async def send_nothing(conn: asyncpg.Connection, user_id: str, signal: Signal, reason: str) -> int:
    """A transmitter with no signing key configured: nothing is sent, nothing queued."""
    return 0
