"""Unlocks and factor resets go through an approval like any access request: authn acts
when the `access.granted` of a request it filed arrives, and settles a refused one."""

from __future__ import annotations

from accord.authn.domain.lockout import ACCORD_APPLICATION, GrantAction, grant_action
from accord.authn.handlers import lockout
from accord.authn.ports import Ports
from accord.events import AccessDecided, AccessGranted, Envelope


async def on_access_granted(event: Envelope, data: AccessGranted, ports: Ports) -> list[Envelope]:
    """Act on an approved unlock or factor reset (once: the request is settled)."""
    if data.resource.application != ACCORD_APPLICATION:
        return []
    request = await ports.requests.get(data.request_id)
    action = grant_action(request)
    if request is None or action is GrantAction.IGNORE:
        return []  # not ours, or acted on already
    events: list[Envelope] = []
    if action is GrantAction.UNLOCK and request.lockout_id:
        events = await lockout.unlock(ports, request.lockout_id, data.request_id, cause=event)
    elif action is GrantAction.RESET:
        events = await ports.factors.remove_all(request.user_id, f"reset ({data.request_id})")
    await ports.requests.settle(data.request_id, "done")
    return events


async def on_access_decided(event: Envelope, data: AccessDecided, ports: Ports) -> list[Envelope]:
    """A refused unlock or reset is settled as denied (one waiting for approval stays)."""
    if data.resource.application != ACCORD_APPLICATION or data.decision != "deny":
        return []
    request = await ports.requests.get(data.request_id)
    if request is not None and request.status == "pending":
        await ports.requests.settle(data.request_id, "denied")
    return []
