"""What authz's clock does when it fires: overdue approval stages escalate or expire,
time-bound grants end. The loop that fires it (accord.authz.timers) owns the transaction."""

from __future__ import annotations

from dataclasses import dataclass

from accord.authz.domain.approvals import ApprovalSettings
from accord.authz.handlers.access import expire, time_out_stage
from accord.authz.ports import Stores
from accord.events import Envelope


@dataclass(frozen=True)
class Fired:
    """What one firing did: the events to emit and how many rows it handled."""

    events: list[Envelope]
    handled: int


async def fire_due(stores: Stores, *, settings: ApprovalSettings, source: str, limit: int) -> Fired:
    """Handle up to `limit` overdue stages and `limit` grants past their expiry."""
    events: list[Envelope] = []
    stages = await stores.approvals.overdue(limit=limit)
    for stage in stages:
        events += await time_out_stage(stores, stage, settings=settings, source=source)
    ended = await stores.grants.expired(limit=limit)
    for grant_id in ended:
        events += await expire(stores, grant_id, source=source)
    return Fired(events, len(stages) + len(ended))
