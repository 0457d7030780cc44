"""Enrolment: the joiner saga asks an identity to enrol a factor; an enrolled one closes it."""

from __future__ import annotations

from accord.authn.ports import Ports
from accord.events import Envelope, MfaEnrolled, MfaEnrolmentRequested


async def on_enrolment_requested(
    event: Envelope, data: MfaEnrolmentRequested, ports: Ports
) -> list[Envelope]:
    """Remember that the joiner saga asked for enrolment."""
    await ports.enrolments.requested(data.user_id, data.factors, data.saga_id)
    return []


async def on_mfa_enrolled(event: Envelope, data: MfaEnrolled, ports: Ports) -> list[Envelope]:
    """An enrolled factor closes the identity's enrolment request."""
    await ports.enrolments.enrolled(data.user_id, event.time)
    return []
