"""Sign-ins: failed ones count toward a lockout, a success ends their run."""

from __future__ import annotations

from accord.authn.handlers import lockout
from accord.authn.ports import Ports
from accord.events import AuthnFailed, AuthnSucceeded, Envelope


async def on_authn_failed(event: Envelope, data: AuthnFailed, ports: Ports) -> list[Envelope]:
    """Count the failure; the one that completes a run locks the identity."""
    return await lockout.failed(ports, event, data)


async def on_authn_succeeded(event: Envelope, data: AuthnSucceeded, ports: Ports) -> list[Envelope]:
    """End the run of the failures at or before the success."""
    return await lockout.succeeded(ports, event)
