"""What authn tells the Shared Signals receivers, as one port the handlers call.

The handlers say *what* happened to an identity (its sessions must end, its account is
disabled or enabled again, a credential changed); the transmitter turns that into CAEP
and RISC Security Event Tokens for every stream that asked for them. Unit tests give the
handlers a recording fake instead.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Literal, Protocol

import asyncpg

Signal = Literal["session-revoked", "account-disabled", "account-enabled", "credential-change"]


class SendSignal(Protocol):
    """Queue one signal about an identity to every stream that wants it (inside the caller's
    transaction); returns how many streams it was queued to.

    `txn` names the cause (SSF 1.0 §4.1.4's `txn` claim): the signals one cause produces
    (a lockout's account-disabled and session-revoked) share it, and only they do.
    """

    def __call__(
        self, conn: asyncpg.Connection, user_id: str, signal: Signal, reason: str, *, txn: str
    ) -> Awaitable[int]: ...


async def send_nothing(
    conn: asyncpg.Connection, user_id: str, signal: Signal, reason: str, *, txn: str
) -> int:
    """A transmitter with no signing key configured: nothing is sent, nothing queued."""
    return 0


@dataclass(frozen=True)
class ConnSignals:
    """The Signals port (accord.authn.ports): a SendSignal inside the caller's transaction."""

    conn: asyncpg.Connection
    sender: SendSignal

    async def send(self, user_id: str, signal: Signal, reason: str, *, txn: str) -> int:
        return await self.sender(self.conn, user_id, signal, reason, txn=txn)
