"""Security signals from identity providers (RFC 8935 pushes the receiver took) drive the
same flows as failed sign-ins: a compromised account is locked, a revoked session ends
everywhere."""

from __future__ import annotations

from accord.authn.domain.set_tokens import ReceivedSignal
from accord.authn.handlers import lockout
from accord.authn.ports import Ports
from accord.events import Envelope


async def on_security_signal(signal: ReceivedSignal, ports: Ports) -> list[Envelope]:
    """Lock the identity or revoke its sessions, as the signal asks; nothing otherwise."""
    why = f"{signal.event_uri.rsplit('/', 1)[-1]} from {signal.issuer}"[:200]
    if signal.action == "lock":
        return await lockout.lock(ports, signal.user_id, f"security signal: {why}", cause=None)
    if signal.action == "revoke_sessions":
        return await lockout.revoke_sessions(ports, signal.user_id, why, cause=None)
    return []
